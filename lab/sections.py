"""The sections of a run's report.md, each from the DataFrames ``lab.report`` computed.

Every table goes through ``lab.markup.table``: units in the column headers, a column that is
the same in every row named once above its table, one RSS statistic (the mean over the cell,
whole process tree) throughout. Numbers are formatted for reading: thousands separators,
milliseconds to three significant figures, ratios to two decimals with their 95% interval.

Over 400 lines on purpose: one short function per section, each listing its column headers
one per line; splitting them further would scatter the report's order across modules.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import pandas as pd

from lab.decide import Decisions, axis_unit, interval_text
from lab.markup import table
from lab.stats import NOISY_CV
from lab.tables import point_key


def who(role: str) -> str:
    return "3.13t" if role == "ft" else "3.13"


def fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def ms(value: float | None) -> str:
    """Milliseconds to about three significant figures (0.42, 4.2, 42.0, 420)."""
    if value is None or math.isnan(value):
        return "—"
    return fmt(value, 0 if value >= 100 else 1 if value >= 10 else 2)


def rps(mean: float, ci: float) -> str:
    digits = 1 if not math.isnan(mean) and mean < 10 else 0
    return f"{fmt(mean, digits)} ± {fmt(ci, digits)}" if not math.isnan(ci) else fmt(mean, digits)


def interval(ratio: float, low: float, high: float) -> str:
    if math.isnan(ratio):
        return "—"
    return f"{ratio:.2f}" + ("" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]")


def image(name: str, plots: dict[str, str]) -> list[str]:
    """A plot reference (relative to the run directory) when the plot was made."""
    return ["", f"![{name}]({plots[name]})"] if name in plots else []


def _side_by_side(spec: str, gil: Any, ft: Any) -> str:
    """The server spec, or both labels when the interpreters ran different stacks (best-available)."""
    labels = [x for x in (gil, ft) if isinstance(x, str)]
    if len(set(labels)) == 2:
        return f"3.13: {labels[0]}; 3.13t: {labels[1]} (stacks differ)"
    return spec or (labels[0] if labels else "—")


def summary_lines(summary: pd.DataFrame) -> list[str]:
    """Every cell, one table per tier: both interpreters side by side and their ratio."""
    if summary.empty:
        return []
    lines = [
        "",
        "## Every cell: 3.13 and 3.13t side by side",
        "",
        "Throughput is requests per second, mean ± 95% CI over rounds (or pyperf values on the handler tier); "
        "latency percentiles in ms (HTTP tier); CPU is the server's CPU ms per request; RSS is the mean over the "
        "cell of the server's whole process tree, MiB. 3.13t / 3.13 is the throughput ratio with its 95% interval "
        f"(paired by round when the rounds were measured side by side). ⚠: rounds disagree by more than "
        f"{NOISY_CV:.0%} (per-round ratios when paired, repeats' CV otherwise), or the measurement marked the cell "
        "noisy: not quoted above. Cells whose GIL came back on "
        "are invalid and excluded from ratios.",
    ]
    header = [
        "mix",
        "variant",
        "server",
        "cores",
        "load",
        "connections",
        "crossings per request",
        "3.13 req/s",
        "3.13 p50 / p95 / p99 ms",
        "3.13 CPU ms/req",
        "3.13 RSS MiB",
        "3.13t req/s",
        "3.13t p50 / p95 / p99 ms",
        "3.13t CPU ms/req",
        "3.13t RSS MiB",
        "3.13t / 3.13 req/s",
        "status",
    ]
    for tier, title in (("http", "HTTP tier"), ("handler", "Handler tier (in-process, no server)")):
        rows = []
        for r in summary[summary["tier"] == tier].to_dict("records"):
            sides: list[str] = []
            for role in ("gil", "ft"):
                latency = " / ".join(ms(r[f"{role}_{p}_ms"]) for p in ("p50", "p95", "p99"))
                sides += [
                    rps(r[f"{role}_rps"], r[f"{role}_ci"]),
                    latency,
                    fmt(r[f"{role}_cpu_ms"], 2),
                    fmt(r[f"{role}_rss_mib"]),
                ]
            load = r["load"] + (f" ({r['rate_rps']:,.0f}/s)" if r["rate_rps"] else "")
            rows.append(
                [
                    str(r["point"]),
                    str(r["variant"]),
                    _side_by_side(str(r["server"]), r.get("gil_server"), r.get("ft_server")),
                    str(r["cores"] or "—"),
                    load,
                    str(r["concurrency"]),
                    str(r["crossings"]) if r["crossings"] >= 0 else "—",
                    *sides,
                    interval(r["ft_over_gil"], r["ratio_low"], r["ratio_high"]) + (" ⚠" if r["noisy"] else ""),
                    f"{r['gil_status']} / {r['ft_status']}",
                ]
            )
        if rows:
            lines += ["", f"### {title}", "", *table(header, rows, "lllrlrr" + "rrrr" * 2 + "rl")]
    return lines


def headline_lines(summary: pd.DataFrame, decided: Decisions, noisy: Collection[tuple[str, str]] = ()) -> list[str]:
    """The few 3.13t / 3.13 numbers a reader quotes, each with its interval; noisy cells left out."""
    lines = ["", "## Headline: 3.13t / 3.13 throughput", ""]
    http = summary[summary["tier"] == "http"] if not summary.empty else summary
    for variant in ("sync", "async"):
        if http.empty:
            break
        rows = http[(http["variant"] == variant) & http["ft_over_gil"].notna()]
        quiet = rows[~rows["noisy"]]
        if quiet.empty:
            continue
        ordered = quiet.sort_values("ft_over_gil").to_dict("records")
        worst, best = ordered[0], ordered[-1]
        left_out = len(rows) - len(quiet)
        lines.append(
            f"- `{variant}` over HTTP: median {quiet['ft_over_gil'].median():.2f} across {len(quiet)} cells; "
            f"best {interval(best['ft_over_gil'], best['ratio_low'], best['ratio_high'])} ({best['point']}), "
            f"worst {interval(worst['ft_over_gil'], worst['ratio_low'], worst['ratio_high'])} ({worst['point']})"
            + (f"; {left_out} too noisy to quote." if left_out else ".")
        )
    decisions = decided.by_throughput
    for role in ("gil", "ft") if not decisions.empty else ():
        mine = decisions[decisions["role"] == role]
        if mine.empty:
            continue
        loud = mine.apply(lambda r: (str(r["point"]), str(r["role"])) in noisy, axis=1).astype(bool)
        won = mine[mine["decided"] & ~loud]
        counts = won["winner"].value_counts().to_dict()
        summary_text = ", ".join(f"{v} in {n}" for v, n in sorted(counts.items())) or "none"
        # A point where one variant alone qualified is no tie: nothing was there to call.
        sole = (mine["runner_up"] == "") if "runner_up" in mine.columns else pd.Series(False, index=mine.index)
        ties = int((~mine["decided"] & ~loud & ~sole).sum())
        alone = int((sole & ~loud).sum())
        lines.append(
            f"- Decided winners by throughput on {who(role)}: {summary_text} of {len(mine)} mix points; "
            f"{ties} too close to call"
            + (f"; {alone} with only one variant measured" if alone else "")
            + (f"; {int(loud.sum())} too noisy to quote." if loud.any() else ".")
        )
    return lines if len(lines) > 3 else []


def decision_lines(decided: Decisions, plots: dict[str, str]) -> list[str]:
    lines: list[str] = []
    maps = (
        (math.inf, "by throughput", decided.by_throughput),
        (decided.slo_ms, f"within a p95 SLO of {decided.slo_ms:g} ms", decided.within_slo),
    )
    for slo, title, decisions in maps:
        lines += [
            "",
            f"## Decision map {title} (default middleware)",
            "",
            "Per mix and interpreter: the variant with the highest throughput"
            + ("" if math.isinf(slo) else " among those meeting the SLO")
            + ", each at its best measured server and concurrency, with its margin over the runner-up (95% "
            "interval). A winner is called only when the interval excludes 1; otherwise it is a tie (≈).",
        ]
        if math.isinf(slo):
            lines += image("decision-map", plots)
        if decisions.empty:
            lines += ["", "No variant met the SLO in any mix at the concurrency measured (see p95 below)."]
            continue
        lines += ["", *decision_table(decisions)]
    ratios, even = decided.ratios, decided.even
    if not even.empty:
        lines += ["", "## Break-even: where async starts to out-serve sync", ""]
        for r in even.to_dict("records"):
            unit = axis_unit(str(r["param"]))
            if math.isnan(r["break_even"]):
                lines.append(
                    f"- {r['mix']} on {who(r['role'])}: async never out-serves sync up to {r['param']}="
                    f"{r['max_value']:g}{unit}."
                )
            else:
                lines.append(
                    f"- {r['mix']} on {who(r['role'])}: async ≥ sync from {r['param']} ≈ {r['break_even']:.1f}{unit} "
                    f"(interval {interval_text(r)}{unit})."
                )
        lines += image("break-even", plots)
        rows = []
        for (mix, param, value), g in ratios.groupby(["mix", "param", "value"], sort=True):
            cells = {r["role"]: interval(r["ratio"], r["low"], r["high"]) for r in g.to_dict("records")}
            rows.append([str(mix), f"{param}={value}{axis_unit(str(param))}", cells.get("gil", "—"), cells.get("ft", "—")])
        header = ["mix", "swept", "3.13 async/sync req/s", "3.13t async/sync req/s"]
        lines += ["", *table(header, rows, "llrr", keep=header[1:])]
    lines += sensitivity_lines(decided)
    return lines


def decision_table(decisions: pd.DataFrame) -> list[str]:
    """One row per mix point: each interpreter's verdict with the shapes that decided it; a
    winner with no runner-up reads "sync (shape); no runner-up", explained once below."""
    from lab.decide import NO_RUNNER_UP

    rows, alone = [], False
    for point, g in sorted(decisions.groupby("point"), key=lambda kv: point_key(str(kv[0]))):
        by_role = {}
        for r in g.to_dict("records"):
            shapes = str(r.get("server", "") or "")
            if r.get("runner_up_server"):
                shapes += f" vs {r['runner_up_server']}"
            shown = f" ({shapes})" if shapes else ""
            if r.get("runner_up", "?"):
                by_role[r["role"]] = str(r["verdict"]) + shown
            else:
                alone = True
                by_role[r["role"]] = f"{r['winner']}{shown}; no runner-up"
        rows.append([str(point), by_role.get("gil", "—"), by_role.get("ft", "—")])
    lines = table(["mix", "3.13", "3.13t"], rows, "lll", keep=("mix", "3.13", "3.13t"))
    return lines + (["", NO_RUNNER_UP] if alone else [])


def sensitivity_lines(decided: Decisions) -> list[str]:
    """The fixed-shape comparison (gthread 1x8 vs one uvicorn worker): how much of a verdict
    is the server shape. Shown beside the best-against-best verdict, never as it."""
    from lab.decide import FIXED_SHAPES

    if decided.fixed.empty:
        return []
    measured = set(decided.fixed["server"]) | set(decided.fixed.get("runner_up_server", pd.Series(dtype=str)))
    if not set(FIXED_SHAPES) <= measured:
        # Without both shapes it compares one interface's variants with each other (say,
        # async-db against bridged on uvicorn 1), which is no sensitivity of sync vs async.
        missing = " and ".join(sorted(set(FIXED_SHAPES) - measured))
        return ["", "## Sensitivity: the fixed shape", "", f"Not measured: this run has no {missing} cells."]
    lines = [
        "",
        f"## Sensitivity: the fixed shape ({' vs '.join(FIXED_SHAPES)})",
        "",
        "The same decision with every variant held to one shape per interface, as the lab used to compare. "
        "Where it differs from the map above, the verdict there was about the server shape, not about sync or "
        "async.",
        "",
        *decision_table(decided.fixed),
    ]
    for r in decided.even_fixed.to_dict("records") if not decided.even_fixed.empty else []:
        unit = axis_unit(str(r["param"]))
        where = (
            f"never up to {r['param']}={r['max_value']:g}{unit}"
            if math.isnan(r["break_even"])
            else f"from {r['param']} ≈ {r['break_even']:.1f}{unit} (interval {interval_text(r)}{unit})"
        )
        lines.append(f"- At the fixed shape, {r['mix']} on {who(r['role'])}: async ≥ sync {where}.")
    return lines


def middleware_lines(values: pd.DataFrame) -> list[str]:
    """Decision maps for each non-default middleware stack (e.g. django-default: sessions,
    CSRF, auth, messages with a logged-in user), each variant at its best shape."""
    from lab.decide import decision_map

    if values.empty or "middleware" not in values.columns:
        return []
    lines: list[str] = []
    for stack in sorted(set(values["middleware"]) - {"default"}):
        mine = values[values["middleware"] == stack].assign(middleware="default")
        decisions = decision_map(mine, math.inf)
        if decisions.empty:
            continue
        lines += [
            "",
            f"## Decision map by throughput with the `{stack}` middleware stack",
            "",
            "As the default map, on the mix points measured with this stack (each variant at its best shape).",
            "",
            *decision_table(decisions),
        ]
    return lines


def axes_lines(axes: dict[str, pd.DataFrame], slo_ms: float) -> list[str]:
    """Sections for the free-threading effect, best configuration, saturation, open loop
    and the core and memory axes (each only when the run measured that axis)."""
    lines: list[str] = []
    effect = axes["ft_effect"]
    if not effect.empty:
        rows = [
            [
                str(r["point"]),
                str(r["variant"]),
                interval(r.get("one_thread", math.nan), r.get("one_low", math.nan), r.get("one_high", math.nan)),
                interval(r.get("best", math.nan), r.get("best_low", math.nan), r.get("best_high", math.nan)),
                r["gil_best"] if isinstance(r.get("gil_best"), str) else "—",
                r["ft_best"] if isinstance(r.get("ft_best"), str) else "—",
            ]
            for r in sorted(effect.to_dict("records"), key=lambda r: point_key(str(r["point"])))
        ]
        lines += [
            "",
            "## Free-threading effect: one thread and best configuration",
            "",
            "3.13t / 3.13 throughput (95% interval). One thread: the handler tier at concurrency 1 (in-process, no "
            "server). Best: each interpreter at its own highest-throughput server shape and concurrency over HTTP "
            "(closed loop, default middleware, largest core budget).",
            "",
            *table(
                [
                    "mix",
                    "variant",
                    "one thread 3.13t/3.13",
                    "best config 3.13t/3.13",
                    "3.13 best @connections",
                    "3.13t best @connections",
                ],
                rows,
                "llrrll",
            ),
        ]
    best = axes["best_config"]
    if not best.empty and best["configs_tried"].max() > 1:
        rows = [
            [
                str(r["point"]),
                str(r["variant"]),
                who(r["role"]),
                f"{r['best_server']} @{r['concurrency']}",
                rps(r["rps"], r["ci"]),
                ms(r["p95_ms"]),
                str(r["configs_tried"]),
            ]
            for r in best.to_dict("records")
        ]
        lines += [
            "",
            "## Best configuration found (P x T search)",
            "",
            "Per mix, variant and interpreter: the server shape and concurrency with the highest throughput, out of "
            "the configurations tried (closed loop, default middleware, largest core budget), with its p95.",
            "",
            *table(
                ["mix", "variant", "interpreter", "best server @connections", "req/s", "p95 ms", "configs tried"],
                rows,
                "lllrrrr",
            ),
        ]
    sat = axes["saturation"]
    if not sat.empty:
        rows = [
            [
                str(r["point"]),
                str(r["variant"]),
                str(r["server_spec"]),
                str(r["cores"]),
                who(r["role"]),
                str(r["levels"]),
                str(r["saturation_concurrency"]),
                fmt(r["saturation_rps"]),
                ms(r["saturation_p95_ms"]),
                str(r["reason"]),
            ]
            for r in sat.to_dict("records")
        ]
        lines += [
            "",
            "## Saturation per concurrency curve",
            "",
            f"The lowest concurrency whose throughput is within 5% of the curve's maximum, or the last one before "
            f"p95 went over {slo_ms:g} ms.",
            "",
            *table(
                [
                    "mix",
                    "variant",
                    "server",
                    "cores",
                    "interpreter",
                    "connections tried",
                    "saturates at connections",
                    "req/s there",
                    "p95 ms there",
                    "why",
                ],
                rows,
                "lllrlrrrrl",
            ),
        ]
    open_loop = axes["open_loop"]
    if not open_loop.empty:
        rows = [
            [
                str(r["point"]),
                str(r["variant"]),
                str(r["server_spec"]),
                str(r["cores"]),
                f"{r['rate_fraction']:g}",
                who(r["role"]),
                fmt(r["offered_rps"]),
                fmt(r["served_rps"]),
                ms(r["p50_ms"]),
                ms(r["p95_ms"]),
                ms(r["p99_ms"]),
                ms(r["p999_ms"]),
            ]
            for r in open_loop.to_dict("records")
        ]
        lines += [
            "",
            "## Open loop: latency at a fixed offered rate",
            "",
            "Requests due at fixed intervals; latency from each request's due time (no coordinated omission). The "
            "rate is a fraction of the saturation throughput of `sync` on 3.13 (its best server), the same for every "
            "variant and both interpreters.",
            "",
            *table(
                [
                    "mix",
                    "variant",
                    "server",
                    "cores",
                    "fraction of saturation",
                    "interpreter",
                    "offered req/s",
                    "served req/s",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "p99.9 ms",
                ],
                rows,
                "lllrrlrrrrrr",
            ),
        ]
    ax = axes["axes"]
    if not ax.empty:
        lines += [
            "",
            "## Core and memory axes",
            "",
            "Closed loop, default middleware, each configuration at its best concurrency: throughput per core budget "
            "and per GiB of mean server RSS (the whole process tree). Several processes buy parallelism on 3.13 with "
            "memory; one threaded process on 3.13t shares it. Best by memory efficiency per mix and interpreter:",
            "",
        ]
        groups = ax.dropna(subset=["rps_per_gib"]).groupby(["cores", "point", "role"])
        for (cores, point, role), g in sorted(groups, key=lambda kv: (kv[0][0], point_key(str(kv[0][1])), kv[0][2])):
            top = g.sort_values("rps_per_gib").iloc[-1]
            lines.append(
                f"- {point} on {who(str(role))} at {cores} core{'' if cores == 1 else 's'}: {top['variant']} on "
                f"{top['server']} ({top['rps_per_gib']:,.0f} req/s per GiB; {top['rps']:,.0f} req/s in "
                f"{top['rss_mean_mib']:.0f} MiB)."
            )
        rows = [
            [
                str(r["cores"]),
                str(r["point"]),
                str(r["variant"]),
                str(r["server"]),
                who(r["role"]),
                str(r["concurrency"]),
                rps(r["rps"], r["ci"]),
                fmt(r["rss_mean_mib"]),
                fmt(r["rps_per_gib"]),
            ]
            for r in sorted(ax.to_dict("records"), key=lambda r: (r["cores"], point_key(str(r["point"]))))
        ]
        lines += [
            "",
            *table(
                [
                    "cores",
                    "mix",
                    "variant",
                    "server",
                    "interpreter",
                    "connections",
                    "req/s",
                    "RSS MiB",
                    "req/s per GiB RSS",
                ],
                rows,
                "rllllrrrr",
            ),
        ]
    return lines


def claims_lines(claims: pd.DataFrame) -> list[str]:
    has_rule = "rule" in claims.columns
    lines = [
        "",
        "## Claims ledger",
        "",
        "Each claim of the article with its verdict on each interpreter and the numbers behind it (95% intervals; "
        "a difference is called only when its interval excludes 'no difference')"
        + (", and the rule that decides it." if has_rule else "."),
        "",
    ]
    rows = []
    for r in claims.to_dict("records"):
        gil = f"**{r['gil_verdict']}**: {r['gil_evidence']}" if r["gil_evidence"] else str(r["gil_verdict"])
        ft = f"**{r['ft_verdict']}**: {r['ft_evidence']}" if r["ft_evidence"] else str(r["ft_verdict"])
        rule = [str(r["rule"])] if has_rule else []
        rows.append([f"{r['claim']} {r['text']}", *rule, gil, ft])
    header = ["claim", *(["rule"] if has_rule else []), "3.13", "3.13t"]
    return lines + table(header, rows, "l" * len(header), keep=header)


def mixes_lines(mixes: pd.DataFrame) -> list[str]:
    if mixes.empty:
        return []
    rows = [
        [
            str(r["point"]),
            fmt(r["nominal_wait_ms"]),
            str(r["concurrency"]),
            ms(r.get("gil_sync_p50_ms", math.nan)),
            fmt(r.get("gil_io_fraction", math.nan), 2),
            ms(r.get("ft_sync_p50_ms", math.nan)),
            fmt(r.get("ft_io_fraction", math.nan), 2),
        ]
        for r in sorted(mixes.to_dict("records"), key=lambda r: point_key(str(r["point"])))
    ]
    return [
        "",
        "## I/O fraction per mix",
        "",
        "Nominal upstream wait per request / median latency of the `sync` variant at the lowest HTTP concurrency "
        "measured.",
        "",
        *table(
            [
                "mix",
                "nominal wait ms",
                "connections",
                "3.13 sync p50 ms",
                "3.13 I/O fraction",
                "3.13t sync p50 ms",
                "3.13t I/O fraction",
            ],
            rows,
            "lrrrrrr",
        ),
    ]


def crossings_lines(crossings: pd.DataFrame) -> list[str]:
    if crossings.empty:
        return []
    rows = [
        [
            str(r["kind"]),
            str(r["concurrency"]),
            f"{fmt(r.get('gil_us', math.nan), 1)} ± {fmt(r.get('gil_ci', math.nan), 1)}",
            f"{fmt(r.get('ft_us', math.nan), 1)} ± {fmt(r.get('ft_ci', math.nan), 1)}",
            fmt(r.get("ft_over_gil", math.nan), 2),
        ]
        for r in crossings.to_dict("records")
    ]
    return [
        "",
        "## Crossing costs",
        "",
        "Wall time per sync↔async crossing (µs, mean ± 95% CI over pyperf values) with C concurrent callers; "
        "each call does the same pure-Python work (tens of µs). `client/*` rows: one HTTP call to the upstream "
        "simulator at 0 ms (client + loopback + a trivial responder), for each client the views use. "
        "Lower is better.",
        "",
        *table(["kind", "callers", "3.13 µs", "3.13t µs", "3.13t/3.13"], rows, "lrrrr"),
    ]


def setup_lines(cells: dict[str, Any], values: pd.DataFrame, load_share_target: float) -> list[str]:
    """Interpreters, packages and the helpers' CPU share: what the numbers above ran on."""
    lines = ["", "## Setup", ""]
    for name, info in cells.get("interpreters", {}).items():
        packages = info.get("packages", {})
        lines.append(
            f"- `{name}`: Python {info.get('version')}, profile `{info.get('build_profile')}`, "
            f"flags `{' '.join(info.get('configure_flags', [])) or '(none)'}`, "
            f"Py_GIL_DISABLED={int(info.get('py_gil_disabled', 0))}, Django {packages.get('django')}, "
            f"gunicorn {packages.get('gunicorn')}, uvicorn {packages.get('uvicorn')}"
        )
    http = values[values["tier"] == "http"] if not values.empty else values
    if not http.empty:
        share = http["load_cpu_share"]
        over = http[share > load_share_target]
        lines += [
            "",
            f"Load generator CPU / server CPU over the HTTP cells: median {share.median():.2f}, max {share.max():.2f} "
            f"(target ≤ {load_share_target:.2f}; {len(over)} of {len(http)} cell repeats above it). CPU layouts: "
            + "; ".join(
                f"{layout} ({len(g)} cell repeats, load generator share median {g.median():.2f})"
                for layout, g in share.groupby(http["cpu_layout"])
            )
            + ".",
        ]
        upstream = http["upstream_cpu_share"].dropna()
        upstream = upstream[upstream > 0]
        if not upstream.empty:
            lines += [
                "",
                f"Upstream simulator CPU / server CPU over the cells that call it: median {upstream.median():.2f}, "
                f"max {upstream.max():.2f}.",
            ]
    return lines


