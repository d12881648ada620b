"""The advice's model: an endpoint's profile -> each variant's throughput bound at its best
measured server shape -> the async/sync ratio, checked on mix points held out of the fit.

Each variant of an endpoint is capped by CPU (usable cores / CPU per request, with the load
generator and the upstream simulator sharing the cores) or by the requests it can hold in
flight (threads or connections / time each request holds its slot): the formulas of
``lab.limits``, the same ones that name every measured cell's binding limit. The model
predicts both variants' bounds at every server shape the runs measured for their interface
and compares the best of each:

- sync CPU per request: the profile's ``cpu_ms`` (what ``lab profile`` measured, or the sync
  cell's);
- async CPU per request: ``cpu_ms + base_ms + crossing_ms x crossings + connect_ms x
  connections opened + calls x call_ms[client]``. ``base_ms``, ``crossing_ms`` and
  ``connect_ms`` (non-negative) and each client's ``call_ms`` (its async CPU per call minus
  the sync version's in-server CPU per call, either sign) are fitted by least absolute
  deviations on the measured async cells' CPU (never on their throughput or on the
  decisions); a client no fitting point called falls back to FACTS.md's per-call figures;
- the rig (cores, connections, the shapes tried, load generator CPU per request, upstream CPU
  per call, and how unevenly a multi-worker shape's connections split between its workers) is
  what the runs measured under: medians over the fitting cells. The split bounds each worker
  by the connections it held (``lab.limits``' worker split). It is the rig's, not a run's: a
  shape's split is redrawn every round, so the median of the runs that sampled it (from
  2026-12-02) applies to every prediction, older runs' points included; with no run that
  sampled it, shapes are taken as evenly split.

The estimate is the bounds' async/sync ratio times the median of the bounds' held-out errors
(measured over the bounds' ratio): every variant falls short of its bound, async more so (its
event loop and thread hops queue), so the bounds overstate async at most measured points, and
the median says by how much. The advised outcome is the expected winner, the side of 1 the
estimate lies on, and how sure the advice is: the share of the held-out errors that, added to
the bounds' ratio, keep that winner. Agreement counts held-out mix points whose advised winner
is the decision map's (its winner where the margin's interval excludes 1); a point the map
calls a tie counts as a miss, since the advice never says tie. Why not a tie band: until
2026-12-07 a predicted margin inside ``TIE`` (10%) was advised a tie, on the premise that a run
resolves no smaller margin. The runs show otherwise: the map decides margins of 3-10% (sync at
500 ms, x1.03-1.10, in 10 of 13 runs),
so under that band even the measured ratio itself, used as the advice, agrees at fewer than 80%
of the committed runs' points; a rule a perfect prediction fails tests the rule, not the model.
``TIE`` stays as what the advice calls practically a tie in its text, and the check prints the
agreement under it beside the winner's.

Why bounds rather than a regression: until 2026-12-01 the model was a ridge line in seven
standardised features; fitted on the six points a quick run gives it missed two to three of
six held out, with typical held-out errors of ×20-33 (extrapolating to ×844 on the ORM point).
Seven free coefficients cannot be learned from six points; three CPU costs can, and the rest
is arithmetic a reader can redo by hand.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qs

import numpy as np
import pandas as pd

from lab.decide import best_configs, decision_map, http_ok
from lab.errors import LabError, SpecError
from lab.limits import cell_limits
from lab.stats import NOISY_CV, ratio_ci

Client = Literal["httpx", "aiohttp"]
CLIENTS: tuple[str, ...] = get_args(Client)
# CPU per upstream call of each async client on this machine class, and of the sync client
# (httpx's) the sync variant uses (FACTS.md: async httpx ~1.5 ms, aiohttp ~0.4 ms, sync httpx
# ~0.6 ms): the async variant pays the difference on every call, so "a cheaper client" is a
# change the model can evaluate.
CLIENT_MS_PER_CALL: dict[str, float] = {"httpx": 1.5, "aiohttp": 0.4}
SYNC_CLIENT_MS_PER_CALL = 0.6


def facts_call_delta_ms(client: str) -> float:
    """FACTS.md's CPU per upstream call of ``client`` minus the sync client's: the per-call
    difference where the runs give no fit for that client."""
    return CLIENT_MS_PER_CALL[client] - SYNC_CLIENT_MS_PER_CALL


ROLE_LABEL = {"gil": "3.13", "ft": "3.13t"}
# A margin inside this is what the advice's text calls practically a tie: about what the VM
# drifts between runs minutes apart (FACTS.md), and the spread at which the lab flags a cell's
# rounds as noisy. It is not the advised outcome (see the module docstring); the check prints
# the agreement a rule with this tie band would have, as a sensitivity row.
TIE = NOISY_CV
# "How sure": a call at least this many held-out errors keep is a sure one; the check counts how
# often sure and unsure calls were the measured decision, so the share can be read as a chance.
SURE = 0.9
# What the nearest-cells distance and the extrapolation check read, in this order.
FEATURES: tuple[tuple[str, str], ...] = (
    ("cpu_ms", "server CPU ms per request of the sync version"),
    ("queries", "SQL statements"),
    ("crossings", "sync/async crossings of the async version"),
    ("log_wait", "log(1 + time waiting upstream, ms)"),
    ("fanout", "upstream calls made at once"),
    ("db_connections", "database connections opened by the async version"),
    ("client_ms", "upstream calls x the async client's CPU per call"),
)
# The async CPU costs the fit estimates: (name, what it is), in the fit's column order.
COSTS: tuple[tuple[str, str], ...] = (
    ("base_ms", "ASGI server and async request path, per request"),
    ("crossing_ms", "per sync/async crossing"),
    ("connect_ms", "per database connection opened"),
)
# A fit needs this many mix points per interpreter (leave-one-out then fits on one fewer).
MIN_POINTS = 4
Outcome = Literal["sync", "async", "tie"]


def _read_json(path: Path, missing: str, label: str) -> Any:
    """A JSON file's content, or a one-line error: ``missing`` when there is no file, else
    ``label`` followed by where the JSON breaks."""
    if not path.is_file():
        raise LabError(missing)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SpecError(f"{label} is not valid JSON: {exc.msg} at line {exc.lineno}") from None


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
    # Time the request is held open without an upstream call (a stream, a long poll).
    hold_ms: float = 0.0
    client: Client = "httpx"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "client":
                if value not in CLIENTS:
                    raise SpecError(f"client {value!r} is not known; accepted: {', '.join(CLIENTS)}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise SpecError(f"{f.name} {value!r} must be a finite number >= 0")

    @property
    def wait_ms(self) -> float:
        """Time a request waits: its calls in rounds of ``fanout`` at once, plus any hold."""
        if not self.upstream_calls:
            return self.hold_ms
        at_once = max(1.0, self.fanout)
        return math.ceil(self.upstream_calls / at_once) * self.upstream_ms + self.hold_ms

    def features(self) -> np.ndarray:
        return np.array(
            [
                self.cpu_ms,
                self.queries,
                self.crossings,
                math.log1p(self.wait_ms),
                self.fanout,
                self.db_connections,
                self.upstream_calls * CLIENT_MS_PER_CALL[self.client],
            ]
        )

    @classmethod
    def from_json(cls, path: Path) -> Profile:
        """A profile file: a JSON object with this class's field names (``cpu_ms`` required)."""
        raw = _read_json(path, f"profile file '{path}' does not exist", f"profile file '{path}'")
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


