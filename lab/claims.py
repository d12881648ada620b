"""The claims ledger: each claim of the article, its rule, and a verdict per interpreter.

Every rule can come out ``supported``, ``refuted`` or ``inconclusive`` (``not measured``
when the run lacks the cells, with what to run); ``RULES`` states each rule in one
sentence and the ledger carries it in a ``rule`` column beside the verdicts. A difference
counts only when its 95% interval excludes "no difference", and an equivalence counts
only when the whole interval lies inside a stated margin.

Inputs, by column:

- ``df``: the run's tidy frame (one row per pyperf value, ``lab.report.load_run``): ``tier``,
  ``status``, ``role``, ``point``, ``variant``, ``concurrency``, ``middleware``,
  ``throughput_rps``, ``p95_ms``; where present ``load_mode``, ``cores``, ``server_spec``,
  ``crossings_total`` (or ``crossings``: crossings per request, -1 unknown),
  ``server_cpu_ms_per_req``, ``p50_ms`` and ``client``.
- ``crossings``: ``lab.report.crossing_table``: ``kind``, ``concurrency``, ``{role}_us``,
  ``{role}_ci`` (mean and 95% half-width over all pyperf values).
- ``crossing_runs`` (optional): ``kind``, ``concurrency``, ``role``, ``run``, ``us``: one row
  per pyperf value or per run, ``run`` naming the worker process. Values inside one process
  are not independent, so with it the crossing intervals are over per-process means;
  without it they fall back to ``crossings`` (over values) and say so.
- ``decided``: ``lab.decide.Decisions``: ``best`` (point, role, variant, server,
  concurrency, values), ``by_throughput`` (point, role, winner, decided) and ``even``.

Over 400 lines on purpose: seven rules, each with its evidence text and its three outcomes
in one place next to its ``RULES`` sentence, so a reader checks a rule against its code
without leaving the module. The numbers the rules read live elsewhere: crossing costs, their
intervals over processes and crossing shares in ``lab.crossingstats``, ratios and intervals
in ``lab.stats``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lab.crossingstats import Share, crossing_shares, difference, endpoints, kind_counts, ratio, sample
from lab.decide import SWEEP_RE, Decisions, decide
from lab.sections import who
from lab.stats import ratio_ci

CLAIMS: dict[str, str] = {
    "C1": "each sync_to_async crossing has a measurable per-call cost",
    "C2": "thread-sensitive bridging serializes concurrent work",
    "C3": "half-migrated (bridged) views are slower than full sync on ORM-heavy endpoints",
    "C4": "async wins mainly for several slow external calls (fan-out)",
    "C5": "ORM, template and CRUD endpoints stay faster sync",
    "C6": "sync-only middleware measurably costs async views",
    "C7": "free-threading makes threaded sync Django more attractive (moves the break-even toward sync)",
}
ROLES = ("gil", "ft")
ORM_MIXES = ("orm-reads", "orm-n-plus-1")
SYNC_MIXES = ("orm-reads", "orm-n-plus-1", "template-page", "orm-crud")
ASYNC_VARIANTS = ("async", "async-db")
# Mixes whose requests wait on the upstream simulator; every other mix is "non-I/O" for C4.
EXTERNAL_PREFIXES = ("io-", "billing")
# The handler-tier mixes C7's direct measure reads (CPU-bound and ORM-bound).
THREAD_GAIN_MIXES = ("cpu-heavy", "billing", "orm-n-plus-1")
DEFAULT_CLIENT = "httpx"

# C1: crossing share of an endpoint's server CPU per request.
SHARE_SUPPORTED = 0.05
SHARE_REFUTED = 0.01
# Django's documentation: "tens of microseconds in the in-request ASGI path, a few hundred
# microseconds in the cold-start path", read as [10, 100) and [100, 1000) µs.
DJANGO_DOC_US = {"request": (10.0, 100.0), "cold": (100.0, 1000.0)}
# C2: on/off request time within ±10% counts as "no serialisation" (a request's thread
# start, ~0.1-0.3 ms against several ms of helpers, stays inside it).
C2_EQUIVALENCE = 0.10
# C6: with/without sync middleware within ±3% counts as "no measurable cost".
C6_EQUIVALENCE = 0.03
# C4: a latency axis measured this far with no async win refutes the claim.
LONG_LATENCY_MS = 500.0

RULES: dict[str, str] = {
    "C1": (
        "Cost per crossing = sync_to_async minus a direct call at one caller (µs, 95% t-interval over pyperf "
        "processes), in a request's own context (warm thread), on a fresh context (cold) and on the global "
        "executor; share = (one cold + the rest in-request crossings per request) ÷ server CPU per request (p50 "
        f"where CPU is not recorded), per endpoint with crossings at its best shape: supported if some endpoint's "
        f"share interval lies above {SHARE_SUPPORTED:.0%}, refuted if every endpoint's lies below "
        f"{SHARE_REFUTED:.0%}, inconclusive otherwise."
    ),
    "C2": (
        "On the request path (a fresh ThreadSensitiveContext per request gathering C ≥ 2 sync helpers, C the "
        "largest caller count), request time with thread_sensitive on ÷ off, for pure-Python and GIL-releasing "
        f"helpers: a work type supports when the interval lies above {1 + C2_EQUIVALENCE:.2f}, refutes when it lies "
        f"below 1 or inside ±{C2_EQUIVALENCE:.0%}; supported if either supports, refuted if both refute, "
        "inconclusive otherwise (the global-executor pair is shown, not used)."
    ),
    "C3": (
        "Per ORM mix, bridged ÷ sync throughput at each variant's best shape (95% interval): supported if every "
        "mix's interval lies below 1, refuted if any mix's lies above 1 (named), inconclusive otherwise; "
        "bridged ÷ sync-on-asgi (bridging) and sync-on-asgi ÷ sync (server) shown where measured."
    ),
    "C4": (
        "Per HTTP client, decided async wins (winner async/async-db, margin interval above 1) along the fan-out "
        "axis (k) and the latency axis: supported if async wins at the top of a measured axis and in no mix "
        "without external calls, refuted if it wins in a mix without external calls or nowhere on either axis "
        f"with latency measured to ≥ {LONG_LATENCY_MS:g} ms, inconclusive otherwise (a tie is no win; clients "
        "that disagree make it inconclusive)."
    ),
    "C5": (
        "Per ORM/template/CRUD mix, async (and async-db) ÷ sync throughput at best shapes, each with its own "
        "verdict (interval below 1 supports, above 1 refutes): refuted on any mix with a decided counterexample "
        "(named), supported if every mix supports, inconclusive otherwise."
    ),
    "C6": (
        "Closed-loop async cells of the same mix, concurrency, core budget and server, with ÷ without sync "
        "middleware (throughput, paired by round), on shapes whose p95 meets the SLO on both sides where any do: "
        f"a mix supports when the interval lies below 1, refutes when it lies above 1 or inside "
        f"±{C6_EQUIVALENCE:.0%}; supported if some mix supports and none refutes, refuted if every mix refutes, "
        "inconclusive otherwise."
    ),
    "C7": (
        "Break-even of async over sync along each sweep, per interpreter at best shapes: supported if 3.13t's "
        "interval lies wholly above 3.13's (toward sync), refuted if wholly below, inconclusive if they overlap "
        "or neither crosses; with no sweep on both, decided on threaded sync's gain from threads (handler tier, "
        "T threads ÷ 1): supported if 3.13t's gain interval lies above 3.13's in every CPU/ORM mix, refuted if "
        "below in every one, inconclusive otherwise."
    ),
}


@dataclass(frozen=True)
class Finding:
    verdict: str  # supported / refuted / inconclusive / not measured
    evidence: str


# -- shared helpers ---------------------------------------------------------------


def _interval(low: float, high: float, digits: int = 2) -> str:
    return "" if math.isnan(low) else f" [{low:.{digits}f}, {high:.{digits}f}]"


def _ratio_verdict(num: list[float], den: list[float], label: str, claim_if_below_one: bool) -> Finding:
    ratio, low, high = ratio_ci(num, den)
    text = f"{label} = {ratio:.2f}{_interval(low, high)}"
    if math.isnan(low):
        return Finding("inconclusive", text + " (too few repeats for an interval)")
    if high < 1.0:
        return Finding("supported" if claim_if_below_one else "refuted", text)
    if low > 1.0:
        return Finding("refuted" if claim_if_below_one else "supported", text)
    return Finding("inconclusive", text + " (interval includes 1)")


def _agreeing(findings: list[Finding]) -> str:
    """One verdict when all findings agree, else inconclusive."""
    verdicts = {f.verdict for f in findings}
    return verdicts.pop() if len(verdicts) == 1 else "inconclusive"


def _with_counterexamples(findings: list[tuple[str, Finding]]) -> Finding:
    """A universal claim: refuted on any decided counterexample (named), supported when every
    case supports, inconclusive otherwise; every case is listed with its own verdict."""
    if not findings:
        return Finding("not measured", "no matching cells in this run")
    listed = "; ".join(f"{f.evidence}: {f.verdict}" for _, f in findings)
    against = [name for name, f in findings if f.verdict == "refuted"]
    if against:
        return Finding("refuted", f"refuted on {', '.join(against)}; {listed}")
    if all(f.verdict == "supported" for _, f in findings):
        return Finding("supported", listed)
    return Finding("inconclusive", listed)


def _values(best: pd.DataFrame, point: str, role: str, variant: str) -> list[float] | None:
    if best.empty:
        return None
    match = best[(best["point"] == point) & (best["role"] == role) & (best["variant"] == variant)]
    return None if match.empty else list(match.iloc[0]["values"])


# The client is named in a label as "client=NAME", or by a mix named "<mix>-with-NAME"
# (e.g. io-fanout-k-with-aiohttp: the same axis as io-fanout-k, another client).
_CLIENT_RE = re.compile(r"client=([A-Za-z0-9_.-]+)|-with-([A-Za-z0-9_.]+)(?=@|$)")
_CLIENT_PART = re.compile(r"[\[(]?[@&,;/ ]?client=[A-Za-z0-9_.-]+[\])]?|-with-[A-Za-z0-9_.]+(?=@|$)")


def client_of(point: str) -> str:
    """The HTTP client a mix point's label names (``...client=aiohttp...``); httpx by default."""
    m = _CLIENT_RE.search(point)
    return (m[1] or m[2]) if m else DEFAULT_CLIENT


