"""Specs the user configures, loaded from TOML into frozen dataclasses.

Downstream code takes these dataclasses, never raw dicts. Every loader rejects unknown
keys and names the file and key, so a typo in a spec fails loudly instead of silently
falling back to a default.

Over 400 lines on purpose: every user-facing spec (interpreter, mix, plan) with the
validation that names the bad file, key and value; the checks are the module's reason to
exist and read best beside the fields they guard.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from lab.errors import SpecError
from lab.servers import STACKS, ServerConfig, Stack, parse_server

REPO_ROOT = Path(__file__).resolve().parent.parent
INTERPRETERS_DIR = REPO_ROOT / "interpreters"
MIXES_DIR = REPO_ROOT / "workloads" / "mixes"
PLANS_DIR = Path(__file__).resolve().parent / "plans"

BuildProfile = Literal["fast", "release"]
BUILD_PROFILES: tuple[BuildProfile, ...] = get_args(BuildProfile)
# What each profile adds to the spec's own configure flags. `release` is what the
# python.org/distro builds use; `fast` keeps CI and quick looks within minutes.
PROFILE_FLAGS: dict[BuildProfile, tuple[str, ...]] = {
    "fast": (),
    "release": ("--enable-optimizations", "--with-lto"),
}
FREE_THREADING_FLAG = "--disable-gil"

Variant = Literal["sync", "async", "bridged", "sync-on-asgi", "async-db"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)
DjangoLine = Literal["6.1", "5.2"]
DJANGO_LINES: tuple[DjangoLine, ...] = get_args(DjangoLine)
# Newest release by default; the 5.2 LTS line is what most teams weighing a migration run.
DJANGO_LOCK_FILES: dict[DjangoLine, str] = {"6.1": "requirements.lock", "5.2": "requirements-django52.lock"}
# Which server interface each variant runs under.
VARIANT_INTERFACE: dict[Variant, str] = {
    "sync": "wsgi",
    "async": "asgi",
    "bridged": "asgi",
    "sync-on-asgi": "asgi",
    "async-db": "asgi",
}
# default: Security + Common; sync-audit: plus a sync-only DB middleware; django-default:
# startproject's stack (sessions, CSRF, auth, messages) with a logged-in client, which
# needs CLIENT_COOKIE on every request.
Middleware = Literal["default", "sync-audit", "django-default"]
MIDDLEWARES: tuple[Middleware, ...] = get_args(Middleware)
# The lab's logged-in client (same values as workloads/shop/identity.py, which seeds them):
# send ``Cookie: CLIENT_COOKIE`` on every request (harmless where no middleware reads it),
# and the token in X-CSRFToken on a POST (the orm-crud mix's headers carry it).
SESSION_KEY = "labsession0000000000000000000001"
CSRF_TOKEN = "labcsrf0000000000000000000000001"
CLIENT_COOKIE = f"sessionid={SESSION_KEY}; csrftoken={CSRF_TOKEN}"
Tier = Literal["handler", "http"]
TIERS: tuple[Tier, ...] = get_args(Tier)

Endpoint = Literal["cpu", "orm", "template", "external", "billing", "crud", "stream", "long-poll"]
ENDPOINTS: tuple[Endpoint, ...] = get_args(Endpoint)
# Accepted query parameters per endpoint: (low, high) for integers, a tuple of strings
# for choices. The workload views enforce the same ranges and answer 400 otherwise.
ENDPOINT_PARAMS: dict[str, dict[str, tuple[int, int] | tuple[str, ...]]] = {
    "cpu": {"work": (1, 100_000)},
    "orm": {"n": (1, 500), "mode": ("lazy", "select")},
    "template": {"rows": (1, 2_000)},
    "external": {
        "k": (1, 64),
        "latency": (0, 10_000),
        "mode": ("sequential", "fanout"),
        "client": ("httpx", "aiohttp"),
        "dist": ("fixed", "exp"),
    },
    "billing": {"account": (1, 200), "latency": (0, 10_000), "client": ("httpx", "aiohttp"), "dist": ("fixed", "exp")},
    "crud": {"quantity": (1, 1_000)},
    "stream": {"events": (1, 1_000), "interval": (0, 10_000)},
    "long-poll": {"hold": (0, 60_000)},
}
Method = Literal["GET", "POST"]
METHODS: tuple[Method, ...] = get_args(Method)
UPSTREAM_ENDPOINTS = frozenset({"external", "billing"})

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SpecError(f"spec file '{path}' not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec file '{path}' is not valid TOML: {exc}") from None


def read_table(path: Path, name: str) -> dict[str, Any]:
    """The one ``[name]`` table a spec file must consist of."""
    data = read_toml(path)
    table = data.get(name)
    if set(data) != {name} or not isinstance(table, dict):
        raise SpecError(f"{path}: expected exactly one [{name}] table")
    return table


def _check_keys(path: Path, table: str, data: dict[str, Any], cls: type[Any]) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{path}: unknown key '{table}.{unknown[0]}'; accepted: {', '.join(sorted(known))}")
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - set(data))
    if missing:
        raise SpecError(f"{path}: missing key '{table}.{missing[0]}'")


def _str_tuple(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{path}: '{key}' must be a list of strings, got {value!r}")
    return tuple(value)


def _int_tuple(path: Path, key: str, value: Any) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise SpecError(f"{path}: '{key}' must be a non-empty list of positive integers, got {value!r}")
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class InterpreterSpec:
    """One CPython build: where its source comes from and how it is configured."""

    name: str
    version: str
    url: str
    sha256: str
    configure_flags: tuple[str, ...] = ()
    source_path: Path | None = None  # set when loaded from a file, for messages

    @property
    def free_threaded(self) -> bool:
        return FREE_THREADING_FLAG in self.configure_flags

    @property
    def tarball_name(self) -> str:
        return f"Python-{self.version}.tar.xz"

    def flags_for(self, profile: BuildProfile) -> tuple[str, ...]:
        return self.configure_flags + PROFILE_FLAGS[profile]

    @classmethod
    def from_toml(cls, path: Path) -> InterpreterSpec:
        table = read_table(path, "interpreter")
        _check_keys(path, "interpreter", table, cls)
        sha = table["sha256"]
        if not isinstance(sha, str) or not _SHA256_RE.match(sha):
            raise SpecError(f"{path}: 'interpreter.sha256' must be 64 lowercase hex digits, got {sha!r}")
        for key in ("name", "version", "url"):
            if not isinstance(table[key], str) or not table[key]:
                raise SpecError(f"{path}: 'interpreter.{key}' must be a non-empty string")
        flags = _str_tuple(path, "interpreter.configure_flags", table.get("configure_flags", []))
        return cls(
            name=table["name"],
            version=table["version"],
            url=table["url"],
            sha256=sha,
            configure_flags=flags,
            source_path=path,
        )


def available_interpreters(directory: Path = INTERPRETERS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_interpreter(name: str, directory: Path = INTERPRETERS_DIR) -> InterpreterSpec:
    """Load ``interpreters/<name>.toml``; a path to a TOML file is accepted too."""
    path = Path(name) if name.endswith(".toml") else directory / f"{name}.toml"
    if not path.is_file():
        raise SpecError(
            f"interpreter spec '{name}' not found; available: "
            f"{', '.join(available_interpreters(directory)) or '(none)'}"
        )
    spec = InterpreterSpec.from_toml(path)
    if path.stem != spec.name:
        raise SpecError(f"{path}: 'interpreter.name' is {spec.name!r} but the file is named {path.stem!r}")
    return spec


def spec_differences(gil: InterpreterSpec, ft: InterpreterSpec) -> list[str]:
    """What differs between a GIL and a free-threaded spec besides ``--disable-gil``.

    An empty list means the pair is matched: same source, same flags.
    """
    diffs: list[str] = []
    for key in ("version", "url", "sha256"):
        a, b = getattr(gil, key), getattr(ft, key)
        if a != b:
            diffs.append(f"{key}: {a!r} != {b!r}")
    if gil.free_threaded:
        diffs.append(f"{gil.name} has {FREE_THREADING_FLAG} but is used as the GIL build")
    if not ft.free_threaded:
        diffs.append(f"{ft.name} lacks {FREE_THREADING_FLAG} but is used as the free-threaded build")
    gil_flags = [f for f in gil.configure_flags if f != FREE_THREADING_FLAG]
    ft_flags = [f for f in ft.configure_flags if f != FREE_THREADING_FLAG]
    if gil_flags != ft_flags:
        diffs.append(f"configure_flags besides {FREE_THREADING_FLAG}: {gil_flags} != {ft_flags}")
    return diffs


def check_servers_cover(variants: tuple[Variant, ...], servers: tuple[ServerConfig, ...], where: str) -> None:
    """Every variant needs a server of its interface (WSGI for sync, ASGI for the others)."""
    interfaces = {s.interface for s in servers}
    for variant in variants:
        needed = VARIANT_INTERFACE[variant]
        if needed not in interfaces:
            prefix = f"{where}: " if where else ""
            raise SpecError(
                f"{prefix}variant {variant!r} needs a {needed.upper()} server; "
                f"servers: {', '.join(s.spec for s in servers)}"
            )


def check_param(where: str, endpoint: str, key: str, value: Any) -> None:
    accepted = ENDPOINT_PARAMS[endpoint]
    if key not in accepted:
        raise SpecError(
            f"{where}: unknown parameter {key!r} for endpoint {endpoint!r}; accepted: {', '.join(accepted)}"
        )
    rule = accepted[key]
    if isinstance(rule[0], int):
        low, high = rule
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SpecError(f"{where}: {key}={value!r} is out of range; accepted: integers {low}..{high}")
    elif value not in rule:
        raise SpecError(f"{where}: {key}={value!r} is not accepted; accepted: {', '.join(map(str, rule))}")


@dataclass(frozen=True, kw_only=True)
class MixPoint:
    """One concrete request shape: an endpoint with fixed parameters."""

    mix: str
    endpoint: Endpoint
    params: tuple[tuple[str, str | int], ...]
    label: str  # "billing" or "io-sweep@latency=20"
    # What the client sends besides the query (from the mix): the load generator and the
    # probe send these unchanged, plus ``Cookie: CLIENT_COOKIE``.
    method: Method = "GET"
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def query(self) -> str:
        return "&".join(f"{k}={v}" for k, v in self.params)

    @property
    def needs_upstream(self) -> bool:
        return self.endpoint in UPSTREAM_ENDPOINTS

    @property
    def nominal_wait_ms(self) -> int:
        """Time a request spends waiting (upstream, or on a timer) by construction (the views' defaults apply)."""
        params = dict(self.params)
        if self.endpoint == "stream":
            return int(params.get("events", 5)) * int(params.get("interval", 100))
        if self.endpoint == "long-poll":
            return int(params.get("hold", 1_000))
        if self.endpoint == "billing":
            return int(params.get("latency", 20))
        if self.endpoint == "external":
            latency, calls = int(params.get("latency", 10)), int(params.get("k", 3))
            return latency if params.get("mode", "sequential") == "fanout" else latency * calls
        return 0


@dataclass(frozen=True, kw_only=True)
class Mix:
    """A named request shape from ``workloads/mixes/<name>.toml``, optionally swept."""

    name: str
    description: str
    endpoint: Endpoint
    params: tuple[tuple[str, str | int], ...] = ()
    sweep_param: str | None = None
    sweep_values: tuple[int, ...] = ()
    method: Method = "GET"
    body: str = ""  # sent as is (e.g. a form: "quantity=2"); POST only
    headers: tuple[tuple[str, str], ...] = ()

    def points(self, sweep_values: tuple[int, ...] | None = None) -> list[MixPoint]:
        if self.sweep_param is None:
            return [self._point(self.params, self.name)]
        values = sweep_values if sweep_values is not None else self.sweep_values
        return [
            self._point((*self.params, (self.sweep_param, v)), f"{self.name}@{self.sweep_param}={v}") for v in values
        ]

    def _point(self, params: tuple[tuple[str, str | int], ...], label: str) -> MixPoint:
        return MixPoint(
            mix=self.name,
            endpoint=self.endpoint,
            params=params,
            label=label,
            method=self.method,
            body=self.body,
            headers=self.headers,
        )

    @classmethod
    def from_toml(cls, path: Path) -> Mix:
        table = read_table(path, "mix")
        allowed = {"name", "description", "endpoint", "params", "sweep", "method", "body", "headers"}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise SpecError(f"{path}: unknown key 'mix.{unknown[0]}'; accepted: {', '.join(sorted(allowed))}")
        for key in ("name", "description", "endpoint"):
            if not isinstance(table.get(key), str):
                raise SpecError(f"{path}: 'mix.{key}' must be a string")
        endpoint = table["endpoint"]
        if endpoint not in ENDPOINTS:
            raise SpecError(f"{path}: unknown endpoint {endpoint!r}; accepted: {', '.join(ENDPOINTS)}")
        params = table.get("params", {})
        if not isinstance(params, dict):
            raise SpecError(f"{path}: 'mix.params' must be a table")
        for key, value in params.items():
            check_param(str(path), endpoint, key, value)
        sweep = table.get("sweep")
        sweep_param, sweep_values = None, ()
        if sweep is not None:
            if not isinstance(sweep, dict) or set(sweep) != {"param", "values"}:
                raise SpecError(f"{path}: 'mix.sweep' needs exactly 'param' and 'values'")
            sweep_param = sweep["param"]
            if not isinstance(sweep["values"], list) or not sweep["values"]:
                raise SpecError(f"{path}: 'mix.sweep.values' must be a non-empty list")
            for value in sweep["values"]:
                check_param(str(path), endpoint, sweep_param, value)
            sweep_values = tuple(sweep["values"])
        method = table.get("method", "GET")
        if method not in METHODS:
            raise SpecError(f"{path}: 'mix.method' is {method!r}; accepted: {', '.join(METHODS)}")
        body = table.get("body", "")
        if not isinstance(body, str):
            raise SpecError(f"{path}: 'mix.body' must be a string")
        if body and method == "GET":
            raise SpecError(f"{path}: 'mix.body' needs method = \"POST\"")
        headers = table.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and ":" not in k and "\n" not in v
            for k, v in headers.items()
        ):
            raise SpecError(f"{path}: 'mix.headers' must be a table of header names to one-line strings")
        if any(k.lower() in ("cookie", "content-length", "host") for k in headers):
            raise SpecError(f"{path}: 'mix.headers' must not set Cookie, Content-Length or Host (the lab sets them)")
        return cls(
            name=table["name"],
            description=table["description"],
            endpoint=endpoint,
            params=tuple(sorted(params.items())),
            sweep_param=sweep_param,
            sweep_values=sweep_values,
            method=method,
            body=body,
            headers=tuple(headers.items()),
        )


