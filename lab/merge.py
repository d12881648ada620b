"""Several runs in one report: machine and run stay dimensions, never pooled.

``lab report run-a run-b …`` renders each run's own report, then a combined one:
the 3.13t / 3.13 ratio of every cell the runs share, one column per run (labelled with
its machine), and the run-to-run stability check: cells whose ratio moved by more than
``STABLE_WITHIN`` between two runs on the same machine are flagged. Runs whose
interpreters differ in version or build profile are refused unless told otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from lab.answer import truthy
from lab.errors import SpecError
from lab.files import write_atomic
from lab.report import load_run, machine_label, summary_table
from lab.sections import who
from lab.tables import point_key

# Two runs' 3.13t / 3.13 ratios for a cell should agree within this (relative).
STABLE_WITHIN = 0.05
CELL_KEYS = ["tier", "point", "variant", "server", "cores", "load", "concurrency"]
CELL_HEADERS = ["tier", "mix", "variant", "server", "cores", "load", "connections"]


def _interpreters(run: Path) -> dict[str, tuple[str, str]]:
    cells = json.loads((run / "cells.json").read_text())
    return {
        name: (i.get("version", "?"), i.get("build_profile", "?")) for name, i in cells.get("interpreters", {}).items()
    }


def check_compatible(runs: list[Path], allow_mixed: bool) -> list[str]:
    """Differences in required metadata between runs; an error unless ``allow_mixed``."""
    first = _interpreters(runs[0])
    diffs = [
        f"{run.name}: {name} is {got}, {runs[0].name} has {first.get(name)}"
        for run in runs[1:]
        for name, got in _interpreters(run).items()
        if first.get(name) != got
    ]
    if diffs and not allow_mixed:
        raise SpecError(
            f"runs differ in interpreter version or build profile ({'; '.join(diffs)}); "
            "pass --allow-mixed to report them side by side anyway"
        )
    return diffs


def ratio_columns(runs: list[Path]) -> tuple[pd.DataFrame, dict[str, str]]:
    """One row per shared cell key, a ratio (and interval) column per run; run -> machine."""
    merged: pd.DataFrame | None = None
    machines: dict[str, str] = {}
    for run in runs:
        data = load_run(run)
        machines[run.name] = machine_label(data.cells.get("machine", {}))
        table = summary_table(data)
        if table.empty:
            continue
        cols = table[[*CELL_KEYS, "ft_over_gil", "ratio_low", "ratio_high", "noisy"]].rename(
            columns={
                "ft_over_gil": f"{run.name}:ratio",
                "ratio_low": f"{run.name}:low",
                "ratio_high": f"{run.name}:high",
                "noisy": f"{run.name}:noisy",
            }
        )
        merged = cols if merged is None else merged.merge(cols, on=CELL_KEYS, how="outer")
    return (merged if merged is not None else pd.DataFrame()), machines


def stability(wide: pd.DataFrame, runs: list[str], machines: dict[str, str]) -> pd.DataFrame:
    """Relative change of each cell's ratio from the first run to each later run on the same machine."""
    rows: list[dict[str, Any]] = []
    base = runs[0]
    for other in runs[1:]:
        if machines[other] != machines[base]:
            continue  # different machines: shown side by side, never treated as repeats
        for r in wide.to_dict("records"):
            a, b = r.get(f"{base}:ratio", math.nan), r.get(f"{other}:ratio", math.nan)
            if math.isnan(a) or math.isnan(b):
                continue
            change = b / a - 1
            low, high = r.get(f"{base}:low", math.nan), r.get(f"{base}:high", math.nan)
            rows.append(
                {
                    **{k: r[k] for k in CELL_KEYS},
                    "runs": f"{base} → {other}",
                    "ratio_a": a,
                    "ratio_b": b,
                    "change": change,
                    "unstable": abs(change) > STABLE_WITHIN,
                    "inside": bool(not math.isnan(low) and low <= b <= high),
                    "noisy": truthy(r.get(f"{base}:noisy", False)) or truthy(r.get(f"{other}:noisy", False)),
                }
            )
    return pd.DataFrame(rows)


