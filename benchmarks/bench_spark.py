"""Persons stage on Spark (``local[2]``) against DuckDB, through the public interface (docs/spark.md).

For a town (default: the committed 2k-person sample; ``--persons N``: a fresh synthetic town of N persons,
seed ``--seed``) in a temp folder:

1. ``ecins-link run PROJECT --stage ingest --stage standardise --stage persons`` with the default DuckDB
   backend: the model is trained, pairs scored and clustered (the DuckDB baseline);
2. the same project with ``[engine] backend = "spark"`` and ``linkage.retrain = false``:
   ``ecins-link run PROJECT --stage persons`` applies the DuckDB-trained model on Spark (predict + cluster);
3. with ``--spark-train``: once more on Spark with training (slow: ~5 min per 10k records on 2 cores).

Each run is a child process; its wall time and the peak resident memory of its whole process tree (Python
driver + JVM + Python workers) are sampled.  Per engine the persons stage's own seconds per step and candidate
pairs come from ``linkage_models.summary_json``: pairs/s = candidate pairs / predict seconds.  The cluster
agreement (pairwise F1) between the engines' ``person_clusters`` is recorded too.  Writes
``benchmarks/results/spark[-N].json``.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_spark.py [--persons 20000] [--seed 7] [--spark-train]``
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

from _measure import write_results  # noqa: E402

from ecins_link.matching.metrics import pairwise_metrics  # noqa: E402
from ecins_link.store import Store  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "town"
SPARK_SECTION = """
[engine]
backend = "spark"
spark_master = "local[2]"
work_dir = "spark_work"
[engine.spark_conf]
"spark.sql.shuffle.partitions" = "8"
"spark.driver.memory" = "4g"
"""


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_cli(project: Path, stages: list[str]) -> dict:
    """``python -m ecins_link run`` as a child process: wall seconds and peak RSS of its process tree."""
    args = [sys.executable, "-m", "ecins_link", "run", str(project)]
    for s in stages:
        args += ["--stage", s]
    started = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            peak = max(peak, _tree_rss(proc))
        except psutil.Error:
            pass
        time.sleep(0.2)
    err = child.stderr.read() if child.stderr else ""
    if child.returncode:
        raise SystemExit(f"run failed ({child.returncode}): {err[-2000:]}")
    return {"wall_seconds": round(time.perf_counter() - started, 2), "peak_rss_mb": round(peak / 2**20, 1)}


def persons_record(store_path: Path) -> tuple[dict, object]:
    """The last persons run's summary figures and its clusters."""
    store = Store(store_path, read_only=True)
    try:
        summary = json.loads(store.con.execute("""SELECT summary_json FROM linkage_models
                                                   ORDER BY created_at DESC LIMIT 1""").fetchone()[0])
        clusters = store.con.execute("SELECT unique_id, person_id FROM person_clusters").df()
    finally:
        store.close()
    sec = summary.get("seconds", {})
    pairs = int(summary.get("candidate_pairs", 0))
    return {"mode": summary.get("mode"), "records": summary.get("records"), "candidate_pairs": pairs,
            "persons_stage_seconds": round(sum(v for v in sec.values() if isinstance(v, (int, float))), 2),
            "seconds": sec,
            "predict_pairs_per_second": round(pairs / sec["predict"], 1) if sec.get("predict") else None}, clusters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--persons", type=int, default=0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--spark-train", action="store_true")
    args = ap.parse_args()
    result: dict = {"persons": args.persons or "sample town (2,000)", "seed": args.seed,
                    "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench_spark_") as tmp:
        town = Path(tmp) / "town"
        if args.persons:
            from ecins_link.synth import generate_town

            generate_town(town, persons=args.persons, seed=args.seed)
        else:
            shutil.copytree(SAMPLE, town, ignore=shutil.ignore_patterns("store.duckdb*", "output"))
        project = town / "project.toml"
        result["duckdb"] = run_cli(project, ["ingest", "standardise", "persons"])
        duck, duck_clusters = persons_record(town / "store.duckdb")
        result["duckdb"].update(duck)
        text = project.read_text(encoding="utf-8")
        project.write_text(text.replace("[linkage]\n", "[linkage]\nretrain = false\n", 1) + SPARK_SECTION,
                           encoding="utf-8")
        result["spark_fixed_model"] = run_cli(project, ["persons"])
        spark, spark_clusters = persons_record(town / "store.duckdb")
        result["spark_fixed_model"].update(spark)
        result["cluster_agreement_f1"] = round(pairwise_metrics(spark_clusters, duck_clusters)["f1"], 5)
        if args.spark_train:
            project.write_text(project.read_text(encoding="utf-8").replace("retrain = false\n", "", 1),
                               encoding="utf-8")
            result["spark_trained"] = run_cli(project, ["persons"])
            result["spark_trained"].update(persons_record(town / "store.duckdb")[0])
    result["load_average_after"] = os.getloadavg()
    name = f"spark-{args.persons}" if args.persons else "spark"
    print(json.dumps(result, indent=2, default=str))
    print(f"written {write_results(name, result)}")


if __name__ == "__main__":
    main()
