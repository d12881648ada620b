"""The endpoints file of ``lab profile``: a user's Django project and the requests to measure.

One TOML file, a ``[project]`` table and one ``[[endpoint]]`` table per request::

    [project]
    settings = "example.settings"            # the project's own settings module
    wsgi = "example.wsgi:application"        # module:attribute, as gunicorn takes it
    asgi = "example.asgi:application"        # as uvicorn takes it
    requirements = "requirements.txt"        # relative to --project; installed on both interpreters
    setup = ["lab_login"]                    # optional: management command (and args) run after migrate
    upstream_env = "EXAMPLE_UPSTREAM_URL"    # optional: the lab's upstream simulator URL goes here

    [[endpoint]]
    name = "orders"
    path = "/orders/"
    method = "GET"                           # default GET
    status = 200                             # expected status, default 200
    login = true                             # send the cookie the setup command printed
    headers = { Accept = "text/html" }
    cookies = { theme = "dark" }
    body = ""
    after = "/orders/async/"                 # optional: the converted async version

Loaded into frozen dataclasses; every problem is one ``SpecError`` naming the file and key.
The setup command's contract: its last non-empty stdout line is a Cookie header value
(``sessionid=...; csrftoken=...``), sent by every endpoint with ``login = true``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from lab.errors import SpecError
from lab.spec import _check_keys, read_toml

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
METHODS: tuple[Method, ...] = get_args(Method)
# Which measured form of an endpoint: its own path under WSGI and under ASGI (sync views
# adapted by Django), and the ``after`` path under ASGI (the converted async version).
Form = Literal["wsgi", "asgi", "asgi-after"]
FORMS: tuple[Form, ...] = get_args(Form)
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


@dataclass(frozen=True, kw_only=True)
class Project:
    settings: str
    wsgi: str
    asgi: str
    requirements: str
    setup: tuple[str, ...] = ()
    upstream_env: str = ""


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    name: str
    path: str
    method: Method = "GET"
    status: int = 200
    login: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    cookies: tuple[tuple[str, str], ...] = ()
    body: str = ""
    after: str = ""

    @property
    def forms(self) -> tuple[Form, ...]:
        return ("wsgi", "asgi", "asgi-after") if self.after else ("wsgi", "asgi")

    def path_of(self, form: Form) -> str:
        return self.after if form == "asgi-after" else self.path

    def request_headers(self, login_cookie: str) -> list[str]:
        """``Name: value`` lines for lab.load and the status check: the endpoint's headers and
        one Cookie header with its cookies and, with ``login``, the setup command's cookie."""
        lines = [f"{k}: {v}" for k, v in self.headers]
        cookie = "; ".join([*(f"{k}={v}" for k, v in self.cookies), *([login_cookie] if self.login else [])])
        return [*lines, f"Cookie: {cookie}"] if cookie else lines


@dataclass(frozen=True, kw_only=True)
class ProfileSpec:
    source: Path
    project_dir: Path
    project: Project
    endpoints: tuple[Endpoint, ...] = field(default=())

    @property
    def requirements_path(self) -> Path:
        return self.project_dir / self.project.requirements


