"""The report's per-axis tables, from a run's tidy per-repeat values.

- ``best_config_table``: per mix, variant and interpreter, the server shape (P x T) and
  concurrency that served the most within the SLO (the P x T search result).
- ``saturation_table``: per closed-loop concurrency curve, where it saturates.
- ``open_loop_table``: latency percentiles at fixed offered rates (from intended start).
- ``axes_table``: every core budget measured, with throughput per GiB of server RSS.
- ``ft_effect_table``: 3.13t / 3.13 at one thread (handler tier, concurrency 1) and at
  each interpreter's best configuration over HTTP.
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Any

import pandas as pd

from lab.saturation import saturation
from lab.stats import mean_ci, ratio_ci

ROLES = ("gil", "ft")
# A swept mix point ("io-sweep@latency=20", maybe followed by " +middleware").
_SWEPT = re.compile(r"^(?P<mix>[^@]+)@(?P<param>[^=]+)=(?P<value>\d+(?:\.\d+)?)(?P<rest>.*)$")


def point_key(point: str) -> tuple[str, str, float, str]:
    """Sort key for mix points: swept values in numeric order (``latency=100`` after ``latency=20``)."""
    m = _SWEPT.match(point)
    if m is None:
        return (point, "", -math.inf, "")
    return (m["mix"], m["param"], float(m["value"]), m["rest"])


def _valid_http(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["tier"] == "http") & (df["status"] == "ok")]


def best_config_table(df: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """``best``: ``decide.best_configs`` of the same values (computed once per report)."""
    if best.empty:
        return best
    http = _valid_http(df)
    candidates = http[http["load_mode"] == "closed"].groupby(["point", "role", "variant"])
    rows: list[dict[str, Any]] = []
    for r in best.to_dict("records"):
        mean, ci = mean_ci(r["values"])
        tried = candidates.get_group((r["point"], r["role"], r["variant"]))
        rows.append(
            {
                "point": r["point"],
                "variant": r["variant"],
                "role": r["role"],
                "best_server": r["server"],
                "concurrency": r["concurrency"],
                "rps": mean,
                "ci": ci,
                "p95_ms": r["p95_ms"],
                "configs_tried": tried[["server_spec", "concurrency"]].drop_duplicates().shape[0],
            }
        )
    return pd.DataFrame(rows).sort_values(["point", "variant", "role"], ascending=[True, True, False])


def saturation_table(df: pd.DataFrame, slo_ms: float) -> pd.DataFrame:
    http = _valid_http(df)
    if http.empty:
        return pd.DataFrame()
    closed = http[http["load_mode"] == "closed"]
    rows: list[dict[str, Any]] = []
    keys = ["point", "middleware", "variant", "server_spec", "cores", "role"]
    for key, g in closed.groupby(keys, sort=True):
        levels = {
            int(str(c)): (statistics.fmean(x["throughput_rps"]), statistics.fmean(x["p95_ms"]))
            for c, x in g.groupby("concurrency")
        }
        if len(levels) < 2:
            continue
        sat = saturation(levels, slo_ms)
        assert sat is not None
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "levels": ",".join(map(str, sorted(levels))),
                "saturation_concurrency": sat.concurrency,
                "saturation_rps": sat.throughput_rps,
                "saturation_p95_ms": sat.p95_ms,
                "max_rps": max(v[0] for v in levels.values()),
                "reason": sat.reason,
            }
        )
    return pd.DataFrame(rows)


def open_loop_table(df: pd.DataFrame) -> pd.DataFrame:
    http = _valid_http(df)
    if http.empty:
        return pd.DataFrame()
    open_cells = http[http["load_mode"] == "open"]
    rows: list[dict[str, Any]] = []
    keys = ["point", "middleware", "variant", "server_spec", "cores", "rate_fraction", "role"]
    for key, g in open_cells.groupby(keys, sort=True):
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "offered_rps": g["rate_rps"].mean(),
                "served_rps": g["throughput_rps"].mean(),
                "p50_ms": g["p50_ms"].mean(),
                "p95_ms": g["p95_ms"].mean(),
                "p99_ms": g["p99_ms"].mean(),
                "p999_ms": g["p999_ms"].mean(),
                "n": len(g),
            }
        )
    return pd.DataFrame(rows)


def axes_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per core budget, point, variant and server (closed loop, each at its best
    concurrency): throughput, mean server RSS and throughput per GiB of RSS."""
    http = _valid_http(df)
    if http.empty:
        return pd.DataFrame()
    closed = http[(http["load_mode"] == "closed") & (http["middleware"] == "default")]
    rows: list[dict[str, Any]] = []
    for (cores, point, variant, server, role), g in closed.groupby(
        ["cores", "point", "variant", "server_spec", "role"], sort=True
    ):
        by_conc = g.groupby("concurrency")["throughput_rps"].mean()
        conc = by_conc.idxmax()
        at = g[g["concurrency"] == conc]
        mean, ci = mean_ci(at["throughput_rps"].tolist())
        rss = at["rss_mean_mib"].mean()
        rows.append(
            {
                "cores": cores,
                "point": point,
                "variant": variant,
                "server": server,
                "role": role,
                "concurrency": conc,
                "rps": mean,
                "ci": ci,
                "rss_mean_mib": rss,
                "rps_per_gib": mean / (rss / 1024) if rss and not math.isnan(rss) else math.nan,
            }
        )
    return pd.DataFrame(rows)


def ft_effect_table(df: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """3.13t / 3.13 throughput per mix and variant: at one thread and at the best config
    (``best``: ``decide.best_configs`` of the same values)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if df.empty:
        return pd.DataFrame()
    one = df[(df["tier"] == "handler") & (df["concurrency"] == 1) & (df["status"] == "ok")]
    for (point, variant), g in one.groupby(["point", "variant"]):
        sides = {role: x["throughput_rps"].tolist() for role, x in g.groupby("role")}
        if set(ROLES) <= set(sides):
            ratio, low, high = ratio_ci(sides["ft"], sides["gil"])
            rows.setdefault((str(point), str(variant)), {}).update(
                {"one_thread": ratio, "one_low": low, "one_high": high}
            )
    if not best.empty:
        for (point, variant), g in best.groupby(["point", "variant"]):
            by_role = {r["role"]: r for r in g.to_dict("records")}
            if set(ROLES) <= set(by_role):
                ratio, low, high = ratio_ci(by_role["ft"]["values"], by_role["gil"]["values"])
                rows.setdefault((str(point), str(variant)), {}).update(
                    {
                        "best": ratio,
                        "best_low": low,
                        "best_high": high,
                        "gil_best": f"{by_role['gil']['server']} @{by_role['gil']['concurrency']}",
                        "ft_best": f"{by_role['ft']['server']} @{by_role['ft']['concurrency']}",
                    }
                )
    return pd.DataFrame([{"point": k[0], "variant": k[1], **v} for k, v in sorted(rows.items())])
