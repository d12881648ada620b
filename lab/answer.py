"""The answer a report opens with, in words generated from the run's decisions.

For each kind of endpoint (CPU-bound; ORM, template and CRUD; external I/O made one call
after another; external I/O fanned out) and each interpreter: which variant to run on this
machine's core budget, how sure the run is (decided: the 95% interval of the winner's margin
over the runner-up excludes 1; otherwise a tie, written "sync ≈ async"), and what would
change it (the break-even upstream latency along a latency sweep). Then one line on the
article's claims.

Noise is used, not only shown: a cell whose rounds disagree by more than ``lab.stats.NOISY_CV``
(per-round ratios in paired runs, the CV over repeats on either interpreter otherwise), or
that the measurement marked noisy (``lab_noisy`` metadata, when present: the tidy frame's
``noisy`` column), is never quoted here; it is listed under "too noisy" instead. Reads only DataFrames built by ``lab.report`` and ``lab.decide``.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lab.decide import Decisions, axis_unit, http_ok, interval_text
from lab.markup import table as table_lines
from lab.sections import who
from lab.stats import NOISY_CV, log_ratio_spread
from lab.tables import point_key

KINDS = ("CPU-bound", "ORM, template and CRUD", "external I/O, sequential", "external I/O, fan-out")
_BY_ENDPOINT = {"cpu": 0, "orm": 1, "template": 1, "crud": 1, "billing": 2}
_BY_MIX_PREFIX = (("cpu", 0), ("orm", 1), ("template", 1), ("io-fanout", 3), ("io-", 2), ("billing", 2))


def endpoint_kind(mix: str, endpoint: str = "", query: str = "") -> str:
    """The kind of endpoint a mix exercises: from the workload's endpoint and query when the
    run recorded them (``lab_endpoint``, ``lab_query``), else from the mix's name."""
    if endpoint == "external":
        return KINDS[3] if "mode=fanout" in query else KINDS[2]
    if endpoint in _BY_ENDPOINT:
        return KINDS[_BY_ENDPOINT[endpoint]]
    for prefix, kind in _BY_MIX_PREFIX:
        if mix.startswith(prefix):
            return KINDS[kind]
    return "other"


def truthy(value: Any) -> bool:
    """A metadata flag as pyperf stores it (bool, int or string)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value) and not (isinstance(value, float) and math.isnan(value))


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else math.nan


@dataclass(frozen=True)
class Call:
    """One mix point's decision on one interpreter, as the answer quotes it."""

    point: str
    role: str
    winner: str
    runner_up: str
    margin: float
    low: float
    high: float
    decided: bool
    noisy: str  # why it is too noisy to quote; "" when quotable

    def text(self, *, bold: bool = True) -> str:
        interval = "" if math.isnan(self.low) else f" [{self.low:.2f}, {self.high:.2f}]"
        winner = f"**{self.winner}**" if bold else self.winner
        if not self.runner_up:
            # Not bold: with nothing to compare against, nothing was decided.
            return f"{self.winner} (the only variant measured)"
        if self.decided:
            return f"{winner} ×{self.margin:.2f}{interval} over {self.runner_up}"
        return f"{self.winner} ≈ {self.runner_up} (×{self.margin:.2f}{interval}, a tie)"


def calls(values: pd.DataFrame, decided: Decisions) -> list[Call]:
    """Every decision of the throughput map with its runner-up and its noise verdict."""
    decisions, best = decided.by_throughput, decided.best
    if decisions.empty or best.empty:
        return []
    ok = http_ok(values)
    out: list[Call] = []
    for r in decisions.to_dict("records"):
        ranked = best[(best["point"] == r["point"]) & (best["role"] == r["role"])].sort_values("rps", ascending=False)
        reasons = []
        top2 = ranked.head(2).to_dict("records")
        paired = "paired" in ok.columns and not ok.empty and bool((ok["paired"] == 1).all())
        if paired and len(top2) == 2:
            # Paired rounds: the noise the verdict sees is how much the per-round margins
            # disagree; drift shared by a round cancels in them.
            spread = log_ratio_spread(list(top2[0]["values"]), list(top2[1]["values"]))
            if spread > NOISY_CV:
                reasons.append(f"per-round margins spread {spread:.1%}")
        # Unpaired runs: each side's repeats. (A cell's ``noisy`` flag is about its 3.13t / 3.13
        # ratio, not this verdict: see lab.decide.http_ok.)
        for b in top2:
            spread = cv(list(b["values"]))
            if not paired and spread > NOISY_CV:
                reasons.append(f"{b['variant']} CV {spread:.1%}")
        runner_up = str(ranked.iloc[1]["variant"]) if len(ranked) > 1 else ""
        out.append(
            Call(
                point=str(r["point"]),
                role=str(r["role"]),
                winner=str(r["winner"]),
                runner_up=runner_up,
                margin=float(r["margin"]),
                low=float(r["low"]),
                high=float(r["high"]),
                decided=bool(r["decided"]),
                noisy="; ".join(reasons),
            )
        )
    return out


