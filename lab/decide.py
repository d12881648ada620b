"""The migration decision, computed from a run's tidy per-repeat values.

- ``decision_map``: per mix point and interpreter, the variant with the highest throughput
  among those whose p95 meets the SLO (each at its best measured concurrency), with the
  margin over the runner-up and whether that margin's interval excludes 1.
- ``break_even``: along the ``io-sweep`` mix, the upstream latency at which ``async``
  starts to out-serve ``sync``, interpolated, per interpreter.

Only valid cells count; a difference is called only when its bootstrap interval excludes 1.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lab.stats import ratio_ci

DEFAULT_SLO_MS = 100.0
SWEEP_RE = re.compile(r"^(?P<mix>[^@]+)@(?P<param>[^=]+)=(?P<value>\d+)$")


def axis_unit(param: str) -> str:
    """The unit a sweep's values are in, with its leading space ("" for counts such as fan-out k)."""
    return " ms" if param == "latency" else ""


# What "no runner-up" means, said once under a decision table rather than in every row.
NO_RUNNER_UP = (
    "No runner-up: the other variants of that mix point were not measured, invalid, too noisy to quote or past "
    "the SLO, so there is no margin to call."
)

# The one shape per interface the lab used to compare at (gthread 1x8 against one uvicorn
# worker): kept as a sensitivity row beside the best-against-best verdict, never as it.
FIXED_SHAPES = ("gunicorn-gthread:1x8", "uvicorn:1")


def http_ok(df: pd.DataFrame) -> pd.DataFrame:
    """Valid closed-loop HTTP cells with the default middleware, at the largest core budget
    measured (the whole box); other budgets and open-loop cells have their own tables.

    Cells the measurement marked ``noisy`` stay in: that flag is about their 3.13t / 3.13
    ratio (rounds of two interpreters), which the headline leaves out. A verdict between
    variants on one interpreter has its own noise, the spread of its per-round margins, and
    ``lab.answer`` leaves out the verdicts where that is too large. Dropping the cells here
    (as the lab did up to 2026-12-01) removed, e.g., every ORM cell from the decision map of a
    run whose ORM margins were steady on both interpreters."""
    if df.empty:
        return df
    df = df[(df["tier"] == "http") & (df["status"] == "ok") & (df["middleware"] == "default")]
    if "load_mode" in df.columns:
        df = df[df["load_mode"] == "closed"]
    if "cores" in df.columns and not df.empty:
        df = df[df["cores"] == df["cores"].max()]
    return df


