from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lab.cli import main


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_unknown_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "compare", "--plan", "nope"]) == 2
    assert one_line_error(capsys) == "error: plan 'nope' not found; available: full, quick, search, smoke"


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
