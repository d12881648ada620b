"""Open-loop rates: each open-loop cell's offered rate, from the closed-loop curves measured first."""

from __future__ import annotations

import statistics

from lab.cells import Cell
from lab.measure.store import Results
from lab.saturation import Saturation, saturation


def choose_open_rates(
    results: Results, cells: list[Cell], variants: tuple[str, ...], gil: str, slo_ms: float
) -> tuple[dict[Cell, tuple[float, str]], dict[Cell, str]]:
    """Offered rate per open-loop cell: its fraction of the saturation throughput of the
    best `sync` server on the GIL build for the same point, core budget and middleware,
    so every variant and both interpreters get the same rate (or of the first variant's,
    when the plan has no `sync`). Returns (rates with their basis, problems)."""
    basis_variant = "sync" if "sync" in variants else variants[0]
    # (point, middleware, cores) -> [(saturation, server)] of the basis variant on 3.13
    found: dict[tuple[str, str, int], list[tuple[Saturation, str]]] = {}
    for (name, (point, variant, server, middleware, cores)), levels in results.curves.items():
        if (name, variant) != (gil, basis_variant):
            continue
        means = {c: (statistics.fmean(v[0] for v in vs), statistics.fmean(v[1] for v in vs)) for c, vs in levels.items()}
        sat = saturation(means, slo_ms)
        if sat is not None:
            found.setdefault((point, middleware, cores), []).append((sat, server))
    rates: dict[Cell, tuple[float, str]] = {}
    problems: dict[Cell, str] = {}
    for cell in cells:
        candidates = found.get((cell.point.label, cell.middleware, cell.cores))
        if not candidates:
            problems[cell] = f"no valid closed-loop curve of {basis_variant} on {gil} to saturate"
            continue
        sat, server = max(candidates, key=lambda f: f[0].throughput_rps)
        basis = (
            f"{cell.rate_fraction:g} x {sat.throughput_rps:.1f} req/s, the saturation of {basis_variant} on {gil} "
            f"({server}, {sat.concurrency} connections: {sat.reason})"
        )
        rates[cell] = (cell.rate_fraction * sat.throughput_rps, basis)
    return rates, problems
