"""Where an event may have happened when its own address fits several premises.

The location stage refuses an address that fits more than one gazetteer entry ("7 Wharf Street" when two
localities have a Wharf Street; "Oak View, Kirkby Street" for two premises of that name): the event stays at
a location of its own (``L...``) with no UPRN, and a location rule never sees it at its true address, so one
ambiguous report can hide an ASB hotspot or a cuckooed flat.

``possible_locations`` lists, for each such event record, the premises its address may be: the gazetteer
entries agreeing with every part the parsed address gives (flat, number, building or organisation, street,
and the town / locality and postcode when given), only when the address names a street and a number or a
building and fits at most :data:`MAX_CANDIDATES` premises (of which those some record of the store is linked to).

Location rules count such an event at each premises it may be, as **corroboration only**: ambiguous events
count at a location only in an episode window that also holds evidence of the rule placed there with
certainty (an event at its resolved address, or a signal of a resident) -- the vulnerable resident of the
flat, the other agency's report of the same nuisance
(:meth:`ecins_link.scoring.compile.RuleCompiler.entity_signals`).  An ambiguous address can complete the
picture at a place, never start one; the flag's evidence marks such a record ``placed = 'ambiguous'``.
Person and household rules do not use event locations and are unaffected.
"""

from __future__ import annotations

from ecins_link.store import Store

MAX_CANDIDATES = 3
EMPTY = ("SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS record_key, NULL::VARCHAR AS location_id, "
         "NULL::VARCHAR AS uprn WHERE false")


def can_list_possible(store: Store) -> bool:
    """Whether the store has what :func:`possible_locations_sql` reads (parsed event addresses, the
    standardised gazetteer)."""
    return store.has_table("address_std") and store.has_table("gazetteer_std")


def possible_locations_sql() -> str:
    """(source, record_key, location_id, uprn): the premises each event address that did not resolve to one
    UPRN may be (see the module doc)."""
    return f"""
        WITH cand AS (
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
            QUALIFY count(*) OVER (PARTITION BY a.source, a.record_key) <= {MAX_CANDIDATES}),
        loc AS (SELECT uprn, min(location_id) AS location_id FROM address_matches
                WHERE uprn IS NOT NULL AND location_id IS NOT NULL GROUP BY uprn)
        SELECT DISTINCT c.source, c.record_key, loc.location_id, c.uprn
        FROM cand c JOIN loc ON loc.uprn = c.uprn"""
