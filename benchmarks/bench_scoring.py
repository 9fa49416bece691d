"""Benchmark the score stage on a 250k-person town's graph tables (generated set-based in DuckDB).

Target: 250k persons scored in <= 10 s on 2 cores.  Writes ``benchmarks/results/scoring.json``.
Run: ``nice .venv/bin/python benchmarks/bench_scoring.py [--persons 250000]``.

``--compare-ambiguous SHARE``: the same synthetic inputs scored alternately without and with a share of event
addresses that fit two premises (the score stage's ambiguous-address corroboration, scoring/placement.py).

``--project PROJECT.toml``: the score stage alone, ``--repeat`` times, on an existing store that has run the
graph stage (a COPY: the stage rewrites signals/flags and appends audit rows), with CPU seconds, the load
average (the machine is shared) and the per-rule seconds of the stage's audit row.  With ``--label
before|after`` the numbers go under that key of ``--name`` (default ``scoring_project``), keeping the other
label's: one file holds a before/after comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measured, stage_on_project, write_results  # noqa: E402

from ecins_link.config import parse_config  # noqa: E402
from ecins_link.scoring import load_taxonomy, score  # noqa: E402
from ecins_link.scoring.fixtures import DDL  # noqa: E402
from ecins_link.store import Store  # noqa: E402

AS_OF = dt.date(2025, 3, 31)
AGENCIES = ["police", "housing", "fire", "council"]


def build_inputs(store: Store, persons: int, seed: float = 0.42) -> dict:
    """Create the score stage's input tables for ``persons`` people (~2.4 signals each, 2.5 per household)."""
    con = store.con
    con.execute(f"SELECT setseed({seed})")
    for name, ddl in DDL.items():
        con.execute(f'CREATE OR REPLACE TABLE "{name}" ({ddl})')
    codes = [s.code for s in load_taxonomy().signals]
    code_list = "[" + ", ".join(f"'{c}'" for c in codes) + "]"
    ag_list = "[" + ", ".join(f"'{a}'" for a in AGENCIES) + "]"
    n_loc = persons * 2 // 5
    a = f"DATE '{AS_OF.isoformat()}'"
    recorded = f", {a} - 900" if "from_recorded" in DDL["residences"] else ""  # (a store of the earlier code: none)
    con.execute(f"""INSERT INTO person_attributes SELECT 'P' || lpad(i::VARCHAR, 7, '0'), 'x', NULL,
        (random() * 90)::INT AS age, NULL, NULL, 2, [] FROM range({persons}) t(i)""")
    con.execute("UPDATE person_attributes SET is_child = age < 18")
    con.execute(f"""INSERT INTO residences SELECT person_id, 'U' || (hash(person_id) % {n_loc})::VARCHAR,
        (hash(person_id) % {n_loc})::VARCHAR, {a} - 900, {a}, 2{recorded} FROM person_attributes""")
    con.execute("""INSERT INTO households SELECT 'H' || r.location_id, r.location_id, r.uprn, r.person_id,
        p.is_child, r.first_seen, r.last_seen FROM residences r JOIN person_attributes p USING (person_id)""")
    for i, agency in enumerate(AGENCIES):
        con.execute(f"""INSERT INTO person_clusters SELECT '{agency}_people:' || person_id || '-{i}',
            '{agency}_people', person_id || '-{i}', person_id, 0.9 + random() / 10 FROM person_attributes""")
    con.execute(f"""INSERT INTO event_records
        SELECT ag || '_events', ag, 'E' || i::VARCHAR, 1, sig, sig,
               CASE WHEN random() < 0.5 THEN 'S' ELSE 'V' END, {a} - (random() * 1100)::INT, NULL, NULL, NULL,
               CASE WHEN i % 10 = 0 THEN NULL ELSE ag || '_people' END,
               CASE WHEN i % 10 = 0 THEN NULL ELSE 'P' || lpad((hash(i) % {persons})::VARCHAR, 7, '0') || '-'
                    || list_position({ag_list}, ag) - 1 END
        FROM (SELECT i, {ag_list}[1 + (hash(i * 7) % 4)::INT] AS ag,
                     {code_list}[1 + (hash(i * 13) % {len(codes)})::INT] AS sig
              FROM range({int(persons * 2.4)}) t(i))""")
    con.execute(f"""INSERT INTO address_matches SELECT source, record_key, (hash(record_key) % {n_loc})::VARCHAR,
        'U' || (hash(record_key) % {n_loc})::VARCHAR, 0.99, 'exact_key'
        FROM event_records WHERE hash(record_key || 'x') % 5 < 2""")
    con.execute(f"""INSERT INTO graph_edges SELECT 'P' || lpad((hash(i) % {persons})::VARCHAR, 7, '0'),
        'P' || lpad((hash(i + 1) % {persons})::VARCHAR, 7, '0'), 'co_involved', NULL, {a} - (random() * 700)::INT,
        NULL, 1, NULL, NULL FROM range({persons // 10}) t(i)""")
    con.execute(f"""INSERT INTO location_churn SELECT DISTINCT location_id, {a} - 90, {a},
        (random() * 6)::INT, (random() * 5)::INT FROM residences USING SAMPLE 10 PERCENT""")
    return {name: store.count(name) for name in DDL}