def base_point(point: str) -> str:
    """The label without its client part: ``io-fanout-k@k=4&client=aiohttp`` -> ``io-fanout-k@k=4``."""
    return _CLIENT_PART.sub("", point)


def mix_of(point: str) -> str:
    label = base_point(point)
    m = SWEEP_RE.match(label)
    return m["mix"] if m else label


def _external(point: str) -> bool:
    return mix_of(point).startswith(EXTERNAL_PREFIXES)


# -- C1 -----------------------------------------------------------------------------


def _doc_check(path: str, low: float, high: float, cost: float) -> str:
    lo_doc, hi_doc = DJANGO_DOC_US[path]
    words = "tens of µs" if path == "request" else "a few hundred µs"
    if lo_doc <= cost < hi_doc:
        return f"agrees with Django's '{words}'"
    if not math.isnan(low) and (high < lo_doc or low >= hi_doc):
        return f"{'below' if high < lo_doc else 'above'} Django's '{words}'"
    return f"near the edge of Django's '{words}'"


def c1(
    crossings: pd.DataFrame,
    role: str,
    df: pd.DataFrame | None = None,
    best: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
) -> Finding:
    direct = sample(crossings, runs, "direct", 1, role)
    paths = {
        "request": ("sync_to_async-request", "in-request (own context, warm thread)"),
        "cold": ("sync_to_async-cold", "cold (fresh context per call)"),
        "global": ("sync_to_async", "global executor (no request context)"),
    }
    hops = {path: sample(crossings, runs, kind, 1, role) for path, (kind, _) in paths.items()}
    if all(h is None for h in hops.values()):
        return Finding("not measured", "no sync_to_async crossing benchmarks (plan.crossing_concurrency)")
    if direct is None:
        return Finding("inconclusive", "no direct-call baseline in this run, so a hop's own cost cannot be separated")
    costs: dict[str, tuple[float, float, float]] = {}
    parts = []
    for path, hop in hops.items():
        if hop is None:
            continue
        cost, low, high = costs[path] = difference(hop, direct)
        text = f"{paths[path][1]} {cost:.1f}{_interval(low, high, 1)} µs"
        if path in DJANGO_DOC_US:
            text += f" ({_doc_check(path, low, high, cost)})"
        parts.append(text)
    evidence = f"sync_to_async over a direct call, 95% interval {direct.basis}: " + "; ".join(parts)

    warm = costs.get("request") or costs.get("global")
    if warm is None:
        return Finding("inconclusive", evidence + "; no warm-path cost to apply to requests")
    warm_label = "in-request" if "request" in costs else "global-executor (no in-request kind measured)"
    cold = costs.get("cold", warm)
    costing = (
        f"the first at the cold cost, the rest at the {warm_label} cost" if "cold" in costs else f"{warm_label} cost"
    )
    shown = endpoints(df, best if best is not None else pd.DataFrame(), role) if df is not None else []
    if not shown:
        return Finding("inconclusive", evidence + "; no HTTP endpoint with counted crossings to weigh them against")

    shares = crossing_shares(shown, cold, warm)
    above = [s for s in shares if s.low > SHARE_SUPPORTED]
    below = [s for s in shares if s.high < SHARE_REFUTED]

    def show(s: Share) -> str:
        e = s.endpoint
        bounds = "" if math.isnan(s.low) else f" [{s.low:.1%}, {s.high:.1%}]"
        return f"{e.label} {e.crossings} crossings = {s.share:.1%}{bounds} of {e.per_request_ms:.2f} ms {e.basis}"

    listed = [show(s) for s in shares[:3]] + ([f"… lowest {show(shares[-1])}"] if len(shares) > 3 else [])
    evidence += (
        f"; share of request time ({costing}): "
        f"{len(above)} of {len(shares)} endpoints above {SHARE_SUPPORTED:.0%}, {len(below)} below "
        f"{SHARE_REFUTED:.0%}: " + "; ".join(listed)
    )
    if above:
        return Finding("supported", evidence)
    if len(below) == len(shares):
        return Finding("refuted", evidence)
    return Finding("inconclusive", evidence)