def profiles_from_run(run_dir: Path, endpoint: str | None = None) -> dict[str, Profile]:
    """Each endpoint of a ``lab profile`` run as the advice sees it, from its ``profile.json``
    (3.13's cells: the sync version's CPU under WSGI; the async version's crossings and
    connections under ASGI, from the converted "after" path where the run has one). The run
    does not count upstream calls, so the time a request waits on other I/O (its wall time alone
    minus CPU minus database, an estimate, as in the profile's report) becomes a hold."""
    path = run_dir / "profile.json"
    doc = _read_json(path, f"'{run_dir}' is not a lab profile run (no profile.json)", f"'{path}'")
    names = [e["name"] for e in doc["endpoints"]]
    if endpoint is not None and endpoint not in names:
        raise SpecError(f"--endpoint {endpoint!r} is not in '{path}'; its endpoints: {', '.join(names)}")
    gil = next(name for name, i in doc["interpreters"].items() if i["role"] == "gil")
    out: dict[str, Profile] = {}
    for e in doc["endpoints"]:
        name = e["name"]
        if endpoint is not None and name != endpoint:
            continue
        counts = doc["counts"].get(gil, {}).get(name, {})
        wsgi = next(
            (c for c in doc["cells"] if (c["interpreter"], c["endpoint"], c["form"]) == (gil, name, "wsgi")), None
        )
        cpu = [r["cpu_ms_per_req"] for r in (wsgi or {}).get("rounds", [])]
        if not cpu or "wsgi" not in counts or "asgi" not in counts:
            raise LabError(f"endpoint {name!r} of '{run_dir}' has no measured WSGI CPU or counts on {gil}")
        cpu_ms = float(np.mean(cpu))
        sync, asy = counts["wsgi"], counts.get("asgi-after", counts["asgi"])
        out[name] = Profile(
            cpu_ms=cpu_ms,
            queries=float(sync["sql_statements"]),
            crossings=float(asy["crossings"]),
            db_connections=float(asy["db_connections_opened"]),
            hold_ms=max(0.0, float(sync["wall_ms"]) - cpu_ms - float(sync["db_ms"])),
        )
    return out


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