def http_cells(values: pd.DataFrame) -> pd.DataFrame:
    """One row per valid HTTP cell and interpreter (``lab.limits.cell_means``): what the
    limits, work and accounting sections read. The report computes it once per render."""
    from lab.limits import cell_means

    if values.empty or "tier" not in values.columns:
        return pd.DataFrame()
    http = values[(values["tier"] == "http") & (values["status"] == "ok")]
    return cell_means(http) if not http.empty else pd.DataFrame()


def limit_lines(cells: pd.DataFrame) -> list[str]:
    """Every HTTP cell's binding limit (``cells``: ``http_cells``): which bound it reached (CPU,
    threads, workers, connections, the load generator) and how close, so a reader sees why a
    variant won."""
    from lab.limits import limits

    if cells.empty:
        return []
    bounded = limits(cells)
    rows = []
    for r in bounded.sort_values(
        ["point", "middleware", "variant", "server_spec", "role"], key=lambda c: c.map(point_key) if c.name == "point" else c
    ).to_dict("records"):
        label = str(r["point"]) + (f" +{r['middleware']}" if r.get("middleware", "default") != "default" else "")
        rss = float(r.get("rss_mean_mib", math.nan))
        per_connection = "—" if math.isnan(rss) else f"{rss * 1024 / max(1, int(r['concurrency'])):,.0f}"
        rows.append(
            [label, str(r["variant"]), str(r["server_spec"]), who(str(r["role"])),
             str(int(r["concurrency"])), fmt(float(r["throughput_rps"])), fmt(rss), per_connection,
             str(r["limit_text"])]
        )  # fmt: skip
    return [
        "",
        "## What limited each cell",
        "",
        "The CPU bound is usable cores × 1000 / server CPU ms per request (with the GIL, one core per server "
        "process; shared CPUs also pay the load generator's and upstream's CPU); the concurrency bound is Little's "
        "law, usable slots (threads, workers or connections) / (upstream wait + CPU per request); with several "
        "workers, each is bounded by the connections it actually held (sampled with psutil: one listening socket "
        "does not balance keep-alive connections), and a skew that binds below both is the \"worker split\"; a load "
        "generator busy over 80% of its wall time is the limit itself. The binding limit is named when the cell came within "
        "85% of it (lab/limits.py). Server memory is the mean RSS of its whole process tree; per connection, that "
        "over the connections held (what many idle connections cost).",
        *_ceiling_lines(bounded),
        "",
        *table(
            ["mix", "variant", "server", "interpreter", "connections", "req/s", "server RSS MiB", "KiB per connection",
             "binding limit"],
            rows,
            "lllllrrrl",
        ),
    ]


