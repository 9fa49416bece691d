"""Persons stage on Spark (``local[2]``) against DuckDB, through the public interface (docs/spark.md).

For a town (default: the committed 2k-person sample; ``--persons N``: a synthetic town of N persons, seed
``--seed``), kept in ``--dir`` (default: a temp folder) so the phases can run apart:

1. ``duckdb``: ``ecins-link run PROJECT --stage ingest --stage standardise --stage persons`` with the default
   DuckDB backend.  This is the one training run: the model it trains is stored in ``linkage_models`` and
   saved beside the results (``spark-N-model.json``); its predict and cluster seconds are the DuckDB figures
   (training seconds are recorded apart and left out of the comparison);
2. ``spark``: on a copy of that store, ``[engine] backend = "spark"`` and ``linkage.retrain = false``:
   ``ecins-link run PROJECT --stage persons`` applies the same stored model on Spark (predict + cluster;
   no training);
   Before it, the persons stage alone on DuckDB on the same copy (``duckdb_persons_stage_alone``: wall, memory
   and CPU of the stage by itself; it trains again, its training seconds are listed apart);
3. with ``--spark-train``: once more on Spark with training (slow: ~5 min per 10k records on 2 cores).

(``linkage.model`` names a model *definition* -- comparisons, blocking, priors -- not trained parameters: the
trained model lives in the store, which is how a run with ``retrain = false`` applies it.)

Each run is a child process; its wall time, the peak resident memory of its whole process tree (Python driver +
JVM + Python workers), its CPU seconds (user + system, the whole tree) and the load average (1 min, sampled
every 5 s) are recorded.  Per engine the persons
stage's own seconds per step and candidate pairs come from ``linkage_models.summary_json``: pairs/s = candidate
pairs / predict seconds, and over predict + cluster.  Writes ``benchmarks/results/spark[-N].json``.

Run: ``nice -n 10 python benchmarks/bench_spark.py [--persons 20000] [--seed 7] [--dir D] [--phase duckdb]``
(needs ``pip install -e '.[spark]'`` and Java 17).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import RESULTS, write_results  # noqa: E402

from ecins_link.matching.metrics import pairwise_metrics  # noqa: E402
from ecins_link.store import Store  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "town"
STORE_FILES = ("store.duckdb", "store.duckdb.audit-heads")
SPARK_SECTION = """
[engine]
backend = "spark"
spark_master = "local[2]"
work_dir = "spark_work"
[engine.spark_conf]
"spark.driver.memory" = "{memory}"
"""


def _tree_sample(proc: psutil.Process, cpu: dict[int, float]) -> int:
    """RSS of ``proc`` and its descendants now; records each one's CPU seconds so far in ``cpu`` (by pid)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            with p.oneshot():
                total += p.memory_info().rss
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return total


def run_cli(project: Path, stages: list[str], log: Path | None = None) -> dict:
    """``python -m ecins_link run`` as a child process: wall seconds, peak RSS of its process tree, load."""
    args = [sys.executable, "-m", "ecins_link", "run", str(project)]
    for s in stages:
        args += ["--stage", s]
    started = time.perf_counter()
    err_to = open(log, "w", encoding="utf-8") if log else subprocess.PIPE  # noqa: SIM115
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err_to, text=True)
    proc, peak, loads, last_load, cpu = psutil.Process(child.pid), 0, [], 0.0, {}
    while child.poll() is None:
        try:
            peak = max(peak, _tree_sample(proc, cpu))
        except psutil.Error:
            pass
        if time.perf_counter() - last_load >= 5:
            loads.append(os.getloadavg()[0])
            last_load = time.perf_counter()
        time.sleep(0.2)
    if log:
        err_to.close()
        err = log.read_text(encoding="utf-8")
    else:
        err = child.stderr.read() if child.stderr else ""
    if child.returncode:
        raise SystemExit(f"run failed ({child.returncode}): {err[-2000:]}")
    # CPU seconds of the process tree (last sample of each process; the final 0.2 s may be missed): what the
    # run cost in core-seconds whatever else the machine was doing -- the load-independent figure
    return {"wall_seconds": round(time.perf_counter() - started, 2), "peak_rss_mb": round(peak / 2**20, 1),
            "cpu_seconds": round(sum(cpu.values()), 1),
            "load_average_1min": {"min": round(min(loads), 2), "mean": round(sum(loads) / len(loads), 2),
                                  "max": round(max(loads), 2)} if loads else None}


