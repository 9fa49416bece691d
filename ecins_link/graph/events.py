"""Event and edge tables of the graph in SQL: event nodes, involved_in, occurred_at, co_involved,
victim_suspect, graph_nodes and location_churn.

An *event* is one occurrence of a source: normally one row (``source`` + ``record_key``); when a source
describes one occurrence with a row per person, the occurrence is the part of the key that does not name
the person (``event.occurrence_key`` in the project file, or the key minus the ``person_ref`` columns).
"""

from __future__ import annotations

import datetime as dt

from ecins_link.config import ProjectConfig
from ecins_link.graph.people import HIGH, LOW


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def occurrence_expr(config: ProjectConfig) -> str:
    """SQL over ``event_records e``: the occurrence key (record_key, or the non-person part of it)."""
    whens = []
    for s in config.sources:
        if not s.event:
            continue
        occ = list(s.event.occurrence_key)
        ref = s.event.person_ref
        if not occ and ref and ref.source != s.name and set(ref.columns) < set(s.key):
            occ = [k for k in s.key if k not in ref.columns]
        if occ and len(s.key) > 1:
            parts = ", ".join(f"string_split(e.record_key, '|')[{s.key.index(k) + 1}]" for k in occ)
            whens.append(f"WHEN e.source = {_q(s.name)} THEN concat_ws('|', {parts})")
    return f"CASE {' '.join(whens)} ELSE e.record_key END" if whens else "e.record_key"


def event_rows_sql(config: ProjectConfig) -> str:
    """SQL for ``_g_rows``: each event row with its event_id, person_id and own location."""
    return f"""
        SELECT e.source, e.agency, e.record_key, {occurrence_expr(config)} AS occ_key,
               'E:' || e.source || ':' || ({occurrence_expr(config)}) AS event_id,
               e.signal, e.raw_code, nullif(upper(trim(e.role)), '') AS role, e.event_date,
               c.person_id, m.location_id AS own_location, m.match_confidence AS own_confidence
        FROM event_records e
        LEFT JOIN person_clusters c ON c.source = e.person_source AND c.record_key = e.person_record_key
        LEFT JOIN address_matches m ON m.source = e.source AND m.record_key = e.record_key"""


def events_sql() -> str:
    """SQL for ``_g_events`` (one row per event) from ``_g_rows``."""
    return """
        SELECT event_id, any_value(source) AS source, any_value(agency) AS agency, any_value(occ_key) AS occ_key,
               min(event_date) AS event_date,
               -- = string_agg(DISTINCT .., ', ' ORDER BY ..), which cost ~2 s at 500k events (this: 0.1 s)
               CASE WHEN len(list_distinct(list(coalesce(signal, raw_code)))) > 0 THEN array_to_string(
                   list_sort(list_distinct(list(coalesce(signal, raw_code)))), ', ') END AS what,
               arg_max(own_location, coalesce(own_confidence, -1)) AS own_location,
               max(own_confidence) AS own_confidence
        FROM _g_rows GROUP BY event_id"""


def involved_sql() -> str:
    """involved_in edges: person -> event, with the role and the source row."""
    return """
        SELECT DISTINCT person_id AS src, event_id AS dst, 'involved_in' AS edge_type, role,
               event_date AS start_date, event_date AS end_date, 1.0 AS weight, source, record_key
        FROM _g_rows WHERE person_id IS NOT NULL"""


def occurred_sql() -> str:
    """occurred_at edges: event -> its own address, else the residence of a person involved at that date.

    ``role`` says which ('own_address' / 'residence'); ``weight`` is the address match confidence (0.5 for
    a location inferred from a residence).
    """
    return f"""
        WITH need AS (SELECT event_id, event_date FROM _g_events WHERE own_location IS NULL),
        cand AS (
            SELECT n.event_id, r.location_id,
                   row_number() OVER (PARTITION BY n.event_id ORDER BY
                       (n.event_date BETWEEN coalesce(r.first_seen, {LOW}) AND coalesce(r.last_seen, {HIGH})) DESC,
                       coalesce(r.last_seen, {HIGH}) DESC, r.n_records DESC, g.person_id, r.location_id) AS rk
            FROM need n JOIN (SELECT DISTINCT event_id, person_id FROM _g_rows WHERE person_id IS NOT NULL) g
              USING (event_id)
            JOIN residences r ON r.person_id = g.person_id)
        SELECT event_id AS src, own_location AS dst, 'occurred_at' AS edge_type, 'own_address' AS role,
               event_date AS start_date, event_date AS end_date, coalesce(own_confidence, 0.0) AS weight,
               source, occ_key AS record_key
        FROM _g_events WHERE own_location IS NOT NULL
        UNION ALL
        SELECT c.event_id, c.location_id, 'occurred_at', 'residence', e.event_date, e.event_date, 0.5,
               e.source, e.occ_key
        FROM cand c JOIN _g_events e USING (event_id) WHERE c.rk = 1"""


