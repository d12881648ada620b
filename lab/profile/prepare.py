"""Before measuring a user's project: services, imports, database, login, status, counts.

Per interpreter, in order, each failure one ``LabError`` line with nothing left running:

1. the settings module and both application paths import in the project's environment
   (through the lab's settings overlay, ``site/lab_profile_settings.py``);
2. ``migrate`` builds a throwaway database (SQLite in the run's work directory, or the
   checked loopback PostgreSQL), then the user's setup command runs and prints the cookie;
3. the counting pass: each server (WSGI, ASGI) starts once with the counters on; every
   endpoint form must answer its expected status (a redirect to a login page is named as
   such), then ``count_requests`` sequential requests give its per-request counts.

Hands on ``Prepared`` (environment, cookie, data directory) and the counts per
(interpreter, endpoint, form); ``lab.profile.measure`` serves the same project with the
counters off.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.envs import WorkloadEnv
from lab.errors import LabError, ServerStartFailed
from lab.measure.context import LAB_ROOT
from lab.proc import ManagedProcess, capture, child_env, managed, run_logged, tail
from lab.profile.env import PackageCheck
from lab.profile.spec import Endpoint, Form, ProfileSpec
from lab.serve import READY_TIMEOUT_S, free_port, responds, stop_server
from lab.servers import HOST, ServerConfig, command

log = logging.getLogger("lab.profile")
SITE_DIR = Path(__file__).resolve().parent / "site"
READY_PATH = "/__lab__/ready"
COUNTS_PATH = "/__lab__/counts"
# A Cookie header value: name=value pairs separated by "; ".
_COOKIE = re.compile(r"^[^=;\s]+=[^;\r\n]*(; [^=;\s]+=[^;\r\n]*)*$")
IMPORT_CHECK = r"""
import importlib, json, os, sys
step = "settings"
try:
    importlib.import_module(os.environ["LAB_PROFILE_SETTINGS"])
    import django
    django.setup()
    for step in ("wsgi", "asgi"):
        module, _, attribute = os.environ["LAB_PROFILE_" + step.upper()].partition(":")
        if not hasattr(importlib.import_module(module), attribute):
            raise AttributeError(f"module '{module}' has no attribute '{attribute}'")
except BaseException as exc:
    print(json.dumps({"step": step, "error": f"{type(exc).__name__}: {exc}"}))
    sys.exit(1)
print(json.dumps({"step": "ok"}))
"""


class EndpointFailed(LabError):
    """An endpoint of the user's project did not answer as its spec says."""

    exit_code = 2


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """One interpreter's environment, ready to serve the project."""

    env: WorkloadEnv
    check: PackageCheck
    data_dir: Path
    cookie: str = ""

    @property
    def name(self) -> str:
        return self.env.interpreter.spec_name


@dataclass(frozen=True, kw_only=True)
class Services:
    """What every process of the run talks to: the database URL ('' = SQLite) and upstream."""

    database_url: str = ""
    upstream_url: str = ""


def env_vars(
    spec: ProfileSpec, prepared: Prepared, services: Services, gil_dir: Path, *, count: bool
) -> dict[str, str]:
    """What every process of the project sees: the overlay, the user's paths, the database."""
    project = spec.project
    return {
        "DJANGO_SETTINGS_MODULE": "lab_profile_settings",
        "LAB_PROFILE_SETTINGS": project.settings,
        "LAB_PROFILE_WSGI": project.wsgi,
        "LAB_PROFILE_ASGI": project.asgi,
        "LAB_PROFILE_DB": str(prepared.data_dir / "db.sqlite3"),
        "LAB_PROFILE_DATABASE_URL": services.database_url,
        "LAB_PROFILE_COUNT": "1" if count else "0",
        "LAB_GIL_REPORT_DIR": str(gil_dir),
        "PYTHONPATH": f"{SITE_DIR}:{spec.project_dir.resolve()}",
        **({project.upstream_env: services.upstream_url} if project.upstream_env else {}),
    }


