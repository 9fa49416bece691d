"""Time ingest + standardise on a synthetic town of ~1M agency records.

``nice python benchmarks/bench_ingest.py [--persons 320000] [--town DIR] [--bad-rows 40]``

Generates the town (unless ``--town`` points at one), then runs ``ingest`` and ``standardise`` into a
fresh store and writes ``benchmarks/results/ingest.json`` (seconds and peak RSS per stage, rows per
source).  Target: 1M agency records ingested + standardised in <= 20 s on the 2-core dev machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measured, write_results  # noqa: E402

from ecins_link.config import load_config  # noqa: E402
from ecins_link.ingest import ingest  # noqa: E402
from ecins_link.standardise import standardise  # noqa: E402
from ecins_link.store import Store  # noqa: E402

TARGET_SECONDS = 20.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--persons", type=int, default=320_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bad-rows", type=int, default=40)
    ap.add_argument("--town", type=Path, default=None, help="an existing town folder (project.toml inside)")
    ap.add_argument("--name", default="ingest")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    try:
        town = args.town
        if town is None:
            from ecins_link.synth import generate_town

            town = work / "town"
            generate_town(town, persons=args.persons, seed=args.seed, bad_rows=args.bad_rows)
        config = load_config(town / "project.toml")
        record: dict = {}
        with Store(work / "bench.duckdb") as store:
            with measured(record, "ingest"):
                ingest(store, config)
            with measured(record, "standardise"):
                standardise(store, config)
            acc = store.df("SELECT * FROM accounting ORDER BY source")
            counts = {t: store.count(t) for t in ("person_records", "event_records", "address_records", "gazetteer",
                                                  "person_std", "address_std", "gazetteer_std", "quarantine")}
        rows = {r.source: int(r.rows_read) for r in acc.itertuples()}
        agency_rows = sum(v for k, v in rows.items() if k != config.gazetteer_source.name) if config.gazetteer_source \
            else sum(rows.values())
        total = round(record["ingest"]["seconds"] + record["standardise"]["seconds"], 3)
        data = {"town": str(args.town) if args.town else f"synth persons={args.persons} seed={args.seed}",
                "agency_records": agency_rows, "gazetteer_rows": sum(rows.values()) - agency_rows,
                "stages": record, "seconds_total": total,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in record.values()),
                "target_seconds": TARGET_SECONDS, "meets_target": total <= TARGET_SECONDS * agency_rows / 1e6
                if agency_rows < 1e6 else total <= TARGET_SECONDS,
                "rows_per_source": rows, "table_rows": counts}
        print(write_results(args.name, data))
        print(data)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
