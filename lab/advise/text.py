"""The advice in words: a profile's expected winner and what would change it (``lab advise``),
and the fit with its held-out error for the report (``advise_lines``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from lab.advise.model import (
    CLIENTS,
    COLLAPSE,
    COSTS,
    FEATURES,
    INTERVAL_SHARE,
    ROLE_LABEL,
    SURE,
    TIE,
    Conditions,
    Model,
    Prediction,
    Profile,
    Side,
    build_models,
    estimate,
    outcome,
    predict,
)
from lab.errors import LabError
from lab.servers import MAX_THREADS, parse_server

AGREEMENT_TARGET = 0.8


def times(log_ratio: float) -> str:
    """A ratio as ``×0.99``; with a third decimal where two would show ×1.00 for a ratio that
    is not 1, so that the winner the advice names can be seen in the number."""
    ratio = math.exp(log_ratio)
    return f"×{ratio:.3f}" if f"{ratio:.2f}" == "1.00" and log_ratio != 0.0 else f"×{ratio:.2f}"


def rms(residuals: np.ndarray) -> float:
    return float(np.sqrt(np.mean(residuals**2))) if residuals.size else math.nan


def _more_threads(at: Conditions) -> Conditions | None:
    """Every threaded sync shape with twice the threads per process, up to the lab's
    ``MAX_THREADS`` (None when no shape can grow)."""
    doubled = []
    for spec in at.sync_shapes:
        server = parse_server(spec)
        if server.kind not in ("gunicorn-gthread", "granian-wsgi"):
            return None
        doubled.append(f"{server.kind}:{server.workers}x{min(2 * server.threads, MAX_THREADS)}")
    return replace(at, sync_shapes=tuple(doubled)) if set(doubled) - set(at.sync_shapes) else None


@dataclass(frozen=True)
class Change:
    label: str
    # (profile, conditions) -> the changed pair, or None when the change does not apply.
    apply: Callable[[Profile, Conditions], tuple[Profile, Conditions] | None]


CHANGES: tuple[Change, ...] = (
    Change("halve the crossings", lambda p, c: (replace(p, crossings=p.crossings / 2), c) if p.crossings else None),
    Change("no crossings (a true async path)", lambda p, c: (replace(p, crossings=0.0), c) if p.crossings else None),
    Change("a connection pool (no connection opened per request)",
           lambda p, c: (replace(p, db_connections=0.0), c) if p.db_connections else None),
    Change("a cheaper async client (aiohttp)",
           lambda p, c: (replace(p, client="aiohttp"), c) if p.upstream_calls and p.client != "aiohttp" else None),
    Change("twice the sync threads per process",
           lambda p, c: (p, more) if (more := _more_threads(c)) is not None else None),
)  # fmt: skip


def _side(name: str, side: Side) -> str:
    return f"{name} {side.rps:,.0f} req/s on {side.shape} ({side.limit}; {side.cpu_ms:.2f} CPU ms/request)"


def change_lines(model: Model, profile: Profile) -> list[str]:
    """Each single change evaluated on the model; the one that flips or moves most first."""
    base = model.estimate(profile)
    scored: list[tuple[float, str]] = []
    for change in CHANGES:
        after = change.apply(profile, model.conditions)
        if after is None:
            continue
        new = estimate(predict(after[0], model.cost, model.rig, after[1]).log_ratio, model.bound_errors)
        flips = new.winner != base.winner
        text = f"{change.label}: {times(base.log_ratio)} -> {times(new.log_ratio)}" + (
            f", now {new.winner}" if flips else ""
        )
        scored.append((abs(new.log_ratio - base.log_ratio) + (10.0 if flips else 0.0), text))
    scored.sort(key=lambda s: -s[0])
    return [f"    {'*' if i == 0 else '-'} {text}" for i, (_score, text) in enumerate(scored)]


def _outside(model: Model, x: np.ndarray) -> list[str]:
    """Features of the profile outside the range the measured cells span."""
    cells = model.obs[[n for n, _ in FEATURES]]
    out: list[str] = []
    for (name, _), value in zip(FEATURES, x, strict=True):
        low, high = float(cells[name].min()), float(cells[name].max())
        if not low - 1e-9 <= value <= high + 1e-9:
            out.append(f"{name} {value:.3g} (measured {low:.3g}..{high:.3g})")
    return out


def _nearest(model: Model, x: np.ndarray) -> list[str]:
    """The three measured points closest in standardised features."""
    cells = model.obs[[n for n, _ in FEATURES]].to_numpy(dtype=float)
    scale = cells.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    distance = np.linalg.norm((cells - x) / scale, axis=1)
    lines = []
    for i in np.argsort(distance, kind="stable")[:3]:
        o = model.obs.iloc[int(i)]
        lines.append(
            f"    {o['point']} ({o['run']}): measured async/sync ×{o['ratio']:.2f} ({o['measured'] or 'undecided'})"
            + (" (too noisy to quote in the report)" if o["noisy"] else "")
            + f"; distance {distance[i]:.2f}"
        )
    return lines


def advice_lines(models: dict[str, Model], profile: Profile) -> list[str]:
    """What ``lab advise`` prints for one profile: per interpreter, the advised outcome, the
    ratio with an interval from the held-out errors, what binds each side, how sure, the
    nearest measured cells and the changes that would move the decision."""
    lines: list[str] = []
    x = profile.features()
    for role, model in models.items():
        at = model.conditions
        found: Prediction = model.predict(profile)
        est, errors = model.estimate(profile), model.bound_errors
        kept = round(est.sure * errors.size) if errors.size else 0
        head = "a tie expected" if est.winner == "tie" else f"{est.winner} expected to win"
        practical = f" (under {TIE:.0%}: practically a tie)" if outcome(est.log_ratio, TIE) == "tie" else ""
        lines += [
            f"{ROLE_LABEL[role]}: {head}; async/sync throughput {times(est.log_ratio)}{practical} "
            f"[{math.exp(est.low):.2f}, {math.exp(est.high):.2f}] (the bounds' {times(est.bound)} times their median "
            f"held-out error {times(est.log_ratio - est.bound)}; {INTERVAL_SHARE:.0%} of the held-out errors; "
            f"at {at.connections} connections on {at.cores} cores, {at.cpu_layout})",
            f"  {_side('sync', found.sync)}; {_side('async', found.asy)} (bounds)",
            f"  how sure: {kept} of {errors.size} held-out errors added to the bounds' ratio keep {est.winner} the "
            f"winner ({'a sure call' if kept >= SURE * errors.size else 'not a sure call'}, at least {SURE:.0%}: the "
            "check says how often each kind was right)",
            f"  p95 latency async/sync ×{math.exp(-est.log_ratio):.2f} (closed loop at the same connections: 1 / the "
            f"throughput ratio; held-out error ×{math.exp(rms(model.p95_residuals)):.2f})",
        ]
        outside = _outside(model, x)
        if outside:
            lines.append(f"  beyond the measured cells (an extrapolation): {'; '.join(outside)}")
        lines.append("  nearest measured cells (distance in standardised features):")
        lines += _nearest(model, x)
        lines.append("  single changes, evaluated on the model (* = changes the outcome or moves it most):")
        lines += [*change_lines(model, profile), ""]
    return lines[:-1]


def model_lines(model: Model) -> list[str]:
    """The fit in numbers a reader can redo by hand."""
    at = model.conditions
    fitting = model.train if model.train is not None else model.obs
    fitting_errors = fitting["bound_error"].to_numpy(dtype=float)
    lines = [
        f"async CPU ms per request = sync CPU ms + base + crossing × crossings + connect × connections opened "
        f"+ calls × per-call difference of the async client; fitted on the measured async CPU of {len(fitting)} mix "
        f"points (those whose async CPU per request is over {COLLAPSE:g}× the sync one's left out: a collapse, "
        "not a cost):",
        "",
        "| cost | what | ms |",
        "|---|---|---:|",
        *(f"| {name} | {what} | {v:.3f} |" for (name, what), v in zip(COSTS, model.cost.values(), strict=True)),
        *(
            f"| call_ms[{client}] | per upstream call: {client}'s async CPU minus the sync version's in-server CPU "
            f"({'fitted' if client in model.cost.call_ms else 'FACTS.md, no fitting point called it'}) | "
            f"{model.cost.per_call_ms(client):.3f} |"
            for client in CLIENTS
        ),
        "",
        f"Each variant's throughput: the best over its measured shapes (sync: {', '.join(at.sync_shapes)}; "
        f"async: {', '.join(at.async_shapes)}) of min(CPU bound, in-flight bound) from `lab.limits`, with the "
        f"load generator ({model.rig.loadgen_ms:.2f} ms per request) and the upstream "
        f"({model.rig.upstream_call_ms:.2f} ms per call) on the same {at.cores} cores. The estimate is the bounds' "
        f"ratio times the median of their held-out errors (here ×{math.exp(float(np.median(fitting_errors))):.2f}: "
        "the bounds overstate async); the advice is the winner it names, how sure it is the share of the bounds' "
        f"held-out errors that keep that winner (a margin under {TIE:.0%} is called practically a tie in words, "
        "not in the outcome).",
    ]
    if model.rig.worker_split:
        lines[-1] += (
            " Multi-worker shapes are bounded per worker by the measured split of the connections (busiest worker's "
            "share, median over the fitting points: "
            + ", ".join(f"{spec} {share:.0%}" for spec, share in model.rig.worker_split.items())
            + ")."
        )
    return lines


def check_lines(model: Model) -> list[str]:
    """Held-out error and agreement with the measured decision, said plainly."""
    agree, total = model.agreement
    res = model.residuals
    share = agree / total if total else math.nan
    verdict = "meets" if share >= AGREEMENT_TARGET else "MISSES"
    (sure_right, sure_of), (rest_right, rest_of) = model.sure_calls()
    # A model checked on runs it was not fitted on (lab.advise.tested) says so, and its
    # baselines and how sure come from its fitting points, not from the other checked ones.
    checked, points, others, errors = (
        ("checked on runs the fit never saw", "points", "the fitting points", "the fit's held-out errors")
        if model.train is not None
        else ("held out one mix point at a time", "held-out points", "the other mix points", "the other points' errors")
    )
    agreement = (
        f"advised winner = measured decision at {agree} of {total} {points} ({share:.1%}; {verdict} the "
        f"{AGREEMENT_TARGET:.0%} target; a point the decision map calls a tie counts as a miss, so a perfect "
        f"prediction agrees only where the map decided: {model.rule_ceiling()} of {total}; a constant "
        f"advice, the outcome measured most often at {others}, at {model.constant_baseline} of "
        f"{total}); calls at least {SURE:.0%} of {errors} keep: {sure_right} of {sure_of} right, "
        f"the other calls: {rest_right} of {rest_of}; with a {TIE:.0%} tie band instead (advise a tie inside it, "
        f"the rule until 2026-12-07): {model.banded_agreement} of {total}, a perfect prediction "
        f"{model.rule_ceiling(TIE)}"
        if total
        else "no held-out point has a measured decision between sync and async"
    )
    lines = [
        f"{checked}: typical error ×{math.exp(rms(res)):.2f} (rms of log ratio "
        f"{rms(res):.3f}, worst ×{math.exp(float(np.max(np.abs(res)))):.2f} over {len(res)} mix points; a constant "
        f"prediction, the median ratio of {others}: ×{math.exp(rms(model.constant_residuals)):.2f}); "
        f"{agreement}"
        + (
            f"; not contradicted by the measured 95% interval at {model.not_contradicted} of {total} (the rest "
            "are outcomes the run rules out)"
            if total
            else ""
        ),
        f"p95 ratio as 1 / throughput ratio, {'on those runs' if model.train is not None else 'held out'}: "
        f"typical error ×{math.exp(rms(model.p95_residuals)):.2f}",
    ]
    judged = model.judged
    for o in judged[judged["advised"] != judged["measured"]].to_dict("records"):
        interval = "" if math.isnan(o["low"]) else f" [{o['low']:.2f}, {o['high']:.2f}]"
        lines.append(
            f"missed: {o['point']} ({o['run']}): advised {o['advised']} {times(o['predicted'])}, "
            f"measured {o['measured']} ×{o['ratio']:.2f}{interval}"
        )
    return lines


def fit_lines(models: dict[str, Model]) -> list[str]:
    """Each interpreter's fitted costs and held-out checks (markdown)."""
    lines: list[str] = []
    for role, model in models.items():
        lines += ["", f"**{ROLE_LABEL[role]}**", "", *model_lines(model), ""]
        lines += [f"- {line}" for line in check_lines(model)]
    return lines


def advise_lines(df: pd.DataFrame) -> list[str]:
    """The report's section: the fit per interpreter and its held-out error (markdown)."""
    lines = ["", "## Advice model: async/sync from an endpoint's profile", ""]
    try:
        models = build_models(df)
    except LabError as exc:
        return [*lines, f"Not fitted: {exc}."]
    lines += [
        "Per interpreter, each variant's throughput bound (CPU or requests in flight, as in \"What limited each "
        "cell\") at its best measured shape, with the async version's extra CPU per request fitted on the "
        "measured async cells (`python -m lab advise` applies it to yours). Error and agreement come from fits "
        "that never saw the mix point they predict.",
    ]
    return lines + fit_lines(models)