def _ceiling_lines(bounded: pd.DataFrame) -> list[str]:
    """A warning when cells measured above their hard ceiling (connections / wait)."""
    above = bounded[bounded["above_ceiling"].astype(bool)]
    if above.empty:
        return []
    names = ", ".join(
        f"{r['point']} {r['variant']} {r['server_spec']} ({who(str(r['role']))})"
        for r in above.to_dict("records")
    )
    return [
        "",
        f"**Warning: {len(above)} cell(s) measured above their ceiling** of connections / upstream wait, which no "
        f"server can exceed: {names}. Their throughput is a measurement artifact (runs before 2026-12-06 counted "
        "the requests started in the window, lab/loadconn.py served_in); do not quote them.",
    ]


# Crossings per billing request counted by hand (steady state), from the table in
# workloads/shop/endpoints/billing.py's docstring; the report checks the probe against it.
BILLING_HAND_COUNT: dict[str, dict[str, int]] = {
    "default": {"sync": 0, "async": 8, "bridged": 9, "sync-on-asgi": 7},
    "django-default": {"sync": 0, "async": 19, "bridged": 19, "sync-on-asgi": 16},
}


def write_lock_waits(cells: pd.DataFrame, keys: list[str]) -> dict[tuple[Any, ...], str]:
    """``keys`` -> "N / M": µs per request the probe waited for SQLite's write lock on 3.13
    and 3.13t ("—" on a side without it); empty when no cell has it (other databases and
    endpoints, older runs). Per interpreter, unlike the counts: a wait is a time."""
    if "write_lock_wait_us" not in cells.columns or cells["write_lock_wait_us"].isna().all():
        return {}
    out: dict[tuple[Any, ...], str] = {}
    for key, g in cells.groupby(keys, sort=False):
        # Every cell of a point, variant and interpreter carries the same probe value.
        by_role = g.groupby("role")["write_lock_wait_us"].mean()
        out[tuple(key)] = " / ".join(fmt(float(by_role.get(role, math.nan))) for role in ("gil", "ft"))
    return out


