"""Report sections built from synthetic frames: the decision table's wording and the work
section's SQLite write-lock wait."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from lab.decide import NO_RUNNER_UP, Decisions
from lab.sections import decision_table, headline_lines, http_cells, work_lines


def decision(point: str, role: str, winner: str, runner_up: str = "", **kw: Any) -> dict[str, Any]:
    verdict = f"{winner}; no runner-up" if not runner_up else f"{winner} ×1.50 [1.20, 1.80] over {runner_up}"
    row = {"point": point, "role": role, "winner": winner, "runner_up": runner_up, "server": "gunicorn-gthread:1x8",
           "runner_up_server": "uvicorn:1" if runner_up else "", "decided": bool(runner_up), "verdict": verdict}  # fmt: skip
    return {**row, **kw}


def test_no_runner_up_is_short_in_each_row_and_explained_once() -> None:
    rows = [decision("cpu-heavy", role, "sync") for role in ("gil", "ft")]
    rows += [decision("orm-n-plus-1", role, "sync", "bridged") for role in ("gil", "ft")]
    lines = decision_table(pd.DataFrame(rows))
    lone = "sync (gunicorn-gthread:1x8); no runner-up"
    assert f"| cpu-heavy | {lone} | {lone} |" in lines
    assert any("sync ×1.50 [1.20, 1.80] over bridged (gunicorn-gthread:1x8 vs uvicorn:1)" in line for line in lines)
    assert lines.count(NO_RUNNER_UP) == 1 and lines[-1] == NO_RUNNER_UP
    # Without such a row there is nothing to explain.
    assert NO_RUNNER_UP not in decision_table(pd.DataFrame(rows[2:]))


def test_the_headline_counts_lone_variants_apart_from_ties() -> None:
    rows = [
        decision("cpu-heavy", "gil", "sync"),
        decision("orm-n-plus-1", "gil", "sync", "bridged"),
        decision("io-sweep@latency=100", "gil", "async", "sync", decided=False),
    ]
    empty = pd.DataFrame()
    decided = Decisions(100.0, empty, pd.DataFrame(rows), empty, empty, empty)
    (line,) = headline_lines(empty, decided)[3:]
    assert line == (
        "- Decided winners by throughput on 3.13: sync in 1 of 3 mix points; 1 too close to call; "
        "1 with only one variant measured."
    )


def values(point: str, role: str, wait: float, sql: int = 6) -> dict[str, Any]:
    """One repeat of an HTTP cell as ``report.load_run`` has it (the columns work_lines reads)."""
    return {"tier": "http", "status": "ok", "point": point, "middleware": "default", "variant": "sync",
            "server_spec": "gunicorn-gthread:1x8", "cores": 2, "rate_fraction": 0.0, "concurrency": 8, "role": role,
            "crossings": 0, "crossings_cold": 0, "sql_statements": sql, "upstream_calls": 0,
            "db_connections_opened": 0, "write_lock_wait_us": wait, "throughput_rps": 100.0}  # fmt: skip


def test_the_sqlite_write_lock_wait_is_shown_beside_sql_statements_per_interpreter() -> None:
    frame = pd.DataFrame(
        [values("orm-crud", "gil", 17.0), values("orm-crud", "gil", 17.0), values("orm-crud", "ft", 42.0)]
        + [values("orm-reads", role, math.nan, sql=1) for role in ("gil", "ft")]
    )
    text = "\n".join(work_lines(http_cells(frame)))
    # Columns the same in every row (variant, crossings, ...) are named once above the table.
    assert "| mix | SQL statements | SQLite write-lock wait µs per request (probe), 3.13 / 3.13t |" in text
    assert "| orm-crud | 6 | 17 / 42 |" in text
    assert "| orm-reads | 1 | — / — |" in text
    assert "waiting for SQLite's write lock" in text


def test_without_a_write_lock_wait_the_work_table_is_unchanged() -> None:
    frame = pd.DataFrame([values("orm-reads", role, math.nan, sql=1) for role in ("gil", "ft")])
    text = "\n".join(work_lines(http_cells(frame)))
    assert "write-lock" not in text
    assert "SQL statements" in text and "| orm-reads |" in text
