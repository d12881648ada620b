from __future__ import annotations

import argparse
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab import cli
from lab.cli import main


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_unknown_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "compare", "--plan", "nope"]) == 2
    assert (
        one_line_error(capsys)
        == "error: plan 'nope' not found; available: async-pays, axes, full, quick, search, smoke, standard"
    )


def test_unknown_interpreter_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "interpreters", "--ft-spec", "cpython-3.12t"]) == 2
    assert "interpreter spec 'cpython-3.12t' not found; available: cpython-3.13, cpython-3.13t" in one_line_error(
        capsys
    )


def test_mismatched_specs_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "interpreters", "--gil-spec", "cpython-3.13t", "--ft-spec", "cpython-3.13t"]) == 2
    assert "differ in more than --disable-gil" in one_line_error(capsys)


def test_wrong_sha256_leaves_nothing_behind(
    tmp_path: Path, empty_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "Python-3.13.15.tar.xz").write_bytes(b"not the release")
    results = tmp_path / "results"
    code = main(["-q", "compare", "--plan", "smoke", "--source", str(source), "--results-dir", str(results)])
    assert code == 3
    assert "sha256 mismatch for local tarball" in one_line_error(capsys)
    assert not results.exists() or not list(results.iterdir())
    built = empty_cache / "interpreters"
    assert not built.exists() or not [p for p in built.iterdir() if p.is_dir()], "no partial build directory"


def test_missing_tarball(tmp_path: Path, empty_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-q", "interpreters", "--source", str(tmp_path / "nope.tar.xz")])
    assert code == 3
    assert "nope.tar.xz' does not exist" in one_line_error(capsys)


def test_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code = main(["-q", "compare", "--plan", "smoke", "--port", str(port), "--results-dir", str(tmp_path / "r")])
    assert code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in one_line_error(capsys)
    assert not (tmp_path / "r").exists()


def test_external_interpreters_come_in_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "interpreters", "--python-gil", "python3"]) == 2
    assert one_line_error(capsys) == "error: --python-gil and --python-ft must be given together"


def test_compare_help_lists_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--plan", "--profile", "--source", "--python-ft", "--port", "--allow-mismatch"):
        assert option in out


def test_unknown_mix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "compare", "--plan", "smoke", "--mix", "io-warp"]) == 2
    assert one_line_error(capsys).startswith("error: mix 'io-warp' not found; available: billing, cpu-heavy")


def test_mix_outside_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "compare", "--plan", "smoke", "--mix", "cpu-heavy"]) == 2
    assert "plan 'smoke' has no cells for mix cpu-heavy" in one_line_error(capsys)


def test_bad_database_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "compare", "--plan", "smoke", "--database", "mysql://u@127.0.0.1/db"]) == 2
    assert one_line_error(capsys).startswith("error: database 'mysql://u@127.0.0.1/db' is not supported")


def test_bad_cache(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "compare", "--plan", "smoke", "--cache", "redis://192.0.2.1:6379/0"]) == 2
    assert "cache host '192.0.2.1' is not a loopback address" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server", "gunicorn-gthread:8"], "error: server 'gunicorn-gthread:8': gunicorn-gthread takes PxT"),
        (["--server", "uvicorn:1"], "error: variant 'sync' needs a WSGI server; servers: uvicorn:1"),
        (["--cores", "0"], "error: --cores '0' must be core counts like 1 or 1,2"),
        (["--cores", "4096"], "error: core budget 4096 is more than the"),
        (["--stack", "fastest"], None),
    ],
)
def test_bad_server_options_are_one_line_errors(
    args: list[str], message: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    if message is None:  # argparse choices: usage + one error line, exit 2
        with pytest.raises(SystemExit) as info:
            main(["-q", "compare", "--plan", "smoke", *args])
        assert info.value.code == 2
        assert "invalid choice: 'fastest'" in capsys.readouterr().err
        return
    assert main(["-q", "compare", "--plan", "smoke", *args]) == 2
    assert one_line_error(capsys).startswith(message)


def test_report_of_something_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "report", str(tmp_path)]) == 2
    assert one_line_error(capsys) == f"error: '{tmp_path}' is not a lab run directory (no cells.json)"