def _string(path: Path, key: str, value: Any, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
    if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
        raise SpecError(f"{path}: '{key}' must be {what or 'a string'}, got {value!r}")
    return value


def _pairs(path: Path, key: str, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise SpecError(f"{path}: '{key}' must be a table of strings, e.g. {{ Accept = \"text/html\" }}, got {value!r}")
    for name in value:
        if not name or any(c in name for c in ":;=\r\n "):
            raise SpecError(f"{path}: '{key}' has an invalid name {name!r}")
    return tuple(value.items())


def _url_path(path: Path, key: str, value: Any) -> str:
    text = _string(path, key, value)
    if not text.startswith("/") or any(c in text for c in " \r\n#"):
        raise SpecError(f"{path}: '{key}' must be a path starting with '/' (no spaces or fragment), got {value!r}")
    return text


def _app_path(path: Path, key: str, value: Any) -> str:
    text = _string(path, key, value)
    module, _, attribute = text.partition(":")
    if not _DOTTED.match(module) or not attribute.isidentifier():
        raise SpecError(
            f"{path}: '{key}' must be 'module.path:attribute', e.g. 'mysite.wsgi:application', got {value!r}"
        )
    return text


def _project(path: Path, data: Any) -> Project:
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a [project] table")
    _check_keys(path, "project", data, Project)
    setup = data.get("setup", [])
    if not isinstance(setup, list) or not all(isinstance(s, str) and s for s in setup):
        raise SpecError(f"{path}: 'project.setup' must be a list of strings (a management command and its args)")
    return Project(
        settings=_string(path, "project.settings", data["settings"], _DOTTED, "a dotted module name"),
        wsgi=_app_path(path, "project.wsgi", data["wsgi"]),
        asgi=_app_path(path, "project.asgi", data["asgi"]),
        requirements=_string(path, "project.requirements", data["requirements"]),
        setup=tuple(setup),
        upstream_env=_string(
            path,
            "project.upstream_env",
            data.get("upstream_env", ""),
            re.compile(r"^$|" + _ENV_NAME.pattern),
            "an environment variable name",
        ),
    )


def _endpoint(path: Path, index: int, data: Any) -> Endpoint:
    where = f"endpoint[{index}]"
    if not isinstance(data, dict):
        raise SpecError(f"{path}: '{where}' must be a table")
    _check_keys(path, where, data, Endpoint)
    where = f"endpoint '{data['name']}'" if isinstance(data["name"], str) else where
    method = data.get("method", "GET")
    if method not in METHODS:
        raise SpecError(f"{path}: '{where}.method' is {method!r}; accepted: {', '.join(METHODS)}")
    status = data.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise SpecError(f"{path}: '{where}.status' must be an HTTP status 100..599, got {status!r}")
    login = data.get("login", False)
    if not isinstance(login, bool):
        raise SpecError(f"{path}: '{where}.login' must be true or false, got {login!r}")
    after = data.get("after", "")
    return Endpoint(
        name=_string(path, f"{where}.name", data["name"], _NAME, "lower-case letters, digits, '-' or '_' (≤40)"),
        path=_url_path(path, f"{where}.path", data["path"]),
        method=method,
        status=status,
        login=login,
        headers=_pairs(path, f"{where}.headers", data.get("headers", {})),
        cookies=_pairs(path, f"{where}.cookies", data.get("cookies", {})),
        body=_string(path, f"{where}.body", data.get("body", "")),
        after=_url_path(path, f"{where}.after", after) if after else "",
    )


def load_profile_spec(endpoints_file: Path, project_dir: Path) -> ProfileSpec:
    """Read and check the endpoints file; the project directory must hold what it names."""
    data = read_toml(endpoints_file)
    unknown = sorted(set(data) - {"project", "endpoint"})
    if unknown:
        raise SpecError(f"{endpoints_file}: unknown key '{unknown[0]}'; accepted: project, endpoint")
    project = _project(endpoints_file, data.get("project"))
    raw = data.get("endpoint", [])
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"{endpoints_file}: no [[endpoint]] tables; add at least one endpoint to measure")
    endpoints = tuple(_endpoint(endpoints_file, i, e) for i, e in enumerate(raw))
    names = [e.name for e in endpoints]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise SpecError(f"{endpoints_file}: endpoint name '{duplicate}' is used twice; names must be unique")
    spec = ProfileSpec(source=endpoints_file, project_dir=project_dir, project=project, endpoints=endpoints)
    check_project_files(spec)
    return spec


def module_file(project_dir: Path, module: str) -> Path | None:
    """Where ``module`` lives under the project directory (module.py or package/__init__.py)."""
    base = project_dir.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def check_project_files(spec: ProfileSpec) -> None:
    """Before installing anything: the project directory, its requirements and the modules
    the spec names exist (whether they import is checked in the environments)."""
    src, project = spec.source, spec.project
    if not spec.project_dir.is_dir():
        raise SpecError(f"project directory '{spec.project_dir}' not found")
    if not spec.requirements_path.is_file():
        raise SpecError(f"{src}: 'project.requirements' names '{spec.requirements_path}', which does not exist")
    checks = (("settings", project.settings), ("wsgi", project.wsgi), ("asgi", project.asgi))
    for key, value in checks:
        module = value.partition(":")[0]
        if module_file(spec.project_dir, module) is None:
            what = "settings module" if key == "settings" else "application module"
            raise SpecError(
                f"{src}: 'project.{key}' names {what} '{module}', which is not under '{spec.project_dir}' "
                f"(expected {module.replace('.', '/')}.py)"
            )