def work_lines(cells: pd.DataFrame) -> list[str]:
    """Per mix point and variant (``cells``: ``http_cells``), what one request does, from the
    probe (steady state): crossings, SQL statements, upstream calls, database connections
    opened. Variants of one point must do the same work; where they do not, it is listed."""
    if cells.empty or "sql_statements" not in cells.columns:
        return []
    keys = ["point", "middleware", "variant"]
    per = cells.groupby(keys, sort=False).first().reset_index()
    waits = write_lock_waits(cells, keys)
    rows, differ = [], []
    for r in per.sort_values(keys, key=lambda c: c.map(point_key) if c.name == "point" else c).to_dict("records"):
        def count(key: str, r: dict[Any, Any] = r) -> str:
            value = r.get(key, -1)
            return "—" if value is None or value != value or value < 0 else str(int(value))

        label = str(r["point"]) + (f" +{r['middleware']}" if r.get("middleware", "default") != "default" else "")
        wait = [waits[(r["point"], r["middleware"], r["variant"])]] if waits else []
        rows.append([label, str(r["variant"]), count("crossings"), count("crossings_cold"), count("sql_statements"),
                     *wait, count("upstream_calls"), count("db_connections_opened")])  # fmt: skip
    for (point, middleware), g in per.groupby(["point", "middleware"]):
        for key in ("sql_statements", "upstream_calls"):
            seen = {v: int(n) for v, n in zip(g["variant"], g[key], strict=True) if n == n and n >= 0}
            if len(set(seen.values())) > 1:
                differ.append(f"- {point} ({middleware}): {key} differ: " + ", ".join(f"{v}={n}" for v, n in seen.items()))
    hand = []
    for stack, counts in BILLING_HAND_COUNT.items():
        measured = per[(per["point"] == "billing") & (per["middleware"] == stack)]
        got = {str(v): int(n) for v, n in zip(measured["variant"], measured["crossings"], strict=True) if n == n}
        if not got:
            continue
        parts = [
            f"{variant} {want}" + ("" if got.get(variant, want) == want else f" (measured {got[variant]}: MISMATCH)")
            for variant, want in counts.items()
            if variant in got
        ]
        verdict = "match" if all(got.get(v, w) == w for v, w in counts.items()) else "do not match"
        hand.append(
            f"- Hand count for `billing` with the `{stack}` stack (steady state; the table in "
            f"workloads/shop/endpoints/billing.py): {', '.join(parts)}; the measured counts {verdict}."
        )
    wait_header = ["SQLite write-lock wait µs per request (probe), 3.13 / 3.13t"] if waits else []
    wait_text = (
        "; the SQLite write-lock wait is the time the probe's one request (no other writer) spent in BEGIN "
        "waiting for SQLite's write lock, per interpreter, where the endpoint reports it (crud)"
        if waits
        else ""
    )
    return [
        "",
        "## What one request does, per variant",
        "",
        "From the probe pass (each variant rendered twice in-process; the second, steady-state render counted, "
        "the first shown as cold): sync↔async crossings until the ASGI app returns, SQL statements, upstream HTTP "
        f"calls and database connections opened per request{wait_text}.",
        "",
        *table(
            [
                "mix",
                "variant",
                "crossings",
                "crossings (cold)",
                "SQL statements",
                *wait_header,
                "upstream calls",
                "connections opened",
            ],
            rows,
            "llrrr" + "r" * len(wait_header) + "rr",
        ),
        "",
        *(differ or ["Every variant of each mix point ran the same SQL statements and upstream calls."]),
        *(["", *hand] if hand else []),
    ]


def accounting_lines(cells: pd.DataFrame, crossings: pd.DataFrame) -> list[str]:
    """Where the server CPU of a request goes, per variant (``cells``: ``http_cells``;
    lab/accounting.py)."""
    from lab.accounting import account, markdown_lines

    if cells.empty or crossings.empty:
        return []
    # The frame is shared with the other sections: derive, never assign in place.
    if "crossings_total" not in cells:
        cells = cells.rename(columns={"crossings": "crossings_total"})
    cells = cells.assign(crossings=cells["crossings_total"])
    result = account(cells, crossings)
    lines = markdown_lines(result)
    if not lines:
        return []
    return [
        "",
        "## Where the server CPU goes (ms per request)",
        "",
        "Measured server CPU per request split into what the lab can price: crossings × their measured cost "
        "(crossing microbenchmarks), upstream client calls × the client's measured cost (an upper bound: it "
        "includes the simulator's reply), connections opened × connect cost, the server and framework share (an "
        "empty endpoint, where measured); the rest is shown as the remainder.",
        "",
        *lines,
    ]