def _kinds_of(values: pd.DataFrame, points: set[str]) -> dict[str, list[str]]:
    """kind -> its mix points, in numeric order. A swept point joins its kind only when the
    kind has no plain mix (the sweep itself is reported as the break-even)."""
    info: dict[str, tuple[str, str, str]] = {}
    for point in points:
        rows = values[values["point"] == point]
        first = rows.iloc[0] if not rows.empty else None

        def get(column: str, row: Any = first) -> str:
            return str(row[column]) if row is not None and column in row.index else ""

        info[point] = (get("mix") or point.split("@")[0], get("endpoint"), get("query"))
    kinds: dict[str, list[str]] = {}
    for point in sorted(points, key=point_key):
        mix, endpoint, query = info[point]
        kinds.setdefault(endpoint_kind(mix, endpoint, query), []).append(point)
    for kind, members in kinds.items():
        plain = [p for p in members if "@" not in p]
        if plain:
            kinds[kind] = plain
    return kinds


def _range(found: list[Call]) -> str:
    margins = sorted(c.margin for c in found)
    if len(margins) == 1:
        c = found[0]
        return f"×{c.margin:.2f} [{c.low:.2f}, {c.high:.2f}] over {c.runner_up}"
    return f"×{margins[0]:.2f}–×{margins[-1]:.2f} over the runner-up"


def role_summary(found: list[Call]) -> str:
    """What to run for one kind on one interpreter, from its quotable calls."""
    quotable = [c for c in found if not c.noisy]
    noisy = len(found) - len(quotable)
    if not quotable:
        return 'too noisy to call (see "Too noisy to quote")' if found else "not measured"
    aside = f"; {noisy} more too noisy to quote" if noisy else ""
    if len(quotable) == 1:
        mixes = f" (in {quotable[0].point}{aside})" if len(found) > 1 else ""
        return quotable[0].text() + mixes
    decided = [c for c in quotable if c.decided]
    if not decided:
        # Undecided is a tie only where a runner-up was measured; a variant alone is said as such.
        ties = [c for c in quotable if c.runner_up]
        alone = [c for c in quotable if not c.runner_up]
        parts = []
        if ties:
            scope = "in every mix" if not alone else "wherever two or more variants were measured"
            parts.append(f"a tie {scope}: " + "; ".join(f"{c.point}: {c.text()}" for c in ties))
        if alone:
            where = ", ".join(f"{c.point} ({c.winner})" for c in alone)
            parts.append(f"only one variant measured in {where}" if ties else f"only one variant measured in each mix: {where}")
        return "; ".join(parts) + aside
    top, wins = Counter(c.winner for c in decided).most_common(1)[0]
    won = [c for c in decided if c.winner == top]
    others = [c for c in quotable if c not in won]
    share = f"in all {len(quotable)} mixes" if not others else f"in {wins} of {len(quotable)} mixes"
    text = f"**{top}** {share} ({_range(won)}{aside})"
    if others:
        text += "; but " + "; ".join(f"{c.point}: {c.text()}" for c in others)
    return text


def _break_even_lines(decided: Decisions) -> list[str]:
    even = decided.even
    if even.empty:
        return [
            "- **What would change it**: this run has no latency sweep, so the upstream latency at which async "
            "would start to out-serve sync is not measured (plans with `io-sweep` measure it)."
        ]
    parts = []
    for mix, g in even.groupby("mix", sort=True):
        sides = []
        for r in sorted(g.to_dict("records"), key=lambda r: r["role"] == "ft"):  # 3.13 first
            unit = axis_unit(str(r["param"]))
            if math.isnan(r["break_even"]):
                sides.append(f"on {who(r['role'])} never up to {r['param']}={r['max_value']:g}{unit}")
            elif unit:
                sides.append(
                    f"on {who(r['role'])} from ≈ {r['break_even']:.0f} ms of upstream {r['param']} per request "
                    f"(interval {interval_text(r)} ms)"
                )
            else:
                sides.append(f"on {who(r['role'])} from {r['param']} ≈ {r['break_even']:.1f} (interval {interval_text(r)})")
        parts.append(f"along {mix}, async out-serves sync " + "; ".join(sides))
    return [
        "- **What would change it**: "
        + "; ".join(parts)
        + ". An endpoint that waits on external calls longer than its interpreter's break-even favours async; "
        "below it, sync."
    ]


