"""Unit tests of ``lab profile``: the endpoints file, the error cases, counts, verdicts, report.

No processes: the process-starting functions are patched and their arguments checked.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lab.envs
from lab.build import Interpreter
from lab.cli import main
from lab.envs import WorkloadEnv
from lab.errors import LabError, SpecError
from lab.profile import env as env_module
from lab.profile import prepare as prep
from lab.profile.env import (
    PackageCheck,
    check_error,
    env_key,
    import_check_command,
    import_check_env,
    local_requirements,
    missing_wheels,
    reenabling_imports,
    server_requirements,
)
from lab.profile.measure import MAX_STAGGER_S, Cell, ProfilePlan, judge, load_command, round_record, stagger_s
from lab.profile.prepare import (
    EndpointFailed,
    Prepared,
    Services,
    cookie_from,
    import_problem,
    per_request,
    server_command,
    status_problem,
)
from lab.profile.report import render
from lab.profile.run import check_before_building
from lab.profile.spec import Endpoint, load_profile_spec
from lab.servers import parse_server

EXAMPLE = Path(__file__).resolve().parent / "example_project"
EXAMPLE_GIL = Path(__file__).resolve().parent / "example_project_gil"
ENDPOINTS = EXAMPLE / "endpoints.toml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "endpoints.toml"
    path.write_text(text)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the example project the tests may break."""
    copy = tmp_path / "project"
    shutil.copytree(EXAMPLE, copy)
    return copy


def _interp(role: str) -> Interpreter:
    return Interpreter(
        spec_name="cpython-3.13t" if role == "ft" else "cpython-3.13",
        role=role,
        python=Path("/nonexistent/python"),
        build_profile="fast",
        configure_flags=(),
        version="3.13.15",
        py_gil_disabled=role == "ft",
        config_args="",
        compiler="gcc",
    )


def _prepared(tmp_path: Path, role: str, reenables: tuple[str, ...] = ()) -> Prepared:
    interp = _interp(role)
    env = WorkloadEnv(interpreter=interp, root=tmp_path / role, packages={}, best_stack={})
    check = PackageCheck(interpreter=interp.spec_name, free_threaded=role == "ft", reenables_gil=reenables)
    return Prepared(env=env, check=check, data_dir=tmp_path / role / "data", cookie="sessionid=abc")


# -- the endpoints file --------------------------------------------------------------


def test_example_endpoints_file_loads() -> None:
    spec = load_profile_spec(ENDPOINTS, EXAMPLE)
    assert spec.project.settings == "example.settings"
    assert spec.project.setup == ("lab_setup",)
    assert [e.name for e in spec.endpoints] == ["orders", "account", "slow-upstream"]
    orders, account, upstream = spec.endpoints
    assert orders.forms == ("wsgi", "asgi", "asgi-after")
    assert orders.path_of("asgi-after") == "/orders/async/"
    assert account.forms == ("wsgi", "asgi")
    assert account.request_headers("sessionid=k") == ["Cookie: sessionid=k"]
    assert upstream.request_headers("sessionid=k") == ["Accept: application/json"]


def test_cookies_and_login_share_one_cookie_header() -> None:
    endpoint = Endpoint(name="e", path="/", login=True, cookies=(("theme", "dark"),), headers=(("X-A", "1"),))
    assert endpoint.request_headers("sessionid=k") == ["X-A: 1", "Cookie: theme=dark; sessionid=k"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[project]\nsettings = 'example.settings'\n", "missing key 'project.asgi'"),
        ("[[endpoint]]\nname = 'a'\npath = '/'\n", "expected a [project] table"),
        (
            "[project]\nsettings = 'example.settings'\nwsgi = 'example.wsgi:application'\n"
            "asgi = 'example.asgi:application'\nrequirements = 'requirements.txt'\n",
            "no [[endpoint]] tables",
        ),
        (
            "[project]\nsettings = 'example.settings'\nwsgi = 'example.wsgi'\n"
            "asgi = 'example.asgi:application'\nrequirements = 'requirements.txt'\n",
            "'project.wsgi' must be 'module.path:attribute'",
        ),
    ],
)
def test_project_table_errors_name_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(SpecError) as info:
        load_profile_spec(path, EXAMPLE)
    assert message in str(info.value)
    assert str(path) in str(info.value)


