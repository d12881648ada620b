"""Free-threading comparison lab for Django: build, serve, load, measure, report."""

from __future__ import annotations

__version__ = "0.1.0"

# Every JSON file the lab writes carries this; readers refuse other versions.
FORMAT_VERSION = 1
