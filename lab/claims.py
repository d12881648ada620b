"""The claims ledger: each claim of the article, with a verdict and the numbers behind it.

Verdicts are ``supported``, ``refuted`` or ``inconclusive`` per interpreter. A claim about a
difference is decided only when the relevant 95% interval excludes "no difference"; a
claim the run did not measure says so and what to run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lab.decide import Decisions, decide, interval_text
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


@dataclass(frozen=True)
class Finding:
    verdict: str  # supported / refuted / inconclusive / not measured
    evidence: str


def _ratio_verdict(num: list[float], den: list[float], label: str, claim_if_below_one: bool) -> Finding:
    ratio, low, high = ratio_ci(num, den)
    text = f"{label} = {ratio:.2f}" + ("" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]")
    if math.isnan(low):
        return Finding("inconclusive", text + " (too few repeats for an interval)")
    if high < 1.0:
        return Finding("supported" if claim_if_below_one else "refuted", text)
    if low > 1.0:
        return Finding("refuted" if claim_if_below_one else "supported", text)
    return Finding("inconclusive", text + " (interval includes 1)")


def _combine(findings: list[Finding]) -> Finding:
    if not findings:
        return Finding("not measured", "no matching cells in this run")
    verdicts = {f.verdict for f in findings}
    verdict = verdicts.pop() if len(verdicts) == 1 else ("inconclusive" if "inconclusive" in verdicts else "mixed")
    if verdict == "mixed":
        verdict = "inconclusive"
    return Finding(verdict, "; ".join(f.evidence for f in findings))


def _values(best: pd.DataFrame, point: str, role: str, variant: str) -> list[float] | None:
    match = best[(best["point"] == point) & (best["role"] == role) & (best["variant"] == variant)]
    return None if match.empty else list(match.iloc[0]["values"])


def c1(crossings: pd.DataFrame, role: str) -> Finding:
    if crossings.empty or f"{role}_us" not in crossings:
        return Finding("not measured", "no crossing microbenchmarks (plan.crossing_concurrency)")
    lowest = crossings["concurrency"].min()
    at = crossings[crossings["concurrency"] == lowest].set_index("kind")
    if "sync_to_async" not in at.index:
        return Finding("not measured", "no sync_to_async benchmark")
    if "direct" not in at.index:
        return Finding("inconclusive", "no direct-call baseline in this run, so the hop's own cost cannot be separated")
    hop, hop_ci = float(at.loc["sync_to_async", f"{role}_us"]), float(at.loc["sync_to_async", f"{role}_ci"])
    base, base_ci = float(at.loc["direct", f"{role}_us"]), float(at.loc["direct", f"{role}_ci"])
    cost, cost_ci = hop - base, math.hypot(hop_ci, base_ci)
    text = f"sync_to_async costs {cost:.1f} ± {cost_ci:.1f} µs per call over a direct call ({hop:.1f} vs {base:.1f} µs)"
    if math.isnan(cost_ci):
        return Finding("inconclusive", text)
    return Finding("supported" if cost - cost_ci > 0 else "inconclusive", text)


def c2(crossings: pd.DataFrame, role: str) -> Finding:
    if crossings.empty or f"{role}_us" not in crossings or crossings["concurrency"].max() < 2:
        return Finding("not measured", "needs crossing microbenchmarks with 2 or more callers")
    top = crossings["concurrency"].max()
    on = crossings[(crossings["kind"] == "sync_to_async") & (crossings["concurrency"] == top)]
    off = crossings[(crossings["kind"] == "sync_to_async-ts-off") & (crossings["concurrency"] == top)]
    if on.empty or off.empty:
        return Finding("not measured", "needs both thread_sensitive on and off")
    a, ca = float(on.iloc[0][f"{role}_us"]), float(on.iloc[0][f"{role}_ci"])
    b, cb = float(off.iloc[0][f"{role}_us"]), float(off.iloc[0][f"{role}_ci"])
    text = f"with {top} callers: thread_sensitive on {a:.1f} ± {ca:.1f} µs/call, off {b:.1f} ± {cb:.1f} µs/call"
    if math.isnan(ca) or math.isnan(cb) or abs(a - b) <= ca + cb:
        return Finding("inconclusive", text)
    return Finding("supported" if a > b else "refuted", text)


def _variant_vs(
    best: pd.DataFrame, role: str, mixes: tuple[str, ...], num: str, den: str, claim_if_below_one: bool
) -> Finding:
    findings = []
    for mix in mixes:
        a, b = _values(best, mix, role, num), _values(best, mix, role, den)
        if a and b:
            findings.append(_ratio_verdict(a, b, f"{mix} {num}/{den} req/s", claim_if_below_one))
    return _combine(findings)


def c4(decisions: pd.DataFrame, role: str) -> Finding:
    if decisions.empty:
        return Finding("not measured", "no HTTP cells")
    mine = decisions[decisions["role"] == role]
    wins = sorted(mine[(mine["winner"].isin(["async", "async-db"])) & mine["decided"]]["point"])
    fanout = "io-fanout" in set(mine["point"])
    if not fanout:
        return Finding("not measured", "no io-fanout mix in this run")
    text = f"async variants win (decided) in: {', '.join(wins) or 'none'}"
    io_only = all(w.startswith(("io-", "billing")) for w in wins)
    if "io-fanout" in wins and io_only:
        return Finding("supported", text)
    if "io-fanout" not in wins:
        return Finding("refuted", text + "; not in io-fanout")
    return Finding("refuted", text + "; async also wins outside external-call mixes")


def c6(df: pd.DataFrame, role: str, slo: float) -> Finding:
    http = df[(df["tier"] == "http") & (df["status"] == "ok") & (df["role"] == role) & (df["variant"] == "async")]
    findings = []
    for point, g in http.groupby("point"):
        plain = g[g["middleware"] == "default"]["throughput_rps"].tolist()
        audited = g[g["middleware"] == "sync-audit"]["throughput_rps"].tolist()
        if plain and audited:
            findings.append(_ratio_verdict(audited, plain, f"{point} async with/without sync middleware", True))
    if not findings:
        return Finding("not measured", "run with --middleware default --middleware sync-audit")
    return _combine(findings)


def _break_even_shift(even: pd.DataFrame) -> Finding | None:
    """Did the break-even along the latency sweep move toward sync (to higher latency) on 3.13t?"""
    if even.empty:
        return None
    by_role = {r["role"]: r for r in even.to_dict("records")}
    if "gil" not in by_role or "ft" not in by_role:
        return None
    gil, ft = by_role["gil"], by_role["ft"]

    def where(r: dict[Any, Any]) -> str:
        if math.isnan(r["break_even"]):
            return f"none up to {r['max_value']:g} ms"
        return f"{r['break_even']:.1f} ms [{interval_text(r)}]"

    text = f"break-even along the latency sweep: 3.13 {where(gil)}, 3.13t {where(ft)}"
    gil_none, ft_none = math.isnan(gil["break_even"]), math.isnan(ft["break_even"])
    if gil_none and ft_none:
        return Finding("inconclusive", text + " (async never wins on either)")
    if ft_none:
        if math.isnan(gil["latest"]):
            return Finding(
                "inconclusive",
                text + " (on 3.13 the interval reaches past the sweep, so its crossing is not established)",
            )
        return Finding("supported", text)
    if gil_none:
        return Finding("refuted", text)
    if not math.isnan(gil["latest"]) and not math.isnan(ft["earliest"]) and ft["earliest"] > gil["latest"]:
        return Finding("supported", text)
    if not math.isnan(ft["latest"]) and not math.isnan(gil["earliest"]) and ft["latest"] < gil["earliest"]:
        return Finding("refuted", text)
    return Finding("inconclusive", text + " (intervals overlap)")


def c7(even: pd.DataFrame, best: pd.DataFrame) -> Finding:
    # The free-threading effect on sync relative to its effect on async, mix by mix.
    shifts = []
    for point in sorted(set(best["point"])) if not best.empty else []:
        sync_ft, sync_gil = _values(best, point, "ft", "sync"), _values(best, point, "gil", "sync")
        async_ft, async_gil = _values(best, point, "ft", "async"), _values(best, point, "gil", "async")
        if sync_ft and sync_gil and async_ft and async_gil:
            rs = sum(sync_ft) / len(sync_ft) / (sum(sync_gil) / len(sync_gil))
            ra = sum(async_ft) / len(async_ft) / (sum(async_gil) / len(async_gil))
            shifts.append(rs / ra)
    favoured = sum(1 for s in shifts if s > 1.05)
    against = sum(1 for s in shifts if s < 1 / 1.05)
    mixes_text = (
        f"3.13t's gain for sync exceeds its gain for async by >5% in {favoured} of {len(shifts)} mixes, "
        f"falls >5% short in {against}"
    )
    shift = _break_even_shift(even)
    if shift is not None:
        # The break-even is the claim's own measure; the per-mix count is context.
        return Finding(shift.verdict, f"{shift.evidence}; {mixes_text}" if shifts else shift.evidence)
    if not shifts:
        return Finding("not measured", "needs sync and async on both interpreters")
    if favoured > len(shifts) / 2:
        return Finding("supported", mixes_text)
    if against > len(shifts) / 2:
        return Finding("refuted", mixes_text)
    return Finding("inconclusive", mixes_text)


def ledger(df: pd.DataFrame, crossings: pd.DataFrame, slo_ms: float, decided: Decisions | None = None) -> pd.DataFrame:
    # The claims are about throughput, so they compare every variant at its best measured
    # concurrency whatever its latency; only C6 and the SLO-bound decision map use the SLO.
    decided = decided if decided is not None else decide(df, slo_ms)
    best, decisions = decided.best, decided.by_throughput
    per_role: dict[str, Callable[[str], Finding]] = {
        "C1": lambda r: c1(crossings, r),
        "C2": lambda r: c2(crossings, r),
        "C3": lambda r: (
            _variant_vs(best, r, ORM_MIXES, "bridged", "sync", True)
            if not best.empty
            else Finding("not measured", "no HTTP cells")
        ),
        "C4": lambda r: c4(decisions, r),
        "C5": lambda r: (
            _variant_vs(best, r, SYNC_MIXES, "async", "sync", True)
            if not best.empty
            else Finding("not measured", "no HTTP cells")
        ),
        "C6": lambda r: c6(df, r, slo_ms) if not df.empty else Finding("not measured", "no HTTP cells"),
    }
    rows = []
    for claim, text in CLAIMS.items():
        row = {"claim": claim, "text": text}
        if claim == "C7":
            finding = c7(decided.even, best) if not df.empty else Finding("not measured", "no HTTP cells")
            row.update(
                {"gil_verdict": "—", "gil_evidence": "", "ft_verdict": finding.verdict, "ft_evidence": finding.evidence}
            )
        else:
            for role in ROLES:
                finding = per_role[claim](role)
                row.update({f"{role}_verdict": finding.verdict, f"{role}_evidence": finding.evidence})
        rows.append(row)
    return pd.DataFrame(rows)
