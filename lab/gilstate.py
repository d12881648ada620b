"""Reading the GIL reports every measured process writes (see ``gilprobe``).

Each process of a server (or pyperf run) keeps ``<pid>.json`` up to date; the lab
reads the directory after the server stopped and judges the cell:

- a report is *known* whether it is final (written at a normal exit) or not (written
  by the probe's watcher, which rewrites it within ``WATCH_INTERVAL_S`` of any change,
  so it holds the state until at most that long before the process died; the measured
  window ends before the server is stopped, so it covers the window);
- on the free-threaded build the cell is invalid when any process ended with the GIL
  enabled, when no process reported, or when fewer processes reported than the server
  shape runs (``expected``, from ``lab.servers.expected_gil_reports``): a process whose
  state is unknown may have re-enabled the GIL. More reports than expected (a worker
  restarted after a crash) do not make a cell invalid; the count is recorded;
- on the GIL build every cell is ok: there is no GIL state to get wrong, so the
  counts are recorded for the record only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

CellStatus = Literal["ok", "failed", "invalid", "skipped"]
_MODULE_RE = re.compile(r"load module '([^']+)'")
# ``gil_reports_expected`` when the caller does not know how many processes to expect.
UNKNOWN_EXPECTED = -1


@dataclass(frozen=True, kw_only=True)
class GilVerdict:
    status: CellStatus
    reason: str
    processes: int
    enabled_at_start: bool
    enabled_at_end: bool
    reenabled_by: tuple[str, ...]
    expected: int | None = None
    # Reports written at a normal exit; the rest came from the watcher of a killed process.
    final: int = 0

    @property
    def missing(self) -> int:
        """Processes the shape runs that left no report (0 when nothing is expected)."""
        return max(0, (self.expected or 0) - self.processes)

    def metadata(self) -> dict[str, Any]:
        return {
            "gil_enabled_at_start": int(self.enabled_at_start),
            "gil_enabled_at_end": int(self.enabled_at_end),
            "gil_reports": self.processes,
            "gil_reports_expected": UNKNOWN_EXPECTED if self.expected is None else self.expected,
            "gil_reports_final": self.final,
            "gil_reenabled_by": ", ".join(self.reenabled_by) or "-",
        }


def read_reports(report_dir: Path) -> list[dict[str, Any]]:
    """Every complete ``<pid>.json`` in ``report_dir`` (a half-written one is skipped)."""
    reports = []
    for path in sorted(report_dir.glob("*.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return reports


def _culprits(reports: list[dict[str, Any]]) -> tuple[str, ...]:
    culprits: list[str] = []
    for r in reports:
        for text in r.get("reenabled_by", []):
            m = _MODULE_RE.search(text)
            culprits.append(f"import of {m.group(1)}" if m else text)
        if r.get("gil_enabled_at_end") and r.get("python_gil_env") == "1":
            culprits.append("PYTHON_GIL=1 in the environment")
        if r.get("gil_enabled_at_end") and r.get("x_gil_option") == "1":
            culprits.append("-X gil=1")
    return tuple(sorted(set(culprits)))


def verdict(reports: list[dict[str, Any]], *, free_threaded: bool, expected: int | None = None) -> GilVerdict:
    """Judge one cell's GIL reports.

    ``expected`` is how many processes should have reported (``None``: unknown, then
    at least one is required). Only a free-threaded cell can be invalid: on the GIL
    build the counts (received, expected, final) are recorded but the cell stays ok.
    """
    if expected is not None and expected < 1:
        raise ValueError(f"expected GIL reports must be at least 1, got {expected}")
    culprits = _culprits(reports)
    judged = GilVerdict(
        status="ok",
        reason="",
        processes=len(reports),
        enabled_at_start=any(r.get("gil_enabled_at_start", True) for r in reports),
        enabled_at_end=any(r.get("gil_enabled_at_end", True) for r in reports),
        reenabled_by=culprits,
        expected=expected,
        final=sum(1 for r in reports if r.get("final", True)),
    )
    if not free_threaded:
        return judged
    problems: list[str] = []
    if judged.enabled_at_end:
        enabled = sum(1 for r in reports if r.get("gil_enabled_at_end", True))
        why = "; ".join(culprits) or "unknown cause"
        problems.append(f"GIL was enabled at the end in {enabled} of {len(reports)} processes ({why})")
    if judged.missing:
        problems.append(f"GIL state unknown for {judged.missing} of {expected} processes")
    elif not reports:
        problems.append("no process reported its GIL state")
    if not problems:
        return judged
    return replace(judged, status="invalid", reason="; ".join(problems))
