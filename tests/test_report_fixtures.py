"""A small, realistic partnership store for report/export tests, built table by table (docs/contracts.md).

Four agencies (police, housing, council, fire) and six people, among them a person whose forename is
``<script>alert(1)</script>`` and one whose forename is a spreadsheet formula.  Fire and ASB details carry
distinctive record keys so tests can prove they never leak into a purpose view that excludes them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from ecins_link.config import parse_config
from ecins_link.store import Store

D = dt.date
XSS = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("x")'
SECRET_PHONE = "07700 900123"
SECRET_EMAIL = "amira.k@example.org"
FIRE_KEY = "FSW-SECRET-77"
ASB_KEY = "ASB-POL-555"

PROJECT = {
    "project": {"name": "Northtown test partnership", "as_of": "2026-10-31"},
    "sources": [
        {"name": "police_nominals", "agency": "police", "path": "p.csv", "key": "NOMINAL_ID",
         "person": {"full_name": "NAME", "dob": "DOB"}},
        {"name": "police_occ", "agency": "police", "path": "o.csv", "key": "OCC_ID",
         "event": {"code": "TYPE", "date": "DATE"}},
        {"name": "housing_tenants", "agency": "housing", "path": "h.csv", "key": "REF",
         "person": {"full_name": "NAME"}},
        {"name": "council_asc", "agency": "council", "path": "c.csv", "key": "ID",
         "person": {"full_name": "NAME", "phone": "PHONE", "email": "EMAIL"},
         "event": {"code": "TYPE", "date": "DATE"}},
        {"name": "fire_sw", "agency": "fire", "path": "f.csv", "key": "VISIT",
         "person": {"full_name": "OCCUPIER"}, "flags": {"columns": {"SMOKER": "SW_SMOKER"}, "date": "DATE"}},
    ],
    "purposes": {
        "marac": {"description": "MARAC", "agencies": ["police", "housing", "council"],
                  "categories": ["DA", "MENTAL_HEALTH", "SUBSTANCE", "CHILD_WELFARE"],
                  "rules": ["marac_potential_escalation", "toxic_trio"],
                  "fields": ["name", "dob", "address"], "existence_only": True},
        "iom_strict": {"agencies": ["police"], "categories": ["*"], "rules": ["marac_potential_escalation"], "fields": ["dob"],
                       "existence_only": False},
    },
}

# person_id, records (source, key), forenames, surname, dob, sex
PEOPLE = [
    ("P1", [("police_nominals", "N100"), ("housing_tenants", "T1|1")], XSS, "Jones", D(1988, 2, 3), "M"),
    ("P2", [("housing_tenants", "T2|1")], FORMULA, "Brown", D(1975, 7, 9), "F"),
    ("P3", [("police_nominals", "N200"), ("council_asc", "A31"), ("housing_tenants", "T3|1")],
     "Amira", "Khan", D(1990, 4, 12), "F"),
    ("P4", [("police_nominals", "N300")], "Darren", "Cole", D(1986, 11, 30), "M"),
    ("P5", [("council_asc", "A32")], "Leo", "Khan", D(2015, 5, 1), "M"),
    ("P6", [("fire_sw", "FSW-1")], "Edith", "Morgan", D(1938, 1, 20), "F"),
    ("P7", [("fire_sw", FIRE_KEY)], "Zbigniew", "Fireonly", D(1970, 1, 1), "M"),
]
AGENCY = {s["name"]: s["agency"] for s in PROJECT["sources"]}
HOME = {"P3": "U1001", "P4": "U1001", "P5": "U1001", "P7": "U1001", "P1": "U1002", "P2": "U1003",
        "P6": "U1004"}
ADDRESS = {"U1001": ("Flat 2, 14 Mill Lane, Northtown", "NT1 4AB"), "U1002": ("3 Rope Walk, Northtown", "NT2 1CD"),
           "U1003": ("7 Chapel Row, Northtown", "NT2 5EF"), "U1004": ("1 Quay Court, Northtown", "NT3 9GH")}


def output_text(out: Path) -> str:
    """Every byte a reader of an output folder can see: CSV/HTML text and Parquet cell values."""
    parts = []
    for path in sorted(out.rglob("*")):
        if path.suffix in (".csv", ".html"):
            parts.append(path.read_text(encoding="utf-8"))
        elif path.suffix == ".parquet":
            parts.append(pd.read_parquet(path).to_json(orient="records", default_handler=str))
    return "\n".join(parts)


def config():
    """The fixture's project config (root is irrelevant: nothing is read from disk)."""
    return parse_config(PROJECT, root=Path("."))


