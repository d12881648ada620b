"""The advice's model: profiles, observations from measured cells, the fit and its held-out checks.

Every mix point a run measured with both ``sync`` and ``async`` gives one observation per
interpreter: the endpoint's profile (``FEATURES``, read from the cells at their best shapes,
``lab.decide.best_configs``) and the measured async/sync throughput ratio (and p95 ratio).
Per interpreter, log(ratio) is a straight line in the standardised features (least squares
with a small ridge penalty), checked on mix points held out of the fit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qs

import numpy as np
import pandas as pd

from lab.decide import best_configs, decide, http_ok
from lab.errors import LabError, SpecError
from lab.stats import ratio_ci

Client = Literal["httpx", "aiohttp"]
CLIENTS: tuple[str, ...] = get_args(Client)
# CPU per upstream call of each async client on this machine class (FACTS.md: httpx's async
# client ~1.5 ms, aiohttp ~0.4 ms): the client feature is calls x this, so "a cheaper
# client" is a change the model can evaluate.
CLIENT_MS_PER_CALL: dict[str, float] = {"httpx": 1.5, "aiohttp": 0.4}
ROLE_LABEL = {"gil": "3.13", "ft": "3.13t"}
# What the fit reads, in this order: (name, what it is). Counts are per request.
FEATURES: tuple[tuple[str, str], ...] = (
    ("cpu_ms", "server CPU ms per request of the sync cell"),
    ("queries", "SQL statements"),
    ("crossings", "sync/async crossings of the async variant"),
    ("log_wait", "log(1 + upstream calls x latency in ms)"),
    ("fanout", "upstream calls made at once"),
    ("db_connections", "database connections opened by the async variant"),
    ("client_ms", "upstream calls x the async client's CPU per call"),
)
# Ridge penalty in standardised units (each feature's Z'Z diagonal is n): small against the
# 7-15 observations a run gives, but enough to keep a fit unique when features move together
# (every ORM point opens one connection) or outnumber the points left after holding one out.
RIDGE = 1.0
# A fit needs this many mix points per interpreter (leave-one-out then fits on one fewer).
MIN_POINTS = 4


@dataclass(frozen=True, kw_only=True)
class Profile:
    """An endpoint as the advice sees it (all per request)."""

    cpu_ms: float
    queries: float = 0.0
    crossings: float = 0.0
    upstream_calls: float = 0.0
    upstream_ms: float = 0.0
    fanout: float = 0.0
    db_connections: float = 0.0
    client: Client = "httpx"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "client":
                if value not in CLIENTS:
                    raise SpecError(f"client {value!r} is not known; accepted: {', '.join(CLIENTS)}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise SpecError(f"{f.name} {value!r} must be a finite number >= 0")

    def features(self) -> np.ndarray:
        return np.array(
            [
                self.cpu_ms,
                self.queries,
                self.crossings,
                math.log1p(self.upstream_calls * self.upstream_ms),
                self.fanout,
                self.db_connections,
                self.upstream_calls * CLIENT_MS_PER_CALL[self.client],
            ]
        )

    @classmethod
    def from_json(cls, path: Path) -> Profile:
        """A profile file: a JSON object with this class's field names (``cpu_ms`` required)."""
        if not path.is_file():
            raise LabError(f"profile file '{path}' does not exist")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SpecError(f"profile file '{path}' is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        known = [f.name for f in fields(cls)]
        if not isinstance(raw, dict):
            raise SpecError(f"profile file '{path}' must hold a JSON object with keys {', '.join(known)}")
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise SpecError(f"profile file '{path}': unknown key {unknown[0]!r}; accepted: {', '.join(known)}")
        if "cpu_ms" not in raw:
            raise SpecError(f"profile file '{path}' lacks 'cpu_ms'")
        try:
            return cls(**raw)
        except SpecError as exc:
            raise SpecError(f"profile file '{path}': {exc}") from None


def profile_from(numbers: dict[str, float], client: str | None) -> Profile:
    """A profile from the command line's numbers (keys are the field names)."""
    raw: dict[str, Any] = {**numbers, "client": client or "httpx"}
    if client is not None and client not in CLIENTS:
        raise SpecError(f"--client {client!r} is not known; accepted: {', '.join(CLIENTS)}")
    return Profile(**raw)


def number(flag: str, text: str) -> float:
    """A command-line number, or a one-line error naming the flag."""
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{flag} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise SpecError(f"{flag} {text!r} must be a finite number >= 0")
    return value


def _cells(ok: pd.DataFrame, point: str, role: str, best: dict[str, Any]) -> pd.DataFrame:
    chosen: pd.DataFrame = ok[
        (ok["point"] == point)
        & (ok["role"] == role)
        & (ok["variant"] == best["variant"])
        & (ok["server_spec"] == best["server"])
        & (ok["concurrency"] == best["concurrency"])
    ]
    return chosen


def _profile_of(point: str, sync: pd.DataFrame, asy: pd.DataFrame) -> Profile | None:
    """The profile the cells measured; None when a probe count or the CPU is missing."""
    queries, crossings = int(sync["sql_statements"].max()), int(asy["crossings"].max())
    calls, opened = int(sync["upstream_calls"].max()), int(asy["db_connections_opened"].max())
    cpu = float(sync["server_cpu_ms_per_req"].mean())
    if min(queries, crossings, calls, opened) < 0 or not math.isfinite(cpu):
        return None
    params = parse_qs(str(sync["query"].iloc[0]))
    fanout = float(params["k"][0]) if params.get("mode") == ["fanout"] and "k" in params else float(calls > 0)
    # The nominal wait is the request's wall time waiting (three sequential 20 ms calls: 60,
    # five at once: 20); a call's latency is that over the rounds of calls it takes.
    wait = float(sync["nominal_wait_ms"].iloc[0])
    rounds = math.ceil(calls / fanout) if calls and fanout else 1
    return Profile(
        cpu_ms=cpu,
        queries=queries,
        crossings=crossings,
        upstream_calls=calls,
        upstream_ms=wait / rounds if math.isfinite(wait) else 0.0,
        fanout=fanout,
        db_connections=opened,
        client="aiohttp" if "-with-aiohttp" in point else "httpx",
    )


# Probe counts (what a request does) belong to the endpoint, not to the run: runs measured
# before the probe existed (-1) borrow them from another loaded run of the same point,
# variant, database and pool.
COUNTS = ("sql_statements", "upstream_calls", "db_connections_opened")


def with_counts(df: pd.DataFrame) -> pd.DataFrame:
    """The values with missing probe counts filled from other runs where they were measured."""
    keys = [k for k in ("point", "variant", "database", "db_pool") if k in df.columns]
    out = df.copy()
    for column in COUNTS:
        known = out[column].where(out[column] >= 0)
        out[column] = known.fillna(known.groupby([out[k] for k in keys]).transform("max")).fillna(-1)
    return out


def observations(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run, mix point and interpreter measured with both sync and async (each at
    its best shape by throughput): the profile's features, the measured log ratios and the
    measured winner of the two (``lab.decide.decide`` on the sync and async cells)."""
    rows: list[dict[str, Any]] = []
    if df.empty:
        return pd.DataFrame()
    df = with_counts(df)
    for run, rdf in df.groupby("run"):
        pair = rdf[rdf["variant"].isin(["sync", "async"])]
        # The measured decision leaves out cells too noisy to quote, as the report does; the
        # fit keeps them (their paired async/sync ratio is still the best estimate there, and
        # a paired run flags most cells of some points), and says which they are.
        decided = {
            (r["point"], r["role"]): (str(r["winner"]), bool(r["decided"]))
            for r in decide(pair).by_throughput.to_dict("records")
            if r["runner_up_server"]  # a second variant qualified: a margin to call
        }
        noisy = pair["noisy"] == 1 if "noisy" in pair.columns else pd.Series(False, index=pair.index)
        kept = pair.assign(noisy=0, was_noisy=noisy)
        best, ok = best_configs(kept, math.inf), http_ok(kept)
        if best.empty:
            continue
        for (point, role), g in best.groupby(["point", "role"]):
            by = {r["variant"]: r for r in g.to_dict("records")}
            if "sync" not in by or "async" not in by:
                continue
            s, a = dict(by["sync"]), dict(by["async"])
            sync, asy = _cells(ok, str(point), str(role), s), _cells(ok, str(point), str(role), a)  # type: ignore[arg-type]
            profile = _profile_of(str(point), sync, asy)
            if profile is None:
                continue
            winner, significant = decided.get((point, role), ("", False))
            ratio, low, high = ratio_ci(a["values"], s["values"])
            p95 = a["p95_ms"] / s["p95_ms"] if s["p95_ms"] > 0 and a["p95_ms"] > 0 else math.nan
            rows.append(
                {
                    "run": run,
                    "point": point,
                    "role": role,
                    **dict(zip([n for n, _ in FEATURES], profile.features().tolist(), strict=True)),
                    "profile": profile,
                    "ratio": ratio,
                    "low": low,
                    "high": high,
                    "log_ratio": math.log(ratio),
                    "log_p95": math.log(p95) if math.isfinite(p95) else math.nan,
                    "noisy": bool(sync["was_noisy"].any() or asy["was_noisy"].any()),
                    # The report's decision at this point ("" where noise left one variant out).
                    "measured_winner": winner,
                    "measured_decided": significant,
                }
            )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Fit:
    """log(ratio) = intercept + sum(coef * (x - mean) / scale); scale 0 = feature not varied."""

    mean: np.ndarray
    scale: np.ndarray
    intercept: float
    coef: np.ndarray

    def standardise(self, x: np.ndarray) -> np.ndarray:
        safe = np.where(self.scale > 0, self.scale, 1.0)
        return np.where(self.scale > 0, (x - self.mean) / safe, 0.0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.intercept + self.standardise(x) @ self.coef
        return out


def fit(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> Fit:
    """Ridge least squares on standardised features; the intercept (the mean of y, as the
    features are centred) is not penalised; a feature with no spread gets coefficient 0."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9 * np.maximum(1.0, np.abs(mean)), scale, 0.0)
    used = scale > 0
    coef = np.zeros(x.shape[1])
    intercept = float(y.mean())
    if used.any():
        z = (x[:, used] - mean[used]) / scale[used]
        coef[used] = np.linalg.solve(z.T @ z + ridge * np.eye(int(used.sum())), z.T @ (y - intercept))
    return Fit(mean, scale, intercept, coef)


def held_out(x: np.ndarray, y: np.ndarray, groups: list[str], ridge: float = RIDGE) -> np.ndarray:
    """Each observation predicted by a fit without its mix point (in any run)."""
    out = np.full(len(y), math.nan)
    for group in dict.fromkeys(groups):
        test = np.array([g == group for g in groups])
        out[test] = fit(x[~test], y[~test], ridge).predict(x[test])
    return out


@dataclass(frozen=True)
class Model:
    """One interpreter's fits (throughput and, where measured, p95) and held-out checks."""

    role: str
    obs: pd.DataFrame  # observations with "predicted" (held out) and "residual" columns
    throughput: Fit
    p95: Fit | None
    p95_residuals: np.ndarray

    @property
    def residuals(self) -> np.ndarray:
        return np.asarray(self.obs["residual"], dtype=float)

    @property
    def agreement(self) -> tuple[int, int]:
        """Held-out points whose advised winner is the measured decision's, and how many
        points have a measured decision between the two."""
        judged = self.obs[self.obs["measured_winner"] != ""]
        advised = np.where(judged["predicted"] > 0, "async", "sync")
        return int((advised == judged["measured_winner"]).sum()), len(judged)


def load_values(runs: list[Path]) -> pd.DataFrame:
    """The values of one or several run directories, concatenated (``run`` tells them apart)."""
    from lab.report import load_run  # the report imports this module for advise_lines

    return pd.concat([load_run(run).values for run in runs], ignore_index=True)


def build_models(df: pd.DataFrame, ridge: float = RIDGE) -> dict[str, Model]:
    """A model per interpreter from a values frame (one or several runs concatenated)."""
    obs = observations(df)
    runs = ", ".join(sorted({str(r) for r in df["run"]})) if "run" in df.columns and not df.empty else "(none)"
    models: dict[str, Model] = {}
    for role in ROLE_LABEL:
        o = obs[obs["role"] == role].reset_index(drop=True) if not obs.empty else pd.DataFrame()
        points = 0 if o.empty else o["point"].nunique()
        if points < MIN_POINTS:
            raise LabError(
                f"run(s) {runs} have {points} mix points measured with both sync and async (and probe counts) on "
                f"{ROLE_LABEL[role]}; the advice needs at least {MIN_POINTS} to fit and hold one out"
            )
        x = o[[n for n, _ in FEATURES]].to_numpy(dtype=float)
        y = o["log_ratio"].to_numpy(dtype=float)
        groups = [str(p) for p in o["point"]]
        predicted = held_out(x, y, groups, ridge)
        o = o.assign(predicted=predicted, residual=y - predicted)
        has_p95 = np.isfinite(o["log_p95"].to_numpy(dtype=float))
        p95_fit: Fit | None = None
        p95_res = np.array([])
        if o.loc[has_p95, "point"].nunique() >= MIN_POINTS:
            y95 = o["log_p95"].to_numpy(dtype=float)[has_p95]
            g95 = [g for g, h in zip(groups, has_p95, strict=True) if h]
            p95_fit = fit(x[has_p95], y95, ridge)
            p95_res = y95 - held_out(x[has_p95], y95, g95, ridge)
        models[role] = Model(role, o, fit(x, y, ridge), p95_fit, p95_res)
    return models
