"""One case's page data from the snapshot, limited to what the view allows, in plain words.

Who is at risk comes first (children with their age, people recorded as victims or vulnerable), then the
evidence of each flag as sentences built from its conditions ("4 domestic-abuse ... in 12 months, recorded by
police and council (threshold 3)"), a timeline, the network with link strengths, "possible same person" notes
for review-band pairs, and the records with labels, not codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ecins_link.config import ProjectConfig
from ecins_link.report.charts import network_svg, timeline_svg
from ecins_link.report.evidence_words import condition_selectors, evidence_sentences
from ecins_link.report.labels import (
    agency_label,
    category_label,
    edge_label,
    entity_label,
    join_words,
    role_label,
    signal_label,
    source_label,
)
from ecins_link.report.views import View
from ecins_link.web.data import Snapshot

VICTIM_ROLES = {"V", "VICTIM"}
AT_RISK_CATEGORIES = {"VULNERABILITY", "CHILD_WELFARE", "EXPLOITATION"}


@dataclass
class CasePage:
    """Everything the case template shows."""

    case: dict
    flags: list[dict] = field(default_factory=list)
    at_risk: list[dict] = field(default_factory=list)
    persons: list[dict] = field(default_factory=list)
    signals: list[dict] = field(default_factory=list)
    links: list[dict] = field(default_factory=list)
    possible_same: list[dict] = field(default_factory=list)
    existence: list[str] = field(default_factory=list)
    overrides: list[dict] = field(default_factory=list)
    timeline_svg: str | None = None
    network_svg: str | None = None


def _rows(cur, sql: str, params: list) -> list[dict]:  # noqa: ANN001 - a DuckDB cursor
    """Rows as dicts; ``{ids}`` / ``{ids1}`` in ``sql`` become ``IN (?, ?, ...)`` placeholder lists for the list
    parameters in that position (bound, never interpolated), so DuckDB's zone maps skip the row groups of a
    snapshot table sorted by that id (``list_contains`` would scan every row)."""
    parts, values = {}, []
    for i, p in enumerate(params):
        if isinstance(p, list):
            parts[f"ids{i if i else ''}"] = "(" + ", ".join(["?"] * len(p)) + ")" if p else "(NULL)"
            values.extend(p)
        else:
            values.append(p)
    res = cur.execute(sql.format(**parts) if parts else sql, values)
    names = [d[0] for d in res.description]
    return [dict(zip(names, row, strict=True)) for row in res.fetchall()]  # (a DataFrame per query cost ~1 ms)


def _clean(v: object) -> object:
    if v is None:
        return None
    try:
        return None if pd.isna(v) else v
    except (TypeError, ValueError):
        return v


def _iso(v: object) -> str:
    v = _clean(v)
    return "" if v is None else str(v)[:10]


def build_case_page(snap: Snapshot, view: View, case: dict, config: ProjectConfig | None = None) -> CasePage:
    """Gather and word one case for ``view`` (the caller has checked the case belongs to the view)."""
    cur = snap.cursor()
    page = CasePage(case=case)
    flags = snap.flags(view)
    selectors = condition_selectors(config)
    category_of = snap.category_of()
    mine = flags[flags["flag_id"].isin(list(case["flag_ids"]))].sort_values("rank")
    for f in mine.to_dict("records"):
        page.flags.append({"flag_id": f["flag_id"], "rule": f["rule"], "label": f.get("label") or f["rule"],
                           "score": f.get("score"), "rank": f.get("rank"), "guidance": _clean(f.get("guidance")),
                           "status": _clean(f.get("status")), "first": _iso(f.get("first_date")),
                           "last": _iso(f.get("last_date")), "sentences": evidence_sentences(f.get("evidence"), selectors, category_of)})
    person_ids = sorted({str(p) for p in case["person_ids"]} | ({case["entity_id"]} if case["entity_type"] == "person" else set()))
    if case["entity_type"] == "household" and snap.has("households"):
        # every member, not only those whose signals met the rule: the child a household rule is about is one
        members = _rows(cur, "SELECT DISTINCT person_id FROM households WHERE household_id IN {ids}", [[case["entity_id"]]])
        person_ids = sorted(set(person_ids) | {str(m["person_id"]) for m in members})
    loc_ids = sorted({"U" + str(u) for u in case["uprns"]} | ({case["entity_id"]} if case["entity_type"] == "location" else set()))
    persons = _rows(cur, "SELECT * FROM persons WHERE person_id IN {ids} ORDER BY person_id",
                    [person_ids]) if snap.has("persons") else []
    records = _rows(cur, "SELECT * FROM records WHERE person_id IN {ids} "
                         "ORDER BY person_id, source, record_key", [person_ids]) if snap.has("records") else []
    sig = []
    if snap.has("signals"):
        sig = _rows(cur, """SELECT * FROM signals WHERE person_id IN {ids}
                            UNION SELECT * FROM signals_at WHERE location_id IN {ids1}
                            ORDER BY event_date, agency, signal_id""", [person_ids, loc_ids])
    hidden: set[str] = set()
    shown_agencies: set[str] = set()
    records_by_person: dict[str, list[dict]] = {}
    for r in records:
        if view.agency_detail(r.get("agency")):
            shown_agencies.add(str(r.get("agency")))
            records_by_person.setdefault(str(r["person_id"]), []).append(r)
        elif r.get("agency"):
            hidden.add(str(r["agency"]))
    visible_persons = set(records_by_person) if view.name is not None else {str(p["person_id"]) for p in persons}
    name_of: dict[str, str] = {}
    for p in persons:
        pid = str(p["person_id"])
        if pid not in visible_persons:  # known only to partners outside the purpose: no name, no age
            name_of[pid] = f"{'child' if _clean(p.get('is_child')) else 'person'} {pid} (not shared for this purpose)"
        else:
            name_of[pid] = (str(p["display_name"]) if view.field("name") and _clean(p.get("display_name"))
                            else f"person {pid}")
    signals_shown = []
    for s in sig:
        if view.signal_detail(s.get("agency"), s.get("category")):
            shown_agencies.add(str(s.get("agency")))
            signals_shown.append(s)
        elif s.get("agency"):
            hidden.add(str(s["agency"]))
    page.existence = sorted(agency_label(a) for a in hidden - shown_agencies) if view.existence_only else []
    others = {str(s["person_id"]) for s in signals_shown if _clean(s.get("person_id"))} - set(name_of)
    name_of.update(_outsiders(cur, snap, view, others))
    # who is at risk: children first, then people recorded as victims or with a vulnerability
    victims = {str(s["person_id"]) for s in signals_shown if str(s.get("role") or "").upper() in VICTIM_ROLES}
    vulnerable = {str(s["person_id"]) for s in signals_shown if str(s.get("category") or "").upper() in AT_RISK_CATEGORIES}
    for p in persons:
        pid = str(p["person_id"])
        if pid not in visible_persons:
            if _clean(p.get("is_child")):  # the rule needed a child: say so, without who or how old
                page.at_risk.append({"person_id": pid, "name": name_of[pid], "age": None, "child": True,
                                     "why": "child; details are held by partners outside this purpose"})
            continue
        age = _clean(p.get("age")) if view.field("dob") else None
        why = []
        if _clean(p.get("is_child")):
            why.append("child")
        if pid in victims:
            why.append("recorded as a victim")
        if pid in vulnerable:
            why.append("recorded vulnerability or welfare concern")
        if why or (case["entity_type"] == "person" and case["entity_id"] == pid):
            page.at_risk.append({"person_id": pid, "name": name_of[pid], "age": age, "why": join_words(why) or
                                 "the subject of this case", "child": bool(_clean(p.get("is_child")))})
    page.at_risk.sort(key=lambda r: (not r["child"], r["age"] if r["age"] is not None else 999))
    for p in persons:
        pid = str(p["person_id"])
        recs = records_by_person.get(pid, [])
        linked = len(recs) > 1
        page.persons.append({
            "person_id": pid, "name": name_of.get(pid, pid), "visible": pid in visible_persons,
            "dob": _iso(p.get("dob")) if view.field("dob") and pid in visible_persons else "",
            "age": _clean(p.get("age")) if view.field("dob") and pid in visible_persons else None,
            "child": bool(_clean(p.get("is_child"))),
            # "confidence" only where records were linked: a one-record person has no link to be sure of
            "confidence": min(float(r["cluster_confidence"]) for r in recs) if linked and all(
                _clean(r.get("cluster_confidence")) is not None for r in recs) else None,
            "records": [{"agency": agency_label(r.get("agency")), "source": source_label(r.get("source")),
                         "record_key": r.get("record_key"),
                         "name": " ".join(str(x) for x in (r.get("forenames"), r.get("surname")) if _clean(x))
                         if view.field("name") else "",
                         "dob": _iso(r.get("dob")) if view.field("dob") else "",
                         "address": ", ".join(str(x) for x in (r.get("address_text"), r.get("postcode")) if _clean(x))
                         if view.field("address") else ""} for r in recs]})
    n_records = {pid: len(v) for pid, v in records_by_person.items()}
    for s in signals_shown:
        pid = str(s.get("person_id")) if _clean(s.get("person_id")) else ""
        page.signals.append({
            "date": _iso(s.get("event_date")), "agency": agency_label(s.get("agency")),
            "source": source_label(s.get("source")), "record_key": s.get("record_key"),
            "what": signal_label(s.get("signal")), "category": category_label(s.get("category")),
            "category_code": s.get("category"), "role": role_label(s.get("role")),
            "person": name_of.get(pid, f"person {pid}") if pid else "",
            "confidence": round(float(s["link_confidence"]), 3) if pid and n_records.get(pid, 0) > 1 and
            _clean(s.get("link_confidence")) is not None else None})
    page.timeline_svg = timeline_svg([{"event_date": s.get("event_date"), "agency": agency_label(s.get("agency")),
                                       "signal": signal_label(s.get("signal")), "category": s.get("category"),
                                       "role": role_label(s.get("role"))} for s in signals_shown])
    _network(cur, snap, view, page, person_ids, loc_ids, name_of, visible_persons)
    seen_pairs: set[tuple[str, str]] = set()
    if snap.has("possible_same"):
        for row in _rows(cur, "SELECT * FROM possible_same WHERE person_id IN {ids} "
                              "ORDER BY match_probability DESC", [person_ids]):
            pid, other = str(row["person_id"]), str(row["other_person_id"])
            if pid not in visible_persons or (pid, other) in seen_pairs or (other, pid) in seen_pairs:
                continue
            seen_pairs.add((pid, other))
            page.possible_same.append({"person": name_of.get(pid, pid), "other": name_of.get(other, f"person {other}"),
                                       "other_id": other, "probability": round(float(row["match_probability"]), 2)})
    if snap.has("overrides"):
        for o in _rows(cur, "SELECT * FROM overrides WHERE entity_type = ? AND entity_id = ? ORDER BY recorded_at",
                       [case["entity_type"], case["entity_id"]]):
            if o.get("rule") is None or view.rule_shown(o.get("rule")):
                page.overrides.append({"when": str(o.get("recorded_at"))[:16], "who": o.get("user_name"),
                                       "rule": o.get("rule") or "", "raise": o.get("raise_score"),
                                       "reason": o.get("reason")})
    return page


def _outsiders(cur, snap: Snapshot, view: View, ids: set[str]) -> dict[str, str]:  # noqa: ANN001
    """Words for people met in a case's events or network but not part of it: their name in the full view,
    "another person (not in this case)" to a purpose (its panel has no ground to know who they are)."""
    if not ids:
        return {}
    if view.name is not None or not view.field("name") or not snap.has("persons"):
        return {i: "another person (not in this case)" for i in ids}
    rows = _rows(cur, "SELECT person_id, display_name FROM persons WHERE person_id IN {ids}", [sorted(ids)])
    named = {str(r["person_id"]): str(r["display_name"]) for r in rows if _clean(r.get("display_name"))}
    return {i: named.get(i, f"person {i}") for i in ids}


def _network(cur, snap: Snapshot, view: View, page: CasePage, person_ids: list[str], loc_ids: list[str],  # noqa: ANN001
             name_of: dict[str, str], visible: set[str]) -> None:
    """Edges touching the case's people and places (their source's agency detailed by the view) with their
    strength, listed in words and drawn."""
    if not snap.has("edges"):
        return
    seeds = person_ids + loc_ids
    agency_of = dict(cur.execute("SELECT source, agency FROM accounting").fetchall()) if snap.has("accounting") else {}
    rows = _rows(cur, "SELECT * FROM edges WHERE node IN {ids} ORDER BY node, other, edge_type",
                 [seeds])
    labels = dict(cur.execute(
        "SELECT location_id, min(label) FROM loc_labels WHERE list_contains(?::VARCHAR[], location_id) "
        "AND (agency IS NULL OR ?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], lower(agency))) GROUP BY 1",
        [sorted({r["other"] for r in rows} | set(loc_ids)), *([sorted(view.agencies)] * 2 if view.agencies else [None, None])]
    ).fetchall()) if snap.has("loc_labels") else {}

    ends = sorted({r["other"] for r in rows} | set(seeds))
    node_types = {str(n): str(t) for n, t in cur.execute(
        "SELECT node_id, node_type FROM nodes WHERE list_contains(?::VARCHAR[], node_id)", [ends]).fetchall()} \
        if snap.has("nodes") else {}
    outside = _outsiders(cur, snap, view, {o for o in ends if node_types.get(o) == "person"} - set(name_of))

    def label(node: str) -> str:
        if node in name_of:
            return name_of[node]
        if node in outside:
            return outside[node]
        if node in labels and view.field("address"):
            return str(labels[node])
        return node

    seen, edges = set(), []
    for r in rows:
        source = _clean(r.get("source"))
        if source is not None and not view.agency_detail(agency_of.get(source)):
            continue
        key = tuple(sorted((r["node"], r["other"]))) + (r["edge_type"],)
        if key in seen:
            continue
        seen.add(key)
        if r["edge_type"] == "resides_at" and r["node"] not in name_of and r["other"] in name_of:
            r = {**r, "node": r["other"], "other": r["node"]}  # person "lives at" place, not the reverse
        other_label = label(r["other"])
        weight = _clean(r.get("weight"))
        page.links.append({"a": label(r["node"]), "b": other_label, "how": edge_label(r["edge_type"]),
                           "strength": round(float(weight), 2) if weight is not None else None,
                           "since": _iso(r.get("start_date")), "until": _iso(r.get("end_date"))})
        edges.append((r["node"], r["other"], r["edge_type"]))
    if edges:
        nodes = {n for e in edges for n in e[:2]}
        for n in nodes:
            node_types.setdefault(n, "location" if n in labels or n in loc_ids else "person")
        page.network_svg = network_svg(edges[:200], node_types, {n: label(n) if n in name_of or n in labels or (
                                           view.name is None and n in outside) else "" for n in nodes},
                                       [s for s in seeds if s in nodes])


def entity_words(case: dict) -> str:
    """``address U123`` style heading words for a case without a label."""
    return f"{entity_label(case['entity_type'])} {case['entity_id']}"