def import_problem(spec: ProfileSpec, interpreter: str, stdout: str) -> str:
    """The import check's output -> one line naming what does not import ('' when all do)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        result: dict[str, str] = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {"step": "settings", "error": lines[-1]}
    step, error = result.get("step", "settings"), result.get("error", "no output")
    if step == "ok":
        return ""
    if step == "settings":
        return f"settings module '{spec.project.settings}' does not import on {interpreter}: {error}"
    path = spec.project.wsgi if step == "wsgi" else spec.project.asgi
    return f"application '{path}' ('project.{step}' in {spec.source}) does not load on {interpreter}: {error}"


def cookie_from(stdout: str, command: tuple[str, ...]) -> str:
    """The setup command's cookie: its last non-empty stdout line, ``name=value[; ...]``."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines or not _COOKIE.match(lines[-1]):
        got = repr(lines[-1][:80]) if lines else "nothing"
        raise LabError(
            f"setup command '{' '.join(command)}' must print a Cookie value such as 'sessionid=...' as its "
            f"last line; it printed {got}"
        )
    return lines[-1]


def status_problem(endpoint: Endpoint, form: Form, status: int, location: str) -> str:
    """'' when the endpoint answered as expected, else one line saying what it did."""
    if status == endpoint.status:
        return ""
    where = f"endpoint '{endpoint.name}' ({endpoint.method} {endpoint.path_of(form)} under {form})"
    if 300 <= status < 400 and "login" in location.lower():
        return (
            f"{where} redirects to the login page {location!r}: set login = true and name a setup command that "
            "prints a session cookie"
        )
    moved = f" to {location!r}" if location else ""
    return f"{where} answered {status}{moved}, expected {endpoint.status}"


def prepare(spec: ProfileSpec, env: WorkloadEnv, check: PackageCheck, services: Services, work: Path) -> Prepared:
    """Imports checked, database migrated, setup command run: ready to serve."""
    name = env.interpreter.spec_name
    data_dir = work / name / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    prepared = Prepared(env=env, check=check, data_dir=data_dir)
    gil_dir = work / name / "gil-prepare"
    gil_dir.mkdir(parents=True, exist_ok=True)
    variables = child_env(env_vars(spec, prepared, services, gil_dir, count=False))
    python = str(env.python)
    done = capture([python, "-c", IMPORT_CHECK], env=variables)
    # The check prints one JSON line; a crash before it (a broken interpreter) leaves stderr.
    problem = import_problem(spec, name, done.stdout.strip() or done.stderr) if done.returncode else ""
    if problem:
        raise LabError(problem)
    log_path = work / "logs" / f"prepare-{name}.log"
    cmd = [python, "-m", "django", "migrate", "--noinput"]
    if run_logged(cmd, log_path=log_path, env=variables, cwd=spec.project_dir) != 0:
        raise LabError(f"migrating the throwaway database on {name} failed: {tail(log_path, 1)} (log: {log_path})")
    if not spec.project.setup:
        return prepared
    done = capture([python, "-m", "django", *spec.project.setup], env=variables)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise LabError(f"setup command '{' '.join(spec.project.setup)}' failed on {name}: {last[0]}")
    return Prepared(env=env, check=check, data_dir=data_dir, cookie=cookie_from(done.stdout, spec.project.setup))


def server_command(config: ServerConfig, python: Path, port: int) -> list[str]:
    """The lab's command for this server shape (``lab.servers.command``) serving the
    profile's application (``lab_profile_app``) instead of the lab's own workloads."""
    own = f"labsite.{config.interface}:application"
    return [f"lab_profile_app:{config.interface}" if part == own else part for part in command(config, python, port)]