# -- C2 -----------------------------------------------------------------------------


def _equivalence_verdict(ratio: float, low: float, high: float, margin: float, slower_supports: bool) -> str:
    """Supported beyond the margin in the claimed direction; refuted in the other direction
    or when the whole interval lies inside the margin; inconclusive otherwise."""
    if math.isnan(low):
        return "inconclusive"
    hi_edge, lo_edge = 1 + margin, 1 / (1 + margin)
    if slower_supports:
        if low > hi_edge:
            return "supported"
        if high < 1.0 or (low >= lo_edge and high <= hi_edge):
            return "refuted"
    else:
        if high < 1.0:
            return "supported"
        if low > 1.0 or (low >= lo_edge and high <= hi_edge):
            return "refuted"
    return "inconclusive"


def c2(crossings: pd.DataFrame, role: str, runs: pd.DataFrame | None = None) -> Finding:
    # The global-executor pair: what the lab measured before, kept as a labelled row.
    glob = ""
    top_global = [c for c in kind_counts(crossings, runs, "sync_to_async") if c >= 2]
    if top_global:
        c = top_global[-1]
        on, off = (
            sample(crossings, runs, "sync_to_async", c, role),
            sample(crossings, runs, "sync_to_async-ts-off", c, role),
        )
        if on is not None and off is not None:
            r, lo, hi = ratio(on, off)
            glob = (
                f"global executor, {c} callers, no request context (not decisive): on {on.mean:.1f} vs off "
                f"{off.mean:.1f} µs/call, on/off = {r:.2f}{_interval(lo, hi)}"
            )
    callers = [c for c in kind_counts(crossings, runs, "request-gather-") if c >= 2]
    if not callers:
        return Finding("not measured", "; ".join(p for p in ("request-gather kinds need 2 or more callers", glob) if p))
    top = callers[-1]
    findings, parts = [], []
    for work, words in (("py", "pure-Python helpers"), ("release", "GIL-releasing helpers (sha256 of 1 MiB)")):
        on = sample(crossings, runs, f"request-gather-ts-on-{work}", top, role)
        off = sample(crossings, runs, f"request-gather-ts-off-{work}", top, role)
        if on is None or off is None:
            continue
        r, lo, hi = ratio(on, off)
        verdict = _equivalence_verdict(r, lo, hi, C2_EQUIVALENCE, slower_supports=True)
        findings.append(verdict)
        parts.append(
            f"{words}: on {on.mean / 1000:.2f} vs off {off.mean / 1000:.2f} ms/request, "
            f"on/off = {r:.2f}{_interval(lo, hi)} ({on.basis}): {verdict}"
        )
    if not findings:
        return Finding("not measured", "needs request-gather kinds with thread_sensitive on and off")
    evidence = f"request path, {top} helpers gathered per request: " + "; ".join(parts) + (f"; {glob}" if glob else "")
    if "supported" in findings:
        return Finding("supported", evidence)
    if all(v == "refuted" for v in findings):
        return Finding("refuted", evidence)
    return Finding("inconclusive", evidence)


