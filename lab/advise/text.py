"""The advice in words: a profile's expected winner and what would change it (``lab advise``),
and the fit with its held-out error for the report (``advise_lines``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from lab.advise.model import FEATURES, RIDGE, ROLE_LABEL, Model, Profile, build_models
from lab.errors import LabError

# The interval around an advised ratio covers this share of the held-out errors.
INTERVAL_SHARE = 0.9
AGREEMENT_TARGET = 0.8


def spread(residuals: np.ndarray) -> float:
    """Half-width in log units covering INTERVAL_SHARE of the held-out errors."""
    return float(np.quantile(np.abs(residuals), INTERVAL_SHARE)) if residuals.size else math.nan


def rms(residuals: np.ndarray) -> float:
    return float(np.sqrt(np.mean(residuals**2))) if residuals.size else math.nan


@dataclass(frozen=True)
class Change:
    label: str
    apply: Callable[[Profile], Profile | None]  # None: the change does not apply to this profile


CHANGES: tuple[Change, ...] = (
    Change("halve the crossings", lambda p: replace(p, crossings=p.crossings / 2) if p.crossings else None),
    Change("no crossings (a true async path)", lambda p: replace(p, crossings=0.0) if p.crossings else None),
    Change("a connection pool (no connection opened per request)",
           lambda p: replace(p, db_connections=0.0) if p.db_connections else None),
    Change("halve the queries", lambda p: replace(p, queries=p.queries / 2) if p.queries else None),
    Change("a cheaper async client (aiohttp)",
           lambda p: replace(p, client="aiohttp") if p.upstream_calls and p.client != "aiohttp" else None),
)  # fmt: skip


def _winner(log_ratio: float) -> str:
    return "async" if log_ratio > 0 else "sync"


def _unused(model: Model, before: Profile, after: Profile) -> list[str]:
    """Features a change moves that the measured cells never varied (the fit cannot tell)."""
    moved = before.features() != after.features()
    return [name for (name, _), m, s in zip(FEATURES, moved, model.throughput.scale, strict=True) if m and s == 0]


def change_lines(model: Model, profile: Profile) -> list[str]:
    """Each single change evaluated on the model; the one that flips or moves most first."""
    base = float(model.throughput.predict(profile.features()))
    scored: list[tuple[float, str]] = []
    for change in CHANGES:
        after = change.apply(profile)
        if after is None:
            continue
        unused = _unused(model, profile, after)
        if unused:
            scored.append((-1.0, f"{change.label}: no estimate (the measured cells never vary {', '.join(unused)})"))
            continue
        new = float(model.throughput.predict(after.features()))
        flips = _winner(new) != _winner(base)
        text = f"{change.label}: ×{math.exp(base):.2f} -> ×{math.exp(new):.2f}" + (
            f", flips to {_winner(new)}" if flips else ""
        )
        scored.append((abs(new - base) + (10.0 if flips else 0.0), text))
    scored.sort(key=lambda s: -s[0])
    lines = [f"    {'*' if i == 0 and score >= 0 else '-'} {text}" for i, (score, text) in enumerate(scored)]
    lines.append("    - more threads: not in the model (each variant is already at its best measured shape)")
    return lines


def _outside(model: Model, x: np.ndarray) -> list[str]:
    """Features of the profile outside the range the measured cells span."""
    cells = model.obs[[n for n, _ in FEATURES]]
    out: list[str] = []
    for (name, _), value in zip(FEATURES, x, strict=True):
        low, high = float(cells[name].min()), float(cells[name].max())
        if not low - 1e-9 <= value <= high + 1e-9:
            out.append(f"{name} {value:.3g} (measured {low:.3g}..{high:.3g})")
    return out


def advice_lines(models: dict[str, Model], profile: Profile) -> list[str]:
    """What ``lab advise`` prints for one profile: per interpreter, the advised winner, the
    ratio with an interval from the held-out errors, how sure, the nearest measured cells
    and the changes that would move the decision."""
    lines: list[str] = []
    x = profile.features()
    for role, model in models.items():
        pred = float(model.throughput.predict(x))
        half, res = spread(model.residuals), model.residuals
        kept = int(np.sum(np.sign(pred + res) == np.sign(pred)))
        winner = _winner(pred)
        lines += [
            f"{ROLE_LABEL[role]}: {winner} expected to win; async/sync throughput ×{math.exp(pred):.2f} "
            f"[{math.exp(pred - half):.2f}, {math.exp(pred + half):.2f}] ({INTERVAL_SHARE:.0%} of held-out errors)",
            f"  how sure: {kept} of {res.size} held-out errors added to this estimate keep {winner} ahead"
            + ("; the interval spans 1: a close call" if pred - half < 0 < pred + half else ""),
        ]
        if model.p95 is not None:
            p95, h95 = float(model.p95.predict(x)), spread(model.p95_residuals)
            lines.append(
                f"  p95 latency async/sync ×{math.exp(p95):.2f} [{math.exp(p95 - h95):.2f}, {math.exp(p95 + h95):.2f}]"
            )
        outside = _outside(model, x)
        if outside:
            lines.append(f"  beyond the measured cells (an extrapolation): {'; '.join(outside)}")
        z = model.throughput.standardise(x)
        cells = model.obs[[n for n, _ in FEATURES]].to_numpy(dtype=float)
        distance = np.linalg.norm(np.array([model.throughput.standardise(c) for c in cells]) - z, axis=1)
        lines.append("  nearest measured cells (distance in standardised features):")
        for i in np.argsort(distance, kind="stable")[:3]:
            o = model.obs.iloc[int(i)]
            lines.append(
                f"    {o['point']} ({o['run']}): measured async/sync ×{o['ratio']:.2f}"
                + (" (too noisy to quote in the report)" if o["noisy"] else "")
                + f"; distance {distance[i]:.2f}"
            )
        lines.append("  single changes, evaluated on the model (* = flips or moves the decision most):")
        lines += [*change_lines(model, profile), ""]
    return lines[:-1]


def coefficient_lines(model: Model) -> list[str]:
    """The fit in numbers a reader can redo by hand."""
    f = model.throughput
    lines = [
        f"log(async/sync) = {f.intercept:+.3f} + sum of coef x (x - mean) / sd; "
        f"fitted on {len(model.obs)} cells, ridge {RIDGE:g}",
        "",
        "| feature | mean | sd | coef | ×ratio per +1 sd |",
        "|---|---:|---:|---:|---:|",
    ]
    for (name, what), m, s, c in zip(FEATURES, f.mean, f.scale, f.coef, strict=True):
        effect = f"×{math.exp(c):.2f}" if s > 0 else "not varied"
        lines.append(f"| {name} ({what}) | {m:.2f} | {s:.2f} | {c:+.3f} | {effect} |")
    return lines


def check_lines(model: Model) -> list[str]:
    """Held-out error and agreement with the measured decision, said plainly."""
    agree, total = model.agreement
    res = model.residuals
    share = agree / total if total else math.nan
    verdict = "meets" if share >= AGREEMENT_TARGET else "MISSES"
    undecided = len(model.obs) - total
    agreement = (
        f"advised winner = measured winner at {agree} of {total} held-out cells ({share:.0%}; {verdict} the "
        f"{AGREEMENT_TARGET:.0%} target)"
        if total
        else "no held-out cell has a measured decision between sync and async"
    )
    lines = [
        f"held out one mix point at a time: typical error ×{math.exp(rms(res)):.2f} (rms of log ratio "
        f"{rms(res):.3f}, worst ×{math.exp(float(np.max(np.abs(res)))):.2f} over {len(res)} cells); {agreement}"
        + (f"; {undecided} more cells are too noisy for the report to decide" if undecided else ""),
    ]
    if model.p95 is not None:
        lines.append(f"p95 ratio held out: typical error ×{math.exp(rms(model.p95_residuals)):.2f}")
    judged = model.obs[model.obs["measured_winner"] != ""]
    wrong = judged[np.where(judged["predicted"] > 0, "async", "sync") != judged["measured_winner"]]
    for o in wrong.to_dict("records"):
        close = "" if o["measured_decided"] else " (measured margin not significant)"
        lines.append(
            f"missed: {o['point']} ({o['run']}): advised ×{math.exp(o['predicted']):.2f}, measured "
            f"×{o['ratio']:.2f}{close}"
        )
    return lines


def advise_lines(df: pd.DataFrame) -> list[str]:
    """The report's section: the fit per interpreter and its held-out error (markdown)."""
    lines = ["", "## Advice model: async/sync from an endpoint's profile", ""]
    try:
        models = build_models(df)
    except LabError as exc:
        return [*lines, f"Not fitted: {exc}."]
    lines += [
        "Per interpreter, log(async/sync throughput) fitted as a line in the endpoint's standardised profile "
        "(`python -m lab advise` applies it to yours). Error and agreement come from fits that never saw the "
        "mix point they predict.",
    ]
    for role, model in models.items():
        lines += ["", f"**{ROLE_LABEL[role]}**", "", *coefficient_lines(model), ""]
        lines += [f"- {line}" for line in check_lines(model)]
    return lines