# -- the model's parts ---------------------------------------------------------------


@dataclass(frozen=True)
class AsyncCost:
    """Server CPU per request the async version spends beyond the sync one (ms).

    ``call_ms``: per async client, its CPU per upstream call minus what the sync version spends
    in the server per call (its client, and for a fan-out the pool thread each call runs on);
    fitted where the runs made calls with that client, else FACTS.md's microbenchmark figures
    (``facts_call_delta_ms``)."""

    base_ms: float
    crossing_ms: float
    connect_ms: float
    call_ms: Mapping[str, float] = field(default_factory=dict)

    def per_call_ms(self, client: str) -> float:
        return self.call_ms.get(client, facts_call_delta_ms(client))

    def extra_ms(self, p: Profile) -> float:
        return (
            self.base_ms
            + self.crossing_ms * p.crossings
            + self.connect_ms * p.db_connections
            + p.upstream_calls * self.per_call_ms(p.client)
        )

    def values(self) -> tuple[float, ...]:
        return (self.base_ms, self.crossing_ms, self.connect_ms)


def _nonnegative(x: np.ndarray, y: np.ndarray, columns: list[int], free: list[int] | None = None) -> np.ndarray:
    """Least squares on ``columns`` and ``free`` of ``x``; a negative coefficient among
    ``columns`` is dropped and the rest refitted, until every one of them is >= 0 (the dropped
    ones are 0). Coefficients of ``free`` columns may take either sign."""
    active, free = list(columns), list(free or [])
    coef = np.zeros(x.shape[1])
    while active or free:
        solved, *_ = np.linalg.lstsq(x[:, active + free], y, rcond=None)
        constrained = solved[: len(active)]
        if (constrained >= 0).all():
            coef[active + free] = solved
            break
        active.remove(active[int(np.argmin(constrained))])
    return coef


# An async cell spending more than this many times the sync cell's CPU per request is a
# collapse, not a cost: httpx's async client at k = 16 calls spends 13-45x (186-931 ms per
# request, most requests timing out) where every other measured point stays under 4.2x. Such
# points are still predicted and checked; they do not set the costs.
COLLAPSE = 10.0