def _claims_line(claims: pd.DataFrame | None) -> list[str]:
    if claims is None or claims.empty:
        return []
    by_verdict: dict[str, list[str]] = {}
    for r in claims.to_dict("records"):
        sides = {role: str(r.get(f"{role}_verdict", "—")) for role in ("gil", "ft")}
        if sides["gil"] == sides["ft"]:
            by_verdict.setdefault(sides["gil"], []).append(f"{r['claim']} (both)")
            continue
        for role, verdict in sides.items():
            if verdict not in ("—", "nan"):
                by_verdict.setdefault(verdict, []).append(f"{r['claim']} ({who(role)})")
    order = ["supported", "refuted", "inconclusive", "not measured"]
    ranked = sorted(by_verdict.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    return ["- **The article's claims** here: " + "; ".join(f"{v}: {', '.join(c)}" for v, c in ranked) + "."]


def answer_lines(
    values: pd.DataFrame,
    decided: Decisions,
    cells: dict[str, Any],
    claims: pd.DataFrame | None = None,
    *,
    found: list[Call] | None = None,
) -> list[str]:
    """The report's opening section: what to run, how sure, what would change it.
    ``found``: ``calls(values, decided)`` when the caller computed them already."""
    found = calls(values, decided) if found is None else found
    if not found:
        return ["", "## The answer", "", "This run has no valid HTTP cells to decide on (see the tables below)."]
    ok = http_ok(values)
    cores = int(ok["cores"].max()) if "cores" in ok.columns and not ok.empty else 0
    machine = cells.get("machine", {})
    conc = sorted({int(c) for c in decided.best["concurrency"]})
    size = f"{machine.get('cpu_count', '?')} CPUs" + (f", server core budget {cores}" if cores else "")
    slo = (
        f"No variant met the p95 SLO of {decided.slo_ms:g} ms at this load, so these are throughput decisions"
        if decided.within_slo.empty
        else f"The decision map within the p95 SLO of {decided.slo_ms:g} ms is further down"
    )
    lines = [
        "",
        "## The answer",
        "",
        f"On this machine ({size}), each variant at its best measured server and concurrency "
        f"({', '.join(map(str, conc))} connections, closed loop), by throughput. **Bold**: decided (the 95% "
        "interval of the margin over the runner-up excludes 1); ≈: a tie the run cannot separate. "
        f"{slo}. Cells whose rounds disagree by more than {NOISY_CV:.0%} (per-round ratios in paired runs, "
        "repeats' CV otherwise) are not quoted.",
        "",
    ]
    kinds = _kinds_of(values, {c.point for c in found})
    for kind in [*KINDS, "other"]:
        points = kinds.get(kind)
        if not points:
            if kind != "other":
                lines.append(f"- **{kind}**: not measured in this run.")
            continue
        sides = [
            f"on {who(role)} {role_summary([c for c in found if c.point in points and c.role == role])}"
            for role in ("gil", "ft")
        ]
        lines.append(f"- **{kind}** ({', '.join(points)}): " + "; ".join(sides) + ".")
    lines += _break_even_lines(decided)
    lines += _claims_line(claims)
    return lines


def noisy_lines(found: list[Call], table: pd.DataFrame) -> list[str]:
    """The "too noisy" list: decisions and 3.13t / 3.13 cells not quoted, and why."""
    rows = [[f"decision on {who(c.role)}", c.point, c.text(bold=False), c.noisy] for c in found if c.noisy]
    if not table.empty and "noisy" in table.columns:
        for r in table[table["noisy"]].to_dict("records"):
            spread = r.get("ratio_spread", math.nan)
            if isinstance(spread, float) and not math.isnan(spread):
                why = [f"per-round 3.13t/3.13 ratios spread {spread:.1%}"] if spread > NOISY_CV else []
            else:
                why = [
                    f"{who(role)} CV {r[f'{role}_cv']:.1%}"
                    for role in ("gil", "ft")
                    if r.get(f"{role}_cv", math.nan) > NOISY_CV
                ]
            if r.get("flagged"):
                why.append("marked noisy by the measurement")
            if r.get("remeasured"):
                why.append("its point measured again")
            ratio = "—" if math.isnan(r["ft_over_gil"]) else f"{r['ft_over_gil']:.2f}"
            where = f"{r['variant']} on {r['server']}, concurrency {r['concurrency']}"
            rows.append([f"{r['tier']} cell 3.13t / 3.13", r["point"], f"{ratio} ({where})", "; ".join(why)])
    if not rows:
        return []
    rows.sort(key=lambda r: (r[0], point_key(r[1])))
    return [
        "",
        "## Too noisy to quote",
        "",
        f"Left out of the answer and the headline: in paired runs, per-round ratios that spread by more than "
        f"{NOISY_CV:.0%} (sd of their logs); in unpaired runs, repeats whose CV exceeds {NOISY_CV:.0%} on a side; "
        "or the measurement marked the cell noisy after measuring its point again. Re-measure these before "
        "relying on them.",
        "",
        *table_lines(["what", "mix", "figure not quoted", "why"], rows, "llll", keep=("what", "mix")),
    ]
