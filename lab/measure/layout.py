"""Where the server and its helpers run: the CPU layout for a core budget."""

from __future__ import annotations

import os

from lab.errors import SpecError


def cpu_layout(cores: int) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """(server CPUs, load generator + upstream CPUs) for a core budget; None means "all, shared".

    Budget N pins the server to the first N CPUs this process may use and the helpers to
    the rest; a budget of every CPU (or 0) shares them all, since nothing is left over.
    """
    available = sorted(os.sched_getaffinity(0))
    if cores > len(available):
        raise SpecError(f"core budget {cores} is more than the {len(available)} CPUs available ({available})")
    if cores == 0 or cores == len(available):
        return None, None
    return frozenset(available[:cores]), frozenset(available[cores:])


def check_core_budgets(budgets: tuple[int, ...]) -> None:
    for cores in budgets:
        cpu_layout(cores)


def layout_label(server: frozenset[int] | None, helpers: frozenset[int] | None) -> str:
    def cpus(s: frozenset[int] | None) -> str:
        return ",".join(map(str, sorted(s if s is not None else os.sched_getaffinity(0))))

    if server is None or helpers is None:
        return f"shared: server, load generator and upstream on CPUs {cpus(server)}"
    return f"server on CPUs {cpus(server)}; load generator and upstream on CPUs {cpus(helpers)}"