def fit_cost(profiles: list[Profile], async_cpu_ms: list[float]) -> AsyncCost:
    """Least absolute deviations of the async CPU left after the sync CPU, on [1, crossings,
    connections opened, upstream calls with each async client]: the first three costs
    non-negative, the per-call differences of either sign (aiohttp's calls cost the async
    version less CPU than the sync version's pooled httpx calls).

    Absolute, not squared, deviations, so that one odd cell does not set the cost of every
    other endpoint; and points above ``COLLAPSE`` are left out, because a per-call column gives
    such a point the whole say over its client's cost. Solved by iteratively reweighted least
    squares. A column that does not vary over the points (other than the constant) is left
    out: cost 0, or FACTS.md's figure for a client's calls."""
    kept = [(p, a) for p, a in zip(profiles, async_cpu_ms, strict=True) if a <= COLLAPSE * max(p.cpu_ms, 1e-3)]
    # Columns: the COSTS (constant, crossings, connections opened), then one per client in CLIENTS.
    first_call = len(COSTS)
    x = np.array(
        [[1.0, p.crossings, p.db_connections, *(p.upstream_calls * (p.client == c) for c in CLIENTS)] for p, _ in kept]
    ).reshape(len(kept), first_call + len(CLIENTS))
    y = np.array([a - p.cpu_ms for p, a in kept])
    varies = [j for j in range(1, x.shape[1]) if len(kept) and np.ptp(x[:, j]) > 0]
    columns, free = [0, *(j for j in varies if j < first_call)], [j for j in varies if j >= first_call]
    calls = {c: first_call + i for i, c in enumerate(CLIENTS)}
    y = y - sum(x[:, j] * facts_call_delta_ms(c) for c, j in calls.items() if j not in free)
    weights = np.ones(len(y))
    coef = np.zeros(x.shape[1])
    for _ in range(100 if len(kept) else 0):
        root = np.sqrt(weights)[:, None]
        new = _nonnegative(x * root, y * root[:, 0], columns, free)
        if np.allclose(new, coef, atol=1e-9):
            break
        coef = new
        # Floor: a point the line passes through would get an infinite weight.
        weights = 1.0 / np.maximum(np.abs(y - x @ coef), 1e-3)
    base, crossing, connect = (float(c) for c in coef[:first_call])
    return AsyncCost(base, crossing, connect, call_ms={c: float(coef[j]) for c, j in calls.items() if j in free})


@dataclass(frozen=True)
class Conditions:
    """Where a prediction is made: the load and machine the runs measured under."""

    role: str
    cores: int
    connections: int
    cpu_layout: str
    sync_shapes: tuple[str, ...]
    async_shapes: tuple[str, ...]


@dataclass(frozen=True)
class Rig:
    """CPU the helpers spend per request on shared cores (ms): medians over fitting cells; and,
    per multi-worker server shape, the busiest worker's share of the connections (median over
    the fitting points that sampled it): one listening socket does not balance keep-alive
    connections, so that is a property of the rig, not of an endpoint."""

    loadgen_ms: float
    upstream_call_ms: float
    worker_split: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Side:
    """One variant's predicted best: throughput bound, the shape and what binds it."""

    rps: float
    shape: str
    cpu_ms: float
    limit: str


@dataclass(frozen=True)
class Prediction:
    sync: Side
    asy: Side

    @property
    def log_ratio(self) -> float:
        return math.log(self.asy.rps / self.sync.rps)


def outcome(log_ratio: float, tie: float = 0.0) -> Outcome:
    """The expected winner of an async/sync log ratio (a tie only when both are equal); with
    ``tie`` > 0, a tie when the margin is inside it (the sensitivity row's rule)."""
    inside = abs(log_ratio) < math.log1p(tie) if tie > 0 else log_ratio == 0.0
    if inside:
        return "tie"
    return "async" if log_ratio > 0 else "sync"


# The advice's interval covers this share of the bounds' held-out errors (5% to 95%).
INTERVAL_SHARE = 0.9


@dataclass(frozen=True)
class Estimate:
    """The advice on one profile, in log async/sync ratios: the bounds' ratio, corrected by the
    median of the bounds' held-out errors (the bounds overstate async at most measured points:
    a variant falls short of its bound, and async more so), the errors' INTERVAL_SHARE range
    around the bounds' ratio, the expected winner and how sure (the share of the errors that,
    added to the bounds' ratio, keep that winner: at least half, by the median's choice)."""

    bound: float
    log_ratio: float
    low: float
    high: float
    winner: Outcome
    sure: float


def estimate(bound: float, errors: np.ndarray) -> Estimate:
    """The estimate from the bounds' log ratio and their held-out errors (measured minus the
    bounds'); with no errors, the bounds' ratio itself."""
    if not errors.size:
        return Estimate(bound, bound, math.nan, math.nan, outcome(bound), math.nan)
    centre = bound + float(np.median(errors))
    tail = (1.0 - INTERVAL_SHARE) / 2
    low, high = (bound + float(q) for q in np.quantile(errors, [tail, 1.0 - tail]))
    winner = outcome(centre)
    return Estimate(bound, centre, low, high, winner, float(np.mean([outcome(bound + e) == winner for e in errors])))