def best_configs(df: pd.DataFrame, slo_ms: float, shapes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Per point, interpreter and variant: the server config and concurrency with the highest
    mean throughput whose mean p95 meets the SLO (rows keep that cell's per-round values, in
    round order, so ratios pair them; ``tried`` lists every shape with its mean req/s).
    ``shapes`` restricts the choice to those server specs (the fixed-shape sensitivity)."""
    rows: list[dict[str, Any]] = []
    ok = http_ok(df)
    if not ok.empty and "server_spec" not in ok.columns:
        ok = ok.assign(server_spec="-")
    if shapes is not None and not ok.empty:
        ok = ok[ok["server_spec"].isin(shapes)]
    if "repeat" in ok.columns:
        ok = ok.sort_values("repeat", kind="stable")
    for (point, role, variant), g in ok.groupby(["point", "role", "variant"]):
        best: dict[str, Any] | None = None
        tried = []
        for (server, conc), c in g.groupby(["server_spec", "concurrency"]):
            rps = c["throughput_rps"].tolist()
            tried.append(f"{server} c{conc}: {sum(rps) / len(rps):.1f}")
            p95 = float(c["p95_ms"].mean())
            if p95 > slo_ms:
                continue
            mean = sum(rps) / len(rps)
            if best is None or mean > best["rps"]:
                best = {
                    "point": point,
                    "role": role,
                    "variant": variant,
                    "server": server,
                    "concurrency": conc,
                    "rps": mean,
                    "values": rps,
                    "p95_ms": p95,
                    "interpreter": c["interpreter"].iloc[0],
                }
        if best is not None:
            best["tried"] = "; ".join(tried)
            rows.append(best)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Verdict:
    winner: str
    runner_up: str
    margin: float
    low: float
    high: float

    @property
    def decided(self) -> bool:
        return not math.isnan(self.low) and self.low > 1.0

    def text(self) -> str:
        if not self.runner_up:
            # Short, as it repeats in every such row; the report explains it once (NO_RUNNER_UP).
            return f"{self.winner}; no runner-up"
        interval = "" if math.isnan(self.low) else f" [{self.low:.2f}, {self.high:.2f}]"
        if self.decided:
            return f"{self.winner} ×{self.margin:.2f}{interval} over {self.runner_up}"
        return f"{self.winner} ≈ {self.runner_up} (×{self.margin:.2f}{interval}, not significant)"


def decision_map(
    df: pd.DataFrame, slo_ms: float = DEFAULT_SLO_MS, shapes: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """Per point and interpreter: each variant at its best measured shape (or only at
    ``shapes``), the winner, and its margin over the runner-up with a paired interval."""
    best = best_configs(df, slo_ms, shapes)
    rows: list[dict[str, Any]] = []
    if best.empty:
        return pd.DataFrame()
    for (point, role), g in best.groupby(["point", "role"]):
        ranked = g.sort_values("rps", ascending=False).to_dict("records")
        top = ranked[0]
        if len(ranked) > 1:
            second = ranked[1]
            margin, low, high = ratio_ci(top["values"], second["values"])
            verdict = Verdict(top["variant"], second["variant"], margin, low, high)
        else:
            verdict = Verdict(top["variant"], "", math.nan, math.nan, math.nan)
        rows.append(
            {
                "point": point,
                "role": role,
                "winner": top["variant"],
                "runner_up": verdict.runner_up,  # "" when no other variant qualified
                "server": top["server"],
                "runner_up_server": ranked[1]["server"] if len(ranked) > 1 else "",
                "concurrency": top["concurrency"],
                "rps": top["rps"],
                "margin": verdict.margin,
                "low": verdict.low,
                "high": verdict.high,
                "decided": verdict.decided,
                "verdict": verdict.text(),
            }
        )
    return pd.DataFrame(rows)


def sweep_ratios(
    df: pd.DataFrame,
    numerator: str = "async",
    denominator: str = "sync",
    slo_ms: float = math.inf,
    shapes: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """Along each swept mix: throughput ratio numerator/denominator per swept value and
    interpreter, each variant at its best shape (or only at ``shapes``)."""
    best = best_configs(df, slo_ms, shapes)
    rows: list[dict[str, Any]] = []
    if best.empty:
        return pd.DataFrame()
    for (point, role), g in best.groupby(["point", "role"]):
        m = SWEEP_RE.match(str(point))
        by_variant = {r["variant"]: r for r in g.to_dict("records")}
        if not m or numerator not in by_variant or denominator not in by_variant:
            continue
        ratio, low, high = ratio_ci(by_variant[numerator]["values"], by_variant[denominator]["values"])
        rows.append(
            {
                "mix": m["mix"],
                "param": m["param"],
                "value": int(m["value"]),
                "role": role,
                "ratio": ratio,
                "low": low,
                "high": high,
            }
        )
    return pd.DataFrame(rows).sort_values(["mix", "role", "value"]) if rows else pd.DataFrame()


def crossing_point(xs: list[float], ys: list[float]) -> float:
    """First x where the piecewise-linear curve through (xs, ys) reaches 1 from below; nan if never."""
    points = list(zip(xs, ys, strict=True))
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if y0 < 1.0 <= y1:
            return x0 + (1.0 - y0) * (x1 - x0) / (y1 - y0)
    if ys and ys[0] >= 1.0:
        return xs[0]
    return math.nan


def break_even(ratios: pd.DataFrame) -> pd.DataFrame:
    """Where async/sync crosses 1 along each sweep; the interval comes from the ratio's
    interval curves (the upper curve crosses first, the lower one last)."""
    rows: list[dict[str, Any]] = []
    if ratios.empty:
        return pd.DataFrame()
    for (mix, role), g in ratios.groupby(["mix", "role"]):
        xs = [float(v) for v in g["value"]]
        rows.append(
            {
                "mix": mix,
                "param": g["param"].iloc[0],
                "role": role,
                "break_even": crossing_point(xs, g["ratio"].tolist()),
                "earliest": crossing_point(xs, g["high"].fillna(g["ratio"]).tolist()),
                "latest": crossing_point(xs, g["low"].fillna(g["ratio"]).tolist()),
                "max_value": max(xs),
            }
        )
    return pd.DataFrame(rows)


def interval_text(row: dict[Any, Any]) -> str:
    """A break-even interval; an upper end past the sweep is shown as ">max"."""
    earliest = "—" if math.isnan(row["earliest"]) else f"{row['earliest']:.1f}"
    latest = f">{row['max_value']:g}" if math.isnan(row["latest"]) else f"{row['latest']:.1f}"
    return f"{earliest}…{latest}"


@dataclass(frozen=True)
class Decisions:
    """Everything the report, plots and claims derive from the values, computed once."""

    slo_ms: float
    best: pd.DataFrame  # best configuration per point, interpreter and variant, by throughput
    by_throughput: pd.DataFrame
    within_slo: pd.DataFrame
    ratios: pd.DataFrame  # async/sync along each swept mix
    even: pd.DataFrame  # break-even per swept mix and interpreter
    # Sensitivity, never the verdict: the same at the one fixed shape (FIXED_SHAPES).
    fixed: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    even_fixed: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


def decide(df: pd.DataFrame, slo_ms: float = DEFAULT_SLO_MS) -> Decisions:
    """Best against best: every variant at the best shape measured for it, same core budget
    and connections; the fixed shape comes along as sensitivity."""
    if df.empty:
        empty = pd.DataFrame()
        return Decisions(slo_ms, empty, empty, empty, empty, empty)
    ratios = sweep_ratios(df)
    ratios_fixed = sweep_ratios(df, shapes=FIXED_SHAPES)
    return Decisions(
        slo_ms=slo_ms,
        best=best_configs(df, math.inf),
        by_throughput=decision_map(df, math.inf),
        within_slo=decision_map(df, slo_ms),
        ratios=ratios,
        even=break_even(ratios),
        fixed=decision_map(df, math.inf, FIXED_SHAPES),
        even_fixed=break_even(ratios_fixed),
    )
