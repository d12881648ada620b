"""Advise stage: an explainable model of async against sync, fitted on measured cells.

Reads only what ``lab.report.load_run`` reads (the raw pyperf JSON is the contract).
``model``: per interpreter, each variant's throughput bound (CPU or requests in flight,
``lab.limits``) at its best measured server shape, with the async version's extra CPU per
request (base, per crossing, per connection opened, per client call) fitted on the measured
async cells; its error measured on mix points held out of the fit (leave-one-mix-point-out)
and its advised outcome checked against the measured decision (``lab.decide.decide``).
``text``: what ``lab advise`` prints for a profile and the report's section (``advise_lines``).
"""

from __future__ import annotations

from lab.advise.model import (
    CLIENTS,
    FEATURES,
    MIN_POINTS,
    SURE,
    TIE,
    AsyncCost,
    Conditions,
    Estimate,
    Model,
    Profile,
    Rig,
    build_models,
    estimate,
    fit_cost,
    load_values,
    number,
    observations,
    outcome,
    predict,
    profile_from,
    profiles_from_run,
    tested,
    with_counts,
)
from lab.advise.text import (
    AGREEMENT_TARGET,
    advice_lines,
    advise_lines,
    change_lines,
    check_lines,
    fit_lines,
    model_lines,
)

__all__ = [
    "AGREEMENT_TARGET",
    "CLIENTS",
    "FEATURES",
    "MIN_POINTS",
    "SURE",
    "TIE",
    "AsyncCost",
    "Conditions",
    "Estimate",
    "Model",
    "Profile",
    "Rig",
    "advice_lines",
    "advise_lines",
    "build_models",
    "change_lines",
    "check_lines",
    "estimate",
    "fit_cost",
    "fit_lines",
    "load_values",
    "model_lines",
    "number",
    "observations",
    "outcome",
    "predict",
    "profile_from",
    "profiles_from_run",
    "tested",
    "with_counts",
]