# -- C3 / C5 ------------------------------------------------------------------------


def _variant_vs(
    best: pd.DataFrame, role: str, mixes: tuple[str, ...], nums: tuple[str, ...], den: str, controls: bool
) -> Finding:
    if best.empty:
        return Finding("not measured", "no HTTP cells")
    findings: list[tuple[str, Finding]] = []
    for point in sorted({str(p) for p in best["point"] if mix_of(str(p)) in mixes}):
        b = _values(best, point, role, den)
        for num in nums:
            a = _values(best, point, role, num)
            if not a or not b:
                continue
            finding = _ratio_verdict(a, b, f"{point} {num}/{den} req/s", claim_if_below_one=True)
            extra = []
            on_asgi = _values(best, point, role, "sync-on-asgi")
            if controls and on_asgi:
                # Separate what bridging costs from what the ASGI server costs.
                if num != "sync-on-asgi":
                    r, lo, hi = ratio_ci(a, on_asgi)
                    extra.append(f"{num}/sync-on-asgi {r:.2f}{_interval(lo, hi)}")
                r, lo, hi = ratio_ci(on_asgi, b)
                extra.append(f"server: sync-on-asgi/{den} {r:.2f}{_interval(lo, hi)}")
            if extra:
                finding = Finding(finding.verdict, f"{finding.evidence} ({', '.join(extra)})")
            findings.append((f"{point} ({num} faster)", finding))
    return _with_counterexamples(findings)


