"""Benchmark write_outputs (CSV/Parquet contract + HTML panel pack) on a scored synthetic population.

Inputs are built and scored exactly as in ``bench_scoring.py`` (set-based random town), then the full
output folder is written for the unrestricted view and for one purpose.  Writes
``benchmarks/results/report.json`` (or ``report_<persons>.json``).
Run: ``nice .venv/bin/python benchmarks/bench_report.py [--persons 50000]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measured, write_results  # noqa: E402
from bench_scoring import AS_OF, build_inputs  # noqa: E402

from ecins_link.config import parse_config  # noqa: E402
from ecins_link.report import write_outputs  # noqa: E402
from ecins_link.scoring import score  # noqa: E402
from ecins_link.store import Store  # noqa: E402


def main() -> None:
    """Build and score inputs, then time write_outputs (full view, then a purpose view)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=50_000)
    args = parser.parse_args()
    record: dict = {"persons": args.persons, "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config({
            "project": {"name": "bench", "as_of": AS_OF.isoformat()},
            "sources": [{"name": "p", "agency": "police", "path": "p.csv", "key": "id", "person": {"full_name": "n"}}],
            "purposes": {"marac": {"agencies": ["police", "council"], "categories": ["DA", "MENTAL_HEALTH", "SUBSTANCE"],
                                   "rules": ["marac_potential_escalation", "toxic_trio"]}}}, root=Path(tmp))
        with Store(Path(tmp) / "bench.duckdb") as store:
            with measured(record, "build_and_score"):
                build_inputs(store, args.persons)
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
            record["pack_mb_full"] = round(sum(p.stat().st_size for p in (Path(tmp) / "full").rglob("*")
                                               if p.is_file()) / 2**20, 1)
    record["load_average_after"] = os.getloadavg()
    path = write_results("report" if args.persons == 50_000 else f"report_{args.persons}", record)
    print(path.read_text())


if __name__ == "__main__":
    main()
