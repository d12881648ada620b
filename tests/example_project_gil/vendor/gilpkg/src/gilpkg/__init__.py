# mypy: ignore-errors
"""A package whose C extension does not declare that it runs without the GIL."""

from gilpkg._speedups import checksum

__all__ = ["checksum"]