PROJECT = (
    "[project]\nsettings = 'example.settings'\nwsgi = 'example.wsgi:application'\n"
    "asgi = 'example.asgi:application'\nrequirements = 'requirements.txt'\n"
)


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("name = 'a'\npath = '/'\nstatus = 'ok'", "'endpoint 'a'.status' must be an HTTP status 100..599, got 'ok'"),
        ("name = 'a'\npath = '/'\nmethod = 'FETCH'", "'endpoint 'a'.method' is 'FETCH'"),
        ("name = 'a'\npath = 'orders/'", "'endpoint 'a'.path' must be a path starting with '/'"),
        ("name = 'a'\npath = '/'\nafter = 'x'", "'endpoint 'a'.after' must be a path"),
        ("name = 'a'\npath = '/'\ntimeout = 3", "unknown key 'endpoint[0].timeout'"),
        ("name = 'a'\npath = '/'\nheaders = { Accept = 3 }", "'endpoint 'a'.headers' must be a table of strings"),
        ("name = 'A B'\npath = '/'", "'endpoint 'A B'.name' must be lower-case letters"),
        ("path = '/'", "missing key 'endpoint[0].name'"),
    ],
)
def test_endpoint_errors_name_file_and_key(tmp_path: Path, endpoint: str, message: str) -> None:
    path = _write(tmp_path, PROJECT + "[[endpoint]]\n" + endpoint + "\n")
    with pytest.raises(SpecError) as info:
        load_profile_spec(path, EXAMPLE)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}: ")


def test_duplicate_endpoint_names_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, PROJECT + "[[endpoint]]\nname = 'a'\npath = '/'\n[[endpoint]]\nname = 'a'\npath = '/b'\n")
    with pytest.raises(SpecError, match="endpoint name 'a' is used twice"):
        load_profile_spec(path, EXAMPLE)


# -- error cases before anything runs -----------------------------------------------


def test_missing_application_module_is_named(project: Path) -> None:
    (project / "example" / "wsgi.py").unlink()
    with pytest.raises(SpecError) as info:
        load_profile_spec(project / "endpoints.toml", project)
    assert "'project.wsgi' names application module 'example.wsgi', which is not under" in str(info.value)
    assert "example/wsgi.py" in str(info.value)


def test_missing_settings_module_and_requirements_are_named(project: Path) -> None:
    (project / "example" / "settings.py").unlink()
    with pytest.raises(SpecError, match="'project.settings' names settings module 'example.settings'"):
        load_profile_spec(project / "endpoints.toml", project)
    (project / "requirements.txt").unlink()
    with pytest.raises(SpecError, match="'project.requirements' names .*requirements.txt', which does not exist"):
        load_profile_spec(project / "endpoints.toml", project)


def test_missing_project_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="project directory '.*nope' not found"):
        load_profile_spec(ENDPOINTS, tmp_path / "nope")


@pytest.mark.parametrize(
    "url", ["postgres://lab@10.1.2.3:5432/shop", "postgres://lab@db.example.com/shop", "mysql://lab@127.0.0.1/x"]
)
def test_non_loopback_or_unsupported_database_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(SpecError, match="not a loopback address|is not supported"):
        check_before_building(ProfilePlan(), url, tmp_path, "run")


def test_loopback_database_and_new_run_directory_pass(tmp_path: Path) -> None:
    assert check_before_building(ProfilePlan(), "postgres://lab@127.0.0.1:5432/shop", tmp_path, "r") == tmp_path / "r"
    (tmp_path / "r").mkdir()
    with pytest.raises(SpecError, match="already exists"):
        check_before_building(ProfilePlan(), "sqlite", tmp_path, "r")
    with pytest.raises(SpecError, match="plain directory name"):
        check_before_building(ProfilePlan(), "sqlite", tmp_path, "../x")
    with pytest.raises(SpecError, match="--rounds 0 is out of range"):
        check_before_building(ProfilePlan(rounds=0), "sqlite", tmp_path, "s")