# -- C4 -----------------------------------------------------------------------------


def _axis_text(name: str, points: list[tuple[int, str, bool]], unit: str) -> str:
    values = [v for v, _, _ in points]
    wins = [f"{v:g}{unit}" for v, _, won in points if won]
    span = f"{min(values):g}…{max(values):g}{unit}"
    return f"{name} {span}: async wins at {', '.join(wins)}" if wins else f"{name} {span}: no async win"


def _c4_client(client: str, io_rows: list[dict[Any, Any]], other_wins: list[str]) -> Finding:
    fanout: list[tuple[int, str, bool]] = []
    latency: list[tuple[int, str, bool]] = []
    plain_fanout: list[tuple[str, bool]] = []
    wins = []
    for r in io_rows:
        label, won = base_point(str(r["point"])), bool(r["won"])
        if won:
            wins.append(label)
        m = SWEEP_RE.match(label)
        if m and m["param"] == "k":
            fanout.append((int(m["value"]), label, won))
        elif m and m["param"] == "latency":
            latency.append((int(m["value"]), label, won))
        elif "fanout" in label:
            plain_fanout.append((label, won))
    parts = []
    top_wins = []
    for axis, unit, pts in (("fan-out k", "", fanout), ("latency", " ms", latency)):
        if pts:
            parts.append(_axis_text(axis, sorted(pts), unit))
            top = max(v for v, _, _ in pts)
            top_wins += [label for v, label, won in pts if v == top and won]
    if not fanout and plain_fanout:
        parts.append(", ".join(f"{label}: {'async wins' if won else 'no async win'}" for label, won in plain_fanout))
        top_wins += [label for label, won in plain_fanout if won]
    parts.append(
        f"outside external-call mixes: async wins in {', '.join(other_wins)}"
        if other_wins
        else "no async win outside external-call mixes"
    )
    text = f"with {client}: " + "; ".join(parts)
    far = bool(latency) and max(v for v, _, _ in latency) >= LONG_LATENCY_MS
    if other_wins:
        return Finding("refuted", text)
    if top_wins:
        return Finding("supported", text)
    if not wins and far:
        return Finding("refuted", text + f" (none up to {max(v for v, _, _ in latency)} ms)")
    if not fanout and not latency and not plain_fanout:
        return Finding("not measured", text + " (no fan-out or latency axis)")
    return Finding("inconclusive", text)


