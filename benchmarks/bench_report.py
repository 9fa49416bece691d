"""Benchmark write_outputs (CSV/Parquet contract + HTML panel pack): the report stage alone.

Two modes:

* ``--persons N`` (default 50,000): inputs built and scored exactly as in ``bench_scoring.py`` (set-based
  random town), then the output folder is written for the full view and for one purpose.  Writes
  ``benchmarks/results/report.json`` (or ``report_<N>.json``).
* ``--project PROJECT.toml``: a project whose store has already been run through ``score`` (e.g. a synthetic
  town from ``ecins_link.synth.generate_town`` run with ``ecins-link run --stages ...score``; use a COPY, the
  run appends audit rows).  Times write_outputs for the full view and for each purpose, with peak RSS, CPU
  seconds and the load average (the machine is shared: wall time under load overstates).  Writes
  ``report_<persons>.json`` (or ``--name``); with ``--label after`` (or ``before``) the numbers go under that key and the
  other label's numbers already in the file are kept, so one file holds a before/after comparison.

Run: ``nice .venv/bin/python benchmarks/bench_report.py [--persons 50000]``
or ``nice .venv/bin/python benchmarks/bench_report.py --project COPY/project.toml --name report_250000 --label after
[--repeat 3] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import RESULTS, measured, write_results  # noqa: E402
from bench_scoring import AS_OF, build_inputs  # noqa: E402

from ecins_link.config import load_config, parse_config  # noqa: E402
from ecins_link.pipeline import open_store  # noqa: E402
from ecins_link.report import write_outputs  # noqa: E402
from ecins_link.scoring import score  # noqa: E402
from ecins_link.store import Store  # noqa: E402


def _pack_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def _top_functions(profile: cProfile.Profile, n: int = 15) -> list[str]:
    """The ``n`` functions with the most cumulative time, as short text lines."""
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(n)
    return [line.strip() for line in out.getvalue().splitlines() if "(" in line and "/" in line][:n]


def synthetic(persons: int) -> None:
    """Build and score inputs, then time write_outputs (full view, then a purpose view)."""
    record: dict = {"persons": persons, "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config({
            "project": {"name": "bench", "as_of": AS_OF.isoformat()},
            "sources": [{"name": "p", "agency": "police", "path": "p.csv", "key": "id", "person": {"full_name": "n"}}],
            "purposes": {"marac": {"agencies": ["police", "council"], "categories": ["DA", "MENTAL_HEALTH", "SUBSTANCE"],
                                   "rules": ["marac_potential_escalation", "toxic_trio"]}}}, root=Path(tmp))
        with Store(Path(tmp) / "bench.duckdb") as store:
            with measured(record, "build_and_score"):
                build_inputs(store, persons)
                score(store, cfg)
            record["flags"] = store.count("flags")
            with measured(record, "write_outputs_full"):
                full = write_outputs(store, cfg, Path(tmp) / "full")
            with measured(record, "write_outputs_marac"):
                marac = write_outputs(store, cfg, Path(tmp) / "marac", purpose="marac")
            record["counts_full"] = full["counts"]
            record["counts_marac"] = marac["counts"]
            pages = max(1, full["counts"]["case_pages"])
            record["ms_per_case_page_full"] = round(1000 * record["write_outputs_full"]["seconds"] / pages, 1)
            record["pack_mb_full"] = _pack_mb(Path(tmp) / "full")
    record["load_average_after"] = os.getloadavg()
    path = write_results("report" if persons == 50_000 else f"report_{persons}", record)
    print(path.read_text())


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children (the forked page workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _user_sys(since: os.times_result) -> dict[str, float]:
    """User and system CPU seconds of this process and its waited-for children since ``since``.  Apart: on a
    shared VM the system time of creating ~8k page files varies several-fold from run to run (ext4 inode
    allocation skipping recently deleted inodes, e.g. of the previous run's temporary folder), while user
    time follows the code."""
    now = os.times()
    return {"user_seconds": round(now.user - since.user + now.children_user - since.children_user, 2),
            "sys_seconds": round(now.system - since.system + now.children_system - since.children_system, 2)}


def on_project(project: Path, label: str, profile: bool, purposes: bool, name: str | None,
               repeat: int = 1) -> None:
    """Time write_outputs on an existing scored store (full view, then each purpose)."""
    cfg = load_config(project)
    record: dict = {"project": str(project), "load_average_before": os.getloadavg()}
    with open_store(cfg, command="bench_report") as store, tempfile.TemporaryDirectory() as tmp:
        record["persons"] = store.con.execute("SELECT count(DISTINCT person_id) FROM person_clusters").fetchone()[0]
        record["flags"] = store.count("flags")
        views = [None, *(sorted(cfg.purposes) if purposes else [])]
        for purpose in views:
            name_ = f"write_outputs_{purpose or 'full'}"
            cpu, workers, times = time.process_time(), _children_cpu(), os.times()
            with measured(record, name_):
                result = write_outputs(store, cfg, Path(tmp) / (purpose or "full"), purpose=purpose)
            record[name_]["cpu_seconds"] = round(time.process_time() - cpu, 2)
            record[name_]["worker_cpu_seconds"] = round(_children_cpu() - workers, 2)  # forked page workers
            record[name_].update(_user_sys(times))
            record[name_]["counts"] = result["counts"]
            record[name_]["pack_mb"] = _pack_mb(Path(tmp) / (purpose or "full"))
        for _ in range(repeat - 1):  # the full view again (the machine is shared: the best run is the signal)
            started, times = time.perf_counter(), os.times()
            write_outputs(store, cfg, Path(tmp) / "again")
            record.setdefault("write_outputs_full_repeats", []).append(round(time.perf_counter() - started, 3))
            record.setdefault("write_outputs_full_repeats_user_sys", []).append(_user_sys(times))
        if profile:  # a separate run: cProfile roughly doubles the time of Python-heavy code
            prof = cProfile.Profile()
            started = time.perf_counter()
            prof.enable()
            write_outputs(store, cfg, Path(tmp) / "profiled")
            prof.disable()
            record["profiled_full"] = {"seconds_under_cprofile": round(time.perf_counter() - started, 2),
                                       "top_cumulative": _top_functions(prof, 25)}
    record["load_average_after"] = os.getloadavg()
    name = name or f"report_{record['persons']}"
    old = RESULTS / f"{name}.json"
    kept = json.loads(old.read_text()) if old.exists() else {}
    result = {k: v for k, v in kept.items() if k in ("before", "after") and k != label}
    result[label] = record
    path = write_results(name, result)
    print(path.read_text())


def main() -> None:
    """Parse arguments and run one mode."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=50_000)
    parser.add_argument("--project", type=Path, help="a scored project (a COPY): time the report stage on it")
    parser.add_argument("--label", default="after", choices=["before", "after"])
    parser.add_argument("--profile", action="store_true", help="cProfile the full-view run (slower)")
    parser.add_argument("--name", help="results file name in --project mode (default report_<persons>)")
    parser.add_argument("--no-purposes", action="store_true", help="full view only")
    parser.add_argument("--repeat", type=int, default=1, help="--project mode: run the full view this many times")
    args = parser.parse_args()
    if args.project:
        on_project(args.project, args.label, args.profile, not args.no_purposes, args.name, args.repeat)
    else:
        synthetic(args.persons)


if __name__ == "__main__":
    main()
