"""Build the ``signals`` table: every event signal resolved to a person, a location and a household.

Set-based DuckDB SQL.  A signal's person comes from its person reference through ``person_clusters``;
its location is the event row's own ``address_matches`` row (``location_origin = 'event'``), else the
person's residence at the event date, else their latest residence (``location_origin = 'residence'``);
its household is the person's household at that location, else their latest household.  Weight,
category and gravity come from the taxonomy; ``decayed_weight = weight * 0.5 ** (age_days / half_life)``
at the as-of date.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from ecins_link.scoring.taxonomy import Taxonomy
from ecins_link.store import Store

TAXONOMY_TABLE = "_score_taxonomy"

# optional graph tables: used when present, otherwise an empty stand-in with the contract's columns
OPTIONAL_TABLES = {
    "location_churn": "SELECT NULL::VARCHAR location_id, NULL::DATE window_start, NULL::DATE window_end, "
    "NULL::INT distinct_persons, NULL::INT unrelated_persons WHERE false",
    "graph_edges": "SELECT NULL::VARCHAR src, NULL::VARCHAR dst, NULL::VARCHAR edge_type, NULL::VARCHAR role, "
    "NULL::DATE start_date, NULL::DATE end_date, NULL::DOUBLE weight, NULL::VARCHAR source, "
    "NULL::VARCHAR record_key WHERE false",
    "person_components": "SELECT NULL::VARCHAR person_id, NULL::VARCHAR component_id WHERE false",
}


def resolve_as_of(store: Store, configured: dt.date | None) -> dt.date:
    """The as-of date: the project's, else the latest event date, else today."""
    return store.as_of(configured)


def register_taxonomy(con: duckdb.DuckDBPyConnection, taxonomy: Taxonomy, temp: bool = True) -> None:
    """Make the taxonomy table ``_score_taxonomy(signal, category, weight, half_life_days, gravity)`` on a
    connection (a temp table, or with ``temp=False`` a table in the connection's default database)."""
    df = pd.DataFrame(taxonomy.rows(), columns=["signal", "category", "weight", "half_life_days", "gravity"])
    con.register("__tax_df", df)
    try:
        con.execute(f"CREATE OR REPLACE {'TEMP ' if temp else ''}TABLE {TAXONOMY_TABLE} AS SELECT * FROM __tax_df")
    finally:
        con.unregister("__tax_df")


def optional_tables(store: Store) -> dict[str, str]:
    """What to read each optional graph table from: the table, or an empty stand-in subquery; and under
    ``residence_from`` the residences column holding a recorded start (``from_recorded``; a store built before
    it existed: ``first_seen``)."""
    out = {name: name if store.has_table(name) else f"({empty_sql})" for name, empty_sql in OPTIONAL_TABLES.items()}
    cols = {c for (c,) in store.con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'residences' "
        "AND table_schema = 'main' AND table_catalog = current_database()").fetchall()}
    out["residence_from"] = "from_recorded" if "from_recorded" in cols else "first_seen"
    return out


def signals_sql(as_of: dt.date) -> str:
    """The query that builds ``signals`` (needs the taxonomy temp table)."""
    d = f"DATE '{as_of.isoformat()}'"
    return f"""
    WITH ev AS (
        SELECT DISTINCT e.source, e.agency, e.record_key, e.event_seq, e.signal, upper(trim(e.role)) AS role,
               e.event_date, pc.person_id, pc.cluster_confidence
        FROM event_records e
        LEFT JOIN person_clusters pc ON pc.source = e.person_source AND pc.record_key = e.person_record_key
        WHERE e.signal IS NOT NULL
    ),
    own AS (
        SELECT source, record_key, min(location_id) AS location_id, min(uprn) AS uprn
        FROM address_matches WHERE location_id IS NOT NULL GROUP BY source, record_key
    ),
    located AS (
        SELECT ev.*, own.location_id, own.uprn
        FROM ev LEFT JOIN own ON own.source = ev.source AND own.record_key = ev.record_key
    ),
    by_residence AS (
        SELECT l.source, l.record_key, l.event_seq, l.signal, r.location_id, r.uprn
        FROM located l JOIN residences r ON r.person_id = l.person_id
        WHERE l.location_id IS NULL AND r.location_id IS NOT NULL
        QUALIFY row_number() OVER (
            PARTITION BY l.source, l.record_key, l.event_seq, l.signal
            ORDER BY (l.event_date BETWEEN coalesce(r.first_seen, DATE '1900-01-01')
                                      AND coalesce(r.last_seen, DATE '9999-12-31')) DESC NULLS LAST,
                     r.last_seen DESC NULLS FIRST, r.n_records DESC NULLS LAST, r.location_id) = 1
    ),
    placed AS (
        SELECT l.source, l.agency, l.record_key, l.event_seq, l.signal, l.role, l.event_date, l.person_id,
               l.cluster_confidence,
               coalesce(l.location_id, br.location_id) AS location_id,
               CASE WHEN l.location_id IS NOT NULL THEN l.uprn ELSE br.uprn END AS uprn,
               CASE WHEN l.location_id IS NOT NULL THEN 'event'
                    WHEN br.location_id IS NOT NULL THEN 'residence' END AS location_origin
        FROM located l
        LEFT JOIN by_residence br ON br.source = l.source AND br.record_key = l.record_key
             AND br.event_seq IS NOT DISTINCT FROM l.event_seq AND br.signal = l.signal
    ),
    hh AS (
        SELECT p.source, p.record_key, p.event_seq, p.signal, h.household_id
        FROM placed p JOIN households h ON h.person_id = p.person_id
        QUALIFY row_number() OVER (
            PARTITION BY p.source, p.record_key, p.event_seq, p.signal
            ORDER BY (h.location_id IS NOT DISTINCT FROM p.location_id) DESC,
                     (p.event_date BETWEEN coalesce(h.first_seen, DATE '1900-01-01')
                                       AND coalesce(h.last_seen, DATE '9999-12-31')) DESC NULLS LAST,
                     h.last_seen DESC NULLS FIRST, h.household_id) = 1
    )
    SELECT concat_ws(':', p.source, p.record_key, p.event_seq::VARCHAR, p.signal) AS signal_id,
           p.source, p.agency, p.record_key, p.event_seq, p.signal, t.category, p.role, p.event_date,
           p.person_id, p.location_id, p.uprn, hh.household_id,
           p.cluster_confidence AS link_confidence,
           coalesce(t.weight, 0.0) AS weight,
           coalesce(t.weight, 0.0) * pow(0.5, greatest(date_diff('day', p.event_date, {d}), 0)
                                              / coalesce(t.half_life_days, 365.0)) AS decayed_weight,
           coalesce(t.gravity, 0.0) AS gravity,
           p.location_origin,
           coalesce(t.half_life_days, 365.0)::DOUBLE AS half_life_days
    FROM placed p
    LEFT JOIN {TAXONOMY_TABLE} t ON t.signal = p.signal
    LEFT JOIN hh ON hh.source = p.source AND hh.record_key = p.record_key
         AND hh.event_seq IS NOT DISTINCT FROM p.event_seq AND hh.signal = p.signal
    """
