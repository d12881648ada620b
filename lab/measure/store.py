"""The run's results as they accumulate: records, pyperf data, the resume journal, the files.

Every finished cell goes through ``Results.keep``: one fsynced journal line (and its pyperf
file) first, then into memory, so an interrupted run resumes from what was kept. ``write``
turns it into the run directory's contract: ``raw/<interpreter>.json`` (pyperf suites,
readable by ``python -m pyperf compare_to``), ``raw/crossings/``, ``raw/overhead/`` and
``cells.json``.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyperf

from lab import FORMAT_VERSION
from lab.cells import CellRecord
from lab.files import write_atomic
from lab.journal import Journal
from lab.measure.context import RunContext, one_line_metadata

log = logging.getLogger("lab.measure")
Store = dict[str, list[pyperf.Benchmark]]
# (point, variant, server spec, middleware, cores): one closed-loop concurrency curve.
CurveKey = tuple[str, str, str, str, int]


@dataclass
class Results:
    stage: Path
    journal: Journal
    records: list[CellRecord] = field(default_factory=list)
    stores: dict[str, Store] = field(default_factory=lambda: {"handler": {}, "crossings": {}, "overhead": {}})
    done: set[tuple[str, str, int]] = field(default_factory=set)
    http_runs: dict[tuple[str, str], list[pyperf.Run]] = field(default_factory=dict)
    # (interpreter, curve) -> concurrency -> [(throughput, p95 ms)] of valid closed-loop repeats
    curves: dict[tuple[str, CurveKey], dict[int, list[tuple[float, float]]]] = field(default_factory=dict)

    @classmethod
    def open(cls, stage: Path, fingerprint: dict[str, Any]) -> Results:
        results = cls(stage=stage, journal=Journal(stage, fingerprint))
        for entry in results.journal.entries:
            results._apply(entry)
        return results

    def is_done(self, interpreter: str, bench_name: str, repeat: int = 0) -> bool:
        return (interpreter, bench_name, repeat) in self.done

    def _apply(self, entry: dict[str, Any]) -> None:
        """Take a finished cell (live or from the journal) into the records and stores."""
        record = CellRecord(**entry["record"])
        self.records.append(record)
        self.done.add(Journal.key(entry["record"]))
        if "bench" in entry:
            bench = entry.get("_object") or pyperf.Benchmark.load(str(self.stage / entry["bench"]["file"]))
            self.stores[entry["bench"]["store"]].setdefault(record.interpreter, []).append(bench)
        if "http_run" in entry:
            md = one_line_metadata(entry["http_run"]["metadata"])
            value = entry["http_run"]["value"]
            run = pyperf.Run([value], metadata=md, collect_metadata=False)
            self.http_runs.setdefault((record.interpreter, record.bench_name), []).append(run)
            if record.status == "ok" and not record.rate_fraction:
                curve = (md["lab_point"], md["lab_variant"], md["server_spec"], md["lab_middleware"], record.cores)
                level = self.curves.setdefault((record.interpreter, curve), {})
                level.setdefault(record.concurrency, []).append((1.0 / value, float(md["latency_p95_ms"])))

    def keep(
        self,
        record: CellRecord,
        *,
        bench: tuple[str, pyperf.Benchmark] | None = None,
        http_run: tuple[float, dict[str, Any]] | None = None,
    ) -> None:
        entry: dict[str, Any] = {"record": asdict(record)}
        if bench is not None and record.status != "failed":
            store, obj = bench
            slug = f"{store}-{record.interpreter}-{record.bench_name.replace('/', '-')}-r{record.repeat}.json"
            path = self.stage / "journal" / slug
            path.parent.mkdir(exist_ok=True)
            obj.dump(str(path), replace=True)
            entry["bench"] = {"store": store, "file": str(path.relative_to(self.stage))}
        if http_run is not None:
            entry["http_run"] = {"value": http_run[0], "metadata": http_run[1]}
        self.journal.add(entry)
        if bench is not None:
            entry["_object"] = bench[1]
        self._apply(entry)
        if record.status != "ok":
            # Loudly, as it happens: an invalid cell must not wait for the summary to be seen.
            log.warning(
                "%s: %s on %s (repeat %d): %s",
                record.status.upper(),
                record.bench_name,
                record.interpreter,
                record.repeat,
                record.reason,
            )

    def write(self, ctx: RunContext, plan_path_note: str) -> None:
        handler = {name: list(benches) for name, benches in self.stores["handler"].items()}
        for (name, _bench), runs in self.http_runs.items():
            handler.setdefault(name, []).append(pyperf.Benchmark(runs))
        raw = self.stage / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        stores = (("", handler), ("crossings", self.stores["crossings"]), ("overhead", self.stores["overhead"]))
        for env in ctx.envs:
            name = env.interpreter.spec_name
            for subdir, store in stores:
                if store.get(name):
                    (raw / subdir).mkdir(exist_ok=True)
                    suite = pyperf.BenchmarkSuite(store[name])
                    write_atomic(raw / subdir / f"{name}.json", functools.partial(_dump_suite, suite))
        # The run is whole: the resume journal has served its purpose.
        shutil.rmtree(self.stage / "journal", ignore_errors=True)
        self.journal.path.unlink(missing_ok=True)
        cells_doc = {
            "format_version": FORMAT_VERSION,
            "plan": asdict(ctx.plan),
            "plan_source": plan_path_note,
            "machine": ctx.machine,
            "machine_noise": ctx.noise,
            "interpreters": {
                e.interpreter.spec_name: {**e.interpreter.provenance(), "packages": e.packages} for e in ctx.envs
            },
            "probes": {f"{k[0]} {k[1]}": v for k, v in ctx.probes.items()},
            "cells": [asdict(r) for r in self.records],
        }
        text = json.dumps(cells_doc, indent=2, default=str) + "\n"
        write_atomic(self.stage / "cells.json", lambda p: p.write_text(text))


def _dump_suite(suite: pyperf.BenchmarkSuite, path: Path) -> None:
    suite.dump(str(path), replace=True)
