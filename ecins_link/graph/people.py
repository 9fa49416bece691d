"""Person-level graph tables in SQL: person_attributes, residences and households.

All functions return SQL for whole-population tables, set-based; nothing loops over rows in Python.
"""

from __future__ import annotations

import datetime as dt

LOW, HIGH = "DATE '0001-01-01'", "DATE '9999-12-31'"


def person_attributes_sql(as_of: dt.date, child_under: int, has_std: bool) -> str:
    """SQL for ``person_attributes``: display name, modal DOB, age and child flag at as-of, sex, agencies."""
    sex = ("(SELECT unique_id, sex FROM person_std)" if has_std else
           "(SELECT source || ':' || record_key AS unique_id, CASE WHEN upper(left(trim(sex), 1)) IN ('M', 'F') "
           "THEN upper(left(trim(sex), 1)) END AS sex FROM person_records)")
    return f"""
        WITH rec AS (
            SELECT c.person_id, c.source, r.agency, r.dob, s.sex,
                   nullif(trim(CASE WHEN coalesce(trim(r.surname), '') <> ''
                                    THEN concat_ws(' ', nullif(trim(r.forenames), ''), trim(r.surname))
                                    ELSE r.full_name END), '') AS name
            FROM person_clusters c
            LEFT JOIN person_records r ON r.source = c.source AND r.record_key = c.record_key
            LEFT JOIN {sex} s ON s.unique_id = c.unique_id),
        names AS (SELECT person_id, name, count(*) AS n FROM rec WHERE name IS NOT NULL GROUP BY ALL),
        dobs AS (SELECT person_id, dob, count(*) AS n FROM rec WHERE dob IS NOT NULL GROUP BY ALL),
        sexes AS (SELECT person_id, sex, count(*) AS n FROM rec WHERE sex IS NOT NULL GROUP BY ALL),
        base AS (SELECT person_id, count(*) AS n_records, list(DISTINCT agency ORDER BY agency)
                        FILTER (WHERE agency IS NOT NULL) AS agencies FROM rec GROUP BY person_id),
        a AS (
            SELECT b.person_id, nb.display_name, db.dob, sb.sex, b.n_records, b.agencies
            FROM base b
            LEFT JOIN (SELECT person_id, arg_max(name, (n, name)) AS display_name FROM names GROUP BY ALL) nb
                   USING (person_id)
            LEFT JOIN (SELECT person_id, arg_max(dob, (n, dob)) AS dob FROM dobs GROUP BY ALL) db USING (person_id)
            LEFT JOIN (SELECT person_id, arg_max(sex, (n, sex)) AS sex FROM sexes GROUP BY ALL) sb USING (person_id))
        SELECT person_id, display_name, dob,
               CAST(date_sub('year', dob, DATE '{as_of.isoformat()}') AS INT) AS age,
               date_sub('year', dob, DATE '{as_of.isoformat()}') < {int(child_under)} AS is_child,
               sex, CAST(n_records AS INT) AS n_records, coalesce(agencies, []::VARCHAR[]) AS agencies
        FROM a"""


