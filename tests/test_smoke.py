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
from typing import Any

import pyperf
import pytest

from lab.envs import WORKLOADS_DIR, WorkloadEnv
from lab.measure import SAME_STACK_ENV
from lab.proc import child_env
from lab.serve import free_port
from lab.spec import CSRF_TOKEN, ENDPOINTS
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
    "stream": "events=3&interval=1",
    "long-poll": "hold=1",
}
ASGI_VARIANTS = ("async", "bridged", "sync-on-asgi")


def probe(
    env: WorkloadEnv,
    data_dir: Path,
    upstream_url: str,
    endpoint: str,
    middleware: str = "default",
    *,
    variants: tuple[str, ...] = (),
    request: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """``labsite.inprocess`` for one endpoint; ``request`` adds its options (--method, --header, ...)."""
    vars_ = child_env(
        {
            "PYTHONPATH": str(WORKLOADS_DIR),
            "LAB_DATA_DIR": str(data_dir),
            "LAB_CROSSINGS": "1",
            "LAB_UPSTREAM_URL": upstream_url,
            "LAB_GIL_REPORT_DIR": str(data_dir),
            "LAB_MIDDLEWARE": middleware,
            **SAME_STACK_ENV,
            **(extra_env or {}),
        }
    )
    if not (data_dir / "seeded").exists():
        subprocess.run([str(env.python), "-m", "shop.seed"], cwd=WORKLOADS_DIR, env=vars_, check=True)
        (data_dir / "seeded").touch()
    query = "" if "--method" in request else PROBE_QUERIES[endpoint]
    cmd = [str(env.python), "-m", "labsite.inprocess", "--endpoint", endpoint, "--query", query, *request]
    if variants:
        cmd += ["--variants", ",".join(variants)]
    out = subprocess.run(cmd, cwd=WORKLOADS_DIR, env=vars_, check=True, capture_output=True, text=True)
    result: dict[str, dict[str, Any]] = json.loads(out.stdout)
    return result


# orm-crud as the lab sends it (workloads/mixes/orm-crud.toml): a form POST with the CSRF header.
CRUD_POST = (
    "--method", "POST", "--body", "quantity=3",
    "--header", "Content-Type: application/x-www-form-urlencoded", "--header", f"X-CSRFToken: {CSRF_TOKEN}",
)  # fmt: skip


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_variant_returns_the_same_body_on_both_interpreters(
    envs: list[WorkloadEnv], upstream_url: str, tmp_path_factory: pytest.TempPathFactory, endpoint: str
) -> None:
    digests = {}
    for env in envs:
        data = tmp_path_factory.getbasetemp() / f"data-{env.interpreter.spec_name}"
        data.mkdir(exist_ok=True)
        responses = probe(env, data, upstream_url, endpoint)
        assert set(responses) == {"sync", *ASGI_VARIANTS}
        assert {r["status"] for r in responses.values()} == {200}, responses
        digests[env.interpreter.spec_name] = {r["sha256"] for r in responses.values()}
        # Same work, checked: every variant makes the same queries and upstream calls.
        for key in ("sql_statements", "upstream_calls"):
            assert len({r[key] for r in responses.values()}) == 1, (key, responses)
        if endpoint == "crud":
            posted = probe(env, data, upstream_url, endpoint, request=CRUD_POST)
            assert {r["status"] for r in posted.values()} == {200}, posted
            assert {r["sha256"] for r in posted.values()} == digests[env.interpreter.spec_name]
            assert all(r["write_lock_wait_us"] >= 0 for r in posted.values()), "SQLite reports its lock wait"
        if env.interpreter.role == "ft":
            reports = [json.loads(p.read_text()) for p in data.glob("*.json")]
            assert reports and not any(r["gil_enabled_at_end"] for r in reports), "GIL came back on"
    assert len(digests["cpython-3.13"]) == 1, "variants returned different bodies"
    assert digests["cpython-3.13"] == digests["cpython-3.13t"]


def crossings(
    responses: dict[str, dict[str, Any]], variant: str, kind: str = "sync_to_async", key: str = "crossings"
) -> int:
    text = str(responses[variant][key])
    return int(dict(part.split("=") for part in text.split(";"))[kind])


s2a = crossings


def test_crossings_are_counted(envs: list[WorkloadEnv], upstream_url: str, tmp_path: Path) -> None:
    """Billing's steady-state counts, by hand (workloads/shop/endpoints/billing.py explains them)."""
    billing = probe(envs[0], tmp_path, upstream_url, "billing")
    # The other order: each variant's counts must not depend on what ran before it.
    reordered = probe(envs[0], tmp_path, upstream_url, "billing", variants=tuple(reversed(ASGI_VARIANTS)))

    assert s2a(billing, "sync") == 0, "sync views under WSGI never cross"
    assert {v: s2a(billing, v) for v in ASGI_VARIANTS} == {"async": 8, "bridged": 9, "sync-on-asgi": 7}
    assert {v: crossings(billing, v, "async_to_sync") for v in billing} == dict.fromkeys(billing, 0)
    for variant in ASGI_VARIANTS:
        for key in ("crossings", "crossings_cold", "sql_statements", "db_connections_opened"):
            assert reordered[variant][key] == billing[variant][key], (variant, key)
    # Cold, cache.aget_or_set misses: aget, aadd, aget (3 crossings instead of 1).
    assert s2a(billing, "async", key="crossings_cold") == 10
    assert s2a(billing, "bridged", key="crossings_cold") == 9, "the bridged helper's cold miss stays in its thread"
    assert all(r["sql_statements"] == 1 and r["upstream_calls"] == 1 for r in billing.values())
    # Persistent connections hold under WSGI only: each ASGI request's sync code runs in a
    # fresh thread (its own ThreadSensitiveContext) and opens a connection every time.
    assert (billing["sync"]["db_connections_opened_cold"], billing["sync"]["db_connections_opened"]) == (1, 0)
    assert {billing[v]["db_connections_opened"] for v in ASGI_VARIANTS} == {1}
    assert {r["db_pool_checkouts"] for r in billing.values()} == {0}


def test_fanout_calls_are_counted_in_the_pool_threads(
    envs: list[WorkloadEnv], upstream_url: str, tmp_path: Path
) -> None:
    fanout = probe(envs[1], tmp_path, upstream_url, "external")  # k=3, fan-out
    assert {v: r["upstream_calls"] for v, r in fanout.items()} == dict.fromkeys(fanout, 3)
    assert {r["sql_statements"] for r in fanout.values()} == {0}


def test_django_default_stack_serves_a_logged_in_client(
    envs: list[WorkloadEnv], upstream_url: str, tmp_path: Path
) -> None:
    plain = probe(envs[0], tmp_path, upstream_url, "billing")
    full = probe(envs[0], tmp_path, upstream_url, "billing", "django-default")
    assert {r["status"] for r in full.values()} == {200}, full
    assert {r["sha256"] for r in full.values()} == {r["sha256"] for r in plain.values()}
    # The session row and the user, read on every request.
    assert all(full[v]["sql_statements"] == plain[v]["sql_statements"] + 2 for v in full)
    # startproject's MiddlewareMixin hooks run through sync_to_async in async mode: 13
    # crossings (two each for Security, Session, Common, Messages; Csrf's process_request,
    # process_view, process_response; Authentication's and XFrameOptions' one each) where
    # the default stack has 4. async: auser() reads session and user with two aget calls;
    # bridged: one bridged check does both in its thread.
    assert {v: s2a(full, v) for v in ASGI_VARIANTS} == {"async": 19, "bridged": 19, "sync-on-asgi": 16}
    assert s2a(full, "sync") == 0
    anonymous = probe(envs[0], tmp_path, upstream_url, "billing", "django-default", request=("--anonymous",))
    assert {r["status"] for r in anonymous.values()} == {403}, "no session cookie, no page"
    posted = probe(envs[0], tmp_path, upstream_url, "crud", "django-default", request=CRUD_POST)
    assert {r["status"] for r in posted.values()} == {200}, posted
    no_token = probe(envs[0], tmp_path, upstream_url, "crud", "django-default", request=CRUD_POST[:-2])
    assert {r["status"] for r in no_token.values()} == {403}, "CSRF rejects a POST without the header"


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
    # handler: 1 mix x 3 variants, plus the crossing-counter overhead cell; http: 2 mixes x 3 variants
    # (1 round); every crossing, baseline and client kind at the plan's one caller count; each on 2
    # interpreters.
    from lab.cells import crossing_cells
    from lab.spec import load_plan

    kinds = len(crossing_cells(load_plan("smoke").crossing_concurrency))
    assert kinds == 14
    assert len(cells["cells"]) == 2 * (3 + 1 + 6 + kinds)
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


def test_db_pool_turns_per_request_connects_into_checkouts(
    envs: list[WorkloadEnv], upstream_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = tmp_path_factory.getbasetemp() / "pg-data"
    data.mkdir(exist_ok=True)
    pg = {"LAB_DATABASE_URL": pg_url, "PSYCOPG_IMPL": "python"}
    plain = probe(envs[1], data, upstream_url, "billing", extra_env=pg)
    pooled = probe(envs[1], data, upstream_url, "billing", extra_env={**pg, "LAB_DB_POOL": "1"})
    assert {r["status"] for r in (*plain.values(), *pooled.values())} == {200}
    assert {r["sha256"] for r in pooled.values()} == {r["sha256"] for r in plain.values()}
    # Unpooled: gunicorn-style threads keep their connection, each ASGI request opens one.
    assert {v: r["db_connections_opened"] for v, r in plain.items()} == {"sync": 0, **dict.fromkeys(ASGI_VARIANTS, 1)}
    # Pooled: every request checks a connection out and opens none once the pool is warm.
    assert {r["db_connections_opened"] for r in pooled.values()} == {0}
    assert {r["db_pool_checkouts"] for r in pooled.values()} == {1}
    assert all(pooled[v]["sql_statements"] == plain[v]["sql_statements"] for v in plain)


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
    # Two workers: how the connections split is recorded (when a sample fell in the window);
    # one worker: never sampled.
    two = by_name["http/billing/async/c4/uvicorn:2/cores=1"]["server_connections_per_worker"]
    assert two == "-" or 0 < sum(int(n) for n in two.split("/")) <= 4
    assert by_name["http/billing/sync/c4/gunicorn-sync:1/cores=1"]["server_connections_per_worker"] == "-"
    assert by_name["http/billing/async/c2/granian-asgi:1/cores=1"]["gil_enabled_at_end"] == 0
    report = (tmp_path / "servers" / "report.md").read_text()
    assert "## Open loop: latency at a fixed offered rate" in report
    assert "## Saturation per concurrency curve" in report
