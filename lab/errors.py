"""The lab's user-facing errors.

Library code raises these; only ``lab.cli.main`` turns them into one ``error: ...``
line on stderr and a named exit code.
"""

from __future__ import annotations


class LabError(Exception):
    """A problem the user can fix (bad input, missing tool, failed build)."""

    exit_code: int = 2


class SpecError(LabError):
    """A TOML spec, plan or command-line value is invalid."""

    exit_code = 2


class SourceError(LabError):
    """The CPython source tarball is missing, unreachable or has the wrong checksum."""

    exit_code = 3


class BuildFailed(LabError):
    """A build step (configure, make, install) exited non-zero."""

    exit_code = 4

    def __init__(self, message: str, *, return_code: int, log_tail: str = "") -> None:
        super().__init__(message)
        self.return_code = return_code
        self.log_tail = log_tail


class InterpreterCheckFailed(LabError):
    """A built or given interpreter lacks something the lab needs."""

    exit_code = 4


class ServerStartFailed(LabError):
    """A server or helper process did not become ready."""

    exit_code = 5

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class MeasurementFailed(LabError):
    """One or more cells of a run failed or were invalid."""

    exit_code = 6


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP: stop like Ctrl-C (children stopped and reaped, finished
    cells kept), then exit with 128 + the signal's number, as shells report it.

    A ``KeyboardInterrupt`` so that every ``except KeyboardInterrupt`` / ``BaseException``
    clean-up path treats the three signals alike.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


# What each exit status of ``python -m lab`` means (``--help`` and the README list them).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "an unexpected internal error (a bug: the traceback is printed)",
    SpecError.exit_code: "bad command line, plan, mix or spec, or another problem the 'error: ...' line names",
    SourceError.exit_code: "CPython source tarball missing, unreachable or with the wrong sha256",
    BuildFailed.exit_code: "a CPython build step failed, or an interpreter lacks something the lab needs",
    ServerStartFailed.exit_code: "a server or helper process did not become ready",
    MeasurementFailed.exit_code: "the run finished but some cells failed or were invalid (see cells.json)",
    129: "SIGHUP (terminal closed): stopped cleanly, finished cells kept; rerun to resume",
    130: "SIGINT (Ctrl-C): stopped cleanly, finished cells kept; rerun to resume",
    143: "SIGTERM (kill, timeout, CI cancel): stopped cleanly, finished cells kept; rerun to resume",
}
