"""Resume: an append-only journal of finished cells in the run's staging directory.

Each finished cell is one JSON line (its record plus its pyperf data), flushed and
fsynced before the next cell starts, so an interrupted run loses at most the cell in
flight; a torn last line is ignored. The first line is the run's fingerprint (plan,
interpreters, options): a rerun resumes only a journal with the same fingerprint.
Failed cells are not kept, so a rerun measures them again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lab.errors import SpecError

JOURNAL_NAME = "journal.jsonl"


class Journal:
    def __init__(self, stage: Path, fingerprint: dict[str, Any]) -> None:
        self.path = stage / JOURNAL_NAME
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.entries: list[dict[str, Any]] = []
        if self.path.is_file():
            self._load(stage)
        else:
            self._append({"fingerprint": self.fingerprint})

    def _load(self, stage: Path) -> None:
        lines = self.path.read_text().splitlines()
        try:
            header = json.loads(lines[0])["fingerprint"] if lines else None
        except (ValueError, KeyError):
            header = None
        if header != self.fingerprint:
            changed = sorted(
                k for k in set(self.fingerprint) | set(header or {}) if (header or {}).get(k) != self.fingerprint.get(k)
            )
            raise SpecError(
                f"'{stage}' holds an interrupted run with a different {', '.join(changed) or 'format'}; "
                "rerun with the same options to resume it, or pass --restart to discard it"
            )
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except ValueError:
                break  # torn last line: that cell is measured again
            if entry.get("record", {}).get("status") in ("ok", "invalid"):
                self.entries.append(entry)
        # Rewrite without failed and torn lines, so the file holds only what counts.
        self.path.write_text("".join(json.dumps(e) + "\n" for e in [{"fingerprint": self.fingerprint}, *self.entries]))

    def _append(self, entry: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(entry, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def add(self, entry: dict[str, Any]) -> None:
        if entry["record"]["status"] in ("ok", "invalid"):
            self._append(entry)

    @staticmethod
    def key(record: dict[str, Any]) -> tuple[str, str, int]:
        return record["interpreter"], record["bench_name"], int(record["repeat"])