def _best(
    shapes: tuple[str, ...],
    cpu_ms: float,
    helpers_ms: float,
    wait_ms: float,
    at: Conditions,
    split: Mapping[str, float],
) -> Side:
    best = Side(math.nan, "-", cpu_ms, "no shape measured")
    for spec in shapes:
        row = {
            "role": at.role,
            "server_spec": spec,
            "cores": at.cores,
            "concurrency": at.connections,
            "throughput_rps": 1.0,  # cell_limits needs a rate; only its bounds are read here
            "server_cpu_ms_per_req": cpu_ms,
            "nominal_wait_ms": wait_ms,
            "load_cpu_share": helpers_ms / cpu_ms,
            "cpu_layout": at.cpu_layout,
            "busiest_worker_share": split.get(spec, math.nan),
        }
        out = cell_limits(row)
        cpu, slots, skew = (float(out[k]) for k in ("cpu_bound_rps", "concurrency_bound_rps", "split_bound_rps"))
        rps = min(cpu, slots)
        limit = "CPU" if cpu <= slots else f"{int(out['slots'])} in flight"
        if skew < rps:  # NaN (one worker, or no split measured) never is
            rps, limit = skew, f"worker split (busiest {split[spec]:.0%})"
        if not rps <= best.rps:  # also replaces the NaN start
            best = Side(rps, spec, cpu_ms, limit)
    return best


def predict(profile: Profile, cost: AsyncCost, rig: Rig, at: Conditions) -> Prediction:
    """Both variants at their best shape under ``at``."""
    cpu_sync = max(profile.cpu_ms, 1e-3)
    # A negative per-call difference (aiohttp) applied to a sync CPU that spends less per call
    # than the runs' sync fan-out did cannot take the async version below its own client's
    # CPU for those calls (FACTS.md's figure).
    floor = max(profile.upstream_calls * CLIENT_MS_PER_CALL[profile.client], 1e-3)
    cpu_async = max(cpu_sync + cost.extra_ms(profile), floor)
    helpers = rig.loadgen_ms + profile.upstream_calls * rig.upstream_call_ms
    return Prediction(
        sync=_best(at.sync_shapes, cpu_sync, helpers, profile.wait_ms, at, rig.worker_split),
        asy=_best(at.async_shapes, cpu_async, helpers, profile.wait_ms, at, rig.worker_split),
    )