def c4(decisions: pd.DataFrame, role: str) -> Finding:
    if decisions.empty:
        return Finding("not measured", "no HTTP cells")
    mine = decisions[decisions["role"] == role]
    rows = [{**r, "won": r["winner"] in ASYNC_VARIANTS and bool(r["decided"])} for r in mine.to_dict("records")]
    io = [r for r in rows if _external(str(r["point"]))]
    other_wins = sorted(base_point(str(r["point"])) for r in rows if r["won"] and not _external(str(r["point"])))
    if not io:
        return Finding("not measured", "no external-call mixes (io-fanout-k, io-sweep) in this run")

    def client(r: dict[Any, Any]) -> str:
        named = r.get("client")
        return str(named) if isinstance(named, str) and named else client_of(str(r["point"]))

    clients = sorted({client(r) for r in io})
    findings = [_c4_client(c, [r for r in io if client(r) == c], other_wins) for c in clients]
    if len(findings) == 1:
        return findings[0]
    evidence = "; ".join(f"{f.evidence} ({f.verdict})" for f in findings)
    return Finding(_agreeing(findings), evidence)


# -- C6 -----------------------------------------------------------------------------


def c6(df: pd.DataFrame, role: str, slo: float) -> Finding:
    http = df[(df["tier"] == "http") & (df["status"] == "ok") & (df["role"] == role) & (df["variant"] == "async")]
    if "load_mode" in http.columns:
        # Open-loop throughput is the offered rate, which would pull every ratio toward 1.
        http = http[http["load_mode"] == "closed"]
    keys = ["point", "concurrency"] + [c for c in ("cores", "server_spec") if c in http.columns]
    per_point: dict[str, list[tuple[bool, str, Finding]]] = {}
    for key, g in http.groupby(keys):
        shape = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        plain = g[g["middleware"] == "default"]
        audited = g[g["middleware"] == "sync-audit"]
        if plain.empty or audited.empty:
            continue
        within = float(plain["p95_ms"].mean()) <= slo and float(audited["p95_ms"].mean()) <= slo
        where = ", ".join(
            [f"c{shape['concurrency']}"]
            + ([f"{shape['cores']} cores"] if "cores" in shape else [])
            + ([str(shape["server_spec"])] if "server_spec" in shape else [])
        )
        r, lo, hi = ratio_ci(audited["throughput_rps"].tolist(), plain["throughput_rps"].tolist())
        verdict = _equivalence_verdict(r, lo, hi, C6_EQUIVALENCE, slower_supports=False)
        text = f"{shape['point']} ({where}) with/without sync middleware = {r:.2f}{_interval(lo, hi)}"
        per_point.setdefault(str(shape["point"]), []).append((within, text, Finding(verdict, text)))
    if not per_point:
        return Finding("not measured", "run with --middleware default --middleware sync-audit")
    mixes: list[Finding] = []
    for _point, shapes in sorted(per_point.items()):
        kept = [s for s in shapes if s[0]] or shapes
        note = "" if any(s[0] for s in shapes) else f" (p95 above the {slo:g} ms SLO: compared anyway)"
        found = [f for _, _, f in kept]
        verdict = _agreeing(found)
        mixes.append(Finding(verdict, "; ".join(f"{f.evidence}: {f.verdict}" for f in found) + note))
    evidence = "; ".join(f.evidence for f in mixes)
    verdicts = [f.verdict for f in mixes]
    if "supported" in verdicts and "refuted" not in verdicts:
        return Finding("supported", evidence)
    if all(v == "refuted" for v in verdicts):
        return Finding("refuted", evidence)
    return Finding("inconclusive", evidence)