def persons_record(store_path: Path) -> tuple[dict, object, dict]:
    """The last persons run's summary figures, its clusters and its model settings."""
    store = Store(store_path, read_only=True)
    try:
        settings, summary = store.con.execute("""SELECT settings_json, summary_json FROM linkage_models
                                                  ORDER BY created_at DESC LIMIT 1""").fetchone()
        summary = json.loads(summary)
        clusters = store.con.execute("SELECT unique_id, person_id FROM person_clusters").df()
    finally:
        store.close()
    sec = summary.get("seconds", {})
    pairs = int(summary.get("candidate_pairs", 0))
    training = ("prior", "u_sampling", "em_1", "em_2", "em_3", "train")
    scoring = round(sum(v for k, v in sec.items() if isinstance(v, (int, float)) and k not in training), 2)
    both = (sec.get("predict") or 0) + (sec.get("cluster_and_guard") or 0)
    return {"mode": summary.get("mode"), "records": summary.get("records"), "candidate_pairs": pairs,
            "persons_stage_seconds": round(sum(v for v in sec.values() if isinstance(v, (int, float))), 2),
            "persons_stage_seconds_without_training": scoring,
            "seconds": sec,
            "predict_pairs_per_second": round(pairs / sec["predict"], 1) if sec.get("predict") else None,
            "predict_and_cluster_pairs_per_second": round(pairs / both, 1) if both else None}, \
        clusters, json.loads(settings)


def _name(persons: int) -> str:
    return f"spark-{persons}" if persons else "spark"


def phase_duckdb(town: Path, persons: int, seed: int, result: dict) -> None:
    """Generate the town (unless there) and run ingest, standardise and persons on DuckDB (the one training)."""
    if not (town / "project.toml").exists():
        if persons:
            from ecins_link.synth import generate_town

            started = time.perf_counter()
            generate_town(town, persons=persons, seed=seed)
            result["synth_seconds"] = round(time.perf_counter() - started, 1)
        else:
            shutil.copytree(SAMPLE, town, ignore=shutil.ignore_patterns("store.duckdb*", "output"))
    result["duckdb"] = run_cli(town / "project.toml", ["ingest", "standardise", "persons"])
    duck, _, model = persons_record(town / "store.duckdb")
    result["duckdb"].update(duck)
    (RESULTS / f"{_name(persons)}-model.json").write_text(json.dumps(model, indent=1), encoding="utf-8")
    for part in STORE_FILES:  # the store and its audit chain's head file, as they were after training
        if (town / part).exists():
            shutil.copy(town / part, town / f"{part}.trained")


def _restore(town: Path) -> None:
    for part in STORE_FILES:
        if (town / f"{part}.trained").exists():
            shutil.copy(town / f"{part}.trained", town / part)


def phase_spark(town: Path, result: dict, memory: str, train: bool) -> None:
    """The persons stage alone on DuckDB (the same stage the Spark run does, plus DuckDB's training), then on
    Spark, each on a copy of the DuckDB-trained store; Spark applies the stored model."""
    _restore(town)
    _, duck_clusters, _ = persons_record(town / "store.duckdb")
    result["duckdb_persons_stage_alone"] = run_cli(town / "project.toml", ["persons"])
    result["duckdb_persons_stage_alone"].update(persons_record(town / "store.duckdb")[0])
    _restore(town)
    project = town / "project.toml"
    base = project.with_suffix(".duckdb.toml")
    if not base.exists():
        shutil.copy(project, base)
    text = base.read_text(encoding="utf-8")
    project.write_text(text.replace("[linkage]\n", "[linkage]\nretrain = false\n", 1)
                       + SPARK_SECTION.format(memory=memory), encoding="utf-8")
    result["spark_fixed_model"] = run_cli(project, ["persons"], log=town / "spark_run.log")
    spark, spark_clusters, _ = persons_record(town / "store.duckdb")
    result["spark_fixed_model"].update(spark)
    result["cluster_agreement_f1"] = round(pairwise_metrics(spark_clusters, duck_clusters)["f1"], 5)
    if train:
        project.write_text(project.read_text(encoding="utf-8").replace("retrain = false\n", "", 1), encoding="utf-8")
        result["spark_trained"] = run_cli(project, ["persons"])
        result["spark_trained"].update(persons_record(town / "store.duckdb")[0])
    shutil.copy(base, project)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--persons", type=int, default=0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dir", type=Path, default=None, help="keep the town here (phases may run apart)")
    ap.add_argument("--phase", choices=("all", "duckdb", "spark"), default="all")
    ap.add_argument("--driver-memory", default="6g", help="spark.driver.memory (local mode: the whole JVM heap)")
    ap.add_argument("--spark-train", action="store_true")
    args = ap.parse_args()
    name = _name(args.persons)
    partial = RESULTS / f"{name}.partial.json"
    result: dict = json.loads(partial.read_text()) if args.phase == "spark" and partial.exists() else {}
    result.update(persons=args.persons or "sample town (2,000)", seed=args.seed)
    result.setdefault("load_average_before", {})[args.phase] = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_spark_") as tmp:
        town = args.dir or Path(tmp) / "town"
        if args.phase in ("all", "duckdb"):
            phase_duckdb(town, args.persons, args.seed, result)
            partial.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        if args.phase in ("all", "spark"):
            phase_spark(town, result, args.driver_memory, args.spark_train)
            partial.unlink(missing_ok=True)
    result.setdefault("load_average_after", {})[args.phase] = os.getloadavg()
    print(json.dumps(result, indent=2, default=str))
    if args.phase != "duckdb":
        print(f"written {write_results(name, result)}")


if __name__ == "__main__":
    main()
