"""Report of ``lab profile``: ``profile.json`` in, ``report.md`` out (nothing else read).

One section per endpoint:
- its profile per interpreter and form: server CPU ms per request (mean ± 95% t-interval
  over the measured rounds), and from the counting pass SQL queries, database time,
  crossings and connections opened per request, and the time waiting on other I/O (an
  estimate: wall time alone minus CPU minus database);
- req/s and p95 per interpreter and form (mean ± 95% t-interval over rounds) with the
  3.13t / 3.13 effect on req/s, p95 and CPU;
- WSGI vs ASGI and, where an ``after`` path is given, before vs after (req/s and p95).
Ratios are paired per round (``lab.stats.paired_ratio_ci``): the slices of one round ran
within one pass over every slice (shuffled), so the VM's slower drift cancels in each
round's ratio.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from lab.stats import mean_ci, paired_ratio_ci

FORM_LABELS = {"wsgi": "WSGI (gunicorn)", "asgi": "ASGI, sync view adapted", "asgi-after": "ASGI, async 'after'"}


def _start_text(plan: dict[str, Any]) -> str:
    """How each slice's connections started (runs before 2026-12-07's stagger started them together)."""
    if plan.get("stagger", False):
        return (
            "connections started spread over one counted request's wall time (the endpoint's shortest over its "
            f"forms and interpreters, at most {plan['stagger_max_s']:g} s)"
        )
    return "connections started together"


def _num(value: float, digits: int = 1) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def _ratio(num: list[float], den: list[float]) -> str:
    if not num or not den or len(num) != len(den):
        return "—"
    centre, low, high = paired_ratio_ci(num, den)
    interval = f" [{low:.2f}–{high:.2f}]" if not math.isnan(low) else ""
    return f"{centre:.2f}{interval}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _rounds(cell: dict[str, Any] | None, key: str = "throughput_rps") -> list[float]:
    if cell is None or cell["status"] != "ok":
        return []
    return [float(r[key]) for r in cell["rounds"]]


def render(doc: dict[str, Any]) -> str:
    names = list(doc["interpreters"])
    gil = next((n for n in names if not doc["interpreters"][n]["py_gil_disabled"]), names[0])
    ft = next((n for n in names if doc["interpreters"][n]["py_gil_disabled"]), names[-1])
    cells = {(c["interpreter"], c["endpoint"], c["form"]): c for c in doc["cells"]}
    plan, project = doc["plan"], doc["project"]
    lines = [
        f"# Profile of `{project['settings']}` on {' and '.join(names)}",
        "",
        f"Project `{project['dir']}`, endpoints `{project['endpoints_file']}`; database: {doc['database']}. "
        f"Servers: {plan['wsgi_server']} (WSGI), {plan['asgi_server']} (ASGI); {plan['connections']} connections, "
        f"{plan['rounds']} paired rounds of {plan['duration_s']:g} s (+{plan['warmup_s']:g} s warm-up) per slice, "
        f"{_start_text(plan)}; "
        f"counts from {plan['count_requests']} sequential requests per form with the lab's counters on.",
        "",
        "## Packages",
        "",
    ]
    for name, check in doc["package_checks"].items():
        no_wheel = ", ".join(check["no_wheel"]) or "none"
        reenable = ", ".join(check["reenables_gil"]) or "none"
        verdict = f" **{ft} cells invalid: {check['invalid_reason']}.**" if check["invalid_reason"] else ""
        lines.append(
            f"- {name}: no wheel (built from source): {no_wheel}; re-enables the GIL on import: {reenable}.{verdict}"
        )
    bad = [c for c in doc["cells"] if c["status"] != "ok"]
    lines += ["", f"{len(doc['cells']) - len(bad)} of {len(doc['cells'])} cells ok."]
    lines += [f"- {c['endpoint']} {c['form']} on {c['interpreter']}: {c['status']} ({c['reason']})" for c in bad[:10]]
    for endpoint in doc["endpoints"]:
        lines += ["", *_section(endpoint, doc, cells, gil, ft)]
    return "\n".join(lines) + "\n"


def _spread(values: list[float], digits: int) -> str:
    """Mean ± half-width of its 95% t-interval over the rounds; the mean alone with one."""
    if not values:
        return "—"
    mean, half = mean_ci(values)
    return _num(mean, digits) if math.isnan(half) else f"{_num(mean, digits)} ± {_num(half, digits)}"


def _not_ok(cell: dict[str, Any] | None) -> str:
    return cell["status"] if cell else "missing"


def _section(
    endpoint: dict[str, Any], doc: dict[str, Any], cells: dict[tuple[str, str, str], dict[str, Any]], gil: str, ft: str
) -> list[str]:
    name = endpoint["name"]
    forms = ["wsgi", "asgi", *(["asgi-after"] if endpoint["after"] else [])]
    after = f" (after: `{endpoint['after']}`)" if endpoint["after"] else ""
    rounds = doc["plan"]["rounds"]
    lines = [
        f"## {name}: {endpoint['method']} `{endpoint['path']}`{after}",
        "",
        "### Profile per request",
        "",
        f"Server CPU: mean ± 95% t-interval over the {rounds} measured rounds (n = {rounds}). The other "
        f"columns come from the counting pass ({doc['plan']['count_requests']} sequential requests, counters on).",
        "",
    ]
    rows = []
    for form in forms:
        for interp in (gil, ft):
            counts = doc["counts"].get(interp, {}).get(name, {}).get(form)
            cell = cells.get((interp, name, form))
            cpu_rounds = _rounds(cell, "cpu_ms_per_req")
            cpu_text = _spread(cpu_rounds, 2) if cpu_rounds else _not_ok(cell)
            cpu = statistics.fmean(cpu_rounds) if cpu_rounds else math.nan
            if counts is None:
                rows.append([FORM_LABELS[form], interp, cpu_text, *["—"] * 6])
                continue
            other = max(0.0, counts["wall_ms"] - cpu - counts["db_ms"]) if not math.isnan(cpu) else math.nan
            crossings = (
                f"{_num(counts['crossings'], 1)} ({_num(counts['sync_to_async'], 0)}/"
                f"{_num(counts['async_to_sync'], 0)})"
            )
            rows.append(
                [
                    FORM_LABELS[form],
                    interp,
                    cpu_text,
                    _num(counts["sql_statements"], 1),
                    _num(counts["db_ms"], 2),
                    crossings,
                    _num(counts["db_connections_opened"], 2),
                    _num(counts["wall_ms"], 2),
                    _num(other, 2),
                ]
            )
    lines += _table(
        [
            "form",
            "interpreter",
            "server CPU ms",
            "SQL queries",
            "DB ms",
            "crossings (s→a/a→s)",
            "DB connections opened",
            "wall ms (alone)",
            "other I/O ms (estimate)",
        ],
        rows,
    )
    lines += [
        "",
        "### Throughput and latency",
        "",
        f"Mean ± 95% t-interval over {rounds} rounds; {ft} / {gil}: geometric mean of the per-round ratios "
        "[95% interval].",
        "",
    ]
    rows = []
    for form in forms:
        g, f = cells.get((gil, name, form)), cells.get((ft, name, form))
        row = [FORM_LABELS[form]]
        for cell in (g, f):
            if _rounds(cell):
                row += [_spread(_rounds(cell), 1), _spread(_rounds(cell, "latency_p95_ms"), 2)]
            else:
                row += [_not_ok(cell), "—"]
        row += [
            _ratio(_rounds(f), _rounds(g)),
            _ratio(_rounds(f, "latency_p95_ms"), _rounds(g, "latency_p95_ms")),
            _ratio(_rounds(f, "cpu_ms_per_req"), _rounds(g, "cpu_ms_per_req")),
        ]
        rows.append(row)
    lines += _table(
        [
            "form",
            f"{gil} req/s",
            f"{gil} p95 ms",
            f"{ft} req/s",
            f"{ft} p95 ms",
            f"{ft} / {gil} req/s",
            f"{ft} / {gil} p95",
            f"{ft} / {gil} CPU ms",
        ],
        rows,
    )
    comparisons = [("ASGI / WSGI", "asgi", "wsgi")]
    if endpoint["after"]:
        comparisons += [
            ("after / before (both ASGI)", "asgi-after", "asgi"),
            ("after (ASGI) / WSGI", "asgi-after", "wsgi"),
        ]
    lines += ["", "### WSGI vs ASGI" + (", before vs after" if endpoint["after"] else ""), ""]
    rows = []
    for label, num, den in comparisons:
        row = [label]
        for interp in (gil, ft):
            a, b = cells.get((interp, name, num)), cells.get((interp, name, den))
            row += [_ratio(_rounds(a), _rounds(b)), _ratio(_rounds(a, "latency_p95_ms"), _rounds(b, "latency_p95_ms"))]
        rows.append(row)
    lines += _table(["ratio", f"{gil} req/s", f"{gil} p95", f"{ft} req/s", f"{ft} p95"], rows)
    lines += [
        "",
        "Ratios: geometric mean of per-round ratios with a 95% interval (both sides measured in the same round); "
        "— where a side is not ok. Above 1 in req/s, below 1 in p95 is better for the numerator. "
        "'wall ms (alone)' is one request at a time; 'other I/O' is that minus CPU and database time.",
    ]
    return lines
