"""Advise stage: an explainable model of async against sync, fitted on measured cells.

Reads only what ``lab.report.load_run`` reads (the raw pyperf JSON is the contract).
``model``: per interpreter, log(async/sync throughput) as a straight line in an endpoint's
standardised profile (CPU, queries, crossings, upstream wait, fan-out, connections, client),
fitted on the mix points the runs measured with both variants, its error measured on mix points
held out of the fit (leave-one-mix-point-out) and its advised winner checked against the
measured decision (``lab.decide.decide``). ``text``: what ``lab advise`` prints for a profile
and the report's section (``advise_lines``).
"""

from __future__ import annotations

from lab.advise.model import (
    CLIENTS,
    FEATURES,
    MIN_POINTS,
    RIDGE,
    Fit,
    Model,
    Profile,
    build_models,
    fit,
    held_out,
    load_values,
    number,
    observations,
    profile_from,
    with_counts,
)
from lab.advise.text import AGREEMENT_TARGET, advice_lines, advise_lines, change_lines, check_lines, coefficient_lines

__all__ = [
    "AGREEMENT_TARGET",
    "CLIENTS",
    "FEATURES",
    "MIN_POINTS",
    "RIDGE",
    "Fit",
    "Model",
    "Profile",
    "advice_lines",
    "advise_lines",
    "build_models",
    "change_lines",
    "check_lines",
    "coefficient_lines",
    "fit",
    "held_out",
    "load_values",
    "number",
    "observations",
    "profile_from",
    "with_counts",
]