def add_ambiguous_addresses(store: Store, share: float) -> dict:
    """Parsed addresses for ``share`` of the events that have no own address: each fits two premises (every
    location's number + street exists in two localities of ``gazetteer_std``), so location rules count it as
    corroboration (scoring/placement.py).  Returns the row counts."""
    con = store.con
    con.execute("""CREATE OR REPLACE TABLE gazetteer_std AS
        SELECT uprn, NULL::VARCHAR AS flat, ((uprn::BIGINT // 2) % 100)::VARCHAR AS number, NULL::VARCHAR AS building,
               NULL::VARCHAR AS organisation, 'ST' || (uprn::BIGINT // 200)::VARCHAR AS street,
               CASE WHEN uprn::BIGINT % 2 = 0 THEN 'EAST' ELSE 'WEST' END AS locality, 'TOWN' AS town,
               NULL::VARCHAR AS postcode
        FROM (SELECT DISTINCT uprn FROM residences WHERE uprn IS NOT NULL)""")
    every = max(1, round(1 / share)) if share > 0 else 0
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _amb AS
        SELECT e.source, e.record_key, g.number, g.street FROM event_records e
        JOIN gazetteer_std g ON g.uprn = (hash(e.record_key || 'g') % (SELECT count(*) FROM gazetteer_std))::VARCHAR
        WHERE {every} > 0 AND hash(e.record_key || 'a') % {every or 1} = 0
          AND NOT EXISTS (SELECT 1 FROM address_matches m WHERE m.source = e.source AND m.record_key = e.record_key)""")
    con.execute("INSERT INTO address_matches SELECT source, record_key, NULL, 'L' || md5(number || street)[:12], "
                "0.0, 'unresolved' FROM _amb")
    con.execute("""CREATE OR REPLACE TABLE address_std AS SELECT source, record_key, 'event' AS origin,
        NULL::VARCHAR AS flat, number, NULL::VARCHAR AS building, street, NULL::VARCHAR AS town,
        NULL::VARCHAR AS postcode FROM _amb""")
    return {"gazetteer_std": store.count("gazetteer_std"), "ambiguous_event_addresses": store.count("address_std")}


def compare_ambiguous(store: Store, cfg: object, share: float, rounds: int) -> dict:
    """The score stage on one store alternately without and with ambiguous addresses (``add_ambiguous_addresses``
    once; 'plain' hides address_std so no possible premises are listed): wall and CPU seconds, per-step seconds
    of the audit row, flags using ambiguous evidence."""
    import json
    import time

    out: dict = {"rows": add_ambiguous_addresses(store, share), "runs": []}
    for rnd in range(rounds):
        for mode in ("plain", "ambiguous"):
            if mode == "plain":
                store.con.execute("ALTER TABLE address_std RENAME TO _address_std_off")
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                score(store, cfg)
            finally:
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if mode == "plain":
                    store.con.execute("ALTER TABLE _address_std_off RENAME TO address_std")
            details = json.loads(store.con.execute(
                "SELECT details FROM audit_log WHERE action = 'score' ORDER BY seq DESC LIMIT 1").fetchone()[0])
            out["runs"].append({"mode": mode, "round": rnd, "wall_seconds": round(wall, 2),
                                "cpu_seconds": round(cpu, 2), "steps": details.get("seconds"),
                                "load_average": os.getloadavg(),
                                "flags_with_ambiguous_evidence": store.con.execute(
                                    "SELECT count(*) FROM flags WHERE evidence LIKE '%\"placed\":\"ambiguous\"%'"
                                ).fetchone()[0]})
            print(out["runs"][-1], flush=True)
    return out


def on_project(project: Path, label: str, name: str, repeat: int) -> None:
    """Time the score stage alone on an existing store (see the module docstring), with its per-rule seconds."""
    import json

    def audit_seconds(store: Store, run: dict) -> None:
        details = store.con.execute("SELECT details FROM audit_log WHERE action = 'score' ORDER BY seq DESC "
                                    "LIMIT 1").fetchone()[0]
        run["audit_seconds"] = json.loads(details).get("seconds")

    print(stage_on_project(project, "score", label, name, repeat, tables=("signals", "flags"),
                           after_run=audit_seconds))


def main() -> None:
    """Build inputs, score twice (cold, warm) and record times, memory and flag counts."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=250_000)
    parser.add_argument("--project", type=Path, help="an existing store (a COPY): time the score stage alone")
    parser.add_argument("--label", default="after", choices=["before", "after"])
    parser.add_argument("--name", default="scoring_project")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--results-name", help="synthetic-input mode: results file name (default scoring[_N])")
    parser.add_argument("--ambiguous-share", type=float, default=0.0,
                        help="synthetic-input mode: share of the events with no own address whose address fits "
                             "two premises (parsed addresses + gazetteer_std; default 0: none)")
    parser.add_argument("--compare-ambiguous", type=float, metavar="SHARE",
                        help="synthetic-input mode: score the same inputs alternately without and with SHARE "
                             "ambiguous addresses (--repeat rounds) instead of the cold/warm runs")
    args = parser.parse_args()
    if args.project:
        on_project(args.project, args.label, args.name, args.repeat)
        return
    record: dict = {"persons": args.persons, "target_seconds": 10, "load_average_before": os.getloadavg(),
                    "ambiguous_share": args.ambiguous_share}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config({"project": {"name": "bench", "as_of": AS_OF.isoformat()},
                            "sources": [{"name": "p", "agency": "police", "path": "p.csv", "key": "id",
                                         "person": {"full_name": "n"}}]}, root=Path(tmp))
        with Store(Path(tmp) / "bench.duckdb") as store:
            with measured(record, "build_inputs"):
                record["input_rows"] = build_inputs(store, args.persons)
                if args.ambiguous_share > 0:
                    record["input_rows"].update(add_ambiguous_addresses(store, args.ambiguous_share))
            if args.compare_ambiguous:
                score(store, cfg)  # warm-up
                record["compare_ambiguous"] = compare_ambiguous(store, cfg, args.compare_ambiguous, args.repeat)
                name = args.results_name or f"scoring_{args.persons}_ambiguous"
                print(write_results(name, record))
                return
            with measured(record, "score_cold"):
                score(store, cfg)
            with measured(record, "score_warm"):
                score(store, cfg)
            record["signals"] = store.count("signals")
            record["flags"] = store.count("flags")
            record["flags_by_rule"] = dict(store.con.execute(
                "SELECT rule, count(*) FROM flags GROUP BY rule ORDER BY rule").fetchall())
            record["stage_seconds"] = [round(s, 3) for (s,) in store.con.execute(
                "SELECT seconds FROM stage_runs WHERE stage = 'score' ORDER BY started_at").fetchall()]
    record["load_average_after"] = os.getloadavg()
    record["meets_target"] = min(record["score_cold"]["seconds"], record["score_warm"]["seconds"]) <= record["target_seconds"]
    import ecins_link

    record["code"] = str(Path(ecins_link.__file__).resolve().parents[1])
    name = args.results_name or ("scoring" if args.persons == 250_000 else f"scoring_{args.persons}")
    path = write_results(name, record)
    print(path.read_text())


if __name__ == "__main__":
    main()
