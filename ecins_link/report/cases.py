"""Everything a case page shows, gathered set-based for all cases at once.

Each gatherer runs one DuckDB query over the store joined to small registered frames listing, per case,
its persons, locations and households, and returns a DataFrame with a ``case`` column plus a boolean
``detail`` column saying whether the view may show the row in detail (otherwise the row only proves that
its agency holds records).  Missing optional tables give empty frames, never errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

from ecins_link.report.views import View
from ecins_link.store import Store

GRAPH_NODE_TYPES = ("person", "location")
GRAPH_EDGE_TYPES = ("resides_at", "same_household", "co_involved", "victim_suspect")


def _frames(cases: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Long (case, id) frames for the case persons, locations and households."""
    persons = cases[["case", "person_ids"]].explode("person_ids").dropna()
    persons = persons.rename(columns={"person_ids": "person_id"})
    locs = cases[["case", "uprns"]].explode("uprns").dropna().rename(columns={"uprns": "uprn"})
    locs["location_id"] = "U" + locs["uprn"].astype(str)
    own = cases.loc[cases["entity_type"] == "location", ["case", "entity_id"]].rename(
        columns={"entity_id": "location_id"})
    locations = pd.concat([locs[["case", "location_id"]], own]).drop_duplicates()
    households = cases.loc[cases["entity_type"] == "household", ["case", "entity_id"]].rename(
        columns={"entity_id": "household_id"})
    own_person = cases.loc[cases["entity_type"] == "person", ["case", "entity_id"]].rename(
        columns={"entity_id": "person_id"})
    persons = pd.concat([persons, own_person]).drop_duplicates()
    return {"__c_persons": persons.astype("string"), "__c_locs": locations.astype("string"),
            "__c_hh": households.astype("string")}


@contextmanager
def registered(store: Store, cases: pd.DataFrame, sources: pd.DataFrame) -> Iterator[None]:
    """Register the per-case id frames and the (source, agency) frame for the gatherers below."""
    frames = {**_frames(cases), "__c_src": sources}
    if store.has_table("households") and len(frames["__c_hh"]):
        # a household case is about every member (the child a household rule needs has no signal of its own)
        store.con.register("__c_hh_only", frames["__c_hh"])
        try:
            members = store.df('SELECT DISTINCT h."case", m.person_id FROM __c_hh_only h '
                               "JOIN households m USING (household_id)")
        finally:
            store.con.unregister("__c_hh_only")
        frames["__c_persons"] = pd.concat([frames["__c_persons"], members.astype("string")]).drop_duplicates()
    for name, df in frames.items():
        store.con.register(name, df)
    try:
        yield
    finally:
        for name in frames:
            store.con.unregister(name)


def _q(store: Store, sql: str, params: list | None = None) -> pd.DataFrame:
    return store.df(sql, params or [])


