"""Evaluate the flags against a synthetic town's planted scenarios and decoys (``truth/``).

A scenario is *detected* when a flag of its kind (rule id == kind) sits on its entity — a person the
scenario's true persons were linked into (via ``truth/records.csv`` -> ``person_clusters``) or a pieces'
signal resolved to, their household or component, or one of its UPRNs / locations — within the top
2 x (number planted) of the ranked worklist.  A decoy is *flagged* when a flag of its ``would_fire``
rule sits on its entity.  Reports ids and counts only, never names.

Every scenario not detected carries a ``cause`` (``person_linkage`` or ``other``, :func:`_miss_cause`), counted
in ``missed_by_cause``.  Detection is also reported by scenario age (``by_age``: the days from a scenario's ``last_event`` to the
run's as-of: under 12 months, 12-24 months, over 24 months), for ``cse_risk`` scenarios whose child is now
an adult (``child_now_adult``), and by the status of the correct flags (new / ongoing / escalated / lapsed).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from ecins_link.store import Store

AGE_BUCKETS = (("under_12_months", 0, 365), ("12_to_24_months", 365, 730), ("over_24_months", 730, 10**6))
TARGETS = {"detection_rate": 0.95, "decoy_flag_rate": 0.05, "invisible_share": 0.80}


def _read_json(path: Path) -> list[dict]:
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):  # tolerate {"scenarios": [...]} wrappers
        data = next((v for v in data.values() if isinstance(v, list)), [])
    return [d for d in data if isinstance(d, dict)]


def _entity_maps(store: Store, records_csv: Path) -> tuple[dict, dict, dict, dict]:
    """true_person_id -> person_ids; (source, record_key) -> (person_id, location_id); person -> households,
    person -> components."""
    true_map: dict[str, set[str]] = {}
    if records_csv.exists():
        rows = store.con.execute(
            "SELECT DISTINCT t.true_person_id, pc.person_id FROM read_csv(?, all_varchar = true, header = true) t "
            "JOIN person_clusters pc ON pc.source = t.source AND pc.record_key = t.record_key",
            [str(records_csv)]).fetchall()
        for tp, pid in rows:
            true_map.setdefault(tp, set()).add(pid)
    piece_map: dict[tuple[str, str], set[tuple]] = {}
    if store.has_table("signals"):
        for src, key, pid, loc in store.con.execute(
                "SELECT DISTINCT source, record_key, person_id, location_id FROM signals").fetchall():
            piece_map.setdefault((src, key), set()).add((pid, loc))
    households: dict[str, set[str]] = {}
    if store.has_table("households"):
        for pid, hid in store.con.execute("SELECT DISTINCT person_id, household_id FROM households").fetchall():
            households.setdefault(pid, set()).add(hid)
    components: dict[str, set[str]] = {}
    if store.has_table("person_components"):
        for pid, cid in store.con.execute("SELECT person_id, component_id FROM person_components").fetchall():
            components.setdefault(pid, set()).add(cid)
    return true_map, piece_map, households, components


def _entities(item: dict, maps: tuple[dict, dict, dict, dict]) -> dict[str, set[str]]:
    true_map, piece_map, households, components = maps
    persons: set[str] = set()
    for tp in item.get("true_person_ids") or []:
        persons |= true_map.get(str(tp), set())
    locations = {f"U{u}" for u in item.get("uprns") or [] if u not in (None, "")}
    for piece in item.get("pieces") or []:
        for pid, loc in piece_map.get((str(piece.get("source")), str(piece.get("record_key"))), set()):
            if pid:
                persons.add(pid)
            if loc:
                locations.add(loc)
    return {
        "person": persons,
        "household": set().union(*(households.get(p, set()) for p in persons)) if persons else set(),
        "cluster": set().union(*(components.get(p, set()) for p in persons)) if persons else set(),
        "location": locations,
    }


def _matching_flags(flags: list[dict], rule: str, ents: dict[str, set[str]], uprns: set[str]) -> list[dict]:
    out = []
    for f in flags:
        if f["rule"] != rule:
            continue
        if f["entity_id"] in ents.get(f["entity_type"], set()):
            out.append(f)
        elif f["entity_type"] in ("household", "cluster") and ents["person"] & set(f["person_ids"] or []):
            out.append(f)
        elif f["entity_type"] == "location" and uprns & set(f["uprns"] or []):
            out.append(f)
    return out


def _miss_cause(item: dict, maps: tuple[dict, dict, dict, dict]) -> str:
    """Why a scenario may have been missed, as far as the truth tells: ``person_linkage`` when one of its true
    persons' records went into more than one engine person, or a piece's record reached no person; else
    ``other`` (addresses, rules, ranking: see benchmarks/history_misses.py for the detail)."""
    true_map, piece_map = maps[0], maps[1]
    if any(len(true_map.get(str(tp), ())) > 1 for tp in item.get("true_person_ids") or []):
        return "person_linkage"
    for piece in item.get("pieces") or []:
        got = piece_map.get((str(piece.get("source")), str(piece.get("record_key"))))
        if got is not None and all(pid is None for pid, _loc in got):
            return "person_linkage"
    return "other"


def _as_of(store: Store) -> dt.date | None:
    """The as-of date the flags were scored at (from their evidence), else the store's."""
    try:
        got = store.con.execute("SELECT max(json_extract_string(evidence, '$.as_of')) FROM flags").fetchone()[0]
    except Exception:  # noqa: BLE001 -- an older flags table: fall back
        got = None
    return dt.date.fromisoformat(got) if got else store.as_of(None)