def residences_sql(has_address_records: bool = True) -> str:
    """SQL for ``residences``: each person at each location their records give as an address.

    Only person addresses count (``address_records.origin = 'person'``): an event's location is not a
    residence.
    first_seen: the earliest resident_from, else the first event that references a record giving the
    address; an event filed against the record before its recorded start moves the start back to the event
    (the agency itself tied the person to that address record on that date: a tenancy re-issued on a
    change of tenant, an old case migrated to a new reference).  last_seen: NULL (still there) when a record is current (resident_from without resident_to)
    or when no record gives an end date -- an agency's person file is a snapshot at extract, so an address
    without dates is its current one; otherwise the latest resident_to (an ended tenancy is not reopened
    by an undated record of the same address).  An open residence without a current tenancy closes the day
    before the person's next dated residence elsewhere begins (a stale address after a move).
    from_recorded: the earliest recorded start (resident_from), NULL when the start is only a first sighting
    (an agency contact is not an arrival: the score stage then takes the person as resident from the end of
    their previous residence).
    """
    origin = ("LEFT JOIN address_records ar ON ar.source = c.source AND ar.record_key = c.record_key"
              if has_address_records else "")
    keep = "AND coalesce(ar.origin, 'person') = 'person'" if has_address_records else ""
    return f"""
        WITH ev AS (
            SELECT person_source AS source, person_record_key AS record_key,
                   min(event_date) AS ev_min, max(event_date) AS ev_max
            FROM event_records WHERE person_source IS NOT NULL GROUP BY ALL),
        rec AS (
            SELECT c.person_id, m.location_id, m.uprn, r.resident_from,
                   least(r.resident_from, ev.ev_min) AS f, r.resident_to AS l,
                   greatest(r.resident_from, ev.ev_max) AS latest,
                   (r.resident_from IS NOT NULL AND r.resident_to IS NULL) AS current
            FROM person_clusters c
            JOIN person_records r ON r.source = c.source AND r.record_key = c.record_key
            JOIN address_matches m ON m.source = c.source AND m.record_key = c.record_key
            LEFT JOIN ev ON ev.source = c.source AND ev.record_key = c.record_key
            {origin}
            WHERE m.location_id IS NOT NULL {keep}),
        agg AS (
            SELECT person_id, location_id, any_value(uprn) AS uprn, min(f) AS first_seen,
                   CASE WHEN bool_or(current) OR NOT bool_or(l IS NOT NULL) THEN NULL ELSE max(l) END AS last_seen,
                   bool_or(current) AS current, max(latest) AS latest, CAST(count(*) AS INT) AS n_records,
                   min(resident_from) AS from_recorded
            FROM rec GROUP BY person_id, location_id),
        stale AS (  -- of several open snapshot addresses, those with older evidence than another one end there
            SELECT a.person_id, a.location_id, a.latest AS closed
            FROM agg a JOIN agg b ON a.person_id = b.person_id AND a.location_id <> b.location_id
            WHERE a.last_seen IS NULL AND NOT a.current AND b.last_seen IS NULL
              AND a.latest IS NOT NULL AND b.latest > a.latest
            GROUP BY ALL),
        moved AS (  -- an open, undated-end address is closed by a later move in (start of another residence)
            SELECT a.person_id, a.location_id, min(b.first_seen) - 1 AS closed
            FROM agg a JOIN agg b ON a.person_id = b.person_id AND a.location_id <> b.location_id
            WHERE a.last_seen IS NULL AND NOT a.current AND b.first_seen IS NOT NULL
              AND b.first_seen > coalesce(a.first_seen, DATE '0001-01-01')
            GROUP BY ALL)
        SELECT a.person_id, a.location_id, a.uprn, a.first_seen,
               coalesce(least(m.closed, st.closed), m.closed, st.closed, a.last_seen) AS last_seen, a.n_records,
               a.from_recorded
        FROM agg a LEFT JOIN moved m USING (person_id, location_id) LEFT JOIN stale st USING (person_id, location_id)"""


def households_sql(as_of: dt.date) -> str:
    """SQL for ``households`` (from ``residences`` and ``person_attributes``): people resident at one location in overlapping periods (chains of overlaps).

    Per location, residence intervals (NULL = open) are sorted and merged; each merged run is one
    household with id ``H`` + hash(location_id, start).  Everyone resident somewhere is in a household
    (a person living alone is a household of one).  ``is_child`` comes from ``person_attributes``.
    A wholly undated residence is taken as current (a point at as-of) for grouping, so that it joins the
    present household rather than chaining every past tenancy of the address together.
    """
    now = f"DATE '{as_of.isoformat()}'"
    undated = "first_seen IS NULL AND last_seen IS NULL"
    return f"""
        WITH r AS (
            SELECT person_id, location_id, uprn, first_seen, last_seen,
                   CASE WHEN {undated} THEN {now} ELSE coalesce(first_seen, {LOW}) END AS f,
                   CASE WHEN {undated} THEN {now} ELSE coalesce(last_seen, {HIGH}) END AS l FROM residences),
        w AS (SELECT *, max(l) OVER (PARTITION BY location_id ORDER BY f, l, person_id
                                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_max FROM r),
        g AS (SELECT *, sum(CASE WHEN prev_max IS NULL OR f > prev_max THEN 1 ELSE 0 END)
                        OVER (PARTITION BY location_id ORDER BY f, l, person_id ROWS UNBOUNDED PRECEDING) AS grp
              FROM w),
        h AS (SELECT *, min(f) OVER (PARTITION BY location_id, grp) AS start FROM g)
        SELECT 'H' || substr(md5(location_id || '|' || CAST(start AS VARCHAR)), 1, 16) AS household_id,
               h.location_id, h.uprn, h.person_id, pa.is_child, h.first_seen, h.last_seen
        FROM h LEFT JOIN person_attributes pa USING (person_id)"""


def same_household_edges_sql() -> str:
    """Person-person edges for household members whose residence periods overlap directly."""
    return f"""
        SELECT a.person_id AS src, b.person_id AS dst, 'same_household' AS edge_type, NULL AS role,
               nullif(greatest(coalesce(a.first_seen, {LOW}), coalesce(b.first_seen, {LOW})), {LOW}) AS start_date,
               nullif(least(coalesce(a.last_seen, {HIGH}), coalesce(b.last_seen, {HIGH})), {HIGH}) AS end_date,
               1.0 AS weight, NULL AS source, a.household_id AS record_key
        FROM households a JOIN households b
          ON a.household_id = b.household_id AND a.person_id < b.person_id
         AND coalesce(a.first_seen, {LOW}) <= coalesce(b.last_seen, {HIGH})
         AND coalesce(b.first_seen, {LOW}) <= coalesce(a.last_seen, {HIGH})"""
