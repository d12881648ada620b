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


def _system_packages(session: nox.Session) -> None:
    """The Debian packages a CPython build and the throwaway servers need (a no-op when present)."""
    session.run("bash", ".ci/install-deps", external=True)


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
    """
    _system_packages(session)
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
    """Build if missing, install the workloads on both interpreters, measure, report. ``-- --help`` for options."""
    _system_packages(session)
    session.install("-e", ".")
    session.run("python", "-m", "lab", "compare", *session.posargs)


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
