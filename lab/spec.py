"""Specs the user configures, loaded from TOML into frozen dataclasses.

Downstream code takes these dataclasses, never raw dicts. Every loader rejects unknown
keys and names the file and key, so a typo in a spec fails loudly instead of silently
falling back to a default.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from lab.errors import SpecError

REPO_ROOT = Path(__file__).resolve().parent.parent
INTERPRETERS_DIR = REPO_ROOT / "interpreters"
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

Variant = Literal["sync", "async", "bridged", "sync-on-asgi"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)
Tier = Literal["handler", "http"]
TIERS: tuple[Tier, ...] = get_args(Tier)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SpecError(f"spec file '{path}' not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec file '{path}' is not valid TOML: {exc}") from None


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
        data = read_toml(path)
        table = data.get("interpreter")
        if set(data) != {"interpreter"} or not isinstance(table, dict):
            raise SpecError(f"{path}: expected exactly one [interpreter] table")
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


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What a run measures and how long it may take; kept as data in ``lab/plans``."""

    name: str
    description: str
    tiers: tuple[Tier, ...]
    variants: tuple[Variant, ...]
    # Handler tier (pyperf, in-process, no sockets).
    handler_concurrency: tuple[int, ...]
    handler_processes: int
    handler_values: int
    handler_warmups: int
    handler_min_time: float
    # HTTP tier (real server, load generator over loopback).
    http_concurrency: tuple[int, ...]
    http_duration: float
    http_warmup: float
    http_max_requests: int
    repeats: int
    server_threads: int

    @classmethod
    def from_toml(cls, path: Path) -> Plan:
        data = read_toml(path)
        table = data.get("plan")
        if set(data) != {"plan"} or not isinstance(table, dict):
            raise SpecError(f"{path}: expected exactly one [plan] table")
        _check_keys(path, "plan", table, cls)
        tiers = _str_tuple(path, "plan.tiers", table["tiers"])
        for t in tiers:
            if t not in TIERS:
                raise SpecError(f"{path}: unknown tier {t!r}; accepted: {', '.join(TIERS)}")
        variants = _str_tuple(path, "plan.variants", table["variants"])
        for v in variants:
            if v not in VARIANTS:
                raise SpecError(f"{path}: unknown variant {v!r}; accepted: {', '.join(VARIANTS)}")
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
            ("server_threads", int, 1),
        ):
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
        if numbers["http_duration"] > 600 or numbers["http_max_requests"] > 10_000_000:
            raise SpecError(f"{path}: http_duration is capped at 600 s and http_max_requests at 10,000,000")
        return cls(
            name=str(table["name"]),
            description=str(table["description"]),
            tiers=tiers,  # type: ignore[arg-type]
            variants=variants,  # type: ignore[arg-type]
            handler_concurrency=_int_tuple(path, "plan.handler_concurrency", table["handler_concurrency"]),
            http_concurrency=_int_tuple(path, "plan.http_concurrency", table["http_concurrency"]),
            **numbers,
        )


def available_plans() -> list[str]:
    return sorted(p.stem for p in PLANS_DIR.glob("*.toml"))


def load_plan(name: str) -> Plan:
    path = Path(name) if name.endswith(".toml") else PLANS_DIR / f"{name}.toml"
    if not path.is_file():
        raise SpecError(f"plan '{name}' not found; available: {', '.join(available_plans())}")
    return Plan.from_toml(path)
