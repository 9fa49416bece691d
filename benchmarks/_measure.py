"""Shared measuring helpers for the benchmark scripts: wall time and peak RSS of a block, results files."""

from __future__ import annotations

import json
import platform
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).resolve().parent / "results"


class PeakRSS:
    """Samples this process's resident memory in a background thread; ``peak_mb`` after the block."""

    def __init__(self, interval: float = 0.05, keep_samples: bool = False) -> None:
        self.interval = interval
        self.peak = 0
        self.keep_samples = keep_samples
        self.samples: list[tuple[float, int]] = []  # (perf_counter, rss bytes) when keep_samples
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._proc.memory_info().rss
            self.peak = max(self.peak, rss)
            if self.keep_samples:
                self.samples.append((time.perf_counter(), rss))
            time.sleep(self.interval)

    def peak_mb_between(self, start: float, end: float) -> float | None:
        """Peak RSS (MB) among the samples taken between two ``perf_counter`` times (needs keep_samples)."""
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return round(max(inside) / 2**20, 1) if inside else None

    def __enter__(self) -> PeakRSS:
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


@contextmanager
def measured(record: dict, name: str):  # noqa: ANN201
    """Time a block and record ``{name: {seconds, peak_rss_mb}}`` into ``record``."""
    started = time.perf_counter()
    with PeakRSS() as rss:
        yield
    record[name] = {"seconds": round(time.perf_counter() - started, 3), "peak_rss_mb": rss.peak_mb}


def machine() -> dict:
    """What the numbers were measured on."""
    return {"cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def write_results(name: str, data: dict) -> Path:
    """Write ``benchmarks/results/<name>.json`` (with machine info and date) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def stage_on_project(project: Path, stage: str, label: str, name: str, repeat: int, tables: tuple[str, ...] = (),
                     after_run: Callable[[Any, dict], None] | None = None) -> Path:
    """Time one stage alone ``repeat`` times on an existing project's store (use a COPY): seconds, peak RSS and
    CPU seconds per run, load average before each; ``after_run(store, run)`` may add to a run's record.  Writes
    ``results/<name>.json`` under ``label`` ("before" / "after"), keeping the other label's record."""
    import os

    from ecins_link.config import load_config
    from ecins_link.pipeline import open_store, run_stages

    config = load_config(project)
    record: dict = {"project": str(project), "runs": []}
    with open_store(config, command=f"bench_{stage}") as store:
        for _ in range(repeat):
            run: dict = {"load_average_before": os.getloadavg()}
            cpu = time.process_time()
            with measured(run, stage):
                run_stages(store, config, [stage], progress=False)
            run[stage]["cpu_seconds"] = round(time.process_time() - cpu, 2)
            if after_run is not None:
                after_run(store, run)
            record["runs"].append(run)
        record["tables"] = {t: store.count(t) for t in tables}
    record["best_seconds"] = min(r[stage]["seconds"] for r in record["runs"])
    old = RESULTS / f"{name}.json"
    kept = json.loads(old.read_text()) if old.exists() else {}
    result = {k: v for k, v in kept.items() if k in ("before", "after") and k != label}
    result[label] = record
    return write_results(name, result)
