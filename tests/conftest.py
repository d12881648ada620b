from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.build import ensure_built
from lab.envs import WorkloadEnv, ensure_env
from lab.proc import child_env, managed
from lab.serve import free_port, responds_tcp
from lab.spec import load_interpreter

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty lab cache, and no local source configured."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LAB_CACHE_DIR", str(cache))
    monkeypatch.delenv("LAB_CPYTHON_SOURCE", raising=False)
    yield cache


@pytest.fixture(scope="session")
def envs() -> Iterator[list[WorkloadEnv]]:
    yield [ensure_env(ensure_built(load_interpreter(n), "fast")) for n in ("cpython-3.13", "cpython-3.13t")]


@pytest.fixture(scope="session")
def upstream_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("upstream") / "log"
    env = child_env({"PYTHONPATH": str(REPO)})
    with managed(
        [sys.executable, "-m", "lab.upstream", "--port", str(port)], name="upstream", log_path=log, env=env
    ) as p:
        p.wait_ready(lambda: responds_tcp(port), timeout=30)
        yield f"http://127.0.0.1:{port}"
