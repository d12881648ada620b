"""Binding limits: what capped each HTTP cell's throughput, and how close it came.

Computed from what a run already records, per cell (one row per cell and interpreter, or
per repeat; the formulas are the same). All bounds are in requests per second.

CPU bound::

    cpu_bound_rps = usable_cores × 1000 / cpu_ms

where ``cpu_ms`` is the server's CPU per request (the whole process tree) and
``usable_cores`` is the core budget, capped by how many threads can run Python at once:

- with the GIL (3.13, or a 3.13t cell whose GIL came back on), one per server process
  (``min(cores, P)``): a one-process server on 3.13 uses one core however many threads it
  has, which is what the committed runs show (gthread 1×8 at 0 ms: 356 req/s × 2.78 ms ≈ 0.99
  of 2 cores);
- free-threaded, the threads that run requests: ``min(cores, P×T)`` for gthread and
  granian-wsgi, ``min(cores, P)`` for gunicorn-sync, and the whole budget for ASGI servers
  (Django runs each request's sync code in a thread of its own). One event loop per worker is
  a serial section this does not model: an ASGI cell on 3.13t that reaches no bound is
  usually limited by its loop thread.

When the server shares its CPUs with the load generator and the upstream simulator
(``cpu_layout`` starting with "shared"), their CPU per request counts against the same
budget: the bound is also at most ``cores × 1000 / (cpu_ms × (1 + load_cpu_share +
upstream_cpu_share))`` (the shares are their CPU over the server's).

Concurrency bound (Little's law: throughput = requests in flight / time each one holds its
slot)::

    concurrency_bound_rps = slots × 1000 / (nominal_wait_ms + cpu_ms)

with the time a request holds a slot taken as its nominal upstream wait (calls × latency,
sequential; one latency for a fan-out) plus its CPU, and the slots:

- gunicorn-gthread and granian-wsgi P×T: ``min(P×T, connections)`` ("threads"; "connections"
  when the load generator's connections are fewer);
- gunicorn-sync P: ``min(P, connections)`` ("workers");
- uvicorn and granian-asgi: ``connections`` (an event loop does not cap how many requests are
  in flight, and each request's sync code gets a thread of its own).

Worker split bound (servers with several worker processes, when the run sampled how the
connections split between them, ``busiest_worker_share``): one listening socket does not
balance keep-alive connections, so each worker is bounded by its own share. With the busiest
worker holding ``s`` of the ``N`` connections and the rest spread evenly over the others::

    split_bound_rps = sum over workers of min(worker cores × 1000 / cpu_ms,
                                              worker slots × 1000 / (nominal_wait_ms + cpu_ms))

where a worker's cores are one with the GIL (else its threads, or the budget for ASGI) and its
slots are its connections (capped by its threads for gthread). An even split gives back the
CPU and concurrency bounds; a skewed one (31 of 32 connections on one uvicorn worker) binds
below both ("worker split").

Ceiling (closed loop, a request that waits upstream or is held): no connection can finish
requests faster than one per wait, so ``connections × 1000 / nominal_wait_ms`` is a hard
ceiling, not a model. A cell measured above it by more than ``CEILING_SLACK``
(``above_ceiling``) is a measurement artifact: in runs before 2026-12-06-quick-h the load
generator counted the requests started in its window, which read a long-poll cell at 320
req/s with 256 connections each held 1 s (run 2026-12-01-async-pays).

Load generator bound: when the load generator was on-CPU more than ``LOADGEN_BUSY`` of the
cell's wall time (``load_busy``), it is the limit: ``load_bound_rps = throughput / load_busy``
is what it could have driven fully busy. Open-loop cells have one more bound, the offered
rate (``rate_rps``).

The binding limit is the tightest of these bounds, named only when the cell came within
``REACHED`` of it; otherwise "none reached" (the cell fell short of every bound: queueing,
a serial section, or the model's estimate of hold time is too low). A saturated load
generator binds whatever the others say. Cells without server CPU (the in-process handler
tier) get "unknown".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal, get_args

import pandas as pd

from lab.errors import LabError, SpecError
from lab.servers import ServerConfig, parse_server

BindingLimit = Literal[
    "cpu",
    "threads",
    "workers",
    "connections",
    "worker split",
    "offered rate",
    "load generator",
    "none reached",
    "unknown",
]
BINDING_LIMITS: tuple[BindingLimit, ...] = get_args(BindingLimit)
# Above this fraction of its wall time on-CPU, the load generator (one asyncio process)
# cannot drive more: the cell measured the generator, not the server.
LOADGEN_BUSY = 0.8
# A cell "reached" a bound at this fraction of it. The bounds are best cases (no queueing,
# no parsing time counted in the hold time), so a cell at its limit lands at ~0.9-1.05.
REACHED = 0.85
# Measured above connections / wait by more than this: not a result (see Ceiling above).
CEILING_SLACK = 0.02
REQUIRED_COLUMNS = (
    "role",
    "server_spec",
    "cores",
    "concurrency",
    "throughput_rps",
    "server_cpu_ms_per_req",
    "nominal_wait_ms",
)
# Used when present: load_busy, load_cpu_share, upstream_cpu_share, cpu_layout, rate_rps,
# gil_enabled_at_end, busiest_worker_share.
OUTPUT_COLUMNS = (
    "usable_cores",
    "cores_busy",
    "slots",
    "hold_ms",
    "cpu_bound_rps",
    "concurrency_bound_rps",
    "split_bound_rps",
    "load_bound_rps",
    "bound_rps",
    "bound_fraction",
    "binding_limit",
    "limit_text",
    "above_ceiling",
)
_SINGULAR = {"threads": "thread", "workers": "worker", "connections": "connection", "processes": "process"}
# One row per cell: the keys summary_table groups by, plus the interpreter role.
CELL_KEYS = (
    "tier",
    "point",
    "middleware",
    "variant",
    "server_spec",
    "cores",
    "rate_fraction",
    "concurrency",
    "role",
)
# Dimensions other stages may add to the values; grouped by when present so that cells
# differing only in them (e.g. the HTTP client, a pooled database) are never averaged together.
EXTRA_CELL_KEYS = ("interpreter", "mix", "load_mode", "stagger_ms", "client", "database", "db_pool", "pool", "stack")


def _number(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key, math.nan)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _count(row: Mapping[str, Any], key: str) -> int:
    value = _number(row, key)
    return 0 if math.isnan(value) else int(value)


def _server(spec: str) -> ServerConfig | None:
    try:
        return parse_server(spec)
    except SpecError:
        return None  # "in-process" (handler tier) or a label this lab no longer knows


def gil_held(row: Mapping[str, Any]) -> bool:
    """Whether the cell ran with the GIL: by its recorded state at the end, else by role."""
    at_end = _number(row, "gil_enabled_at_end")
    if at_end in (0.0, 1.0):
        return at_end == 1.0
    return row.get("role") == "gil"


def usable_cores(server: ServerConfig, cores: int, gil: bool) -> tuple[int, str]:
    """How many cores the server can keep busy running Python, and why when fewer than the budget."""
    if gil:
        cap, why = server.workers, f"GIL, {_n(server.workers, 'processes')}"
    elif server.kind in ("gunicorn-gthread", "granian-wsgi"):
        cap, why = server.workers * server.threads, _n(server.workers * server.threads, "threads")
    elif server.kind == "gunicorn-sync":
        cap, why = server.workers, _n(server.workers, "workers")
    else:
        cap, why = cores, ""
    return (cap, why) if cap < cores else (cores, "")


def slots(server: ServerConfig, connections: int) -> tuple[int, BindingLimit]:
    """Requests the server can hold in flight, and what that number is (threads, workers, connections)."""
    if server.kind in ("gunicorn-gthread", "granian-wsgi"):
        threads = server.workers * server.threads
        return (threads, "threads") if threads < connections else (connections, "connections")
    if server.kind == "gunicorn-sync":
        return (server.workers, "workers") if server.workers < connections else (connections, "connections")
    return connections, "connections"


def busiest_share(split_text: str) -> float:
    """The busiest worker's share of the connections from a recorded split ("26/6" -> 0.8125);
    NaN for "-" (one worker, or not sampled) or anything else."""
    try:
        counts = [int(part) for part in split_text.split("/")]
    except ValueError:
        return math.nan
    total = sum(counts)
    return max(counts) / total if total > 0 and min(counts) >= 0 else math.nan


def split_bound(
    server: ServerConfig, connections: int, share: float, cores: int, gil: bool, cpu_ms: float, hold_ms: float
) -> float:
    """Throughput bound of a multi-worker server whose busiest worker holds ``share`` of the
    connections, the rest spread evenly over the other workers (NaN when it does not apply):
    each worker is a one-worker server of the same kind with its own connections."""
    if server.workers < 2 or server.kind == "gunicorn-sync" or not 0 < share <= 1:
        return math.nan
    worker = replace(server, workers=1)
    worker_cores, _ = usable_cores(worker, cores, gil)
    rest = (1 - share) * connections / (server.workers - 1)
    total = 0.0
    for held in [share * connections] + [rest] * (server.workers - 1):
        # slots() caps the connections by the worker's threads (gthread) or keeps them (ASGI).
        worker_slots = min(held, slots(worker, math.ceil(held))[0])
        total += min(worker_cores * 1000.0 / cpu_ms, worker_slots * 1000.0 / hold_ms)
    return total


def _n(count: int, noun: str) -> str:
    """'1 thread', '8 threads'."""
    return f"{count} {_SINGULAR.get(noun, noun) if count == 1 else noun}"


def _rps(value: float) -> str:
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def cell_limits(row: Mapping[str, Any]) -> dict[str, Any]:
    """The bounds and binding limit of one cell (a mapping with REQUIRED_COLUMNS)."""
    rps = _number(row, "throughput_rps")
    cpu_ms = _number(row, "server_cpu_ms_per_req")
    wait_ms = _number(row, "nominal_wait_ms")
    wait_ms = 0.0 if math.isnan(wait_ms) else wait_ms
    cores = _count(row, "cores")
    connections = _count(row, "concurrency")
    server = _server(str(row.get("server_spec", "")))
    out: dict[str, Any] = {
        "usable_cores": math.nan,
        "cores_busy": math.nan,
        "slots": math.nan,
        "hold_ms": math.nan,
        "cpu_bound_rps": math.nan,
        "concurrency_bound_rps": math.nan,
        "split_bound_rps": math.nan,
        "load_bound_rps": math.nan,
        "bound_rps": math.nan,
        "bound_fraction": math.nan,
        "above_ceiling": False,
    }
    if server is None or not cpu_ms > 0 or cores <= 0 or connections <= 0 or math.isnan(rps):
        missing = "no server CPU per request recorded" if not cpu_ms > 0 else "no server, cores or connections"
        return {**out, "binding_limit": "unknown", "limit_text": f"unknown: {missing}"}

    usable, why = usable_cores(server, cores, gil_held(row))
    cpu_bound = usable * 1000.0 / cpu_ms
    cpu_detail = f"{usable} of {cores} cores: {why}" if why else ""
    if str(row.get("cpu_layout", "")).startswith("shared"):
        helpers = sum(
            share
            for share in (_number(row, "load_cpu_share"), _number(row, "upstream_cpu_share"))
            if not math.isnan(share)
        )
        shared_bound = cores * 1000.0 / (cpu_ms * (1.0 + helpers))
        if shared_bound < cpu_bound:
            cpu_bound = shared_bound
            cpu_detail = f"{cores} cores shared with load generator and upstream, +{helpers:.0%} CPU"
    n_slots, slot_kind = slots(server, connections)
    hold_ms = wait_ms + cpu_ms
    concurrency_bound = n_slots * 1000.0 / hold_ms
    busy_cores = rps * cpu_ms / 1000.0
    out.update(
        usable_cores=usable,
        cores_busy=busy_cores,
        slots=n_slots,
        hold_ms=hold_ms,
        cpu_bound_rps=cpu_bound,
        concurrency_bound_rps=concurrency_bound,
    )
    busy = _number(row, "load_busy")
    if busy > 0:
        out["load_bound_rps"] = rps / busy
    bounds: list[tuple[float, BindingLimit, str]] = [
        (cpu_bound, "cpu", cpu_detail),
        (concurrency_bound, slot_kind, f"{_n(n_slots, slot_kind)} / {hold_ms:,.1f} ms held"),
    ]
    share = _number(row, "busiest_worker_share")
    split = split_bound(server, connections, share, cores, gil_held(row), cpu_ms, hold_ms)
    out["split_bound_rps"] = split
    if split < min(cpu_bound, concurrency_bound) * (1 - 1e-9):
        detail = f"busiest of {_n(server.workers, 'workers')} held {share:.0%} of the connections"
        bounds.append((split, "worker split", detail))
    offered = _number(row, "rate_rps")
    if offered > 0:
        bounds.append((offered, "offered rate", "open loop"))
    bound, limit, detail = min(bounds, key=lambda b: b[0])
    if busy > LOADGEN_BUSY:
        bound, limit, detail = rps / busy, "load generator", f"busy {busy:.0%} of the wall time"
    fraction = rps / bound
    out.update(bound_rps=bound, bound_fraction=fraction)
    name = "CPU" if limit == "cpu" else limit
    text = f"{name}: {_rps(rps)} of {_rps(bound)} req/s bound ({fraction:.0%}{'; ' + detail if detail else ''})"
    if limit != "load generator" and fraction < REACHED:
        limit = "none reached"
        text = (
            f"none reached: {_rps(rps)} req/s, {fraction:.0%} of the tightest bound ({name} {_rps(bound)} req/s; "
            f"server busy {busy_cores:.2f} of {usable} usable core{'' if usable == 1 else 's'})"
        )
    if limit != "worker split" and server.workers > 1 and math.isfinite(share):
        # How the connections split tells whether "2 workers" really ran as two.
        text += f"; busiest of {_n(server.workers, 'workers')} held {share:.0%} of the connections"
    ceiling = connections * 1000.0 / wait_ms if wait_ms > 0 and not offered > 0 else math.inf
    above = rps > ceiling * (1 + CEILING_SLACK)
    if above:
        text += (
            f"; ABOVE the ceiling of {_n(connections, 'connections')} / {wait_ms:,.0f} ms wait "
            f"({_rps(ceiling)} req/s): a measurement artifact, not a result"
        )
    return {**out, "binding_limit": limit, "limit_text": text, "above_ceiling": above}


def limits(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with OUTPUT_COLUMNS added: the bounds and binding limit of each row.

    ``frame`` has one row per cell (``cell_means``) or per repeat (``report.load_run``'s
    values), with REQUIRED_COLUMNS; rows of other tiers come back "unknown".
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise LabError(f"limits: missing columns {', '.join(missing)}; the frame needs {', '.join(REQUIRED_COLUMNS)}")
    computed = [cell_limits({str(k): v for k, v in row.items()}) for row in frame.to_dict("records")]
    extra = pd.DataFrame(computed, columns=list(OUTPUT_COLUMNS), index=frame.index)
    return pd.concat([frame.drop(columns=[c for c in OUTPUT_COLUMNS if c in frame.columns]), extra], axis=1)


def cell_means(values: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and interpreter from the per-repeat values: numeric columns averaged
    over the repeats whose status is ok (a failed repeat's zero throughput is no rate)."""
    if values.empty:
        return values
    ok = values[values["status"] == "ok"] if "status" in values.columns else values
    keys = [k for k in (*CELL_KEYS, *EXTRA_CELL_KEYS) if k in ok.columns]
    numeric = [c for c in ok.select_dtypes("number").columns if c not in keys]
    # A cell's throughput is the mean of its repeats' rates, as in the summary table; its
    # labels (server label, CPU layout, ...) are the same in every repeat.
    means = ok.groupby(keys, sort=True, dropna=False)[numeric].mean()
    if "busiest_worker_share" in means.columns:
        # The split is sampled only in rounds long enough (2 s), often only the cold first one:
        # a share from some rounds beside the throughput of all of them would bound the cell
        # by a split its other rounds did not have. Known for the cell only if known in each round.
        unsampled = ok["busiest_worker_share"].isna().groupby([ok[k] for k in keys], sort=True, dropna=False).any()
        means.loc[unsampled.to_numpy(), "busiest_worker_share"] = math.nan
    firsts = ok.groupby(keys, sort=True, dropna=False)[
        [c for c in ok.columns if c not in keys and c not in numeric]
    ].first()
    out = pd.concat([means, firsts], axis=1).reset_index()
    out["repeats"] = ok.groupby(keys, sort=True, dropna=False).size().to_numpy()
    return out
