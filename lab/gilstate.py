"""Reading the GIL reports every measured process writes at exit (see ``gilprobe``).

A cell on the free-threaded interpreter is valid only if every process that reported
ended with the GIL still disabled, and at least one process reported at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

CellStatus = Literal["ok", "failed", "invalid", "skipped"]
_MODULE_RE = re.compile(r"load module '([^']+)'")


@dataclass(frozen=True, kw_only=True)
class GilVerdict:
    status: CellStatus
    reason: str
    processes: int
    enabled_at_start: bool
    enabled_at_end: bool
    reenabled_by: tuple[str, ...]

    def metadata(self) -> dict[str, Any]:
        return {
            "gil_enabled_at_start": int(self.enabled_at_start),
            "gil_enabled_at_end": int(self.enabled_at_end),
            "gil_reports": self.processes,
            "gil_reenabled_by": ", ".join(self.reenabled_by) or "-",
        }


def read_reports(report_dir: Path) -> list[dict[str, Any]]:
    reports = []
    for path in sorted(report_dir.glob("*.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return reports


def verdict(reports: list[dict[str, Any]], *, free_threaded: bool) -> GilVerdict:
    """Judge one cell's GIL reports; only a free-threaded cell can be invalid."""
    start = any(r.get("gil_enabled_at_start", True) for r in reports)
    end = any(r.get("gil_enabled_at_end", True) for r in reports)
    culprits: list[str] = []
    for r in reports:
        for text in r.get("reenabled_by", []):
            m = _MODULE_RE.search(text)
            culprits.append(f"import of {m.group(1)}" if m else text)
        if r.get("gil_enabled_at_end") and r.get("python_gil_env") == "1":
            culprits.append("PYTHON_GIL=1 in the environment")
        if r.get("gil_enabled_at_end") and r.get("x_gil_option") == "1":
            culprits.append("-X gil=1")
    culprits = sorted(set(culprits))
    base = dict(processes=len(reports), enabled_at_start=start, enabled_at_end=end, reenabled_by=tuple(culprits))
    if not free_threaded:
        return GilVerdict(status="ok", reason="", **base)  # type: ignore[arg-type]
    if not reports:
        return GilVerdict(status="invalid", reason="no process reported its GIL state", **base)  # type: ignore[arg-type]
    if end:
        enabled = sum(1 for r in reports if r.get("gil_enabled_at_end", True))
        why = "; ".join(culprits) or "unknown cause"
        return GilVerdict(
            status="invalid",
            reason=f"GIL was enabled at the end in {enabled} of {len(reports)} processes ({why})",
            **base,  # type: ignore[arg-type]
        )
    return GilVerdict(status="ok", reason="", **base)  # type: ignore[arg-type]
