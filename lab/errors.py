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