def test_cli_refuses_a_remote_database_before_building(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        [
            "-q",
            "profile",
            "--project",
            str(EXAMPLE),
            "--endpoints",
            str(ENDPOINTS),
            "--database",
            "postgres://lab@192.0.2.7/shop",
            "--results-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: database host '192.0.2.7' is not a loopback address; the lab only uses servers on this machine"
    ]
    assert list(tmp_path.iterdir()) == []


# -- error cases in the project's environment ---------------------------------------


def test_settings_that_do_not_import() -> None:
    spec = load_profile_spec(ENDPOINTS, EXAMPLE)
    out = json.dumps({"step": "settings", "error": "ModuleNotFoundError: No module named 'debug_toolbar'"})
    assert import_problem(spec, "cpython-3.13", out) == (
        "settings module 'example.settings' does not import on cpython-3.13: "
        "ModuleNotFoundError: No module named 'debug_toolbar'"
    )
    assert import_problem(spec, "cpython-3.13", json.dumps({"step": "ok"})) == ""


def test_application_that_does_not_load_is_named() -> None:
    spec = load_profile_spec(ENDPOINTS, EXAMPLE)
    out = "noise\n" + json.dumps(
        {"step": "asgi", "error": "AttributeError: module 'example.asgi' has no attribute 'application'"}
    )
    problem = import_problem(spec, "cpython-3.13t", out)
    assert problem.startswith("application 'example.asgi:application' ('project.asgi' in ")
    assert problem.endswith(
        "does not load on cpython-3.13t: AttributeError: module 'example.asgi' has no attribute 'application'"
    )


def test_prepare_stops_at_settings_that_do_not_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_profile_spec(ENDPOINTS, EXAMPLE)
    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_capture(cmd: list[str], *, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        calls.append((cmd, env))
        out = json.dumps({"step": "settings", "error": "SyntaxError: invalid syntax (settings.py, line 3)"})
        return subprocess.CompletedProcess(cmd, 1, out, "")

    def no_run(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("nothing may run after a failed import check")

    monkeypatch.setattr(prep, "capture", fake_capture)
    monkeypatch.setattr(prep, "run_logged", no_run)
    p = _prepared(tmp_path, "gil")
    with pytest.raises(
        LabError, match=r"^settings module 'example.settings' does not import on cpython-3.13: SyntaxError"
    ):
        prep.prepare(spec, p.env, p.check, Services(), tmp_path / "work")
    ((cmd, env),) = calls
    assert cmd[0] == str(p.env.python)
    assert env["DJANGO_SETTINGS_MODULE"] == "lab_profile_settings"
    assert env["LAB_PROFILE_SETTINGS"] == "example.settings"
    assert env["LAB_PROFILE_DB"].endswith("cpython-3.13/data/db.sqlite3")
    assert env["PYTHONPATH"].split(":") == [str(prep.SITE_DIR), str(EXAMPLE)]


def test_unexpected_status_and_login_redirect() -> None:
    endpoint = Endpoint(name="account", path="/account/", status=200)
    assert status_problem(endpoint, "wsgi", 200, "") == ""
    assert status_problem(endpoint, "asgi", 500, "") == (
        "endpoint 'account' (GET /account/ under asgi) answered 500, expected 200"
    )
    login = status_problem(endpoint, "wsgi", 302, "/accounts/login/?next=/account/")
    assert login.startswith("endpoint 'account' (GET /account/ under wsgi) redirects to the login page")
    assert "set login = true" in login
    assert "answered 301 to '/new/'" in status_problem(endpoint, "wsgi", 301, "/new/")


def test_count_pass_stops_at_the_first_unexpected_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_profile_spec(ENDPOINTS, EXAMPLE)
    started: list[str] = []

    @contextlib.contextmanager
    def fake_serving(config: Any, *args: Any) -> Iterator[tuple[None, int]]:
        started.append(config.kind)
        yield None, 1

    def fake_request(port: int, endpoint: Endpoint, form: str, cookie: str) -> tuple[int, str]:
        return (302, "/accounts/login/?next=/account/") if endpoint.name == "account" else (200, "")

    monkeypatch.setattr(prep, "serving", fake_serving)
    monkeypatch.setattr(prep, "request", fake_request)
    monkeypatch.setattr(prep, "read_counts", lambda port: {})
    monkeypatch.setattr(prep, "per_request", lambda before, after: {"requests": 3.0})
    with pytest.raises(EndpointFailed, match=r"endpoint 'account' .* redirects to the login page .* on cpython-3.13$"):
        prep.count_pass(spec, _prepared(tmp_path, "gil"), Services(), ProfilePlan().servers, tmp_path, 3)
    assert started == ["gunicorn-gthread"]


def test_setup_cookie_must_be_printed_last() -> None:
    assert cookie_from("Seeded 50 orders\nsessionid=abc123\n", ("lab_setup",)) == "sessionid=abc123"
    assert cookie_from("sessionid=a; csrftoken=b", ("x",)) == "sessionid=a; csrftoken=b"
    with pytest.raises(LabError, match="setup command 'lab_setup' must print a Cookie value .* it printed 'done'"):
        cookie_from("sessionid=x\ndone\n", ("lab_setup",))
    with pytest.raises(LabError, match="it printed nothing"):
        cookie_from("", ("lab_setup",))


# -- environments -------------------------------------------------------------------


def test_missing_wheels_are_named_from_pip_output() -> None:
    out = (
        "ERROR: Could not find a version that satisfies the requirement orjson==3.10.7 (from versions: none)\n"
        "ERROR: No matching distribution found for orjson==3.10.7\n"
    )
    assert missing_wheels(out) == ("orjson",)
    assert missing_wheels("Successfully installed django") == ()


def test_gil_reenabling_imports_make_only_free_threaded_cells_invalid() -> None:
    out = "warning line\n" + json.dumps({"reenabled": ["orjson (module orjson)"], "errors": {}, "gil_enabled": True})
    reenables = reenabling_imports(out)
    assert reenables == ("orjson (module orjson)",)
    ft = PackageCheck(interpreter="cpython-3.13t", free_threaded=True, reenables_gil=reenables)
    assert ft.invalid_reason == "the GIL is re-enabled on import by orjson (module orjson)"
    assert PackageCheck(interpreter="cpython-3.13", free_threaded=False, reenables_gil=reenables).invalid_reason == ""


def test_reenabling_imports_name_every_module_that_needs_the_gil() -> None:
    out = json.dumps(
        {"reenabled": ["gilpkg (module gilpkg._speedups)", "legacy (module legacy._c)", "legacy (module legacy._c)"]}
    )
    assert reenabling_imports(out) == ("gilpkg (module gilpkg._speedups)", "legacy (module legacy._c)")
    assert reenabling_imports("") == ()


def test_import_check_runs_verbose_without_python_gil_and_outside_the_working_directory() -> None:
    cmd = import_check_command("/env/bin/python")
    assert cmd[:4] == ["/env/bin/python", "-P", "-v", "-c"]
    # The verbose line CPython writes for every module that needs the GIL, and its warning.
    assert "which requires the GIL" in cmd[4] and "enabled to load module" in cmd[4]
    assert import_check_env({"PATH": "/bin", "PYTHON_GIL": "0"}) == {"PATH": "/bin"}
    stderr = (
        "import 'json' # <frozen>\n# cleanup[2] removing sys\nTraceback (most recent call last):\nOSError: disk full\n"
    )
    assert check_error(stderr) == "Traceback (most recent call last): OSError: disk full"
    assert check_error("# only\nimport 'x'\n") == "no output"


def _gil_project(tmp_path: Path) -> Path:
    project = tmp_path / "p"
    shutil.copytree(EXAMPLE_GIL, project, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return project


def test_local_requirements_resolve_from_the_requirements_file(tmp_path: Path) -> None:
    project = _gil_project(tmp_path)
    (project / "more.txt").write_text("-e ../lib[extra]  # editable\nrequests==2.0\n")
    requirements = project / "requirements.txt"
    requirements.write_text(requirements.read_text() + "-r more.txt\n/abs/pkg ; python_version >= '3.11'\n")
    assert local_requirements(requirements) == [
        ((project / "vendor" / "gilpkg").resolve(), False),
        ((tmp_path / "lib").resolve(), True),
        (Path("/abs/pkg"), False),
    ]


def test_env_key_follows_a_local_package_contents_not_its_place(tmp_path: Path) -> None:
    interp = _interp("ft")
    one, two = _gil_project(tmp_path / "a"), _gil_project(tmp_path / "b")
    key = env_key(interp, one / "requirements.txt")
    assert env_key(interp, two / "requirements.txt") == key  # a copy elsewhere reuses the environment
    (two / "vendor" / "gilpkg" / "build").mkdir()
    (two / "vendor" / "gilpkg" / "build" / "x.o").write_bytes(b"\0")  # pip's leftovers do not count
    assert env_key(interp, two / "requirements.txt") == key
    source = two / "vendor" / "gilpkg" / "src" / "gilpkg" / "_speedups.c"
    source.write_text(source.read_text() + "\n/* edited */\n")
    assert env_key(interp, two / "requirements.txt") != key


def test_environment_installs_from_the_project_and_records_the_gil_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _gil_project(tmp_path)
    runs: list[tuple[list[str], Path | None]] = []
    checks: list[tuple[list[str], dict[str, str]]] = []

    def fake_run_logged(cmd: list[str], *, log_path: Path, env: dict[str, str], cwd: Path | None = None) -> int:
        runs.append((cmd, cwd))
        log_path.touch()
        if cmd[1:3] == ["-m", "venv"]:
            (Path(cmd[3]) / "site").mkdir(parents=True)
        return 0

    def fake_capture(cmd: list[str], *, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        if "sysconfig" in cmd[-1]:
            return subprocess.CompletedProcess(cmd, 0, str(Path(cmd[0]).parent.parent / "site") + "\n", "")
        checks.append((cmd, env))
        out = json.dumps({"reenabled": ["gilpkg (module gilpkg._speedups)"], "errors": {}, "gil_enabled": True})
        return subprocess.CompletedProcess(cmd, 0, out + "\n", "# lots of -v output\n")

    monkeypatch.setattr(env_module, "cache_root", lambda: tmp_path / "cache")
    monkeypatch.setattr(env_module, "run_logged", fake_run_logged)
    monkeypatch.setattr(env_module, "capture", fake_capture)
    monkeypatch.setattr(lab.envs, "capture", fake_capture)  # install_gilprobe asks for site-packages
    monkeypatch.setattr(env_module, "_package_versions", lambda python: {"django": "6.1.3"})
    monkeypatch.setenv("PYTHON_GIL", "0")
    env, check = env_module.ensure_project_env(_interp("ft"), project / "requirements.txt")
    install, cwd = runs[1]
    assert install[install.index("-r") + 1] == str(project / "requirements.txt")
    assert cwd == project.resolve()  # './vendor/gilpkg' is found from the project's directory
    ((cmd, check_env),) = checks
    assert cmd[1:3] == ["-P", "-v"] and "PYTHON_GIL" not in check_env
    assert check.reenables_gil == ("gilpkg (module gilpkg._speedups)",)
    assert check.invalid_reason == "the GIL is re-enabled on import by gilpkg (module gilpkg._speedups)"
    assert (env.root / "site" / "_lab_gilprobe.pth").is_file()
    # Cached: a second call installs nothing and reads the same verdict.
    again = env_module.ensure_project_env(_interp("ft"), project / "requirements.txt")[1]
    assert again == check and len(runs) == 2


def test_server_packages_are_pinned_from_the_lab_lock() -> None:
    pins = server_requirements()
    assert [p.split("==")[0].lower() for p in pins] == ["gunicorn", "uvicorn", "h11"]
    assert all("==" in p for p in pins)


def test_servers_serve_the_wrapped_project_with_the_lab_flags() -> None:
    python = Path("/env/bin/python")
    wsgi = server_command(parse_server("gunicorn-gthread:1x8"), python, 8001)
    assert "lab_profile_app:wsgi" in wsgi and "labsite.wsgi:application" not in wsgi
    assert wsgi[wsgi.index("--threads") + 1] == "8"
    asgi = server_command(parse_server("uvicorn:1"), python, 8002)
    assert asgi[:4] == [str(python), "-m", "uvicorn", "lab_profile_app:asgi"]


# -- counts, rounds and verdicts ----------------------------------------------------


def test_per_request_counts_from_totals() -> None:
    before = {
        "requests": 2,
        "sync_to_async": 4,
        "async_to_sync": 0,
        "sql_statements": 6,
        "sql_s": 0.002,
        "db_connections_opened": 2,
        "wall_s": 0.01,
    }
    after = {
        "requests": 12,
        "sync_to_async": 34,
        "async_to_sync": 10,
        "sql_statements": 26,
        "sql_s": 0.012,
        "db_connections_opened": 12,
        "wall_s": 0.06,
    }
    counts = per_request(before, after)
    assert counts["requests"] == 10
    assert counts["crossings"] == 4.0
    assert counts["sync_to_async"] == 3.0 and counts["async_to_sync"] == 1.0
    assert counts["sql_statements"] == 2.0
    assert counts["db_ms"] == pytest.approx(1.0)
    assert counts["db_connections_opened"] == 1.0
    assert counts["wall_ms"] == pytest.approx(5.0)
    with pytest.raises(LabError, match="saw no requests"):
        per_request(before, before)


LOAD = {
    "requests": 900,
    "warmup": 100,
    "ok": 890,
    "errors": 0,
    "non_2xx": 10,
    "error_samples": [],
    "cpu_s": 0.5,
    "wall_s": 2.0,
    "throughput_rps": 450.0,
    "latency_us": {"p50": 1500, "p95": 4000},
}


def test_round_record_counts_unexpected_statuses_as_errors() -> None:
    ok = round_record(LOAD, 2.0, Endpoint(name="e", path="/"))
    assert ok["cpu_ms_per_req"] == 2.0  # 2 s over the 1,000 requests the sampler saw
    assert ok["load_errors"] == 10 and ok["load_ok"] == 890
    assert ok["latency_p95_ms"] == 4.0 and ok["load_busy"] == 0.25
    redirect = round_record(LOAD, 2.0, Endpoint(name="e", path="/", status=302))
    assert redirect["load_errors"] == 0 and redirect["load_ok"] == 900


def test_a_slices_connections_start_spread_over_one_counted_request() -> None:
    endpoint = Endpoint(name="slow", path="/slow/")

    def counts(**wall_ms: float) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """3.13 and 3.13t counts of the endpoint "slow", WSGI a bit faster than ASGI."""
        by_form = {form: {"wall_ms": ms} for form, ms in wall_ms.items()}
        return {
            "cpython-3.13": {"slow": by_form},
            "cpython-3.13t": {"slow": {f: {"wall_ms": 2 * c["wall_ms"]} for f, c in by_form.items()}},
        }

    # Counted 480 ms (WSGI) and 495 ms (ASGI) alone on 3.13, twice that on 3.13t: every slice of
    # the endpoint starts its connections over the shortest, 480 ms.
    spread = stagger_s(ProfilePlan(), "slow", counts(wsgi=480.0, asgi=495.0))
    assert spread == pytest.approx(0.48)
    cmd = load_command(endpoint, "wsgi", 8000, ProfilePlan(), "", spread)
    assert cmd[cmd.index("--stagger-ms") + 1] == "480.0"
    # A long poll's 30 s is capped; --no-stagger (or an endpoint with no count) starts them together.
    assert stagger_s(ProfilePlan(), "slow", counts(wsgi=30_000.0)) == MAX_STAGGER_S
    assert stagger_s(ProfilePlan(stagger=False), "slow", counts(wsgi=480.0)) == 0.0
    assert stagger_s(ProfilePlan(), "other", counts(wsgi=480.0)) == 0.0
    assert "--stagger-ms" not in load_command(endpoint, "wsgi", 8000, ProfilePlan(), "", 0.0)


def test_the_cli_passes_no_stagger_to_the_profile_plan(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import lab.profile

    plans: list[ProfilePlan] = []

    def stop(plan: ProfilePlan, *_args: object) -> Path:
        plans.append(plan)
        raise SpecError("stopped before building")

    monkeypatch.setattr(lab.profile, "check_before_building", stop)
    args = ["-q", "profile", "--project", str(EXAMPLE), "--endpoints", str(ENDPOINTS), "--results-dir", str(tmp_path)]
    assert main(args) == 2 and main([*args, "--no-stagger"]) == 2
    assert [p.stagger for p in plans] == [True, False]


def test_the_profile_help_states_the_stagger_cap(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["profile", "--help"])
    assert f"capped at {MAX_STAGGER_S:g} s," in " ".join(capsys.readouterr().out.split())


def _report(directory: Path, enabled_at_end: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "1.json").write_text(
        json.dumps(
            {"gil_enabled_at_start": False, "gil_enabled_at_end": enabled_at_end, "reenabled_by": [], "final": True}
        )
    )


def test_judge_marks_free_threaded_cells_invalid_for_a_reenabling_package(tmp_path: Path) -> None:
    plan = ProfilePlan()
    gil_dirs = {("cpython-3.13t", "asgi"): tmp_path / "ft-asgi", ("cpython-3.13", "asgi"): tmp_path / "gil-asgi"}
    _report(gil_dirs[("cpython-3.13t", "asgi")], enabled_at_end=False)
    _report(gil_dirs[("cpython-3.13", "asgi")], enabled_at_end=True)
    record = round_record({**LOAD, "non_2xx": 0, "ok": 900}, 1.0, Endpoint(name="e", path="/"))
    ft = Cell(interpreter="cpython-3.13t", endpoint="e", form="asgi", path="/", server="uvicorn:1", rounds=[record])
    judge(ft, _prepared(tmp_path, "ft", reenables=("orjson (module orjson)",)), plan, gil_dirs)
    assert (ft.status, ft.reason) == ("invalid", "the GIL is re-enabled on import by orjson (module orjson)")
    gil = Cell(interpreter="cpython-3.13", endpoint="e", form="asgi", path="/", server="uvicorn:1", rounds=[record])
    judge(gil, _prepared(tmp_path, "gil", reenables=("orjson (module orjson)",)), plan, gil_dirs)
    assert gil.status == "ok"
    assert gil.gil["gil_reports"] == 1


def test_judge_fails_a_cell_with_too_many_errors(tmp_path: Path) -> None:
    gil_dirs = {("cpython-3.13", "wsgi"): tmp_path / "w"}
    _report(gil_dirs[("cpython-3.13", "wsgi")], enabled_at_end=True)
    record = round_record({**LOAD, "errors": 50}, 1.0, Endpoint(name="e", path="/"))
    cell = Cell(
        interpreter="cpython-3.13", endpoint="e", form="wsgi", path="/", server="gunicorn-gthread:1x8", rounds=[record]
    )
    judge(cell, _prepared(tmp_path, "gil"), ProfilePlan(), gil_dirs)
    assert cell.status == "failed"
    assert cell.reason.startswith("60 of 900 requests failed")


# -- report ---------------------------------------------------------------------------


def _doc() -> dict[str, Any]:
    def cell(interp: str, form: str, rps: list[float], status: str = "ok") -> dict[str, Any]:
        rounds = [
            {"throughput_rps": r, "latency_p50_ms": 2.0, "latency_p95_ms": 5.0, "cpu_ms_per_req": 1.5} for r in rps
        ]
        return {
            "interpreter": interp,
            "endpoint": "orders",
            "form": form,
            "path": "/orders/",
            "server": "-",
            "status": status,
            "reason": "" if status == "ok" else "GIL re-enabled",
            "rounds": rounds,
            "gil": {},
        }

    counts = {
        "crossings": 3.0,
        "sync_to_async": 3.0,
        "async_to_sync": 0.0,
        "sql_statements": 1.0,
        "db_ms": 0.2,
        "db_connections_opened": 1.0,
        "wall_ms": 2.5,
        "requests": 20,
    }
    return {
        "interpreters": {"cpython-3.13": {"py_gil_disabled": False}, "cpython-3.13t": {"py_gil_disabled": True}},
        "project": {"settings": "example.settings", "dir": "p", "endpoints_file": "e.toml"},
        "plan": ProfilePlan().summary(),
        "database": "sqlite (throwaway)",
        "package_checks": {
            "cpython-3.13": {"no_wheel": [], "reenables_gil": [], "invalid_reason": ""},
            "cpython-3.13t": {"no_wheel": ["orjson"], "reenables_gil": [], "invalid_reason": ""},
        },
        "endpoints": [{"name": "orders", "method": "GET", "path": "/orders/", "after": "/orders/async/"}],
        "counts": {
            i: {"orders": {f: counts for f in ("wsgi", "asgi", "asgi-after")}}
            for i in ("cpython-3.13", "cpython-3.13t")
        },
        "cells": [
            cell("cpython-3.13", "wsgi", [100, 110, 120]),
            cell("cpython-3.13t", "wsgi", [150, 165, 180]),
            cell("cpython-3.13", "asgi", [50, 55, 60]),
            cell("cpython-3.13t", "asgi", [60, 66, 72]),
            cell("cpython-3.13", "asgi-after", [80, 88, 96]),
            cell("cpython-3.13t", "asgi-after", [1, 1, 1], status="invalid"),
        ],
    }


def _row(text: str, start: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(start))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_has_a_section_per_endpoint_with_paired_ratios() -> None:
    text = render(_doc())
    assert "## orders: GET `/orders/` (after: `/orders/async/`)" in text
    assert "no wheel (built from source): orjson" in text
    assert "5 of 6 cells ok." in text
    # req/s 100/110/120: mean 110, t(2)=4.303 x sd 10 / sqrt 3 = 24.8; every round 1.5x -> no spread.
    assert _row(text, "| WSGI (gunicorn) | 110.0") == [
        "WSGI (gunicorn)",
        "110.0 ± 24.8",
        "5.00 ± 0.00",
        "165.0 ± 37.3",
        "5.00 ± 0.00",
        "1.50 [1.50–1.50]",
        "1.00 [1.00–1.00]",
        "1.00 [1.00–1.00]",
    ]
    after = _row(text, "| ASGI, async 'after' | 88.0")
    assert after[3:5] == ["invalid", "—"] and after[5] == "—"
    assert _row(text, "| ASGI / WSGI |") == [
        "ASGI / WSGI",
        "0.50 [0.50–0.50]",
        "1.00 [1.00–1.00]",
        "0.40 [0.40–0.40]",
        "1.00 [1.00–1.00]",
    ]
    assert _row(text, "| after / before (both ASGI) |")[1:] == ["1.60 [1.60–1.60]", "1.00 [1.00–1.00]", "—", "—"]
    assert _row(text, "| after (ASGI) / WSGI |")[1] == "0.80 [0.80–0.80]"
    # 2.5 ms alone - 1.5 ms CPU - 0.2 ms database = 0.8 ms other I/O (estimate)
    assert _row(text, "| WSGI (gunicorn) | cpython-3.13 |")[2:] == [
        "1.50 ± 0.00",
        "1.0",
        "0.20",
        "3.0 (3/0)",
        "1.00",
        "2.50",
        "0.80",
    ]
    assert _row(text, "| ASGI, async 'after' | cpython-3.13t |")[2] == "invalid"
    assert "over the 3 measured rounds (n = 3)" in text
    assert (
        "connections started spread over one counted request's wall time (the endpoint's shortest over its "
        "forms and interpreters, at most 5 s)" in text
    )
    older = _doc()
    del older["plan"]["stagger"]  # profile runs before the stagger
    assert "connections started together" in render(older)


def test_report_spreads_vary_with_the_rounds_and_one_round_has_no_interval() -> None:
    doc = _doc()
    for cell in doc["cells"]:
        if cell["interpreter"] == "cpython-3.13" and cell["form"] == "wsgi":
            for r, p95 in zip(cell["rounds"], (4.0, 5.0, 9.0), strict=True):
                r["latency_p95_ms"] = p95
    text = render(doc)
    # p95 4/5/9: mean 6.00, sd 2.646 -> half-width 4.303 x 2.646 / sqrt 3 = 6.57
    assert _row(text, "| WSGI (gunicorn) | 110.0")[2] == "6.00 ± 6.57"
    ratio = _row(text, "| WSGI (gunicorn) | 110.0")[6]
    assert ratio.startswith("0.8") and ratio != "1.00 [1.00–1.00]"  # 5/4, 5/5, 5/9 paired per round
    doc = _doc()
    doc["plan"]["rounds"] = 1
    for cell in doc["cells"]:
        cell["rounds"] = cell["rounds"][:1]
    one = render(doc)
    assert _row(one, "| WSGI (gunicorn) | 100.0") == [
        "WSGI (gunicorn)",
        "100.0",
        "5.00",
        "150.0",
        "5.00",
        "1.50",
        "1.00",
        "1.00",
    ]


def test_report_names_the_package_that_invalidates_the_free_threaded_cells() -> None:
    doc = _doc()
    reason = "the GIL is re-enabled on import by gilpkg (module gilpkg._speedups)"
    doc["package_checks"]["cpython-3.13t"] = {
        "no_wheel": [],
        "reenables_gil": ["gilpkg (module gilpkg._speedups)"],
        "invalid_reason": reason,
    }
    for cell in doc["cells"]:
        if cell["interpreter"] == "cpython-3.13t":
            cell["status"], cell["reason"] = "invalid", reason
    text = render(doc)
    assert (
        "- cpython-3.13t: no wheel (built from source): none; re-enables the GIL on import: "
        f"gilpkg (module gilpkg._speedups). **cpython-3.13t cells invalid: {reason}.**"
    ) in text
    assert "3 of 6 cells ok." in text
    assert f"- orders wsgi on cpython-3.13t: invalid ({reason})" in text
    assert _row(text, "| WSGI (gunicorn) | 110.0")[3:] == ["invalid", "—", "—", "—", "—"]
    assert _row(text, "| ASGI / WSGI |")[3:] == ["—", "—"]