def available_mixes(directory: Path = MIXES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_mix(name: str, directory: Path = MIXES_DIR) -> Mix:
    path = directory / f"{name}.toml"
    if not path.is_file():
        raise SpecError(f"mix '{name}' not found; available: {', '.join(available_mixes(directory))}")
    mix = Mix.from_toml(path)
    if mix.name != name:
        raise SpecError(f"{path}: 'mix.name' is {mix.name!r} but the file is named {name!r}")
    return mix


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What a run measures and how long it may take; kept as data in ``lab/plans``."""

    name: str
    description: str
    tiers: tuple[Tier, ...]
    variants: tuple[Variant, ...]
    mixes: tuple[str, ...]
    handler_mixes: tuple[str, ...]
    # Overrides the sweep values of swept mixes (e.g. fewer latencies for a quick run);
    # ``sweep_overrides`` does it per mix (mix name -> values) and wins over it.
    sweep_values: tuple[int, ...] | None = None
    sweep_overrides: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # Per mix, only these variants (mix name -> variants), e.g. sync and async alone along a
    # latency sweep; mixes not named run every plan variant.
    mix_variants: tuple[tuple[str, tuple[Variant, ...]], ...] = ()
    # Per mix, HTTP connection counts instead of http_concurrency (mix name -> counts), e.g.
    # hundreds of mostly idle connections for long polling.
    mix_concurrency: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # Per mix, middleware stacks for its HTTP cells instead of ``middleware`` (mix name ->
    # stacks), e.g. a real project's stack on the ORM and billing mixes only.
    mix_middleware: tuple[tuple[str, tuple[Middleware, ...]], ...] = ()
    # Middleware stacks to measure: "default" (async-capable only) and/or "sync-audit".
    middleware: tuple[Middleware, ...] = ("default",)
    # Concurrent callers for the sync<->async crossing microbenchmarks (empty: skip them).
    crossing_concurrency: tuple[int, ...] = ()
    # Servers over HTTP, "kind:P" or "kind:PxT"; each variant runs on every server of its
    # interface (WSGI for sync, ASGI for the others). Several per interface = P x T search.
    servers: tuple[ServerConfig, ...]
    # Core budgets: the server is pinned to its first N CPUs, load generator and upstream
    # to the rest. Empty: one budget, everything sharing every CPU (recorded either way).
    core_budgets: tuple[int, ...] = ()
    # "same" (asyncio + h11 on both) or "best-available" (uvloop/httptools where they load).
    stack: Stack = "same"
    # Open-loop cells at these fractions of the saturation throughput found by the
    # closed-loop sweep (of `sync` on the GIL build, so every side gets the same rate).
    open_loop_fractions: tuple[float, ...] = ()
    # p95 above this marks a concurrency level as past saturation (and is the report's SLO).
    slo_ms: float = 100.0
    # Handler tier (pyperf, in-process, no sockets).
    handler_concurrency: tuple[int, ...]
    handler_processes: int
    handler_values: int
    handler_warmups: int
    handler_min_time: float
    # Worker processes for the crossing microbenchmarks (0: handler_processes): their
    # intervals are taken over processes, so they need more than the handler tier.
    crossing_processes: int = 0
    # HTTP tier (real server, load generator over loopback).
    http_concurrency: tuple[int, ...]
    http_duration: float
    http_warmup: float
    http_max_requests: int
    repeats: int
    # Windows sized by samples: after the first round a slice lasts long enough for this
    # many requests at the throughput measured before (0: every slice lasts http_duration),
    # between http_duration and http_max_duration seconds.
    http_min_requests: int = 0
    http_max_duration: float = 0.0
    # The load generator closes each connection after this many responses and reconnects
    # (0: keep alive): see ``lab.load.LoadParams.conn_requests`` for why multi-process shapes need it.
    http_conn_requests: int = 0
    # A point whose 3.13t/3.13 ratios disagree across rounds by more than lab.stats.NOISY_CV
    # gets plan.repeats more rounds (false: the cells keep their noisy flag and the run keeps
    # its length, e.g. the quick plan's 20-minute budget).
    remeasure_noisy: bool = True
    # Closed loop: spread each cell's connections' first requests over one nominal wait of its
    # point (``lab.load --stagger-ms``), so that requests a server holds a fixed time arrive
    # one by one, as from independent clients (false: all connections start together). The
    # default since 2026-12-07: started together, the first waves reach the server in bursts
    # that disperse only over tens of seconds, so a margin measured after the usual few seconds
    # of warm-up measured the warm-up (long poll at 256 connections, sync over uvicorn on 3.13 /
    # 3.13t: x1.15-1.18 / x1.21-1.24 after 3 s, x1.06-1.07 / x1.09 after 15 s, x1.00 / x1.01
    # spread; runs 2026-12-07-lp-warm3-a/-b, -lp-warm15-a/-b, 2026-12-06-stagger-a).
    http_stagger: bool = True

    def __post_init__(self) -> None:
        if self.http_max_duration < self.http_duration:
            object.__setattr__(self, "http_max_duration", self.http_duration)

    @classmethod
    def from_toml(cls, path: Path) -> Plan:
        table = read_table(path, "plan")
        _check_keys(path, "plan", table, cls)
        tiers = _str_tuple(path, "plan.tiers", table["tiers"])
        for t in tiers:
            if t not in TIERS:
                raise SpecError(f"{path}: unknown tier {t!r}; accepted: {', '.join(TIERS)}")
        variants = _str_tuple(path, "plan.variants", table["variants"])
        for v in variants:
            if v not in VARIANTS:
                raise SpecError(f"{path}: unknown variant {v!r}; accepted: {', '.join(VARIANTS)}")
        mixes = _str_tuple(path, "plan.mixes", table["mixes"])
        handler_mixes = _str_tuple(path, "plan.handler_mixes", table["handler_mixes"])
        for m in (*mixes, *handler_mixes):
            if m not in available_mixes():
                raise SpecError(f"{path}: unknown mix {m!r}; available: {', '.join(available_mixes())}")
        sweep_values = None
        if "sweep_values" in table:
            sweep_values = tuple(table["sweep_values"])
            if not sweep_values or not all(isinstance(v, int) and v >= 0 for v in sweep_values):
                raise SpecError(f"{path}: 'plan.sweep_values' must be a non-empty list of integers >= 0")
        sweep_overrides = tuple(
            (mix, _int_tuple(path, f"plan.sweep_overrides.{mix}", values))
            for mix, values in _mix_table(path, "sweep_overrides", table, mixes).items()
        )
        mix_variants: list[tuple[str, tuple[Variant, ...]]] = []
        for mix, names in _mix_table(path, "mix_variants", table, mixes).items():
            chosen = _str_tuple(path, f"plan.mix_variants.{mix}", names)
            for v in chosen:
                if v not in variants:
                    raise SpecError(
                        f"{path}: 'plan.mix_variants.{mix}' names {v!r}, not a plan variant ({', '.join(variants)})"
                    )
            mix_variants.append((mix, chosen))  # type: ignore[arg-type]
        mix_concurrency = tuple(
            (mix, _int_tuple(path, f"plan.mix_concurrency.{mix}", counts))
            for mix, counts in _mix_table(path, "mix_concurrency", table, mixes).items()
        )
        middleware = _str_tuple(path, "plan.middleware", table.get("middleware", ["default"]))
        mix_middleware = tuple(
            (mix, _str_tuple(path, f"plan.mix_middleware.{mix}", stacks))
            for mix, stacks in _mix_table(path, "mix_middleware", table, mixes).items()
        )
        for m in (*middleware, *(m for _mix, stacks in mix_middleware for m in stacks)):
            if m not in MIDDLEWARES:
                raise SpecError(f"{path}: unknown middleware stack {m!r}; accepted: {', '.join(MIDDLEWARES)}")
        crossing_concurrency: tuple[int, ...] = ()
        if "crossing_concurrency" in table:
            crossing_concurrency = _int_tuple(path, "plan.crossing_concurrency", table["crossing_concurrency"])
        servers = tuple(parse_server(text) for text in _str_tuple(path, "plan.servers", table["servers"]))
        if "http" in tiers:
            check_servers_cover(variants, servers, str(path))  # type: ignore[arg-type]
        core_budgets: tuple[int, ...] = ()
        if table.get("core_budgets"):
            core_budgets = _int_tuple(path, "plan.core_budgets", table["core_budgets"])
        stack = table.get("stack", "same")
        if stack not in STACKS:
            raise SpecError(f"{path}: unknown stack {stack!r}; accepted: {', '.join(STACKS)}")
        fractions = table.get("open_loop_fractions", [])
        if not isinstance(fractions, list) or not all(
            isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f <= 2 for f in fractions
        ):
            raise SpecError(f"{path}: 'plan.open_loop_fractions' must be numbers in (0, 2], got {fractions!r}")
        remeasure_noisy = table.get("remeasure_noisy", True)
        if not isinstance(remeasure_noisy, bool):
            raise SpecError(f"{path}: 'plan.remeasure_noisy' must be true or false, got {remeasure_noisy!r}")
        http_stagger = table.get("http_stagger", True)
        if not isinstance(http_stagger, bool):
            raise SpecError(f"{path}: 'plan.http_stagger' must be true or false, got {http_stagger!r}")
        numbers: dict[str, Any] = {}
        for key, kind, low in (
            ("handler_processes", int, 1),
            ("handler_values", int, 1),
            ("handler_warmups", int, 0),
            ("handler_min_time", float, 0.001),
            ("http_duration", float, 0.1),
            ("http_warmup", float, 0.0),
            ("http_max_requests", int, 1),
            ("repeats", int, 1),
            ("slo_ms", float, 0.001),
            ("http_min_requests", int, 0),
            ("http_max_duration", float, 0.0),
            ("crossing_processes", int, 0),
            ("http_conn_requests", int, 0),
        ):
            optional = ("slo_ms", "http_min_requests", "http_max_duration", "crossing_processes", "http_conn_requests")
            if key not in table and key in optional:
                continue
            value = table[key]
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or (kind is int and not isinstance(value, int))
            ):
                raise SpecError(f"{path}: 'plan.{key}' must be a number, got {value!r}")
            if value < low:
                raise SpecError(f"{path}: 'plan.{key}' must be >= {low}, got {value!r}")
            numbers[key] = kind(value)
        if (
            numbers["http_duration"] > 600
            or numbers.get("http_max_duration", 0) > 600
            or numbers["http_max_requests"] > 10_000_000
        ):
            raise SpecError(
                f"{path}: http_duration and http_max_duration are capped at 600 s, http_max_requests at 10,000,000"
            )
        return cls(
            name=str(table["name"]),
            description=str(table["description"]),
            tiers=tiers,  # type: ignore[arg-type]
            variants=variants,  # type: ignore[arg-type]
            mixes=mixes,
            handler_mixes=handler_mixes,
            sweep_values=sweep_values,
            sweep_overrides=sweep_overrides,
            mix_variants=tuple(mix_variants),
            mix_concurrency=mix_concurrency,
            mix_middleware=mix_middleware,  # type: ignore[arg-type]
            middleware=middleware,  # type: ignore[arg-type]
            crossing_concurrency=crossing_concurrency,
            servers=servers,
            core_budgets=core_budgets,
            stack=stack,
            open_loop_fractions=tuple(float(f) for f in fractions),
            remeasure_noisy=remeasure_noisy,
            http_stagger=http_stagger,
            handler_concurrency=_int_tuple(path, "plan.handler_concurrency", table["handler_concurrency"]),
            http_concurrency=_int_tuple(path, "plan.http_concurrency", table["http_concurrency"]),
            **numbers,
        )


def _mix_table(path: Path, key: str, table: dict[str, Any], mixes: tuple[str, ...]) -> dict[str, Any]:
    """A plan table keyed by mix name (``sweep_overrides``, ``mix_variants``); only plan mixes."""
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{path}: 'plan.{key}' must be a table of mix name = list")
    for mix in value:
        if mix not in mixes:
            raise SpecError(f"{path}: 'plan.{key}' names mix {mix!r}, which the plan does not run ({', '.join(mixes)})")
    return value


def available_plans() -> list[str]:
    return sorted(p.stem for p in PLANS_DIR.glob("*.toml"))


def load_plan(name: str) -> Plan:
    path = Path(name) if name.endswith(".toml") else PLANS_DIR / f"{name}.toml"
    if not path.is_file():
        raise SpecError(f"plan '{name}' not found; available: {', '.join(available_plans())}")
    return Plan.from_toml(path)