def case_persons(store: Store, view: View | None = None) -> pd.DataFrame:
    """Per case and person: display name, dob, age, child marker, sex, record count, agencies (for a purpose
    view, from the records it may see only: :meth:`View.person_attributes_sql`)."""
    if not store.has_table("person_attributes"):
        return _q(store, '''SELECT "case", person_id, NULL::VARCHAR display_name, NULL::DATE dob, NULL::INT age,
                          NULL::BOOLEAN is_child, NULL::VARCHAR sex, NULL::INT n_records, NULL::VARCHAR[] agencies
                          FROM __c_persons ORDER BY "case", person_id''')
    tables = {r[0] for r in store.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    attrs = view.person_attributes_sql(tables) if view is not None else "person_attributes"
    return _q(store, f'''SELECT c."case", c.person_id, a.display_name, a.dob, a.age, a.is_child, a.sex, a.n_records,
                      a.agencies FROM __c_persons c LEFT JOIN {attrs} a USING (person_id)
                      ORDER BY c."case", a.is_child NULLS LAST, c.person_id''')


def case_records(store: Store, view: View) -> pd.DataFrame:
    """Per case: every source record that makes up each person, its cluster confidence and strongest link."""
    if not store.has_table("person_clusters"):
        return pd.DataFrame(columns=["case", "person_id", "unique_id", "source", "agency", "record_key",
                                     "linked_to", "detail"])
    records = "person_records"
    if not store.has_table("person_records"):  # linkage without ingest (e.g. a re-linked store): ids only
        records = ("(SELECT " + ", ".join(f"NULL::VARCHAR AS {c}" for c in (
            "source", "agency", "record_key", "title", "forenames", "surname", "sex", "address_text", "postcode",
            "phone", "email")) + ", NULL::DATE AS dob, NULL::DATE AS resident_from, NULL::DATE AS resident_to "
            "WHERE FALSE)")
    filt, params = view.sql_agency_filter("coalesce(r.agency, sa.agency)")
    pairs = ""
    best = ("NULL::VARCHAR AS linked_to, NULL::DOUBLE AS best_match_weight, "
            "NULL::DOUBLE AS best_match_probability")
    if store.has_table("person_pairs"):
        pairs = """, cp AS (SELECT DISTINCT pc.unique_id, pc.person_id FROM person_clusters pc
                       JOIN __c_persons USING (person_id)),
            inside AS (SELECT a.unique_id AS ua, b.unique_id AS ub, p.match_weight, p.match_probability
                       FROM person_pairs p JOIN cp a ON a.unique_id = p.unique_id_l
                       JOIN cp b ON b.unique_id = p.unique_id_r WHERE a.person_id = b.person_id),
            edges AS (SELECT ua AS unique_id, ub AS partner, match_weight, match_probability FROM inside
                      UNION ALL SELECT ub, ua, match_weight, match_probability FROM inside),
            best AS (SELECT e.unique_id, arg_max(e.partner, {'w': e.match_weight, 'shown': coalesce((%s), FALSE),
                                                             'p': e.partner}) AS linked_to,
                            max(e.match_weight) AS w, max(e.match_probability) AS pr FROM edges e
                     LEFT JOIN __c_src ps ON ps.source = split_part(e.partner, ':', 1) GROUP BY 1)"""
        # of equally strong links, show one whose partner the view may show, then the same one every run
        partner_filt, partner_params = view.sql_agency_filter("ps.agency")
        pairs = pairs % partner_filt
        params = [*partner_params, *params]
        best = "best.linked_to, best.w AS best_match_weight, best.pr AS best_match_probability"
    join_best = "LEFT JOIN best ON best.unique_id = pc.unique_id" if pairs else ""
    sql = f"""WITH x AS (SELECT 1){pairs}
        SELECT c."case", pc.person_id, pc.unique_id, pc.source, coalesce(r.agency, sa.agency) AS agency, pc.record_key, pc.cluster_confidence,
               r.title, r.forenames, r.surname, r.dob, r.sex, r.address_text, r.postcode, r.phone, r.email,
               r.resident_from, r.resident_to, {best}, coalesce(({filt}), FALSE) AS detail
        FROM __c_persons c JOIN person_clusters pc USING (person_id)
        LEFT JOIN {records} r ON r.source = pc.source AND r.record_key = pc.record_key
        LEFT JOIN __c_src sa ON sa.source = pc.source
        {join_best}
        ORDER BY c."case", pc.person_id, pc.source, pc.record_key"""
    return _q(store, sql, params)


def case_signals(store: Store, view: View) -> pd.DataFrame:
    """Per case: signals about its persons, at its locations or in its household, with a detail marker."""
    if not store.has_table("signals"):
        return pd.DataFrame(columns=["case", "signal_id", "source", "agency", "record_key", "signal", "category",
                                     "role", "event_date", "person_id", "location_id", "detail"])
    filt, params = view.sql_signal_filter("s.agency", "s.category")
    sql = f"""WITH hits AS (
            SELECT c."case", s.signal_id FROM __c_persons c JOIN signals s USING (person_id)
            UNION SELECT c."case", s.signal_id FROM __c_locs c JOIN signals s USING (location_id)
            UNION SELECT c."case", s.signal_id FROM __c_hh c JOIN signals s USING (household_id))
        SELECT h."case", s.signal_id, s.source, s.agency, s.record_key, s.event_seq, s.signal, s.category, s.role,
               s.event_date, s.person_id, s.location_id, s.link_confidence, s.decayed_weight, coalesce(({filt}), FALSE) AS detail
        FROM hits h JOIN signals s USING (signal_id)
        ORDER BY h."case", s.event_date, s.agency, s.signal_id"""
    return _q(store, sql, params)


def case_overrides(store: Store, cases: pd.DataFrame, view: View) -> pd.DataFrame:
    """Per case: the human-override history (raise a score, with reason, user and time).

    In a purpose view only overrides of the purpose's rules (or of no particular rule) are shown."""
    if not store.has_table("overrides") or cases.empty:
        return pd.DataFrame(columns=["case", "override_id", "rule", "raise_score", "reason", "user_name",
                                     "recorded_at"])
    sql = """SELECT o.entity_type || ':' || o.entity_id AS "case", o.override_id, o.rule, o.raise_score, o.reason,
                    o.user_name, o.recorded_at FROM overrides o
             WHERE list_contains(?::VARCHAR[], o.entity_type || ':' || o.entity_id)
               AND (o.rule IS NULL OR ?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], o.rule))
             ORDER BY o.recorded_at"""
    rules = sorted(view.rules) if view.rules is not None else None
    return _q(store, sql, [list(cases["case"]), rules, rules])


def case_graph(store: Store, view: View) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per case: edges (case, src, dst, edge_type, detail) touching its persons/locations, and node types.

    An edge is ``detail`` when the record it comes from belongs to an agency the view may detail (edges
    without a source record, e.g. derived household links, are always shown).
    """
    if not (store.has_table("graph_edges") and store.has_table("graph_nodes")):
        return (pd.DataFrame(columns=["case", "src", "dst", "edge_type", "detail"]),
                pd.DataFrame(columns=["node_id", "node_type"]))
    filt, params = view.sql_agency_filter("a.agency")
    # two equi-joins (seed = src, seed = dst), not one join ON src OR dst: that is a nested loop over
    # cases x edges (43 s at 250k persons)
    sql = f"""WITH seeds AS (SELECT "case", person_id AS node_id FROM __c_persons
                             UNION SELECT "case", location_id FROM __c_locs),
             e AS (SELECT src, dst, edge_type, source FROM graph_edges WHERE list_contains(?::VARCHAR[], edge_type)),
             hit AS (SELECT s."case", e.* FROM e JOIN seeds s ON s.node_id = e.src
                     UNION ALL SELECT s."case", e.* FROM e JOIN seeds s ON s.node_id = e.dst)
        SELECT DISTINCT h."case", h.src, h.dst, h.edge_type,
               (h.source IS NULL OR coalesce(({filt}), FALSE)) AS detail
        FROM hit h LEFT JOIN __c_src a ON a.source = h.source
        ORDER BY h."case", h.src, h.dst, h.edge_type"""
    edges = _q(store, sql, [list(GRAPH_EDGE_TYPES), *params])
    store.con.register("__c_edges", edges)
    try:  # node types only for the nodes a case can draw (its seeds and its edges' ends)
        nodes = _q(store, """WITH wanted AS (SELECT src AS node_id FROM __c_edges UNION SELECT dst FROM __c_edges
                                             UNION SELECT person_id FROM __c_persons
                                             UNION SELECT location_id FROM __c_locs)
                             SELECT DISTINCT n.node_id, n.node_type FROM graph_nodes n SEMI JOIN wanted USING (node_id)
                             WHERE list_contains(?::VARCHAR[], n.node_type) ORDER BY n.node_id""",
                   [list(GRAPH_NODE_TYPES)])
    finally:
        store.con.unregister("__c_edges")
    return edges, nodes


def location_labels(store: Store, view: View, extra: list[str] | None = None) -> pd.DataFrame:
    """(location_id, label) for locations in any case: the gazetteer address, else a visible agency's text
    (the alphabetically first when agencies spell it differently, so the same label on every run)."""
    if not store.has_table("address_matches"):
        return pd.DataFrame(columns=["location_id", "label"])
    filt, params = view.sql_agency_filter("s.agency")
    gaz = ""
    if store.has_table("gazetteer_std"):
        gaz = ("UNION ALL SELECT 'U' || g.uprn, g.full_address, 0 FROM gazetteer_std g "
               "WHERE 'U' || g.uprn IN (SELECT location_id FROM wanted)")
    addr = "NULL::VARCHAR"
    if store.has_table("address_std"):
        addr = "x.address_text"
    join = ("LEFT JOIN address_std x ON x.source = m.source AND x.record_key = m.record_key"
            if store.has_table("address_std") else "")
    sql = f"""WITH wanted AS (SELECT location_id FROM __c_locs
                              UNION SELECT unnest(?::VARCHAR[]) AS location_id),
        cand AS (
            SELECT m.location_id, {addr} AS label, 1 AS pref FROM address_matches m SEMI JOIN wanted USING (location_id)
              {join} LEFT JOIN __c_src s ON s.source = m.source WHERE {filt}
            {gaz})
        SELECT c.location_id, arg_min(c.label, {{'pref': c.pref, 'label': c.label}}) AS label FROM cand c
        WHERE c.label IS NOT NULL AND c.location_id IN (SELECT location_id FROM wanted)
        GROUP BY c.location_id ORDER BY c.location_id"""
    return _q(store, sql, [sorted(set(extra or [])), *params])


def case_possible_same(store: Store, lower: float, upper: float) -> pd.DataFrame:
    """Per case: scored pairs in the review band ([lower, upper)) joining one of its persons to a different
    person -- records the model thought likely the same person but kept apart (a note for the panel)."""
    cols = ["case", "person_id", "other_person_id", "match_probability"]
    if not (store.has_table("person_pairs") and store.has_table("person_clusters")):
        return pd.DataFrame(columns=cols)
    return _q(store, """
        WITH p AS (SELECT a.person_id AS pa, b.person_id AS pb, p.match_probability FROM person_pairs p
                   JOIN person_clusters a ON a.unique_id = p.unique_id_l
                   JOIN person_clusters b ON b.unique_id = p.unique_id_r
                   WHERE a.person_id <> b.person_id AND p.match_probability >= ? AND p.match_probability < ?),
             both_ways AS (SELECT pa AS person_id, pb AS other_person_id, match_probability FROM p
                           UNION ALL SELECT pb, pa, match_probability FROM p)
        SELECT c."case", w.person_id, w.other_person_id, max(w.match_probability) AS match_probability
        FROM __c_persons c JOIN both_ways w USING (person_id)
        GROUP BY ALL ORDER BY c."case", match_probability DESC""", [lower, upper])
