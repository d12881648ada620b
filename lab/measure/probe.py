"""The probe pass: render every variant of a point in-process, with counting on.

Checks that all variants return the same body (and the same work: SQL statements and
upstream calls, where the workload reports them) and records crossings per request;
measurement servers then run with counting off. WSGI and ASGI variants are probed in
separate processes, each configured as its server would be (``LAB_INTERFACE``).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from lab.cells import VARIANT_INTERFACE, Cell
from lab.envs import WORKLOADS_DIR, WorkloadEnv
from lab.errors import LabError
from lab.measure.context import RunContext
from lab.proc import child_env, pinned_to
from lab.spec import MixPoint, Variant

# Work every variant of a point must do identically (keys the probe may report).
SAME_WORK_KEYS = ("sql_statements", "upstream_calls")


def _counts(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (part.split("=") for part in text.split(";") if "=" in part)}


def probe(
    ctx: RunContext, env: WorkloadEnv, point: MixPoint, middleware: str, variants: tuple[Variant, ...]
) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for interface in ("wsgi", "asgi"):
        chosen = [v for v in variants if VARIANT_INTERFACE[v] == interface]
        if not chosen:
            continue
        gil_dir = ctx.gil_dir(f"probe-{env.interpreter.spec_name}")
        vars_ = {**ctx.env_vars(env, gil_dir, middleware, interface), "LAB_CROSSINGS": "1"}
        cmd = [
            str(env.python),
            "-m",
            "labsite.inprocess",
            "--endpoint",
            point.endpoint,
            "--query",
            point.query,
            *ctx.request_args(point),
            "--variants",
            ",".join(chosen),
        ]
        done = subprocess.run(
            cmd,
            cwd=WORKLOADS_DIR,
            env=child_env(vars_),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            preexec_fn=pinned_to(None),  # dies with the lab, like every child (lab.proc)
        )
        if done.returncode != 0:
            where = f"{point.label} on {env.interpreter.spec_name}"
            raise LabError(f"probe of {where} failed: {done.stderr.strip()[-300:]}")
        result.update(json.loads(done.stdout))
    for info in result.values():
        counts = _counts(info["crossings"])
        info["sync_to_async"] = counts.get("sync_to_async", -1)
        info["async_to_sync"] = counts.get("async_to_sync", -1)
        if isinstance(info.get("crossings_cold"), str):
            cold = _counts(info["crossings_cold"])
            info["cold_total"] = cold.get("sync_to_async", 0) + cold.get("async_to_sync", 0)
    return result


def work_differences(probe_result: dict[str, dict[str, Any]]) -> str:
    """'' when every variant did the same work, else what differs (listed in the report)."""
    diffs = []
    for key in SAME_WORK_KEYS:
        values = {v: p[key] for v, p in probe_result.items() if isinstance(p.get(key), int)}
        if len(set(values.values())) > 1:
            diffs.append(f"{key}: " + ", ".join(f"{v}={n}" for v, n in values.items()))
    return "; ".join(diffs)


def probe_problem(ctx: RunContext, env: WorkloadEnv, cell: Cell) -> str:
    """Why this cell cannot be measured on this interpreter ('' if it can)."""
    found = ctx.probes.get(ctx.probe_key(env, cell), {})
    if cell.variant not in found:
        return f"no probe result for variant {cell.variant}"
    bad_status = {v: p["status"] for v, p in found.items() if p["status"] != 200}
    if bad_status:
        return f"non-200 responses in the probe: {bad_status}"
    if len({p["sha256"] for p in found.values()}) > 1:
        return "variants returned different bodies: " + ", ".join(f"{v}={p['length']} B" for v, p in found.items())
    return ""