def _age_bucket(item: dict, as_of: dt.date | None) -> str | None:
    last = item.get("last_event")
    if not last or as_of is None:
        return None
    days = (as_of - dt.date.fromisoformat(str(last))).days
    return next((name for name, lo, hi in AGE_BUCKETS if lo <= days < hi), None)


def _count(values: object) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:  # type: ignore[attr-defined]
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def evaluate_scenarios(store: Store, truth_dir: str | Path) -> dict:
    """Detection of planted scenarios, flag rate of decoys and invisibility share (see module doc)."""
    truth = Path(truth_dir)
    scenarios = _read_json(truth / "scenarios.json")
    decoys = _read_json(truth / "decoys.json")
    if not store.has_table("flags"):
        return {"error": "no flags table: run the score stage first"}
    has_status = "status" in {c for (c,) in store.con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'flags'").fetchall()}
    cols = "flag_id, rule, entity_type, entity_id, person_ids, uprns, rank, visible_to_single_agency" + \
        (", status" if has_status else "")
    flags = [dict(zip(cols.split(", "), row, strict=True))
             for row in store.con.execute(f"SELECT {cols} FROM flags ORDER BY rank").fetchall()]
    maps = _entity_maps(store, truth / "records.csv")
    top = 2 * len(scenarios)
    by_kind: dict[str, dict[str, int]] = {}
    correct: dict[str, dict] = {}
    missed, late = [], []
    as_of = _as_of(store)
    by_age: dict[str, dict[str, int]] = {b[0]: {"planted": 0, "detected": 0} for b in AGE_BUCKETS}
    aged_out = {"planted": 0, "detected": 0}
    for sc in scenarios:
        kind = str(sc.get("kind"))
        bucket = _age_bucket(sc, as_of)
        k = by_kind.setdefault(kind, {"planted": 0, "detected": 0, "flagged_any_rank": 0})
        k["planted"] += 1
        hits = _matching_flags(flags, kind, _entities(sc, maps), {str(u) for u in sc.get("uprns") or []})
        if hits:
            k["flagged_any_rank"] += 1
            for h in hits:
                correct[h["flag_id"]] = h
        best = min((h["rank"] for h in hits), default=None)
        found = best is not None and best <= top
        if bucket:
            by_age[bucket]["planted"] += 1
            by_age[bucket]["detected"] += int(found)
        if sc.get("child_now_adult"):
            aged_out["planted"] += 1
            aged_out["detected"] += int(found)
        if found:
            k["detected"] += 1
        elif best is not None:
            late.append({"scenario_id": sc.get("scenario_id"), "kind": kind, "best_rank": best,
                         "cause": _miss_cause(sc, maps)})
        else:
            missed.append({"scenario_id": sc.get("scenario_id"), "kind": kind, "cause": _miss_cause(sc, maps)})
    decoy_rows = [d for d in decoys if d.get("would_fire")]
    flagged_decoys = []
    for d in decoy_rows:
        ents = _entities(d, maps)
        if _matching_flags(flags, str(d["would_fire"]), ents, {str(u) for u in d.get("uprns") or []}):
            flagged_decoys.append(d.get("decoy_id"))
    detected = sum(k["detected"] for k in by_kind.values())
    n_correct = len(correct)
    invisible = sum(1 for f in correct.values() if not f["visible_to_single_agency"])
    out = {
        "scenarios_planted": len(scenarios),
        "top_n": top,
        "scenarios_detected_in_top_n": detected,
        "detection_rate": round(detected / len(scenarios), 4) if scenarios else None,
        "scenarios_flagged_any_rank": sum(k["flagged_any_rank"] for k in by_kind.values()),
        "by_kind": by_kind,
        "as_of": as_of.isoformat() if as_of else None,
        "by_age": {b: {**v, "detection_rate": round(v["detected"] / v["planted"], 4) if v["planted"] else None}
                   for b, v in by_age.items()},
        "child_now_adult": aged_out,
        "correct_flags_by_status": _count(f.get("status") for f in correct.values()),
        "missed": missed,
        "ranked_below_top_n": late,
        "missed_by_cause": _count(m["cause"] for m in [*missed, *late]),
        "decoys": len(decoys),
        "decoys_with_would_fire": len(decoy_rows),
        "decoys_flagged": len(flagged_decoys),
        "decoy_flag_rate": round(len(flagged_decoys) / len(decoy_rows), 4) if decoy_rows else None,
        "flagged_decoy_ids": flagged_decoys,
        "correct_flags": n_correct,
        "correct_flags_invisible_to_single_agency": invisible,
        "invisible_share": round(invisible / n_correct, 4) if n_correct else None,
        "flags_total": len(flags),
        "targets": TARGETS,
    }
    out["targets_met"] = {
        "detection_rate": out["detection_rate"] is not None and out["detection_rate"] >= TARGETS["detection_rate"],
        "decoy_flag_rate": out["decoy_flag_rate"] is None or out["decoy_flag_rate"] <= TARGETS["decoy_flag_rate"],
        "invisible_share": out["invisible_share"] is not None and out["invisible_share"] >= TARGETS["invisible_share"],
    }
    return out