def decision_lines(runs: list[Path]) -> list[str]:
    """Each mix point's decided winner (by throughput, best against best) per run side by
    side, and whether every run called the same one (a tie is a call too: "≈")."""
    from lab.decide import decide

    calls: dict[str, dict[tuple[str, str], str]] = {}
    for run in runs:
        decided = decide(load_run(run).values).by_throughput
        calls[run.name] = {
            (str(r["point"]), str(r["role"])): (str(r["winner"]) if r["decided"] else "≈")
            for r in (decided.to_dict("records") if not decided.empty else [])
        }
    keys = sorted({k for c in calls.values() for k in c}, key=lambda k: (point_key(k[0]), k[1]))
    if not keys:
        return []
    names = list(calls)
    same = 0
    rows = []
    for point, role in keys:
        cells = [calls[n].get((point, role), "—") for n in names]
        agree = len(set(cells)) == 1
        same += agree
        rows.append(f"| {point} | {who(role)} | " + " | ".join(cells) + f" | {'yes' if agree else '**no**'} |")
    return [
        "",
        "## Decided winner per mix point and run",
        "",
        f"The same call in every run for {same} of {len(keys)} mix points and interpreters (by throughput, each "
        "variant at its best shape; ≈: no variant decided over the runner-up).",
        "",
        "| mix | interpreter | " + " | ".join(names) + " | same in every run |",
        "|---|---|" + "---|" * len(names) + "---|",
        *rows,
    ]


def why_lines(stable: pd.DataFrame, runs: list[Path]) -> list[str]:
    """Where the instability sits: by server shape and tier, next to each machine's own noise."""
    lines = ["", "Where the changes are, by server (tier for handler cells):", ""]
    lines += ["| server | cells | within 5% | median change | largest change |", "|---|---:|---:|---:|---:|"]
    for server, g in stable.groupby("server", sort=True):
        change = g["change"].abs()
        lines.append(
            f"| {server} | {len(g)} | {int((~g['unstable']).sum())} | {change.median():.1%} | {change.max():.1%} |"
        )
    noise, windows = [], set()
    for run in runs:
        steady = json.loads((run / "cells.json").read_text()).get("machine_noise", {}).get("cpu_steadiness")
        if steady:
            windows.add(f"{steady['window_s']:g} s")
            noise.append(
                f"`{run.name}` {steady['cv']:.1%} (slowest window {steady['slowest_over_median']:.0%} of the median)"
            )
    if noise:
        lines += [
            "",
            f"The machine's own speed before each run (CV of a fixed loop over {' / '.join(sorted(windows))} windows, "
            "nothing else running): " + "; ".join(noise) + ". A cell cannot be steadier between runs than the "
            "machine is within one.",
        ]
    return lines


def claim_lines(runs: list[Path]) -> list[str]:
    """Each claim's verdicts side by side per run (from each run's tables/claims.csv)."""
    tables = {r.name: r / "tables" / "claims.csv" for r in runs}
    if not all(path.is_file() for path in tables.values()):
        return []
    verdicts = {name: pd.read_csv(path).set_index("claim") for name, path in tables.items()}
    names = list(verdicts)
    lines = [
        "",
        "## Claim verdicts per run (3.13 / 3.13t)",
        "",
        "| claim | " + " | ".join(names) + " | same in every run |",
        "|---|" + "---|" * len(names) + "---|",
    ]
    for claim in verdicts[names[0]].index:
        cells = [
            f"{verdicts[n].loc[claim, 'gil_verdict']} / {verdicts[n].loc[claim, 'ft_verdict']}"
            if claim in verdicts[n].index
            else "—"
            for n in names
        ]
        lines.append(f"| {claim} | " + " | ".join(cells) + f" | {'yes' if len(set(cells)) == 1 else '**no**'} |")
    return lines


