from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.errors import SpecError
from lab.journal import JOURNAL_NAME, Journal


def record(name: str, status: str = "ok") -> dict[str, object]:
    return {"record": {"interpreter": "i", "bench_name": name, "repeat": 0, "status": status}}


def test_finished_cells_survive_and_failed_or_torn_lines_do_not(tmp_path: Path) -> None:
    journal = Journal(tmp_path, {"plan": "quick"})
    journal.add(record("a"))
    journal.add(record("b", "failed"))  # never written: a rerun measures it again
    journal.add(record("c", "invalid"))
    with (tmp_path / JOURNAL_NAME).open("a") as f:
        f.write('{"record": {"interpreter": "i", "bench')  # killed mid-write
    again = Journal(tmp_path, {"plan": "quick"})
    assert [e["record"]["bench_name"] for e in again.entries] == ["a", "c"]
    lines = (tmp_path / JOURNAL_NAME).read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)


def test_a_different_run_is_not_resumed(tmp_path: Path) -> None:
    Journal(tmp_path, {"plan": "quick", "django": "6.1"}).add(record("a"))
    with pytest.raises(SpecError, match="different django; .*--restart"):
        Journal(tmp_path, {"plan": "quick", "django": "5.2"})
