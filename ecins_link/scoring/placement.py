"""Place an event whose own address fits several premises, by what the agencies recorded there at the time.

The location stage refuses an address that fits more than one gazetteer entry ("7 Wharf Street" when two
localities have a Wharf Street; "Oak View, Kirkby Street" for two premises of that name): it stays at a
location of its own (``L...``) with no UPRN.  A location rule then never sees it at its true address, so one
ambiguous report can hide an ASB hotspot or a cuckooed flat.

An analyst resolves such an address by context, and so does the score stage, set-based:

* **candidates**: the gazetteer premises agreeing with every part the event's parsed address gives (flat,
  number, building or organisation, street, and the town / locality and postcode when given), only when the
  address names a street and a number or building and fits at most :data:`MAX_CANDIDATES` premises;
* **context**: per candidate, the distinct other records whose signals are placed at that premises with
  certainty (the record's own resolved address, or the residence of the person it is about) within
  :data:`CONTEXT_DAYS` days of the event;
* the event is placed at the candidate with the most context, only when it has some and strictly more than
  every other candidate; otherwise (no context, or a tie) it stays where it was.

Such a signal carries ``location_origin = 'context'`` so a flag's evidence can say how it was placed.  Nothing
is counted twice: an event is placed at one premises or at none.
"""

from __future__ import annotations

MAX_CANDIDATES = 3
CONTEXT_DAYS = 180


def ambiguous_candidates_sql() -> str:
    """(source, record_key, uprn): candidate premises of each event address that did not resolve to a UPRN."""
    return f"""
        SELECT a.source, a.record_key, CAST(g.uprn AS VARCHAR) AS uprn
        FROM address_std a
        JOIN address_matches m ON m.source = a.source AND m.record_key = a.record_key AND m.uprn IS NULL
        JOIN gazetteer_std g ON g.street = a.street
             AND (a.number IS NULL OR g.number = a.number)
             AND (a.building IS NULL OR a.building = g.building OR a.building = g.organisation)
             AND (a.flat IS NULL OR g.flat = a.flat)
             AND (a.postcode IS NULL OR g.postcode = a.postcode)
             AND (a.town IS NULL OR a.town = g.town OR a.town = g.locality)
        WHERE a.origin = 'event' AND a.street IS NOT NULL AND (a.number IS NOT NULL OR a.building IS NOT NULL)
        QUALIFY count(*) OVER (PARTITION BY a.source, a.record_key) <= {MAX_CANDIDATES}"""


def context_choice_sql(placed: str) -> str:
    """(source, record_key, location_id, uprn): the premises each ambiguous event address is placed at, from
    the signal rows ``placed`` (a CTE with source, record_key, event_date, location_id, uprn, location_origin)."""
    return f"""
        SELECT source, record_key, location_id, uprn FROM (
            SELECT *, row_number() OVER w AS rk, lead(n) OVER w AS next_n FROM (
                SELECT c.source, c.record_key, c.uprn, any_value(o.location_id) AS location_id,
                       count(DISTINCT o.source || chr(31) || o.record_key) AS n
                FROM ({ambiguous_candidates_sql()}) c
                JOIN (SELECT DISTINCT source, record_key, event_date FROM {placed}) e
                     ON e.source = c.source AND e.record_key = c.record_key
                JOIN {placed} o ON o.uprn = c.uprn AND o.location_origin IN ('event', 'residence')
                     AND NOT (o.source = c.source AND o.record_key = c.record_key)
                     AND abs(date_diff('day', o.event_date, e.event_date)) <= {CONTEXT_DAYS}
                GROUP BY c.source, c.record_key, c.uprn)
            WINDOW w AS (PARTITION BY source, record_key ORDER BY n DESC, uprn))
        WHERE rk = 1 AND n >= 1 AND coalesce(next_n, 0) < n"""