# -- observations: what the runs measured ------------------------------------------------


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
    # five at once: 20); a call's latency is that over the rounds of calls it takes. With no
    # call (a stream of 5 events 100 ms apart, a long poll) it is a hold: 500 ms, 1000 ms.
    wait = float(sync["nominal_wait_ms"].iloc[0])
    wait = wait if math.isfinite(wait) else 0.0
    rounds = math.ceil(calls / fanout) if calls and fanout else 1
    return Profile(
        cpu_ms=cpu,
        queries=queries,
        crossings=crossings,
        upstream_calls=calls,
        upstream_ms=wait / rounds if calls else 0.0,
        fanout=fanout,
        db_connections=opened,
        hold_ms=0.0 if calls else wait,
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


def _median(values: pd.Series) -> float:
    """The median of the finite values; 0 when there are none."""
    finite = values.to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if finite.size else 0.0


def _helper_ms(cells: pd.DataFrame, share: str) -> float:
    """A helper's CPU ms per request (its share of the server's CPU, times the server's)."""
    if share not in cells.columns:
        return 0.0
    return _median(cells[share] * cells["server_cpu_ms_per_req"])


def _worker_split(cells: pd.DataFrame) -> dict[str, float]:
    """Per server shape, the busiest worker's median share of the connections in these cells
    (shapes whose split was not sampled are left out)."""
    if "busiest_worker_share" not in cells.columns:
        return {}
    shares = cells.groupby("server_spec")["busiest_worker_share"].median()
    return {str(spec): float(v) for spec, v in shares.items() if math.isfinite(v)}


def observations(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run, mix point and interpreter measured with both sync and async (each at
    its best shape by throughput): the profile, the conditions, what the helpers and the async
    cell spent, the measured ratios and the measured decision (``lab.decide.decide``: the
    winner where its margin's interval excludes 1, else a tie)."""
    rows: list[dict[str, Any]] = []
    if df.empty:
        return pd.DataFrame()
    df = with_counts(df)
    for run, rdf in df.groupby("run"):
        pair = rdf[rdf["variant"].isin(["sync", "async"])]
        decided = {
            (r["point"], r["role"]): str(r["winner"]) if bool(r["decided"]) else "tie"
            for r in decision_map(pair, math.inf).to_dict("records")
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
            at_point = ok[(ok["point"] == point) & (ok["role"] == role) & (ok["concurrency"] == s["concurrency"])]
            both = pd.concat([sync, asy])
            ratio, low, high = ratio_ci(a["values"], s["values"])
            p95 = a["p95_ms"] / s["p95_ms"] if s["p95_ms"] > 0 and a["p95_ms"] > 0 else math.nan
            rows.append(
                {
                    "run": run,
                    "point": point,
                    "role": role,
                    **dict(zip([n for n, _ in FEATURES], profile.features().tolist(), strict=True)),
                    "profile": profile,
                    "conditions": Conditions(
                        role=str(role),
                        cores=int(sync["cores"].iloc[0]),
                        connections=int(s["concurrency"]),
                        cpu_layout=str(sync["cpu_layout"].iloc[0]) if "cpu_layout" in sync.columns else "shared",
                        sync_shapes=tuple(sorted(set(at_point.loc[at_point["variant"] == "sync", "server_spec"]))),
                        async_shapes=tuple(sorted(set(at_point.loc[at_point["variant"] == "async", "server_spec"]))),
                    ),
                    "async_cpu_ms": float(asy["server_cpu_ms_per_req"].mean()),
                    "loadgen_ms": _helper_ms(both, "load_cpu_share"),
                    "upstream_call_ms": _helper_ms(both, "upstream_cpu_share") / max(profile.upstream_calls, 1.0),
                    "worker_split": _worker_split(at_point),
                    "ratio": ratio,
                    "low": low,
                    "high": high,
                    "log_ratio": math.log(ratio),
                    "log_p95": math.log(p95) if math.isfinite(p95) else math.nan,
                    "noisy": bool(sync["was_noisy"].any() or asy["was_noisy"].any()),
                    "measured": decided.get((point, role), ""),
                }
            )
    return pd.DataFrame(rows)


def fitted(train: pd.DataFrame) -> tuple[AsyncCost, Rig]:
    """The async CPU costs and the helpers' CPU, from the fitting observations."""
    rows = train.to_dict("records")
    cost = fit_cost([o["profile"] for o in rows], [float(o["async_cpu_ms"]) for o in rows])
    splits: dict[str, list[float]] = {}
    for measured in train["worker_split"]:
        for spec, share in measured.items():
            splits.setdefault(spec, []).append(share)
    return cost, Rig(
        loadgen_ms=_median(train["loadgen_ms"]),
        upstream_call_ms=_median(train["upstream_call_ms"]),
        worker_split={spec: float(np.median(v)) for spec, v in sorted(splits.items())},
    )


@dataclass(frozen=True)
class Model:
    """One interpreter's fit (async CPU costs, helpers' CPU) and its held-out checks."""

    role: str
    # Observations with, held out: "bound" (the bounds' log ratio), "bound_error" (measured minus
    # that), "predicted" (the estimate), "residual" (measured minus it), "advised", "sure".
    obs: pd.DataFrame
    cost: AsyncCost
    rig: Rig
    conditions: Conditions  # the most common conditions of the fitting points
    # Set on a model checked on other runs (``tested``): the fitting observations, which the
    # constant baselines then draw on instead of the other held-out mix points.
    train: pd.DataFrame | None = None

    @property
    def residuals(self) -> np.ndarray:
        """The held-out estimates' errors (log units): what the advice's typical error reports."""
        return np.asarray(self.obs["residual"], dtype=float)

    @property
    def bound_errors(self) -> np.ndarray:
        """The bounds' held-out errors, which correct and bracket every estimate."""
        return np.asarray(self.obs["bound_error"], dtype=float)

    def estimate(self, profile: Profile) -> Estimate:
        return estimate(self.predict(profile).log_ratio, self.bound_errors)

    @property
    def p95_residuals(self) -> np.ndarray:
        """Measured log p95 ratio minus Little's law's (closed loop, same connections: latency
        ratio = 1 / throughput ratio), at the held-out prediction."""
        res: np.ndarray = np.asarray(self.obs["log_p95"], dtype=float) + np.asarray(self.obs["predicted"], dtype=float)
        kept: np.ndarray = res[np.isfinite(res)]
        return kept

    @property
    def judged(self) -> pd.DataFrame:
        """The held-out observations with a measured decision (sync, async or tie)."""
        with_decision: pd.DataFrame = self.obs[self.obs["measured"] != ""]
        return with_decision

    @property
    def agreement(self) -> tuple[int, int]:
        """Held-out points whose advised winner is the measured decision (a measured tie is a
        miss), and how many points have a measured decision."""
        judged = self.judged
        return int((judged["advised"] == judged["measured"]).sum()), len(judged)

    @property
    def banded_agreement(self) -> int:
        """Held-out points whose outcome under the TIE band (a tie inside 10%) is the measured
        decision: the sensitivity row, the rule the advice used until 2026-12-07."""
        judged = self.judged
        return int((judged["advised_banded"] == judged["measured"]).sum())

    def rule_ceiling(self, tie: float = 0.0) -> int:
        """Held-out points a perfect predictor would get right under the outcome rule with this
        tie band: the outcome of the measured ratio itself against the measured decision. With
        no band that is every decided point (only the map's ties are out of reach); with TIE, a
        decided margin inside it (sync x1.04 with an interval of [1.02, 1.05]) is a tie to the
        rule and a win to the map, so an accurate model misses there. This says how much of a
        shortfall is the rule's and how much the model's."""
        judged = self.judged
        ratios, measured = judged["ratio"], judged["measured"]
        return int(sum(outcome(math.log(r), tie) == m for r, m in zip(ratios, measured, strict=True)))

    def sure_calls(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(right, of) for the held-out calls at least SURE of the other points' errors keep,
        and for the rest: whether "how sure" can be read as a chance."""
        judged = self.judged
        right = judged["advised"] == judged["measured"]
        confident = judged["sure"] >= SURE
        return (int(right[confident].sum()), int(confident.sum())), (
            int(right[~confident].sum()),
            int((~confident).sum()),
        )

    @property
    def constant_baseline(self) -> int:
        """Held-out points a constant advice would get right: each point given the outcome the
        decision map measured most often at the other mix points (the ones a fit for it sees),
        whatever its profile. The lab's mixes are mostly sync wins, so this is high; an advisor
        that does not beat it adds nothing to "expect sync" as an outcome, whatever its margins
        are worth."""
        judged = self.judged
        fitting = None if self.train is None else self.train.loc[self.train["measured"] != "", "measured"]
        count = 0
        for point, outcomes in judged.groupby("point")["measured"]:
            others = judged.loc[judged["point"] != point, "measured"] if fitting is None else fitting
            if not others.empty:
                # Equal counts go to the alphabetically first outcome, so the count is reproducible.
                counts = others.value_counts()
                constant = min(counts.index[counts == counts.max()])
                count += int((outcomes == constant).sum())
        return count

    @property
    def constant_residuals(self) -> np.ndarray:
        """The held-out log-ratio errors of a constant prediction: each point given the median
        measured log ratio of the other mix points. The model's own residuals are worth only
        what they gain on these."""
        log_ratio, point = self.obs["log_ratio"].to_numpy(dtype=float), self.obs["point"].to_numpy()
        if self.train is not None:
            return log_ratio - float(np.median(self.train["log_ratio"].to_numpy(dtype=float)))
        return np.array([r - float(np.median(log_ratio[point != p])) for r, p in zip(log_ratio, point, strict=True)])

    @property
    def not_contradicted(self) -> int:
        """Held-out points whose measured 95% interval reaches the advised winner's side of 1
        (below it for sync, above for async; 1 itself for a tie): the run cannot rule the advice
        out there, although its own decision may differ (a tie it could not separate)."""
        count = 0
        for o in self.judged.to_dict("records"):
            low, high = (o["low"], o["high"]) if math.isfinite(o["low"]) else (o["ratio"], o["ratio"])
            reaches = {"sync": low < 1.0, "async": high > 1.0, "tie": low <= 1.0 <= high}
            count += int(reaches[o["advised"]])
        return count

    def predict(self, profile: Profile) -> Prediction:
        return predict(profile, self.cost, self.rig, self.conditions)


def load_values(runs: list[Path]) -> pd.DataFrame:
    """The values of one or several run directories, concatenated (``run`` tells them apart)."""
    from lab.report import load_run  # the report imports this module for advise_lines

    return pd.concat([load_run(run).values for run in runs], ignore_index=True)


def _typical(conditions: list[Conditions]) -> Conditions:
    common = Counter((c.cores, c.connections, c.cpu_layout) for c in conditions).most_common(1)[0][0]
    same = [c for c in conditions if (c.cores, c.connections, c.cpu_layout) == common]
    return Conditions(
        role=same[0].role,
        cores=common[0],
        connections=common[1],
        cpu_layout=common[2],
        sync_shapes=tuple(sorted({s for c in same for s in c.sync_shapes})),
        async_shapes=tuple(sorted({s for c in same for s in c.async_shapes})),
    )


def build_models(df: pd.DataFrame) -> dict[str, Model]:
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
        predicted = np.full(len(o), math.nan)
        for point in dict.fromkeys(o["point"]):
            test = (o["point"] == point).to_numpy()
            cost, rig = fitted(o[~test])
            for i in np.flatnonzero(test):
                row = o.iloc[i]
                predicted[i] = predict(row["profile"], cost, rig, row["conditions"]).log_ratio
        # Each held-out estimate is corrected and judged by the bounds' errors at the other mix
        # points only (those errors come from fits that saw this point: a small leak, kept).
        error, point = o["log_ratio"].to_numpy(dtype=float) - predicted, o["point"].to_numpy()
        o = _with_estimates(
            o, predicted, [estimate(b, error[point != q]) for b, q in zip(predicted, point, strict=True)]
        )
        cost, rig = fitted(o)
        models[role] = Model(role, o, cost, rig, _typical(list(o["conditions"])))
    return models


def _with_estimates(o: pd.DataFrame, bounds: np.ndarray, found: list[Estimate]) -> pd.DataFrame:
    """Observations with their bounds, estimates and both outcome rules' advice."""
    measured = o["log_ratio"].to_numpy(dtype=float)
    predicted = np.array([e.log_ratio for e in found])
    return o.assign(
        bound=bounds,
        bound_error=measured - bounds,
        predicted=predicted,
        residual=measured - predicted,
        advised=[e.winner for e in found],
        sure=[e.sure for e in found],
        # The rule until 2026-12-07, on the bounds' ratio as it was then: the sensitivity row.
        advised_banded=[outcome(b, TIE) for b in bounds],
    )


def tested(models: dict[str, Model], df: pd.DataFrame) -> dict[str, Model]:
    """Each model checked on runs it was not fitted on (``df``: their values): every mix point of
    those runs predicted with the fit over all of the model's own points and corrected and
    judged by the bounds' held-out errors at those points; the baselines from them too. A run
    measured after the outcome rule was set tests the rule as well as the model."""
    obs = observations(df)
    out: dict[str, Model] = {}
    for role, model in models.items():
        o = obs[obs["role"] == role].reset_index(drop=True) if not obs.empty else pd.DataFrame()
        if o.empty:
            raise LabError(
                f"the runs to check have no mix point measured with both sync and async on {ROLE_LABEL[role]}"
            )
        bounds = np.array(
            [predict(r["profile"], model.cost, model.rig, r["conditions"]).log_ratio for _, r in o.iterrows()]
        )
        o = _with_estimates(o, bounds, [estimate(b, model.bound_errors) for b in bounds])
        out[role] = Model(role, o, model.cost, model.rig, model.conditions, train=model.obs)
    return out
