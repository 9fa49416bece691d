"""Time the synthetic-town generator: ``python benchmarks/bench_synth.py [--persons 250000] [--seed 1]``.

Writes ``benchmarks/results/synth.json`` (seconds, peak RSS, rows per source).  Target: 250,000 persons
(~1M records) in <= 3 minutes on the 2-core dev machine.  Run it under ``nice``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measured, write_results  # noqa: E402

from ecins_link.synth import generate_town  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--persons", type=int, default=250_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bad-rows", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="write the town here and keep it")
    args = ap.parse_args()
    out = args.keep or Path(tempfile.mkdtemp(prefix="synth-bench-"))
    record: dict = {}
    try:
        with measured(record, "generate"):
            summary = generate_town(out, persons=args.persons, seed=args.seed, bad_rows=args.bad_rows)
        size_mb = round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20, 1)
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)
    rows = dict(summary.rows)
    agency_rows = sum(v for k, v in rows.items() if k != "llpg")
    data = {"persons": args.persons, "seed": args.seed, "bad_rows": args.bad_rows, **record["generate"],
            "target_seconds": 180, "meets_target": record["generate"]["seconds"] <= 180,
            "rows_per_source": rows, "agency_records": agency_rows, "gazetteer_rows": rows.get("llpg", 0),
            "output_mb": size_mb, "scenarios": summary.scenarios, "decoys": summary.decoys}
    path = write_results("synth", data)
    print(path.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