def co_involved_sql(victim: list[str], suspect: list[str], max_people: int) -> str:
    """co_involved (undirected, src < dst) and victim_suspect (src = victim, dst = suspect) person edges.

    Events naming more than ``max_people`` people are skipped (a crowd is not a relationship).
    """
    vs = ", ".join(_q(v.upper()) for v in victim) or "NULL"
    ss = ", ".join(_q(v.upper()) for v in suspect) or "NULL"
    return f"""
        WITH p AS (SELECT DISTINCT event_id, person_id, role FROM _g_rows WHERE person_id IS NOT NULL),
        size AS (SELECT event_id FROM p GROUP BY event_id
                 HAVING count(DISTINCT person_id) BETWEEN 2 AND {int(max_people)}),
        pairs AS (
            SELECT a.event_id, a.person_id AS pa, b.person_id AS pb, a.role AS ra, b.role AS rb
            FROM p a JOIN p b ON a.event_id = b.event_id AND a.person_id <> b.person_id
            WHERE a.event_id IN (SELECT event_id FROM size))
        SELECT pa AS src, pb AS dst, 'co_involved' AS edge_type,
               string_agg(DISTINCT coalesce(ra, '?') || '|' || coalesce(rb, '?'), ',') AS role,
               e.event_date AS start_date, e.event_date AS end_date, 1.0 AS weight, e.source,
               e.occ_key AS record_key
        FROM pairs JOIN _g_events e USING (event_id) WHERE pa < pb
        GROUP BY pa, pb, e.event_id, e.event_date, e.source, e.occ_key
        UNION ALL
        SELECT DISTINCT pa, pb, 'victim_suspect', 'victim|suspect', e.event_date, e.event_date, 1.0, e.source,
               e.occ_key
        FROM pairs JOIN _g_events e USING (event_id)
        WHERE ra IN ({vs}) AND rb IN ({ss})"""


def location_nodes_sql(has_gazetteer: bool, has_address_records: bool = True) -> str:
    """graph_nodes' locations: the gazetteer address, else the smallest agency text (address, postcode)."""
    gaz = ("LEFT JOIN (SELECT CAST(uprn AS VARCHAR) AS uprn, any_value(full_address) AS full_address "
           "FROM gazetteer_std GROUP BY 1) g ON g.uprn = l.uprn" if has_gazetteer else "")
    label = "coalesce(g.full_address, l.text)" if has_gazetteer else "l.text"
    addr = "address_records" if has_address_records else (
        "(SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS record_key, NULL::VARCHAR AS address_text, "
        "NULL::VARCHAR AS postcode WHERE false)")
    return f"""
        SELECT l.location_id AS node_id, 'location' AS node_type, {label} AS label
        FROM (SELECT m.location_id, any_value(m.uprn) AS uprn,
                     min(concat_ws(', ', nullif(trim(a.address_text), ''), nullif(trim(a.postcode), ''))) AS text
              FROM address_matches m LEFT JOIN {addr} a USING (source, record_key)
              GROUP BY m.location_id) l {gaz}"""


def nodes_sql(has_gazetteer: bool, has_address_records: bool = True, locations: str | None = None) -> str:
    """graph_nodes: persons (display name), locations (see :func:`location_nodes_sql`; or read from the table
    ``locations`` made from it), events."""
    loc = f"SELECT * FROM {locations}" if locations else location_nodes_sql(has_gazetteer, has_address_records)
    return f"""
        SELECT person_id AS node_id, 'person' AS node_type, display_name AS label FROM person_attributes
        UNION ALL
        {loc}
        UNION ALL
        SELECT event_id, 'event', concat_ws(' ', agency || ':', what, CAST(event_date AS VARCHAR)) FROM _g_events"""


def churn_sql(as_of: dt.date, window_days: int) -> str:
    """location_churn for the window (as_of - window_days, as_of] from residences, households, graph_edges.

    distinct_persons = people whose records give the address with dates touching the window, plus people
    involved in events that occurred there in the window; unrelated_persons = those of them who are not
    established household members (resident there since before the window opened, or open-ended).
    """
    end = f"DATE '{as_of.isoformat()}'"
    start = f"({end} - INTERVAL {int(window_days)} DAY)::DATE"
    return f"""
        WITH linked AS (
            SELECT location_id, person_id FROM residences
            WHERE coalesce(first_seen, {LOW}) <= {end} AND coalesce(last_seen, {HIGH}) > {start}
              AND (first_seen IS NOT NULL OR last_seen IS NOT NULL)
            UNION
            SELECT o.dst, i.src FROM graph_edges o JOIN graph_edges i
              ON i.edge_type = 'involved_in' AND i.dst = o.src
            WHERE o.edge_type = 'occurred_at' AND o.start_date > {start} AND o.start_date <= {end}),
        members AS (
            SELECT DISTINCT location_id, person_id FROM households
            WHERE coalesce(first_seen, {LOW}) <= {start} AND coalesce(last_seen, {HIGH}) > {start})
        SELECT l.location_id, {start} AS window_start, {end} AS window_end,
               CAST(count(DISTINCT l.person_id) AS INT) AS distinct_persons,
               CAST(count(DISTINCT l.person_id) FILTER (WHERE m.person_id IS NULL) AS INT) AS unrelated_persons
        FROM linked l LEFT JOIN members m USING (location_id, person_id)
        GROUP BY l.location_id"""
