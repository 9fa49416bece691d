"""Time ingest + standardise on a synthetic town of ~1M agency records.

``nice python benchmarks/bench_ingest.py [--persons 320000] [--town DIR] [--bad-rows 40] [--before FILE]``

Generates the town (unless ``--town`` points at one), then runs ``ingest`` and ``standardise`` into a
fresh store and writes ``benchmarks/results/<name>.json``: wall and CPU seconds and peak RSS per stage,
wall seconds per source (ingest) and per step (standardise: names, addresses, gazetteer, tables — from the
stages' audit rows), rows per source, and the machine's load average (the dev box is shared: CPU seconds
are the steadier number).  ``--before FILE`` embeds an earlier result (e.g. the same script run with
``PYTHONPATH`` pointing at an older checkout) under ``before``.  Target: 1M agency records ingested +
standardised in <= 20 s on the 2-core dev machine.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
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


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _stage_seconds(store: Store, action: str) -> dict:
    """The ``seconds`` breakdown a stage wrote into its audit row (empty for older code)."""
    row = store.con.execute("SELECT details FROM audit_log WHERE action = ? ORDER BY seq DESC LIMIT 1",
                            [action]).fetchone()
    return json.loads(row[0]).get("seconds", {}) if row else {}


def run(town: Path, work: Path) -> dict:
    """Ingest + standardise ``town`` into a fresh store under ``work``; the measurements."""
    config = load_config(town / "project.toml")
    record: dict = {}
    load_start = os.getloadavg()
    with Store(work / "bench.duckdb") as store:
        for stage, fn in (("ingest", ingest), ("standardise", standardise)):
            cpu = _cpu()
            with measured(record, stage):
                fn(store, config)
            record[stage]["cpu_seconds"] = round(_cpu() - cpu, 3)
        acc = store.df("SELECT * FROM accounting ORDER BY source")
        counts = {t: store.count(t) for t in ("person_records", "event_records", "address_records", "gazetteer",
                                              "person_std", "address_std", "gazetteer_std", "quarantine")}
        ingest_by_source = _stage_seconds(store, "ingest")
        standardise_by_step = _stage_seconds(store, "standardise")
    store_mb = round((work / "bench.duckdb").stat().st_size / 2**20, 1)
    rows = {r.source: int(r.rows_read) for r in acc.itertuples()}
    gaz = config.gazetteer_source.name if config.gazetteer_source else None
    agency_rows = sum(v for k, v in rows.items() if k != gaz)
    total = round(record["ingest"]["seconds"] + record["standardise"]["seconds"], 3)
    return {"code": str(Path(inspect.getfile(ingest)).parents[1]), "agency_records": agency_rows,
            "gazetteer_rows": sum(rows.values()) - agency_rows, "stages": record, "seconds_total": total,
            "cpu_seconds_total": round(record["ingest"]["cpu_seconds"] + record["standardise"]["cpu_seconds"], 3),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in record.values()),
            "ingest_seconds_by_source": ingest_by_source, "standardise_seconds_by_step": standardise_by_step,
            "load_avg_start": [round(x, 2) for x in load_start],
            "load_avg_end": [round(x, 2) for x in os.getloadavg()], "store_mb": store_mb,
            "rows_per_source": rows, "table_rows": counts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--persons", type=int, default=320_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bad-rows", type=int, default=40)
    ap.add_argument("--town", type=Path, default=None, help="an existing town folder (project.toml inside)")
    ap.add_argument("--name", default="ingest")
    ap.add_argument("--before", type=Path, default=None, help="an earlier result JSON to embed as 'before'")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    try:
        town = args.town
        if town is None:
            from ecins_link.synth import generate_town

            town = work / "town"
            generate_town(town, persons=args.persons, seed=args.seed, bad_rows=args.bad_rows)
        data = {"town": str(args.town) if args.town else
                f"synth persons={args.persons} seed={args.seed} bad_rows={args.bad_rows}", **run(town, work)}
        scale = min(1.0, data["agency_records"] / 1e6)
        data.update({"target_seconds": TARGET_SECONDS, "target_scaled_to_rows": round(TARGET_SECONDS * scale, 2),
                     "meets_target": data["seconds_total"] <= TARGET_SECONDS * scale})
        if args.before:
            before = json.loads(args.before.read_text(encoding="utf-8"))
            data["before"] = {k: before.get(k) for k in ("measured_at", "code", "agency_records", "stages",
                                                         "seconds_total", "cpu_seconds_total", "peak_rss_mb",
                                                         "ingest_seconds_by_source", "standardise_seconds_by_step",
                                                         "load_avg_start", "load_avg_end", "store_mb")}
        print(write_results(args.name, data))
        print(json.dumps({k: data[k] for k in ("stages", "seconds_total", "cpu_seconds_total", "peak_rss_mb")}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