# --- global options after the command, --dry-run, plan overrides, exit codes ----------


def test_quiet_and_version_are_accepted_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    from lab.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["compare", "-q"]).quiet is True
    assert parser.parse_args(["-q", "compare"]).quiet is True
    assert parser.parse_args(["compare"]).quiet is False
    assert parser.parse_args(["report", "run", "--quiet"]).quiet is True
    assert main(["compare", "-q", "--plan", "nope"]) == 2
    assert one_line_error(capsys).startswith("error: plan 'nope' not found")
    with pytest.raises(SystemExit) as info:
        main(["compare", "--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == "lab 0.1.0"


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["compare", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "exit codes:" in out
        for code in ("  2  bad command line", "  6  the run finished", "129  SIGHUP", "130  SIGINT", "143  SIGTERM"):
            assert code in out, (argv, code)


def test_dry_run_lists_cells_and_estimate_and_builds_nothing(
    tmp_path: Path, empty_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    argv = ["compare", "--plan", "smoke", "--dry-run", "--results-dir", str(results), "--run-id", "dry"]
    assert main([*argv, "--repeats", "2", "--duration", "1.5", "--connections", "8,16"]) == 0
    out = capsys.readouterr().out
    assert "plan smoke: 15 cells × 2 interpreters" in out
    rows = [line for line in out.splitlines() if "│ http" in line]
    assert len(rows) == 2 and all("8, 16" in r and "2 paired rounds × 1.5 s" in r for r in rows), rows
    assert any("billing" in r and "gunicorn-gthread:1x4, uvicorn:1" in r for r in rows)
    assert "│ handler   │ template-page" in out
    assert "estimated" in out and "min of measuring" in out
    assert "build cpython-3.13 and cpython-3.13t from source" in out, "nothing is cached in an empty cache"
    assert f"report: {results / 'dry'}/report.md" in out
    assert not results.exists(), "a dry run writes no results"
    assert not empty_cache.exists(), "a dry run builds nothing"


def test_overrides_reach_the_plan(tmp_path: Path) -> None:
    from lab.cli import _plan_from_args, build_parser

    args = build_parser().parse_args(
        ["compare", "--plan", "quick", "--repeats", "5", "--duration", "3", "--connections", "4,64,4"]
    )
    plan = _plan_from_args(args)
    assert (plan.repeats, plan.http_duration, plan.http_concurrency) == (5, 3.0, (4, 64))
    assert plan.http_max_duration >= 3.0 and plan.http_stagger
    together = _plan_from_args(build_parser().parse_args(["compare", "--plan", "quick", "--no-stagger"]))
    assert not together.http_stagger
    # --stagger overrides a plan file that starts its connections together.
    flat = tmp_path / "together.toml"
    flat.write_text((Path(cli.__file__).parent / "plans" / "smoke.toml").read_text() + "http_stagger = false\n")
    assert not _plan_from_args(build_parser().parse_args(["compare", "--plan", str(flat)])).http_stagger
    assert _plan_from_args(build_parser().parse_args(["compare", "--plan", str(flat), "--stagger"])).http_stagger


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repeats", "0"], "error: --repeats 0 is out of range; accepted: 1..100"),
        (["--repeats", "101"], "error: --repeats 101 is out of range; accepted: 1..100"),
        (["--duration", "0"], "error: --duration 0 is out of range; accepted: 0.1..600 seconds"),
        (["--duration", "601"], "error: --duration 601 is out of range; accepted: 0.1..600 seconds"),
        (["--duration", "inf"], "error: --duration inf is out of range; accepted: 0.1..600 seconds"),
        (
            ["--connections", "0"],
            "error: --connections '0' must be connection counts like 8 or 8,32; accepted: 1..4096 each",
        ),
        (["--connections", "8,5000"], "error: --connections '8,5000' must be connection counts"),
        (["--connections", "8,x"], "error: --connections '8,x' must be connection counts"),
    ],
)
def test_bad_overrides_are_one_line_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", "-q", "--plan", "smoke", "--dry-run", "--results-dir", str(tmp_path), *args]) == 2
    assert one_line_error(capsys).startswith(message)


# --- signals: SIGINT (even inherited as ignored), SIGTERM and SIGHUP stop like Ctrl-C ----


@pytest.fixture
def signals_restored() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def interrupted_by(sig: int, cleaned: list[str]) -> Callable[[argparse.Namespace], int]:
    """A command that receives ``sig`` mid-run; records whether its clean-up ran."""

    def command(_args: argparse.Namespace) -> int:
        try:
            os.kill(os.getpid(), sig)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                time.sleep(0.01)
            return 0
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGTERM)  # a second signal must not cut the clean-up short
            time.sleep(0.05)
            cleaned.append("children stopped")
            raise

    return command


@pytest.mark.parametrize(
    ("sig", "code", "line"),
    [
        (signal.SIGINT, 130, "error: interrupted"),
        (signal.SIGTERM, 143, "error: interrupted by SIGTERM"),
        (signal.SIGHUP, 129, "error: interrupted by SIGHUP"),
    ],
)
def test_stop_signals_run_the_clean_up_and_exit_with_their_code(
    sig: int,
    code: int,
    line: str,
    signals_restored: None,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # As a background job of a script starts the lab: SIGINT ignored. SIGHUP at its default.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    before = signal.getsignal(signal.SIGTERM)
    cleaned: list[str] = []
    monkeypatch.setattr(cli, "cmd_report", interrupted_by(sig, cleaned))
    assert main(["-q", "report", "run"]) == code
    assert cleaned == ["children stopped"]
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["lab: SIGTERM ignored while stopping", line]
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN, "handlers are restored on the way out"
    assert signal.getsignal(signal.SIGTERM) == before


def test_sighup_ignored_by_nohup_stays_ignored(signals_restored: None, monkeypatch: pytest.MonkeyPatch) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def command(_args: argparse.Namespace) -> int:
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)
        return 0

    monkeypatch.setattr(cli, "cmd_report", command)
    assert main(["-q", "report", "run"]) == 0


@pytest.mark.parametrize(
    ("posargs", "expected"),
    [
        ([], []),
        (["--plan", "smoke", "--database", "sqlite", "--cache", "locmem"], []),
        (["--database", "postgres-local"], ["--services", "postgres"]),
        (["--database=postgres://lab@127.0.0.1:5432/db", "--cache", "redis-local"], ["--services", "libpq,redis"]),
        (["--cache=redis-local", "--database", "postgres-local"], ["--services", "postgres,redis"]),
    ],
)
def test_compare_installs_server_packages_only_when_asked(posargs: list[str], expected: list[str]) -> None:
    pytest.importorskip("nox")
    import noxfile

    assert noxfile.services_for(posargs) == expected


def test_readme_lists_every_exit_code() -> None:
    from lab.errors import EXIT_CODES
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Exit codes") :]
    listed = {int(line.split("|")[1]) for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()}
    assert listed == set(EXIT_CODES)


def test_progress_lines_count_the_steps_of_points_measured_again(capsys: pytest.CaptureFixture[str]) -> None:
    # Not a terminal under pytest: one line per step, and re-measured steps raise the total.
    with cli.progress_reporter(2, quiet=False) as step:
        step("http/a (round 1/5)")
        step("http/b (round 1/5)")
        step(f"http/a (round 1/5, {cli.REMEASURE_MARK})")
    out = capsys.readouterr().err
    assert "[1/2] http/a" in out and "[2/2] http/b" in out and "[3/3] http/a" in out


def test_a_stop_signal_whose_exception_was_swallowed_stops_the_next_step() -> None:
    from lab.errors import Interrupted

    steps: list[str] = []
    checked = cli._stop_checked(steps.append)
    checked("cell 1")
    cli._STOPPING.append(15)  # what the handler records before raising
    try:
        with pytest.raises(Interrupted) as exc:
            checked("cell 2")
    finally:
        cli._STOPPING.clear()
    assert exc.value.signum == 15 and steps == ["cell 1"]
