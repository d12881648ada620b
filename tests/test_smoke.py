"""End-to-end: workloads and a tiny compare on both built interpreters (built if not cached).

Set LAB_CPYTHON_SOURCE to a directory holding the release tarball where python.org is
unreachable (CI does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyperf
import pytest

from lab.envs import WORKLOADS_DIR, WorkloadEnv
from lab.measure import SAME_STACK_ENV
from lab.proc import child_env
from lab.serve import free_port
from lab.spec import ENDPOINTS
from tests.conftest import REPO

pytestmark = [pytest.mark.functional, pytest.mark.smoke]

# Parameters that exercise each endpoint's slow path too (N+1 reads, fan-out).
PROBE_QUERIES = {
    "cpu": "work=50",
    "orm": "n=5&mode=lazy",
    "template": "rows=5",
    "external": "k=3&latency=1&mode=fanout",
    "billing": "latency=1",
    "crud": "quantity=3",
}


def probe(
    env: WorkloadEnv, data_dir: Path, upstream_url: str, endpoint: str, middleware: str = "default"
) -> dict[str, dict[str, object]]:
    vars_ = child_env(
        {
            "PYTHONPATH": str(WORKLOADS_DIR),
            "LAB_DATA_DIR": str(data_dir),
            "LAB_CROSSINGS": "1",
            "LAB_UPSTREAM_URL": upstream_url,
            "LAB_GIL_REPORT_DIR": str(data_dir),
            "LAB_MIDDLEWARE": middleware,
            **SAME_STACK_ENV,
        }
    )
    if not (data_dir / "lab.sqlite3").exists():
        subprocess.run([str(env.python), "-m", "shop.seed"], cwd=WORKLOADS_DIR, env=vars_, check=True)
    cmd = [str(env.python), "-m", "labsite.inprocess", "--endpoint", endpoint, "--query", PROBE_QUERIES[endpoint]]
    out = subprocess.run(cmd, cwd=WORKLOADS_DIR, env=vars_, check=True, capture_output=True, text=True)
    result: dict[str, dict[str, object]] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_variant_returns_the_same_body_on_both_interpreters(
    envs: list[WorkloadEnv], upstream_url: str, tmp_path_factory: pytest.TempPathFactory, endpoint: str
) -> None:
    digests = {}
    for env in envs:
        data = tmp_path_factory.getbasetemp() / f"data-{env.interpreter.spec_name}"
        data.mkdir(exist_ok=True)
        responses = probe(env, data, upstream_url, endpoint)
        assert set(responses) == {"sync", "async", "bridged", "sync-on-asgi"}
        assert {r["status"] for r in responses.values()} == {200}, responses
        digests[env.interpreter.spec_name] = {r["sha256"] for r in responses.values()}
        if env.interpreter.role == "ft":
            reports = [json.loads(p.read_text()) for p in data.glob("*.json")]
            assert reports and not any(r["gil_enabled_at_end"] for r in reports), "GIL came back on"
    assert len(digests["cpython-3.13"]) == 1, "variants returned different bodies"
    assert digests["cpython-3.13"] == digests["cpython-3.13t"]


def crossings(responses: dict[str, dict[str, object]], variant: str, kind: str = "sync_to_async") -> int:
    header = str(responses[variant]["crossings"])
    return int(dict(part.split("=") for part in header.split(";"))[kind])


s2a = crossings


def test_crossings_are_counted(envs: list[WorkloadEnv], upstream_url: str, tmp_path: Path) -> None:
    billing = probe(envs[0], tmp_path, upstream_url, "billing")

    assert s2a(billing, "sync") == 0, "sync views under WSGI never cross"
    # Bridged wraps three sync helpers; async uses aget + cache.aget_or_set (two crossings
    # inside Django); both pay Django's own ASGI handler crossings on top.
    assert s2a(billing, "bridged") == s2a(billing, "async") + 1
    assert s2a(billing, "sync-on-asgi") < s2a(billing, "async")


def test_sync_only_middleware_adds_crossings_to_async_views(
    envs: list[WorkloadEnv], upstream_url: str, tmp_path: Path
) -> None:
    plain = probe(envs[0], tmp_path, upstream_url, "cpu")
    audited = probe(envs[0], tmp_path, upstream_url, "cpu", middleware="sync-audit")
    assert s2a(audited, "sync") == 0
    assert s2a(plain, "async") == s2a(plain, "sync-on-asgi") - 1  # the async view itself never crosses
    # With a sync-only middleware the request path runs sync and the async view is called
    # back through async_to_sync: the whole path adapts.
    assert crossings(plain, "async", "async_to_sync") == 0
    assert crossings(audited, "async", "async_to_sync") == 1
    assert {r["sha256"] for r in audited.values()} == {r["sha256"] for r in plain.values()}


def smoke_run(
    results: Path, run_id: str, *args: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``lab compare --plan smoke`` into ``results/run_id``."""
    return lab(
        "compare", "--plan", "smoke", *args, "--results-dir", str(results), "--run-id", run_id, env_extra=env_extra
    )