def _signals() -> pd.DataFrame:
    rows = [  # source, key, signal, category, date, person, location, role
        ("police_occ", "OC1", "DA_VICTIM", "DA", D(2026, 1, 5), "P3", "U1001", "VICTIM"),
        ("police_occ", "OC1", "DA_SUSPECT", "DA", D(2026, 1, 5), "P4", "U1001", "SUSPECT"),
        ("police_occ", "OC2", "DA_VICTIM", "DA", D(2026, 4, 18), "P3", "U1001", "VICTIM"),
        ("police_occ", "OC3", "DA_VICTIM", "DA", D(2026, 9, 2), "P3", "U1001", "VICTIM"),
        ("council_asc", "A31", "MH_CONCERN", "MENTAL_HEALTH", D(2026, 6, 1), "P3", "U1001", None),
        ("council_asc", "A33", "SUBSTANCE_MISUSE", "SUBSTANCE", D(2026, 7, 14), "P4", "U1001", None),
        ("council_asc", "A32", "CHILD_REFERRAL", "CHILD_WELFARE", D(2026, 8, 1), "P5", "U1001", None),
        ("fire_sw", FIRE_KEY, "SW_SMOKER", "FIRE_RISK", D(2026, 3, 3), "P7", "U1001", None),
        ("police_occ", ASB_KEY, "ASB_REPORT", "ASB", D(2026, 5, 5), "P3", "U1001", "REPORTER"),
        ("police_occ", "OC9", "VIOLENCE", "OFFENDING", D(2026, 2, 2), "P1", "U1002", "SUSPECT"),
        ("housing_tenants", "T1|1", "ASB_NOISE", "ASB", D(2026, 2, 20), "P1", "U1002", None),
        ("fire_sw", "FSW-1", "SW_SMOKER", "FIRE_RISK", D(2026, 3, 1), "P6", "U1004", None),
        ("fire_sw", "FSW-1", "SW_LIVES_ALONE", "FIRE_RISK", D(2026, 3, 1), "P6", "U1004", None),
        ("fire_sw", "FSW-1", "SW_HOARDING", "FIRE_RISK", D(2026, 3, 1), "P6", "U1004", None),
        ("housing_tenants", "T2|1", "ASB_NOISE", "ASB", D(2026, 6, 6), "P2", "U1003", None),
    ]
    df = pd.DataFrame(rows, columns=["source", "record_key", "signal", "category", "event_date", "person_id",
                                     "location_id", "role"])
    df.insert(0, "signal_id", [f"S{i:03d}" for i in range(len(df))])
    df["agency"] = df["source"].map(AGENCY)
    df["event_seq"] = 1
    df["uprn"] = df["location_id"].str[1:]
    df["household_id"] = df["person_id"].map(lambda p: "H1" if HOME[p] == "U1001" else None)
    df["link_confidence"] = 0.97
    df["weight"] = 2.0
    df["decayed_weight"] = 1.5
    return df


def _flag(fid, rule, label, etype, eid, persons, uprns, score, rank, agencies, visible, recs, guidance):
    evidence = {"records": [{"source": s, "record_key": k, "agency": AGENCY[s], "signal": sig, "date": "2026-01-05",
                             "person_id": p} for s, k, sig, p in recs],
                "conditions": [{"condition": "count", "count": len(recs)}], "window_days": 365}
    return (fid, rule, label, etype, eid, persons, uprns, score, rank, agencies, visible, json.dumps(evidence),
            guidance, D(2026, 1, 5), D(2026, 9, 2))