@contextlib.contextmanager
def serving(
    config: ServerConfig, spec: ProfileSpec, prepared: Prepared, variables: dict[str, str], log_path: Path
) -> Iterator[tuple[ManagedProcess, int]]:
    """Start the server on a free loopback port, wait until it answers, always stop it."""
    port = free_port()
    with managed(
        server_command(config, prepared.env.python, port),
        name=f"{config.label} on {prepared.name}",
        log_path=log_path,
        env=child_env(variables),
        cwd=spec.project_dir,
        stop_signal=config.stop_signal,
    ) as server:
        try:
            server.wait_ready(lambda: responds(port, READY_PATH), timeout=READY_TIMEOUT_S)
        except ServerStartFailed as exc:
            last = exc.log_tail.strip().splitlines()[-1:] or ["no output"]
            raise ServerStartFailed(f"{exc}: {last[0]}", log_tail=exc.log_tail) from None
        try:
            yield server, port
        finally:
            stop_server(server)


def request(port: int, endpoint: Endpoint, form: Form, cookie: str) -> tuple[int, str]:
    """One request as the load generator sends it: (status, Location header)."""
    headers = dict(line.split(": ", 1) for line in endpoint.request_headers(cookie))
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(endpoint.method, endpoint.path_of(form), body=endpoint.body.encode() or None, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Location") or ""
    finally:
        conn.close()


def read_counts(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", COUNTS_PATH)
        totals: dict[str, float] = json.loads(conn.getresponse().read())
        return totals
    finally:
        conn.close()


def per_request(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Totals read around a batch of sequential requests -> per-request figures (ms for times)."""
    n = after["requests"] - before["requests"]
    if n <= 0:
        raise LabError("the counting pass saw no requests: the server did not load the lab's counters")

    def each(key: str, scale: float = 1.0) -> float:
        return round(scale * (after[key] - before[key]) / n, 4)

    return {
        "requests": n,
        "crossings": each("sync_to_async") + each("async_to_sync"),
        "sync_to_async": each("sync_to_async"),
        "async_to_sync": each("async_to_sync"),
        "sql_statements": each("sql_statements"),
        "db_ms": each("sql_s", 1000.0),
        "db_connections_opened": each("db_connections_opened"),
        "wall_ms": each("wall_s", 1000.0),
    }


def count_pass(
    spec: ProfileSpec,
    prepared: Prepared,
    services: Services,
    configs: dict[str, ServerConfig],
    work: Path,
    requests: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """endpoint -> form -> per-request counts, each form's status checked first."""
    counts: dict[str, dict[str, dict[str, float]]] = {}
    for interface, config in configs.items():
        gil_dir = work / prepared.name / f"gil-count-{interface}"
        gil_dir.mkdir(parents=True, exist_ok=True)
        variables = env_vars(spec, prepared, services, gil_dir, count=True)
        log_path = work / "logs" / f"count-{prepared.name}-{interface}.log"
        with serving(config, spec, prepared, variables, log_path) as (_server, port):
            for endpoint in spec.endpoints:
                for form in (f for f in endpoint.forms if f.startswith(interface)):
                    status, location = request(port, endpoint, form, prepared.cookie)
                    problem = status_problem(endpoint, form, status, location)
                    if problem:
                        raise EndpointFailed(f"{problem} on {prepared.name}")
                    before = read_counts(port)
                    for _ in range(requests):
                        request(port, endpoint, form, prepared.cookie)
                    counts.setdefault(endpoint.name, {})[form] = per_request(before, read_counts(port))
    return counts


@contextlib.contextmanager
def upstream_running(work: Path) -> Iterator[str]:
    """The lab's upstream simulator (``lab.upstream``) for the project's slow calls."""
    import signal

    from lab.serve import responds_tcp

    port = free_port()
    with managed(
        [sys.executable, "-m", "lab.upstream", "--port", str(port)],
        name="upstream simulator",
        log_path=work / "logs" / "upstream.log",
        env=child_env({"PYTHONPATH": str(LAB_ROOT)}),
        stop_signal=signal.SIGINT,
    ) as upstream:
        upstream.wait_ready(lambda: responds_tcp(port), timeout=30)
        yield f"http://{HOST}:{port}"