def lab(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "lab", "-q", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_smoke_compare_writes_pyperf_json_and_table(envs: list[WorkloadEnv], tmp_path: Path) -> None:
    done = smoke_run(tmp_path, "smoke")
    assert done.returncode == 0, done.stderr
    assert "3.13t/3.13" in done.stdout
    run = tmp_path / "smoke"
    for variant in ("sync", "async", "bridged"):
        assert f"│ http    │ billing       │ {variant}" in done.stdout
    assert sorted(p.name for p in (run / "raw").glob("*.json")) == ["cpython-3.13.json", "cpython-3.13t.json"]
    assert (run / "report.md").is_file() and (run / "tables" / "summary.csv").is_file()
    assert not list(tmp_path.glob(".*partial"))

    raw = [str(run / "raw" / "cpython-3.13.json"), str(run / "raw" / "cpython-3.13t.json")]
    compared = subprocess.run(
        [sys.executable, "-m", "pyperf", "compare_to", *raw], capture_output=True, text=True, check=False
    )
    assert compared.returncode == 0, compared.stderr

    cells = json.loads((run / "cells.json").read_text())
    # handler: 1 mix x 3 variants, plus the crossing-counter overhead cell; http: 2 mixes x 3 variants;
    # 8 crossing, baseline and client kinds; each on 2 interpreters.
    assert len(cells["cells"]) == 2 * (3 + 1 + 6 + 8)
    assert "Crossing counter overhead" in (run / "report.md").read_text()
    assert (run / "logs").is_dir()
    assert sorted(p.name for p in (run / "raw" / "crossings").glob("*.json")) == [
        "cpython-3.13.json",
        "cpython-3.13t.json",
    ]
    assert "## Crossing costs" in (run / "report.md").read_text()
    assert (run / "report.html").read_text().count("data:image/png;base64,") >= 1
    for cell in cells["cells"]:
        assert cell["status"] == "ok", cell
        if cell["interpreter"] == "cpython-3.13t":
            assert cell["gil"]["gil_enabled_at_end"] == 0 and cell["gil"]["gil_reports"] >= 1
    suite = pyperf.BenchmarkSuite.load(raw[1])
    md = suite.get_benchmark("http/billing/async/c4/uvicorn:1").get_runs()[0].get_metadata()
    assert md["lab_build_profile"] == "fast" and md["lab_py_gil_disabled"] == 1
    assert md["server_kind"] == "uvicorn" and md["server_loop"] == "asyncio" and md["server_http"] == "h11"
    assert md["gil_enabled_at_end"] == 0
    assert md["load_cpu_s"] > 0 and md["server_cpu_s"] > 0 and md["upstream_cpu_s"] > 0
    assert 0 < md["load_busy"] < 0.9, "the load generator was not the bottleneck"
    assert md["crossings_sync_to_async"] > 0


def test_one_mix_only(envs: list[WorkloadEnv], tmp_path: Path) -> None:
    done = smoke_run(tmp_path, "b", "--mix", "billing")
    assert done.returncode == 0, done.stderr
    cells = json.loads((tmp_path / "b" / "cells.json").read_text())["cells"]
    assert {c["mix"] for c in cells} == {"billing"}


def test_python_gil_1_marks_free_threaded_cells_invalid(envs: list[WorkloadEnv], tmp_path: Path) -> None:
    done = smoke_run(tmp_path, "gil-on", "--mix", "template-page", env_extra={"PYTHON_GIL": "1"})
    assert done.returncode == 6
    assert done.stderr.strip().splitlines()[-1].startswith("error: 6 of 12 cells not ok")
    cells = json.loads((tmp_path / "gil-on" / "cells.json").read_text())["cells"]
    ft = [c for c in cells if c["interpreter"] == "cpython-3.13t"]
    assert ft and all(c["status"] == "invalid" and "PYTHON_GIL=1" in c["reason"] for c in ft)
    assert all(c["status"] == "ok" for c in cells if c["interpreter"] == "cpython-3.13")


def test_django_lts_line(envs: list[WorkloadEnv], tmp_path: Path) -> None:
    done = smoke_run(tmp_path, "lts", "--mix", "template-page", "--django", "5.2")
    assert done.returncode == 0, done.stderr
    for name in ("cpython-3.13", "cpython-3.13t"):
        suite = pyperf.BenchmarkSuite.load(str(tmp_path / "lts" / "raw" / f"{name}.json"))
        versions = {run.get_metadata()["pkg_django"] for bench in suite for run in bench.get_runs()}
        assert versions == {"5.2.19"}


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from lab.database import find_pg_bin, local_postgres
    from lab.errors import LabError

    try:
        find_pg_bin()
    except LabError as exc:
        pytest.skip(str(exc))
    with local_postgres(tmp_path_factory.mktemp("pg"), free_port()) as url:
        yield url


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_async_db_returns_the_same_body_on_postgres(
    envs: list[WorkloadEnv], upstream_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory, endpoint: str
) -> None:
    env = envs[1]  # the free-threaded build: the GIL must stay off with psycopg's pure-Python driver
    data = tmp_path_factory.getbasetemp() / "pg-data"
    data.mkdir(exist_ok=True)
    base = {
        "PYTHONPATH": str(WORKLOADS_DIR),
        "LAB_DATA_DIR": str(data),
        "LAB_UPSTREAM_URL": upstream_url,
        "LAB_GIL_REPORT_DIR": str(data),
        "LAB_DATABASE_URL": pg_url,
        "PSYCOPG_IMPL": "python",
        **SAME_STACK_ENV,
    }
    if not (data / "seeded").exists():
        subprocess.run([str(env.python), "-m", "shop.seed"], cwd=WORKLOADS_DIR, env=child_env(base), check=True)
        (data / "seeded").touch()
    digests: dict[str, str] = {}
    for interface, variants in (("wsgi", "sync"), ("asgi", "async,bridged,sync-on-asgi,async-db")):
        cmd = [
            str(env.python),
            "-m",
            "labsite.inprocess",
            "--endpoint",
            endpoint,
            "--query",
            PROBE_QUERIES[endpoint],
            "--variants",
            variants,
        ]
        vars_ = child_env({**base, "LAB_CROSSINGS": "1", "LAB_INTERFACE": interface})
        out = subprocess.run(cmd, cwd=WORKLOADS_DIR, env=vars_, check=True, capture_output=True, text=True)
        for variant, r in json.loads(out.stdout).items():
            assert r["status"] == 200, (variant, r)
            digests[variant] = r["sha256"]
            if variant == "async-db":
                header = dict(part.split("=") for part in r["crossings"].split(";"))
                async_header = dict(part.split("=") for part in json.loads(out.stdout)["async"]["crossings"].split(";"))
                if endpoint in ("orm", "template", "billing"):
                    # Django's own async ORM crosses into a thread per query; the async backend does not.
                    assert int(header["sync_to_async"]) < int(async_header["sync_to_async"])
    assert len(set(digests.values())) == 1, digests
    reports = [json.loads(p.read_text()) for p in data.glob("*.json")]
    assert reports and not any(r["gil_enabled_at_end"] for r in reports), "GIL came back on with psycopg"


def test_postgres_cell_with_async_db(envs: list[WorkloadEnv], tmp_path: Path) -> None:
    from lab.database import find_pg_bin
    from lab.errors import LabError

    try:
        find_pg_bin()
    except LabError as exc:
        pytest.skip(str(exc))
    done = smoke_run(
        tmp_path, "pg", "--mix", "billing", "--database", "postgres-local", "--variant", "sync", "--variant", "async-db"
    )
    assert done.returncode == 0, done.stderr
    cells = json.loads((tmp_path / "pg" / "cells.json").read_text())["cells"]
    assert {(c["variant"], c["status"]) for c in cells} == {("sync", "ok"), ("async-db", "ok")}
    suite = pyperf.BenchmarkSuite.load(str(tmp_path / "pg" / "raw" / "cpython-3.13t.json"))
    md = suite.get_benchmark("http/billing/async-db/c4/uvicorn:1").get_runs()[0].get_metadata()
    assert md["lab_database"] == "postgres-local" and md["gil_enabled_at_end"] == 0


def test_async_db_is_skipped_with_a_reason_on_sqlite(envs: list[WorkloadEnv], tmp_path: Path) -> None:
    done = smoke_run(tmp_path, "sq", "--mix", "billing", "--variant", "sync", "--variant", "async-db")
    assert done.returncode == 0, done.stderr
    cells = json.loads((tmp_path / "sq" / "cells.json").read_text())["cells"]
    skipped = [c for c in cells if c["variant"] == "async-db"]
    assert skipped and all(c["status"] == "skipped" and "needs PostgreSQL" in c["reason"] for c in skipped)


def test_redis_cache_cell(envs: list[WorkloadEnv], tmp_path: Path) -> None:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (Debian's redis-server package; CI installs it)")
    done = smoke_run(
        tmp_path, "redis", "--mix", "billing", "--cache", "redis-local", "--variant", "sync", "--variant", "async"
    )
    assert done.returncode == 0, done.stderr
    cells = json.loads((tmp_path / "redis" / "cells.json").read_text())["cells"]
    assert cells and all(c["status"] == "ok" for c in cells)
    suite = pyperf.BenchmarkSuite.load(str(tmp_path / "redis" / "raw" / "cpython-3.13t.json"))
    md = suite.get_benchmark("http/billing/async/c4/uvicorn:1").get_runs()[0].get_metadata()
    assert md["lab_cache"] == "redis-local" and md["gil_enabled_at_end"] == 0


def test_every_server_kind_a_core_budget_and_open_loop(envs: list[WorkloadEnv], tmp_path: Path) -> None:
    plan = tmp_path / "servers.toml"
    text = (REPO / "lab" / "plans" / "smoke.toml").read_text()
    text = text.replace('name = "smoke"', 'name = "servers"').replace('tiers = ["handler", "http"]', 'tiers = ["http"]')
    text = text.replace("http_concurrency = [4]", "http_concurrency = [2, 4]\nopen_loop_fractions = [0.5]")
    plan.write_text(text)
    servers = ("gunicorn-sync:1", "granian-wsgi:1x2", "granian-asgi:1", "uvicorn:2")
    done = lab(
        "compare", "--plan", str(plan), "--mix", "billing", "--variant", "sync", "--variant", "async",
        *(arg for s in servers for arg in ("--server", s)), "--cores", "1", "--stack", "best-available",
        "--results-dir", str(tmp_path), "--run-id", "servers",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cells = json.loads((tmp_path / "servers" / "cells.json").read_text())["cells"]
    # 4 servers x (2 closed levels + 1 open-loop cell) x 2 interpreters, every one ok
    assert len(cells) == 4 * 3 * 2 and {c["status"] for c in cells} == {"ok"}
    suite = pyperf.BenchmarkSuite.load(str(tmp_path / "servers" / "raw" / "cpython-3.13t.json"))
    by_name = {b.get_name(): b.get_runs()[0].get_metadata() for b in suite}
    open_md = by_name["http/billing/sync/c4/gunicorn-sync:1/cores=1/open=0.5"]
    assert open_md["load_mode"] == "open" and open_md["load_rate_rps"] > 0
    assert "saturation of sync on cpython-3.13" in open_md["load_rate_basis"]
    assert open_md["lab_cpu_layout"].startswith("server on CPUs 0;")
    # No uvloop/httptools wheels for 3.13t: the best-available stack falls back, and says so.
    assert by_name["http/billing/async/c2/uvicorn:2/cores=1"]["server_label"] == "uvicorn 2w asyncio+h11"
    assert by_name["http/billing/async/c2/granian-asgi:1/cores=1"]["gil_enabled_at_end"] == 0
    report = (tmp_path / "servers" / "report.md").read_text()
    assert "## Open loop: latency at a fixed offered rate" in report
    assert "## Saturation per concurrency curve" in report
