"""Benchmark + accuracy of the locations stage on a synthetic town (addresses -> UPRNs).

Generates a town (``ecins_link.synth.generate_town``), runs ingest and standardise, then times
``link_locations`` and evaluates it against ``truth/addresses.csv``.  Targets: >= 97 % of address records on
the right UPRN, < 0.5 % on a wrong one.  Also times address parsing alone (distinct agency texts + gazetteer)
two ways: one text at a time in Python (``address_frame`` / ``gazetteer_frame``) and set-based in DuckDB
(``address_table`` / ``gazetteer_table``).  Writes ``benchmarks/results/locations[_<persons>].json``.

With ``--store`` it runs only the locations stage, ``--repeat`` times, on the project store of ``--town`` (a town
that has already been through ingest and standardise, e.g. a copy of an end-to-end benchmark town; the store's
``address_matches`` is replaced): wall and CPU seconds of each run, load average around it, per-step seconds
(the stage's audit details), and the accuracy of the last run.

Run: ``nice .venv/bin/python benchmarks/bench_locations.py [--persons 20000] [--no-uam]``, or
``nice .venv/bin/python benchmarks/bench_locations.py --town COPY_OF_TOWN --store --persons 250000 --repeat 3``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import PeakRSS, measured, write_results  # noqa: E402

from ecins_link.config import load_config  # noqa: E402
from ecins_link.locations.stage import RULES_FILE, evaluate_locations, link_locations  # noqa: E402
from ecins_link.store import Store  # noqa: E402


def _time_address_parsing(store: Store, record: dict) -> None:
    """Address parsing alone, per text in Python vs set-based in SQL (same distinct texts, same gazetteer)."""
    from ecins_link.standardise.address import clean_part, expand_street, normalise_flat, parse_address
    from ecins_link.standardise.address_sql import address_table, gazetteer_table

    con = store.con
    texts_sql = ("SELECT address_text FROM person_records UNION ALL SELECT address_text FROM address_records")
    with measured(record, "address_parsing_python"):
        values = [r[0] for r in con.execute(f"SELECT DISTINCT * FROM ({texts_sql}) t(v) WHERE v IS NOT NULL")
                  .fetchall()]
        for v in values:
            parse_address(v)
        for row in con.execute("SELECT sub_building, number, building_name, organisation, street, locality, town "
                               "FROM gazetteer").fetchall():
            normalise_flat(row[0])
            expand_street(row[4])
            for x in (*row[1:4], *row[5:]):
                clean_part(x)
    with measured(record, "address_parsing_sql"):
        address_table(con, texts_sql, "_bench_addr")
        gazetteer_table(con, "_bench_gaz")
    record["distinct_address_texts"] = len(values)
    for t in ("_bench_addr", "_bench_gaz"):
        con.execute(f"DROP TABLE {t}")


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stage_only(town: Path, record: dict, repeat: int, rules_path: Path | None) -> None:
    """Run the locations stage alone on ``town``'s own (already standardised) store, ``repeat`` times."""
    from ecins_link.pipeline import open_store

    config = load_config(town / "project.toml")
    runs = []
    with open_store(config, command="bench-locations") as store:
        record["address_std_rows"] = store.count("address_std")
        record["gazetteer_rows"] = store.count("gazetteer_std")
        for i in range(repeat):
            load = [round(x, 2) for x in os.getloadavg()]
            cpu, started = _cpu_seconds(), time.perf_counter()
            with PeakRSS() as rss:
                link_locations(store, config, rules_path=rules_path)
            run = {"seconds": round(time.perf_counter() - started, 3), "cpu_seconds": round(_cpu_seconds() - cpu, 2),
                   "peak_rss_mb": rss.peak_mb, "load_before": load,
                   "load_after": [round(x, 2) for x in os.getloadavg()]}
            steps = json.loads(store.con.execute(
                "SELECT details FROM audit_log WHERE action = 'link_locations' ORDER BY seq DESC LIMIT 1").fetchone()[0])
            run["steps"] = steps["steps"]
            runs.append(run)
            print(f"run {i + 1}: {run['seconds']} s wall, {run['cpu_seconds']} s CPU, load {load[0]}; "
                  f"steps {run['steps']['seconds']}", flush=True)
        record["evaluation"] = evaluate_locations(store, town / "truth" / "addresses.csv")
    record["runs"] = runs
    record["locations"] = {"seconds_min": min(r["seconds"] for r in runs),
                           "seconds_median": sorted(r["seconds"] for r in runs)[len(runs) // 2]}


def main() -> None:
    """Generate, ingest, standardise, resolve; record times, peak memory and accuracy by method."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-uam", action="store_true", help="keys only (uk_address_matcher disabled)")
    parser.add_argument("--no-answer-cache", action="store_true",
                        help="every run calls the matcher (no answers kept from an earlier run of this store)")
    parser.add_argument("--proximity", choices=["resolve", "unresolved"], default="resolve")
    parser.add_argument("--town", type=Path, help="reuse a generated town folder instead of generating one")
    parser.add_argument("--store", action="store_true",
                        help="run only the locations stage on --town's own, already standardised store")
    parser.add_argument("--repeat", type=int, default=1, help="with --store: how many runs")
    parser.add_argument("--tag", default="", help="suffix for the results file name")
    args = parser.parse_args()
    if args.store and args.town is None:
        parser.error("--store needs --town")
    from ecins_link.synth import generate_town

    record: dict = {"persons": args.persons, "seed": args.seed, "uk_address_matcher": not args.no_uam,
                    "answer_cache": not args.no_answer_cache,
                    "proximity": args.proximity, "targets": {"correct": 0.97, "wrong_below": 0.005}}
    with tempfile.TemporaryDirectory() as tmp:
        town = args.town or Path(tmp) / "town"
        if args.town is None:
            with measured(record, "generate_town"):
                generate_town(town, args.persons, args.seed)
        config = load_config(town / "project.toml")
        rules_path = None
        if args.no_uam or args.proximity != "resolve" or args.no_answer_cache:
            rules = RULES_FILE.read_text(encoding="utf-8")
            if args.no_uam:
                rules = rules.replace("enabled = true", "enabled = false")
            if args.proximity != "resolve":
                rules = rules.replace("resolve = true", "resolve = false")
            if args.no_answer_cache:
                rules = rules.replace("answer_cache = true", "answer_cache = false")
            tomllib.loads(rules)
            rules_path = Path(tmp) / "location_rules.toml"
            rules_path.write_text(rules, encoding="utf-8")
        if args.store:
            stage_only(town, record, args.repeat, rules_path)
        else:
            _full(town, config, record, Path(tmp), rules_path)
    o = record["evaluation"]["overall"]
    record["meets_target"] = o["correct"] >= 0.97 and o["wrong"] < 0.005
    suffix = "" if args.persons == 20_000 and not args.no_uam and args.proximity == "resolve" else (
        f"_{args.persons}" + ("_nouam" if args.no_uam else "") + ("_proxunres" if args.proximity != "resolve" else ""))
    print(write_results(f"locations{suffix}{args.tag}", record))


def _full(town: Path, config, record: dict, tmp: Path, rules_path: Path | None) -> None:  # noqa: ANN001
    """Ingest and standardise into a fresh store, time address parsing, then the locations stage."""
    from ecins_link.ingest import ingest
    from ecins_link.standardise import standardise

    with Store(tmp / "bench.duckdb", memory_limit="4GB") as store:
        store.con.execute("SET threads = 2")
        with measured(record, "ingest"):
            ingest(store, config)
        _time_address_parsing(store, record)
        with measured(record, "standardise"):
            standardise(store, config)
        record["address_std_rows"] = store.count("address_std")
        record["gazetteer_rows"] = store.count("gazetteer_std")
        record["load_before_locations"] = [round(x, 2) for x in os.getloadavg()]
        cpu = _cpu_seconds()
        with measured(record, "locations"):
            link_locations(store, config, rules_path=rules_path)
        record["locations"]["cpu_seconds"] = round(_cpu_seconds() - cpu, 2)
        record["load_after_locations"] = [round(x, 2) for x in os.getloadavg()]
        record["steps"] = json.loads(store.con.execute(
            "SELECT details FROM audit_log WHERE action = 'link_locations' ORDER BY seq DESC LIMIT 1").fetchone()[0])
        print(f"locations {record['locations']}; steps {record['steps']['steps']['seconds']}", flush=True)
        record["evaluation"] = evaluate_locations(store, town / "truth" / "addresses.csv")


if __name__ == "__main__":
    main()
