# mypy: ignore-errors
# The extension module is the only thing pyproject.toml cannot declare.
from setuptools import Extension, setup

setup(ext_modules=[Extension("gilpkg._speedups", ["src/gilpkg/_speedups.c"])])