def render_combined(runs: list[Path], out: Path, *, allow_mixed: bool = False) -> str:
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise SpecError(f"run directory names must differ to be columns: {', '.join(names)}")
    diffs = check_compatible(runs, allow_mixed)
    wide, machines = ratio_columns(runs)
    stable = stability(wide, names, machines)
    lines = [
        f"# Combined report: {', '.join(names)}",
        "",
        "Each run is a column; runs are never averaged together. Machines:",
        "",
        *[f"- `{name}`: {machines[name]}" for name in names],
    ]
    if diffs:
        lines += ["", "Interpreters differ between runs (reported anyway, --allow-mixed):", ""]
        lines += [f"- {d}" for d in diffs]
    if not stable.empty:
        flagged = stable[stable["unstable"]]
        quiet = stable[~stable["noisy"]] if "noisy" in stable.columns else stable
        quiet_flagged = quiet[quiet["unstable"]]
        inside = stable["inside"].sum() if "inside" in stable.columns else 0
        lines += [
            "",
            "## Run-to-run stability of 3.13t / 3.13",
            "",
            f"{len(stable) - len(flagged)} of {len(stable)} shared cells agree within {STABLE_WITHIN:.0%}; "
            f"median absolute change {stable['change'].abs().median():.1%}, largest {stable['change'].abs().max():.1%}.",
            "",
            f"Cells quotable in every run (not too noisy in any): {len(quiet) - len(quiet_flagged)} of {len(quiet)} "
            f"agree within {STABLE_WITHIN:.0%}"
            + (f" (median change {quiet['change'].abs().median():.1%})." if len(quiet) else "."),
            "",
            f"A later run's ratio lies inside the first run's 95% interval in {int(inside)} of {len(stable)} cells.",
        ]
        if not flagged.empty:
            lines += ["", f"Cells whose ratio moved by more than {STABLE_WITHIN:.0%}:", ""]
            lines += ["| runs | tier | mix | variant | server | load | conc | ratio a | ratio b | change |"]
            lines += ["|---|---|---|---|---|---|---:|---:|---:|---:|"]
            for r in flagged.sort_values("change").to_dict("records"):
                lines.append(
                    f"| {r['runs']} | {r['tier']} | {r['point']} | {r['variant']} | {r['server']} | {r['load']} | "
                    f"{r['concurrency']} | {r['ratio_a']:.2f} | {r['ratio_b']:.2f} | {r['change']:+.1%} |"
                )
        lines += why_lines(stable, runs)
    lines += decision_lines(runs)
    lines += claim_lines(runs)
    if not wide.empty:
        lines += [
            "",
            "## 3.13t / 3.13 throughput per run",
            "",
            "One column per run: the cell's ratio with its 95% interval; ⚠ too noisy to quote; — not measured "
            "in that run.",
            "",
            # The cell's keys, then one column per run: every row writes exactly these cells.
            "| " + " | ".join([*CELL_HEADERS, *names]) + " |",
            "|"
            + "".join("---:|" if key in ("cores", "concurrency") else "---|" for key in CELL_KEYS)
            + "---:|" * len(names),
        ]
        ordered = sorted(wide.to_dict("records"), key=lambda r: (r["tier"], point_key(str(r["point"])), r["variant"]))
        for r in ordered:
            cells = []
            for name in names:
                ratio = r.get(f"{name}:ratio", math.nan)
                low, high = r.get(f"{name}:low", math.nan), r.get(f"{name}:high", math.nan)
                text = (
                    "—"
                    if math.isnan(ratio)
                    else f"{ratio:.2f}" + ("" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]")
                )
                cells.append(text + (" ⚠" if truthy(r.get(f"{name}:noisy", False)) else ""))
            keys = [str(r[key]) for key in CELL_KEYS]
            lines.append("| " + " | ".join([*keys, *cells]) + " |")
    text = "\n".join(lines) + "\n"
    (out / "tables").mkdir(parents=True, exist_ok=True)
    write_atomic(out / "report.md", lambda p: p.write_text(text))
    write_atomic(out / "tables" / "ratios-by-run.csv", lambda p: wide.to_csv(p, index=False))
    write_atomic(out / "tables" / "stability.csv", lambda p: stable.to_csv(p, index=False))
    return text