# -- C7 -----------------------------------------------------------------------------


def _span(r: dict[Any, Any]) -> tuple[float, float]:
    """A break-even interval; an end that never crosses inside the sweep is +inf (past it)."""
    low = math.inf if math.isnan(r["earliest"]) else float(r["earliest"])
    high = math.inf if math.isnan(r["latest"]) else float(r["latest"])
    return low, high


def _where(r: dict[Any, Any], unit: str) -> str:
    low, high = _span(r)
    if math.isinf(low):
        return f"none up to {r['max_value']:g}{unit}"

    def end(x: float) -> str:
        return f">{r['max_value']:g}" if math.isinf(x) else f"{x:.1f}"

    point = f"none up to {r['max_value']:g}{unit}" if math.isnan(r["break_even"]) else f"{r['break_even']:.1f}{unit}"
    return f"{point} [{end(low)}…{end(high)}]"


def _break_even_shift(even: pd.DataFrame) -> Finding | None:
    """Did the break-even move toward sync (later along the sweep) on 3.13t, beyond both intervals?"""
    if even.empty:
        return None
    findings = []
    for mix, g in even.groupby("mix"):
        by_role = {r["role"]: r for r in g.to_dict("records")}
        if "gil" not in by_role or "ft" not in by_role:
            continue
        gil, ft = by_role["gil"], by_role["ft"]
        unit = " ms" if gil.get("param") == "latency" else ""
        text = f"{mix} break-even: 3.13 {_where(gil, unit)}, 3.13t {_where(ft, unit)}"
        (gil_low, gil_high), (ft_low, ft_high) = _span(gil), _span(ft)
        if ft_low > gil_high:
            findings.append(Finding("supported", text))
        elif ft_high < gil_low:
            findings.append(Finding("refuted", text))
        elif math.isinf(gil_low) and math.isinf(ft_low):
            findings.append(Finding("inconclusive", text + " (async never wins on either)"))
        else:
            findings.append(Finding("inconclusive", text + " (intervals overlap)"))
    if not findings:
        return None
    return Finding(_agreeing(findings), "; ".join(f.evidence for f in findings))


def thread_gain(df: pd.DataFrame) -> list[tuple[str, dict[str, tuple[float, float, float]], int]]:
    """Threaded sync Django's throughput at T threads over 1 thread, handler tier, per mix and
    interpreter: [(mix, {role: (gain, low, high)}, T)]."""
    if df.empty or "tier" not in df:
        return []
    h = df[(df["tier"] == "handler") & (df["status"] == "ok") & (df["variant"] == "sync")]
    if "middleware" in h.columns:
        h = h[h["middleware"] == "default"]
    out = []
    for mix in THREAD_GAIN_MIXES:
        rows = h[h["point"].map(lambda p: mix_of(str(p))) == mix]
        gains: dict[str, tuple[float, float, float]] = {}
        threads = int(rows["concurrency"].max()) if not rows.empty else 0
        for role, g in rows.groupby("role"):
            one, many = g[g["concurrency"] == 1], g[g["concurrency"] == threads]
            if threads > 1 and not one.empty and not many.empty:
                # Separate pyperf benchmarks: their values do not pair up.
                gains[str(role)] = ratio_ci(
                    many["throughput_rps"].tolist(), one["throughput_rps"].tolist(), paired=False
                )
        if gains:
            out.append((mix, gains, threads))
    return out