def build_store(path: Path, with_overrides: bool = True) -> Store:
    """A store holding every table the report reads, filled with the fixture partnership."""
    store = Store(path, user="tester", command="test")
    recs = [(s, k, pid, fn, sn, dob, sex) for pid, keys, fn, sn, dob, sex in PEOPLE for s, k in keys]
    pr = pd.DataFrame([{
        "source": s, "agency": AGENCY[s], "record_key": k, "row_number": i + 1, "title": None, "forenames": fn,
        "surname": sn, "full_name": f"{fn} {sn}", "dob": dob, "dob_raw": dob.strftime("%d/%m/%Y"), "sex": sex,
        "address_text": ADDRESS[HOME[pid]][0], "postcode": ADDRESS[HOME[pid]][1], "uprn": None,
        "phone": SECRET_PHONE if s == "council_asc" and pid == "P3" else None,
        "email": SECRET_EMAIL if s == "council_asc" and pid == "P3" else None,
        "resident_from": D(2020, 1, 1), "resident_to": None, "unsafe": fn in (XSS, FORMULA)}
        for i, (s, k, pid, fn, sn, dob, sex) in enumerate(recs)])
    clusters = pd.DataFrame([{"unique_id": f"{s}:{k}", "source": s, "record_key": k, "person_id": pid,
                              "cluster_confidence": 0.96 if pid in ("P1", "P3") else 1.0}
                             for s, k, pid, *_ in recs])
    pairs = pd.DataFrame([
        {"unique_id_l": "police_nominals:N100", "unique_id_r": "housing_tenants:T1|1", "match_weight": 14.2,
         "match_probability": 0.9999},
        {"unique_id_l": "police_nominals:N200", "unique_id_r": "council_asc:A31", "match_weight": 11.5,
         "match_probability": 0.9996},
        {"unique_id_l": "council_asc:A31", "unique_id_r": "housing_tenants:T3|1", "match_weight": 9.1,
         "match_probability": 0.998}])
    attrs = pd.DataFrame([{
        "person_id": pid, "display_name": f"{fn} {sn}", "dob": dob, "age": 2026 - dob.year, "is_child": dob.year > 2008,
        "sex": sex, "n_records": len(keys), "agencies": sorted({AGENCY[s] for s, _ in keys})}
        for pid, keys, fn, sn, dob, sex in PEOPLE])
    addr = pd.DataFrame([{"source": s, "record_key": k, "origin": "person", "address_text": ADDRESS[HOME[pid]][0],
                          "postcode": ADDRESS[HOME[pid]][1], "postcode_sector": ADDRESS[HOME[pid]][1][:-2],
                          "uprn": HOME[pid][1:]} for s, k, pid, *_ in recs])
    matches = addr[["source", "record_key"]].assign(uprn=addr["uprn"], location_id="U" + addr["uprn"],
                                                     match_confidence=0.93, match_method="exact")
    gaz = pd.DataFrame([{"uprn": u[1:], "full_address": f"{a[0]}, {a[1]}", "postcode": a[1],
                         "postcode_sector": a[1][:-2]} for u, a in ADDRESS.items()])
    residences = pd.DataFrame([{"person_id": p[0], "location_id": HOME[p[0]], "uprn": HOME[p[0]][1:],
                                "first_seen": D(2020, 1, 1), "last_seen": D(2026, 9, 2), "n_records": len(p[1])}
                               for p in PEOPLE])
    nodes = pd.DataFrame([{"node_id": p[0], "node_type": "person", "label": f"{p[2]} {p[3]}"} for p in PEOPLE]
                         + [{"node_id": u, "node_type": "location", "label": a[0]} for u, a in ADDRESS.items()]
                         + [{"node_id": "E1", "node_type": "event", "label": "police_occ:OC1"}])
    edges = pd.DataFrame([{"src": pid, "dst": HOME[pid], "edge_type": "resides_at", "role": None,
                           "start_date": D(2020, 1, 1), "end_date": None, "weight": 1.0, "source": s,
                           "record_key": k} for s, k, pid, *_ in recs]
                         + [{"src": "P3", "dst": "P4", "edge_type": "victim_suspect", "role": "VICTIM",
                             "start_date": D(2026, 1, 5), "end_date": None, "weight": 1.0, "source": "police_occ",
                             "record_key": "OC1"},
                            {"src": "P3", "dst": "E1", "edge_type": "involved_in", "role": "VICTIM",
                             "start_date": D(2026, 1, 5), "end_date": None, "weight": 1.0, "source": "police_occ",
                             "record_key": "OC1"}])
    households = pd.DataFrame([{"household_id": "H1", "location_id": "U1001", "uprn": "1001", "person_id": p,
                                "is_child": p == "P5", "first_seen": D(2020, 1, 1), "last_seen": D(2026, 9, 2)}
                               for p in ("P3", "P4", "P5", "P7")])
    flags = pd.DataFrame([
        _flag("F1", "marac_potential_escalation", "MARAC potential escalation", "person", "P3", ["P3"], ["1001"],
              9.0, 1, ["police"], True, [("police_occ", "OC1", "DA_VICTIM", "P3"), ("police_occ", "OC2", "DA_VICTIM", "P3"),
                                         ("police_occ", "OC3", "DA_VICTIM", "P3")],
              "Meets MARAC potential-escalation criterion: consider referral"),
        _flag("F2", "toxic_trio", "Toxic trio", "household", "H1", ["P3", "P4", "P5", "P7"], ["1001"], 7.5, 2,
              ["council", "fire", "police"], False,
              [("police_occ", "OC1", "DA_VICTIM", "P3"), ("council_asc", "A31", "MH_CONCERN", "P3"),
               ("council_asc", "A33", "SUBSTANCE_MISUSE", "P4"), ("fire_sw", FIRE_KEY, "SW_SMOKER", "P7")],
              "A reason to look, not a verdict"),
        _flag("F3", "fire_safe_and_well", "Fire Safe and Well", "person", "P6", ["P6"], ["1004"], 6.0, 3, ["fire"],
              True, [("fire_sw", "FSW-1", "SW_SMOKER", "P6")], "Offer a Safe and Well visit"),
        _flag("F4", "multi_agency_concern", "Multi-agency concern", "person", "P1", ["P1"], ["1002"], 5.0, 4,
              ["housing", "police"], False, [("police_occ", "OC9", "VIOLENCE", "P1"),
                                             ("housing_tenants", "T1|1", "ASB_NOISE", "P1")], "Discuss at panel"),
        _flag("F5", "asb_hotspot", "ASB hotspot", "location", "U1003", ["P2"], ["1003"], 4.0, 5, ["housing"], True,
              [("housing_tenants", "T2|1", "ASB_NOISE", "P2")], "=cmd|' /C calc'!A0"),
    ], columns=["flag_id", "rule", "label", "entity_type", "entity_id", "person_ids", "uprns", "score", "rank",
                "agencies", "visible_to_single_agency", "evidence", "guidance", "first_date", "last_date"])
    accounting = pd.DataFrame([{"source": s["name"], "agency": s["agency"], "rows_read": 10, "rows_accepted": 9,
                                "rows_quarantined": 1, "duplicates_collapsed": 0} for s in PROJECT["sources"]])
    quarantine = pd.DataFrame([
        {"source": "housing_tenants", "row_number": 4, "record_key": "T9|1", "reason": "bad_date: DOB",
         "raw": f'T9,1,{FORMULA},31/02/1980'},
        {"source": "council_asc", "row_number": 7, "record_key": "A99", "reason": "ragged_row: 3 fields",
         "raw": '=HYPERLINK("http://evil.example/x","click")'},
        {"source": "fire_sw", "row_number": 2, "record_key": None, "reason": "missing_key: VISIT",
         "raw": ",Quarantined Fireperson,N"}])
    tables = {"person_records": pr, "person_clusters": clusters, "person_pairs": pairs, "person_attributes": attrs,
              "address_std": addr, "address_matches": matches, "gazetteer_std": gaz, "graph_nodes": nodes, "residences": residences,
              "graph_edges": edges, "households": households, "signals": _signals(), "flags": flags,
              "accounting": accounting, "quarantine": quarantine}
    if with_overrides:
        tables["overrides"] = pd.DataFrame([{
            "override_id": "O1", "entity_type": "person", "entity_id": "P3", "rule": "marac_potential_escalation",
            "raise_score": 2.0, "reason": "Professional judgement: threats to kill disclosed", "user_name": "dsmith",
            "recorded_at": dt.datetime(2026, 10, 1, 9, 30)}])
    with store.stage("fixture"):
        for name, df in tables.items():
            store.write_table(name, df)
    return store


def test_fixture_builds(tmp_path: Path) -> None:
    """The fixture store has every table the report reads, with consistent ids."""
    store = build_store(tmp_path / "s.duckdb")
    assert store.count("flags") == 5
    orphans = store.con.execute("SELECT count(*) FROM signals s ANTI JOIN person_attributes a USING (person_id)")
    assert orphans.fetchone()[0] == 0
    assert config().purposes["marac"].agencies == ["police", "housing", "council"]
