"""Benchmark the graph stage (graph build + households + components + churn) on a 250k-person town.

Target: <= 30 s and <= 4 GiB on 2 cores.  Writes ``benchmarks/results/graph.json`` (or ``graph_<mode>.json``).

Modes:
* ``--mode synthetic`` (default): the graph stage's input tables for N persons generated set-based in DuckDB
  (~1.3 person records, ~1.6 event rows per person; occurrences naming 1-3 people; 2.4 per household).
* ``--mode town``: ``ecins_link.synth.generate_town`` + ingest + standardise + persons + locations, then graph
  (needs the upstream stages; their time is recorded separately).
* ``--project PROJECT.toml``: the graph stage alone, ``--repeat`` times, on an existing store that has run
  the upstream stages (a COPY: the stage rewrites its tables and appends audit rows), with CPU seconds and
  the load average (the machine is shared).  With ``--label before|after`` the numbers go under that key
  of ``--name`` (default ``graph_project``) and the other label's numbers are kept: one file holds a
  before/after comparison.

Run: ``nice .venv/bin/python benchmarks/bench_graph.py [--persons 250000] [--mode synthetic|town]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measured, stage_on_project, write_results  # noqa: E402

from ecins_link.config import load_config, parse_config  # noqa: E402
from ecins_link.graph import build_graph  # noqa: E402
from ecins_link.store import Store  # noqa: E402

AS_OF = dt.date(2025, 3, 31)
SOURCES = [
    {"name": "housing", "agency": "housing", "path": "h.csv", "key": "id", "person": {"full_name": "n"}},
    {"name": "nominals", "agency": "police", "path": "n.csv", "key": "id", "person": {"full_name": "n"}},
    {"name": "council", "agency": "council", "path": "c.csv", "key": "id", "person": {"full_name": "n"}},
    {"name": "occurrences", "agency": "police", "path": "o.csv", "key": ["occ", "id"],
     "event": {"code": "t", "date": "d", "role": "r", "person_ref": {"source": "nominals", "column": "id"}}},
]


def synthetic_inputs(store: Store, persons: int) -> dict:
    """person_clusters, person_records, event_records, address_records, address_matches for ``persons``."""
    con = store.con
    a = f"DATE '{AS_OF.isoformat()}'"
    n_loc = int(persons / 2.4)
    con.execute(f"""CREATE OR REPLACE TABLE _p AS SELECT i, 'P' || lpad(i::VARCHAR, 7, '0') AS person_id,
        (i * 7919) % {n_loc} AS home, {a} - ((hash(i) % 32000)::INT) AS dob FROM range({persons}) t(i)""")
    con.execute(f"""CREATE OR REPLACE TABLE _r AS
        SELECT 'housing' AS source, 'housing' AS agency, 'T' || i AS record_key, person_id, home,
               {a} - (hash(i, 1) % 4000)::INT AS rf, CASE WHEN i % 9 = 0 THEN {a} - (hash(i, 2) % 300)::INT END AS rt,
               dob FROM _p WHERE i % 3 = 0
        UNION ALL SELECT 'nominals', 'police', 'N' || i, person_id, home, NULL, NULL, dob FROM _p WHERE i % 5 < 2
        UNION ALL SELECT 'council', 'council', 'C' || i, person_id, CASE WHEN i % 17 = 0 THEN (home + 1) % {n_loc}
               ELSE home END, NULL, NULL, dob FROM _p WHERE i % 2 = 0""")
    con.execute("""CREATE OR REPLACE TABLE person_records AS SELECT source, agency, record_key, 1::BIGINT AS row_number,
        NULL::VARCHAR AS title, 'F' || (hash(record_key) % 500)::VARCHAR AS forenames,
        'S' || (hash(person_id) % 3000)::VARCHAR AS surname, NULL::VARCHAR AS full_name, dob, NULL::VARCHAR AS dob_raw,
        CASE WHEN hash(person_id) % 2 = 0 THEN 'M' ELSE 'F' END AS sex, 'x' AS address_text, NULL::VARCHAR AS postcode,
        NULL::VARCHAR AS uprn, NULL::VARCHAR AS phone, NULL::VARCHAR AS email, rf AS resident_from,
        rt AS resident_to, false AS unsafe FROM _r""")
    con.execute("""CREATE OR REPLACE TABLE person_clusters AS SELECT source || ':' || record_key AS unique_id, source,
        record_key, person_id, 0.97::DOUBLE AS cluster_confidence FROM _r""")
    # occurrences: each names 1-3 nominals (a row per person), 60 % with their own location
    con.execute(f"""CREATE OR REPLACE TABLE _o AS SELECT o, {a} - (hash(o, 3) % 1100)::INT AS d,
        1 + (hash(o, 4) % 3)::INT AS k FROM range({int(persons * 0.5)}) t(o)""")
    con.execute(f"""CREATE OR REPLACE TABLE event_records AS
        SELECT 'occurrences' AS source, 'police' AS agency, 'O' || o || '|' || n.record_key AS record_key,
               1 AS event_seq, CASE WHEN j = 0 THEN 'DA_VICTIM' ELSE 'DA_SUSPECT' END AS signal, 'DA' AS raw_code,
               CASE WHEN j = 0 THEN 'V' ELSE 'S' END AS role, d AS event_date, NULL::TIMESTAMP AS event_ts,
               NULL::VARCHAR AS location_text, NULL::VARCHAR AS location_postcode, 'nominals' AS person_source,
               n.record_key AS person_record_key
        FROM _o, range(3) t(j), (SELECT record_key, row_number() OVER () - 1 AS rn FROM _r
                                 WHERE source = 'nominals') n
        WHERE j < k AND n.rn = hash(o, j) % {int(persons * 0.4)}""")
    con.execute(f"""CREATE OR REPLACE TABLE _a AS
        SELECT source, agency, record_key, 'person' AS origin, home AS loc FROM _r
        UNION ALL SELECT source, agency, record_key, 'event', hash(record_key) % {n_loc} FROM event_records
        WHERE hash(split_part(record_key, '|', 1)) % 5 < 3""")
    con.execute("""CREATE OR REPLACE TABLE address_records AS SELECT source, agency, record_key, origin,
        'addr ' || loc AS address_text, NULL::VARCHAR AS postcode, NULL::VARCHAR AS uprn FROM _a""")
    con.execute("""CREATE OR REPLACE TABLE address_matches AS SELECT source, record_key, (10000000 + loc)::VARCHAR AS uprn,
        'U' || (10000000 + loc)::VARCHAR AS location_id, 0.98::DOUBLE AS match_confidence,
        'exact_key' AS match_method FROM _a""")
    for t in ("_p", "_r", "_o", "_a"):
        con.execute(f"DROP TABLE {t}")
    return {t: store.count(t) for t in ("person_clusters", "event_records", "address_matches")}


def on_project(project: Path, label: str, name: str, repeat: int) -> None:
    """Time the graph stage alone on an existing store (see the module docstring)."""
    print(stage_on_project(project, "graph", label, name, repeat,
                           tables=("graph_nodes", "graph_edges", "person_components")))


def main() -> None:
    """Build inputs, run the graph stage and record time, peak memory and table sizes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=250_000)
    parser.add_argument("--mode", choices=["synthetic", "town"], default="synthetic")
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--project", type=Path, help="an existing store (a COPY): time the graph stage alone")
    parser.add_argument("--label", default="after", choices=["before", "after"])
    parser.add_argument("--name", default="graph_project")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.project:
        on_project(args.project, args.label, args.name, args.repeat)
        return
    record: dict = {"n_persons": args.persons, "mode": args.mode, "target_seconds": 30, "target_peak_gib": 4}
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "bench.duckdb", memory_limit=args.memory_limit) as store:
            store.con.execute("SET threads = 2")
            if args.mode == "synthetic":
                config = parse_config({"project": {"name": "bench", "as_of": AS_OF.isoformat()},
                                       "sources": SOURCES}, root=Path(tmp))
                with measured(record, "build_inputs"):
                    record["inputs"] = synthetic_inputs(store, args.persons)
            else:
                from ecins_link.ingest import ingest
                from ecins_link.locations import link_locations
                from ecins_link.matching import link_persons
                from ecins_link.standardise import standardise
                from ecins_link.synth import generate_town

                with measured(record, "generate_town"):
                    generate_town(Path(tmp) / "town", args.persons, 42)
                config = load_config(Path(tmp) / "town" / "project.toml")
                for name, fn in (("ingest", ingest), ("standardise", standardise), ("persons", link_persons),
                                 ("locations", link_locations)):
                    with measured(record, name):
                        fn(store, config)
            with measured(record, "graph"):
                build_graph(store, config)
            record["tables"] = {t: store.count(t) for t in ("person_attributes", "residences", "households",
                                                           "graph_nodes", "graph_edges", "person_components",
                                                           "location_churn")}
            record["households"] = store.con.execute(
                "SELECT count(DISTINCT household_id) FROM households").fetchone()[0]
            record["components"], record["largest_component"] = store.con.execute(
                "SELECT count(*), max(n) FROM (SELECT component_id, count(*) AS n FROM person_components "
                "GROUP BY 1)").fetchone()
    g = record["graph"]
    record["meets_target"] = g["seconds"] <= 30 and g["peak_rss_mb"] <= 4096
    name = "graph" if args.mode == "synthetic" and args.persons == 250_000 else f"graph_{args.mode}_{args.persons}"
    print(write_results(name, record))


if __name__ == "__main__":
    main()
