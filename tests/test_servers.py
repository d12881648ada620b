"""How many processes each server shape runs, so how many GIL reports a cell must have.

The unit tests pin ``expected_gil_reports``; the functional tests start every kind on both
built interpreters through ``lab.serve.running_server``, stop it cleanly and count the
reports its processes left (the evidence behind the table).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from lab.envs import WorkloadEnv
from lab.gilstate import read_reports, verdict
from lab.serve import responds, running_server
from lab.servers import expected_gil_reports, parse_server


@pytest.mark.parametrize(
    ("text", "on_313", "on_313t"),
    [
        ("gunicorn-sync:1", 2, 2),
        ("gunicorn-sync:4", 5, 5),
        ("gunicorn-gthread:2x8", 3, 3),
        ("uvicorn:1", 1, 1),
        ("uvicorn:2", 4, 4),  # supervisor + 2 workers + multiprocessing's resource tracker
        ("uvicorn:3", 5, 5),
        ("granian-wsgi:1x8", 2, 1),  # workers are threads of one process on 3.13t
        ("granian-wsgi:2x4", 3, 1),
        ("granian-asgi:2", 3, 1),
    ],
)
def test_expected_gil_reports_per_shape(text: str, on_313: int, on_313t: int) -> None:
    config = parse_server(text)
    assert expected_gil_reports(config, free_threaded=False) == on_313
    assert expected_gil_reports(config, free_threaded=True) == on_313t


@pytest.mark.parametrize(
    ("kind", "sig"),
    [
        ("gunicorn-sync", signal.SIGTERM),
        ("gunicorn-gthread", signal.SIGTERM),
        ("uvicorn", signal.SIGINT),
        ("granian-wsgi", signal.SIGINT),
        ("granian-asgi", signal.SIGINT),
    ],
)
def test_stop_signal_per_kind(kind: str, sig: int) -> None:
    shape = "1x1" if kind in ("gunicorn-gthread", "granian-wsgi") else "1"
    assert parse_server(f"{kind}:{shape}").stop_signal == sig


def server_env(report_dir: Path, data_dir: Path, interface: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "labsite.settings",
        "LAB_DATA_DIR": str(data_dir),
        "LAB_GIL_REPORT_DIR": str(report_dir),
        "LAB_INTERFACE": interface,
    }


@pytest.mark.functional
@pytest.mark.parametrize(
    "text",
    ["gunicorn-sync:2", "gunicorn-gthread:2x2", "uvicorn:1", "uvicorn:2", "granian-wsgi:2x2", "granian-asgi:2"],
)
def test_every_process_of_a_cleanly_stopped_server_reports(envs: list[WorkloadEnv], tmp_path: Path, text: str) -> None:
    config = parse_server(text)
    for env in envs:
        free_threaded = env.interpreter.role == "ft"
        report_dir = tmp_path / env.interpreter.spec_name / "gil"
        report_dir.mkdir(parents=True)
        extra = server_env(report_dir, tmp_path / env.interpreter.spec_name, config.interface)
        log = tmp_path / f"{env.interpreter.spec_name}.log"
        with running_server(config, env, port=None, extra_env=extra, log_path=log) as (server, port):
            main_pid = server.pid
            # Serve for a moment, as a measured cell does, so every worker is up.
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                assert responds(port)
                time.sleep(0.1)
        reports = read_reports(report_dir)
        expected = expected_gil_reports(config, free_threaded=free_threaded)
        where = f"{text} on {env.interpreter.spec_name}: {[(r['pid'], r['ppid'], r['argv'][:3]) for r in reports]}"
        assert len(reports) == expected, where
        assert len({r["pid"] for r in reports}) == expected, where
        assert [r["pid"] for r in reports].count(main_pid) == 1, where
        assert all(r["py_gil_disabled"] is free_threaded for r in reports), where
        judged = verdict(reports, free_threaded=free_threaded, expected=expected)
        assert (judged.status, judged.reason) == ("ok", ""), where
        if free_threaded:
            assert not judged.enabled_at_end, where
