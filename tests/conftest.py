from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty lab cache, and no local source configured."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LAB_CACHE_DIR", str(cache))
    monkeypatch.delenv("LAB_CPYTHON_SOURCE", raising=False)
    yield cache
