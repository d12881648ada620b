"""Nox sessions for the free-threading comparison lab.

The lab itself runs in a nox virtualenv on the interpreter nox runs on (any CPython
>= 3.11 with the GIL); it builds CPython 3.13 and 3.13t into a cache outside the repo and
creates one workload environment per interpreter itself. Long sessions pass their
arguments through: ``nox -s compare -- --help`` lists the options.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


def _system_packages(session: nox.Session, *extra: str) -> None:
    """The Debian packages a CPython build needs, plus ``extra`` options of .ci/install-deps
    (``--services postgres,redis``, ``--browser``); a no-op when present."""
    session.run("bash", ".ci/install-deps", *extra, external=True)


def _option_values(args: list[str], option: str) -> list[str]:
    """Every value given to ``option`` in ``args`` (``--opt V`` or ``--opt=V``)."""
    values = [args[i + 1] for i, a in enumerate(args[:-1]) if a == option]
    return values + [a.split("=", 1)[1] for a in args if a.startswith(option + "=")]


def services_for(args: list[str]) -> list[str]:
    """The .ci/install-deps options a compare with these arguments needs: PostgreSQL and
    Redis server packages only when the run starts its own servers."""
    services = []
    for database in _option_values(args, "--database"):
        if database == "postgres-local":
            services.append("postgres")
        elif database.startswith("postgres"):
            services.append("libpq")  # psycopg talks to a given server through libpq
    if "redis-local" in _option_values(args, "--cache"):
        services.append("redis")
    return ["--services", ",".join(dict.fromkeys(services))] if services else []


@nox.session
def lint(session: nox.Session) -> None:
    """Lint with ruff."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "lab", "tests", "workloads", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package, tests and this noxfile with mypy --strict."""
    session.install("-e", ".[dev]", "nox")
    session.run("mypy", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, functional and smoke tests (smoke builds both interpreters if they are not cached).

    Pass pytest options after --, e.g. ``nox -s tests -- -m "not smoke"`` for the fast ones.
    The suite starts throwaway PostgreSQL and Redis servers and checks the report in headless
    Chromium, so their Debian packages are installed too.
    """
    _system_packages(session, "--services", "postgres,redis", "--browser")
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def interpreters(session: nox.Session) -> None:
    """Build (or reuse) and verify CPython 3.13 and 3.13t. ``-- --help`` for options."""
    _system_packages(session)
    session.install("-e", ".")
    session.run("python", "-m", "lab", "interpreters", *session.posargs)


@nox.session
def compare(session: nox.Session) -> None:
    """Build if missing, install the workloads on both interpreters, measure, report. ``-- --help`` for options.

    PostgreSQL / Redis packages are installed only for ``--database postgres-local`` /
    ``--cache redis-local``; ``-- --dry-run`` lists the plan's cells and time without building.
    """
    _system_packages(session, *services_for(list(session.posargs)))
    session.install("-e", ".")
    session.run("python", "-m", "lab", "compare", *session.posargs)


@nox.session
def profile(session: nox.Session) -> None:
    """Measure your own Django project on both interpreters, endpoint by endpoint:
    ``nox -s profile -- --project PATH --endpoints endpoints.toml`` (``-- --help`` for options).

    PostgreSQL packages are installed only for ``--database postgres-local``.
    """
    _system_packages(session, *services_for(list(session.posargs)))
    session.install("-e", ".")
    session.run("python", "-m", "lab", "profile", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks of the lab's own tools (load generator headroom, wrk cross-check). ``-- --help``."""
    _system_packages(session)
    session.install("-e", ".")
    session.run("python", "-m", "lab", "bench", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Re-render tables from existing raw results: ``nox -s report -- results/<run-id>``."""
    session.install("-e", ".")
    session.run("python", "-m", "lab", "report", *session.posargs)
