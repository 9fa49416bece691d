"""Why was a planted scenario missed?  A diagnostic over a scored store and its synthetic town's truth.

For every scenario not in the top 2N of the worklist (``evaluate``'s ``missed`` and ``ranked_below_top_n``) it
prints, per piece of planted evidence: the person the record was linked to, the location its signal was
placed at (``event`` = the event's own address, ``residence`` = the person's residence at the time) and the
address match level; per true person: how many engine persons their records were split into; and a cause:

* ``ranked_below_2N`` -- a flag of the right rule exists but ranks below 2N;
* ``piece_unlinked`` -- a piece's record reached no person;
* ``person_split`` -- the pieces about one true person reached more than one engine person;
* ``location_unresolved`` / ``location_elsewhere`` -- (location rules) a piece is placed at no location or at a
  location other than the scenario's address;
* ``rule_short`` -- none of the above: everything linked, yet the rule did not fire (a condition fell short).

Reads the store read-only (ids, never names).  Run: ``python benchmarks/history_misses.py TOWN_DIR
[--store STORE] [--json OUT]`` (TOWN_DIR holds ``truth/`` and ``store.duckdb``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

LOCATION_KINDS = {"asb_hotspot", "cuckooing"}


def _pieces(con: duckdb.DuckDBPyConnection, truth: Path) -> dict[str, list[dict]]:
    """scenario_id -> its pieces with the signal row each became (person, location, origin, match level)."""
    rows = []
    for sc in json.loads((truth / "scenarios.json").read_text()):
        for p in sc.get("pieces") or []:
            rows.append((sc["scenario_id"], p["source"], p["record_key"], p.get("signal") or ""))
    con.execute("CREATE TEMP TABLE _p (scenario_id VARCHAR, source VARCHAR, record_key VARCHAR, signal VARCHAR)")
    con.executemany("INSERT INTO _p VALUES (?, ?, ?, ?)", rows)
    got = con.execute("""
        SELECT p.scenario_id, p.source, p.record_key, p.signal, s.signal AS engine_signal, s.person_id,
               s.location_id, s.location_origin, am.match_level, s.event_date::VARCHAR,
               (SELECT any_value(t.true_person_id) FROM read_csv(?, all_varchar = true) t
                JOIN event_records e ON e.person_source = t.source AND e.person_record_key = t.record_key
                WHERE e.source = p.source AND e.record_key = p.record_key) AS true_person
        FROM _p p
        LEFT JOIN signals s ON s.source = p.source AND s.record_key = p.record_key
             AND (p.signal = '' OR s.signal = p.signal OR s.signal LIKE 'SW_%')
        LEFT JOIN (SELECT source, record_key, any_value(match_level) AS match_level FROM address_matches
                   GROUP BY ALL) am ON am.source = p.source AND am.record_key = p.record_key
        ORDER BY 1, 2, 3""", [str(truth / "records.csv")]).fetchall()
    cols = ("scenario_id", "source", "record_key", "signal", "engine_signal", "person_id", "location_id",
            "location_origin", "match_level", "event_date", "true_person")
    out: dict[str, list[dict]] = {}
    for r in got:
        d = dict(zip(cols, r, strict=True))
        out.setdefault(d["scenario_id"], []).append(d)
    return out


def _splits(con: duckdb.DuckDBPyConnection, truth: Path) -> dict[str, list[str]]:
    """true person -> engine persons their records went into (only those split in two or more)."""
    rows = con.execute("""
        SELECT t.true_person_id, list_sort(list(DISTINCT pc.person_id))
        FROM read_csv(?, all_varchar = true) t
        JOIN person_clusters pc ON pc.source = t.source AND pc.record_key = t.record_key
        GROUP BY 1 HAVING count(DISTINCT pc.person_id) > 1""", [str(truth / "records.csv")]).fetchall()
    return dict(rows)


def diagnose(town: Path, store: Path) -> dict:
    """Every missed scenario of the town with its pieces and cause (see the module doc)."""
    from ecins_link.scoring import evaluate_scenarios
    from ecins_link.store import Store

    truth = town / "truth"
    with Store(store) as st:
        ev = evaluate_scenarios(st, truth)
    scenarios = {s["scenario_id"]: s for s in json.loads((truth / "scenarios.json").read_text())}
    con = duckdb.connect(str(store), read_only=True)
    pieces = _pieces(con, truth)
    splits = _splits(con, truth)
    out = []
    late = {x["scenario_id"]: x["best_rank"] for x in ev.get("ranked_below_top_n") or []}
    for item in [*(ev.get("missed") or []), *(ev.get("ranked_below_top_n") or [])]:
        sid = item["scenario_id"]
        sc = scenarios[sid]
        ps = pieces.get(sid, [])
        causes = []
        if sid in late:
            causes.append(f"ranked_below_2N (rank {late[sid]})")
        if any(p["person_id"] is None for p in ps if p["source"] != "fire_incidents"):
            causes.append("piece_unlinked")
        by_true: dict[str, set] = {}
        for p in ps:
            if p["true_person"] and p["person_id"]:
                by_true.setdefault(p["true_person"], set()).add(p["person_id"])
        if any(len(v) > 1 for v in by_true.values()) or any(t in splits for t in sc.get("true_person_ids") or []):
            causes.append("person_split")
        if sc["kind"] in LOCATION_KINDS:
            want = {f"U{u}" for u in sc.get("uprns") or []}
            placed = [p for p in ps if p["signal"] and p["signal"] != "DA_SUSPECT"]
            if any(p["location_id"] is None for p in placed):
                causes.append("location_unresolved")
            if any(p["location_id"] and p["location_id"] not in want for p in placed):
                causes.append("location_elsewhere")
        out.append({"scenario_id": sid, "kind": sc["kind"], "first_event": sc.get("first_event"),
                    "last_event": sc.get("last_event"), "causes": causes or ["rule_short"],
                    "true_persons": {t: splits.get(t) for t in sc.get("true_person_ids") or []},
                    "pieces": ps})
    counts = Counter(c.split(" ")[0] for m in out for c in m["causes"])
    return {"town": str(town), "detection_rate": ev.get("detection_rate"), "by_age": ev.get("by_age"),
            "missed": len(out), "causes": dict(counts), "scenarios": out}


def main() -> None:
    """Print (and optionally write) the diagnosis."""
    ap = argparse.ArgumentParser()
    ap.add_argument("town", type=Path)
    ap.add_argument("--store", type=Path)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    res = diagnose(a.town, a.store or a.town / "store.duckdb")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=str))
    print(f"{res['town']}: detection {res['detection_rate']}, missed {res['missed']}, causes {res['causes']}")
    for m in res["scenarios"]:
        print(f"\n{m['scenario_id']} {m['kind']} {m['first_event']}..{m['last_event']} -> {', '.join(m['causes'])}")
        for t, sp in m["true_persons"].items():
            if sp:
                print(f"   true person {t} split into {sp}")
        for p in m["pieces"]:
            print(f"   {p['source']:<18} {p['record_key']:<24} {p['signal'] or '-':<20} {p['event_date']} "
                  f"{p['true_person'] or '-':<9} -> {p['person_id'] or 'NO PERSON':<10} "
                  f"{p['location_id'] or 'NO LOCATION'} ({p['location_origin']}, {p['match_level']})")


if __name__ == "__main__":
    main()
