"""Writing result files atomically: a reader sees the old file or the whole new one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Let ``write`` fill a temporary file beside ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        tmp.rename(path)
    finally:
        tmp.unlink(missing_ok=True)