def _thread_gain_finding(df: pd.DataFrame) -> Finding | None:
    measured = thread_gain(df)
    if not measured:
        return None
    parts, verdicts = [], []
    for mix, gains, _threads in measured:
        shown = ", ".join(
            f"{who(role)} ×{g:.2f}{_interval(lo, hi)}"
            for role, (g, lo, hi) in sorted(gains.items(), key=lambda kv: kv[0] != "ft")
        )
        parts.append(f"{mix}: {shown}")
        if "gil" in gains and "ft" in gains:
            (_, ft_lo, ft_hi), (_, gil_lo, gil_hi) = gains["ft"], gains["gil"]
            if math.isnan(ft_lo) or math.isnan(gil_lo):
                verdicts.append("inconclusive")
            elif ft_lo > gil_hi:
                verdicts.append("supported")
            elif ft_hi < gil_lo:
                verdicts.append("refuted")
            else:
                verdicts.append("inconclusive")
    threads = max(t for _, _, t in measured)
    text = f"threaded sync Django gains from {threads} threads over 1 (handler tier): " + "; ".join(parts)
    if not verdicts:
        return Finding("not measured", text + " (needs both interpreters)")
    if all(v == "supported" for v in verdicts):
        return Finding("supported", text)
    if all(v == "refuted" for v in verdicts):
        return Finding("refuted", text)
    return Finding("inconclusive", text)


def c7(even: pd.DataFrame, df: pd.DataFrame) -> Finding:
    shift = _break_even_shift(even)
    gain = _thread_gain_finding(df)
    if shift is not None:
        # The break-even is the claim's own measure; the thread gain is the mechanism behind it.
        return Finding(shift.verdict, shift.evidence + (f"; {gain.evidence}" if gain is not None else ""))
    if gain is not None:
        return gain
    return Finding(
        "not measured", "needs io-sweep (or a fan-out sweep) on both interpreters, or handler sync at 1 and T threads"
    )


# -- the ledger --------------------------------------------------------------------


def ledger(
    df: pd.DataFrame,
    crossings: pd.DataFrame,
    slo_ms: float,
    decided: Decisions | None = None,
    *,
    crossing_runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per claim: claim, text, rule, gil_verdict, gil_evidence, ft_verdict, ft_evidence."""
    # The claims are about throughput, so they compare every variant at its best measured
    # shape whatever its latency; only C6 and the SLO-bound decision map use the SLO.
    decided = decided if decided is not None else decide(df, slo_ms)
    best, decisions = decided.best, decided.by_throughput
    no_http = Finding("not measured", "no HTTP cells")
    per_role: dict[str, Callable[[str], Finding]] = {
        "C1": lambda r: c1(crossings, r, df, best, crossing_runs),
        "C2": lambda r: c2(crossings, r, crossing_runs),
        "C3": lambda r: _variant_vs(best, r, ORM_MIXES, ("bridged",), "sync", controls=True),
        "C4": lambda r: c4(decisions, r),
        "C5": lambda r: _variant_vs(best, r, SYNC_MIXES, ASYNC_VARIANTS, "sync", controls=True),
        "C6": lambda r: c6(df, r, slo_ms) if not df.empty else no_http,
    }
    rows = []
    for claim, text in CLAIMS.items():
        row = {"claim": claim, "text": text, "rule": RULES[claim]}
        if claim == "C7":
            finding = c7(decided.even, df) if not df.empty else no_http
            row.update(
                {"gil_verdict": "—", "gil_evidence": "", "ft_verdict": finding.verdict, "ft_evidence": finding.evidence}
            )
        else:
            for role in ROLES:
                finding = per_role[claim](role)
                row.update({f"{role}_verdict": finding.verdict, f"{role}_evidence": finding.evidence})
        rows.append(row)
    return pd.DataFrame(rows)
