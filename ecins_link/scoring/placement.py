"""Where an event may have happened when its own address fits several premises.

The location stage refuses an address that fits more than one gazetteer entry ("7 Wharf Street" when two
localities have a Wharf Street; "Oak View, Kirkby Street" for two premises of that name): the event stays at
a location of its own (``L...``) with no UPRN, and a location rule never sees it at its true address, so one
ambiguous report can hide an ASB hotspot or a cuckooed flat.

``possible_locations`` lists, for each such record (an event's address, or a person record's home address),
the premises its address may be: the gazetteer entries agreeing with every part the parsed address gives
(flat -- none when none is given --, number, building or organisation, street, and the town / locality and
postcode when given), only when the address names a street and a number or a building and fits at most
:data:`MAX_CANDIDATES` premises (of which those some record of the store is linked to).

The same holds for an address the location stage placed at **building level** (``match_level`` building or
approximate: "Rear of Flat 3, Birch House ..." -- a position word before a flat --, or a shop under a building
shell): it is certain only that the record is about the building, whose ``gazetteer_std`` children
(``parent_uprn``) are the flats or units the people live in.  When the parsed address names a flat that is
exactly one of those children, that child is a possible place; when it names none (or one the building does
not hold), each child is, if the building has at most :data:`MAX_UNITS` and is a shell -- a building that is itself
an occupied premises (a shop with a flat above: gazetteer class residential or commercial) keeps such an address,
which is about the premises ("Near Costcutter, 19 Kirkby Gardens"), not the flat above.  These rows are marked ``placed =
'building'``.  The record stays at the building with certainty (a building-level location keeps its own
flags); a block's flats are never pooled into one place, which would merge unrelated households.

Location rules count such an event at each premises it may be (and such a person as a possible resident of
each), as **corroboration only**: ambiguous rows count at a location only in an episode window that also
holds evidence of the rule placed there with certainty (an event at its resolved address, or a signal of a resident) -- the vulnerable resident of the
flat, the other agency's report of the same nuisance
(:meth:`ecins_link.scoring.compile.RuleCompiler.entity_signals`).  An ambiguous address can complete the
picture at a place, never start one; the flag's evidence marks such a record ``placed = 'ambiguous'`` (or
``'building'``).
Person and household rules do not use event locations and are unaffected.
"""

from __future__ import annotations

from ecins_link.store import Store

MAX_CANDIDATES = 3
MAX_UNITS = 3


def can_list_possible(store: Store) -> bool:
    """Whether the store has what :func:`possible_locations_sql` reads (parsed event addresses, the
    standardised gazetteer)."""
    return store.has_table("address_std") and store.has_table("gazetteer_std")


def _has_columns(store: Store, *columns: tuple[str, str]) -> bool:
    """Whether the store's tables have every (table, column) of ``columns``."""
    q = ("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'main' "
         "AND list_contains(?, [table_name, column_name])")
    return store.con.execute(q, [[list(c) for c in columns]]).fetchone()[0] == len(columns)


def has_units(store: Store) -> bool:
    """Whether the store says which gazetteer entries sit inside which (``gazetteer_std.parent_uprn``) and at
    what level each address resolved (``address_matches.match_level``)."""
    return _has_columns(store, ("gazetteer_std", "parent_uprn"), ("address_matches", "match_level"))


def classes_premises(store: Store) -> bool:
    """Whether ``gazetteer_std`` says what each entry is (``address_class``: residential / commercial / other)."""
    return _has_columns(store, ("gazetteer_std", "address_class"))


def possible_locations_sql(units: bool = True, premises_class: bool = False) -> str:
    """(source, record_key, origin, location_id, uprn, placed): the premises each address (of an event or,
    ``origin = 'person'``, of a person record) that did not resolve to one UPRN may be (``placed =
    'ambiguous'``), and the units inside the building an address resolved to at building level may be
    (``placed = 'building'``; see the module doc).

    ``premises_class`` (``gazetteer_std.address_class`` is there): a building that is itself an occupied premises
    (residential or commercial: a shop with a flat above it) keeps a building-level address that names no unit --
    "Near Costcutter, 19 Kirkby Gardens" is about the shop, not the flat above -- and only a shell (a block, a
    converted house: class ``other``, or unknown) lends such an address to each of its units."""
    # the unit the text names: its flat, or (no flat parsed: "6 Victoria House, 23 Church Road") a number that is
    # not the unit's own street number but the last word of its flat label
    named = ("(g.flat IS NOT DISTINCT FROM a.flat OR (a.flat IS NULL AND a.number IS DISTINCT FROM g.number "
             "AND regexp_extract(g.flat, '(\\S+)$', 1) = a.number))")
    occupied = "coalesce(b.address_class IN ('residential', 'commercial'), false)" if premises_class else "false"
    occupied_join = "LEFT JOIN gazetteer_std b ON CAST(b.uprn AS VARCHAR) = m.uprn" if premises_class else ""
    units_sql = f"""at_building AS (
            SELECT a.source, a.record_key, a.origin, a.flat, CAST(g.uprn AS VARCHAR) AS uprn,
                   {named} AS named,
                   count(*) FILTER (WHERE {named}) OVER (PARTITION BY a.source, a.record_key) AS n_named,
                   count(*) OVER (PARTITION BY a.source, a.record_key) AS n_units,
                   {occupied} AS occupied
            FROM address_std a
            JOIN address_matches m ON m.source = a.source AND m.record_key = a.record_key
                 AND m.uprn IS NOT NULL AND m.match_level IN ('building', 'approximate')
            JOIN gazetteer_std g ON CAST(g.parent_uprn AS VARCHAR) = m.uprn
            {occupied_join}),
        unit AS (
            SELECT source, record_key, origin, uprn, 'building' AS placed FROM at_building
            WHERE (n_named = 1 AND named) OR (n_named = 0 AND n_units <= {MAX_UNITS} AND NOT occupied)),
""" if units else "unit AS (SELECT * FROM cand WHERE false),\n"
    return f"""
        WITH cand AS (
            SELECT a.source, a.record_key, a.origin, CAST(g.uprn AS VARCHAR) AS uprn, 'ambiguous' AS placed
            FROM address_std a
            JOIN address_matches m ON m.source = a.source AND m.record_key = a.record_key AND m.uprn IS NULL
            JOIN gazetteer_std g ON g.street = a.street
                 AND (a.number IS NULL OR g.number = a.number)
                 AND (a.building IS NULL OR a.building = g.building OR a.building = g.organisation)
                 AND g.flat IS NOT DISTINCT FROM a.flat
                 AND (a.postcode IS NULL OR g.postcode = a.postcode)
                 AND (a.town IS NULL OR a.town = g.town OR a.town = g.locality)
            WHERE a.street IS NOT NULL AND (a.number IS NOT NULL OR a.building IS NOT NULL)
            QUALIFY count(*) OVER (PARTITION BY a.source, a.record_key) <= {MAX_CANDIDATES}),
        by_name AS (
            SELECT a.source, a.record_key, a.origin, CAST(g.uprn AS VARCHAR) AS uprn, 'ambiguous' AS placed
            FROM address_std a
            JOIN address_matches m ON m.source = a.source AND m.record_key = a.record_key AND m.uprn IS NULL
            JOIN gazetteer_std g ON (a.building = g.organisation OR a.building = g.building)
                 AND (a.street IS NULL OR a.street = g.locality)
                 AND (a.town IS NULL OR a.town = g.town OR a.town = g.locality)
                 AND g.flat IS NOT DISTINCT FROM a.flat
                 AND (a.postcode IS NULL OR g.postcode = a.postcode)
            WHERE a.building IS NOT NULL AND a.number IS NULL AND (a.street IS NOT NULL OR a.town IS NOT NULL)
            QUALIFY count(*) OVER (PARTITION BY a.source, a.record_key) <= {MAX_CANDIDATES}),
{units_sql}        loc AS (SELECT uprn, min(location_id) AS location_id FROM address_matches
                WHERE uprn IS NOT NULL AND location_id IS NOT NULL GROUP BY uprn)
        SELECT DISTINCT c.source, c.record_key, c.origin, loc.location_id, c.uprn, c.placed
        FROM (SELECT * FROM cand UNION ALL SELECT * FROM by_name UNION ALL SELECT * FROM unit) c JOIN loc ON loc.uprn = c.uprn"""


class LocationSignalsMixin:
    """A location rule's entity signals, with ambiguous addresses as corroboration (mixed into
    :class:`~ecins_link.scoring.compile.RuleCompiler`: needs ``rule``, ``tables``, ``sig``, ``members_sql`` and
    ``residence_periods_sql``)."""

    @property
    def ambiguous(self) -> bool:
        """Whether the rule's entity signals hold ambiguous addresses (a location rule, with the
        ``possible_locations`` table)."""
        return self.rule.scope == "location" and "possible_locations" in self.tables  # type: ignore[attr-defined]

    def counted(self, pred: str, what: str) -> str:
        """Aggregate: distinct ``what`` of the rows matching ``pred``; ambiguous rows (``NOT certain``) count
        only in an episode that has some certain evidence of the rule at the location (corroboration: an
        ambiguous address can complete the picture at a place, never start one)."""
        every = f"count(DISTINCT CASE WHEN {pred} THEN {what} END)"
        if not self.ambiguous:
            return every
        return f"CASE WHEN count(*) FILTER (WHERE certain) > 0 THEN {every} ELSE 0 END"

    def location_entity_signals(self, s_cols: str, child: str, pa_join: str, window: str, loc_window: str) -> str:
        """SELECT of a location rule's entity signals: signals *located* at the location (the event's own
        address, else the person's residence at the time) and signals of its *residents*, wherever recorded;
        with ``possible_locations``, also (``certain = false``) the events whose own address, and the people
        whose home address, fits this premises among at most a few."""
        sig, rule = self.sig, self.rule  # type: ignore[attr-defined]
        member = "EXISTS (SELECT 1 FROM households hm WHERE hm.location_id = {loc} AND hm.person_id = s.person_id)"
        located = (f"SELECT s.location_id AS entity_id, {s_cols}, 'located' AS link, {child} AS member_child, "
                   f"NULL::DATE AS mf, NULL::DATE AS ml, {member.format(loc='s.location_id')} AS is_member, "
                   f"true AS certain FROM {sig} s {pa_join} WHERE s.location_id IS NOT NULL AND {loc_window}")
        possible = self.tables.get("possible_locations") if self.ambiguous else None  # type: ignore[attr-defined]
        amb_cols = s_cols.replace("s.location_origin", "pl.placed AS location_origin")
        if possible:
            located += (f" UNION ALL SELECT pl.location_id AS entity_id, {amb_cols}, 'located' AS link, "
                        f"{child} AS member_child, NULL::DATE AS mf, NULL::DATE AS ml, "
                        f"{member.format(loc='pl.location_id')} AS is_member, false AS certain "
                        f"FROM {sig} s JOIN {possible} pl ON pl.origin = 'event' AND pl.source = s.source "
                        f"AND pl.record_key = s.record_key {pa_join} WHERE {loc_window}")
        if all(c.link == "located" for c in rule.conditions if c.selects_signals):
            return located  # no condition counts residents' signals recorded elsewhere
        members = self.members_sql()  # type: ignore[attr-defined]
        resident = f"SELECT person_id, location_id, min(f) AS f, max(l) AS l FROM ({members}) GROUP BY ALL"
        out = (f"{located} UNION ALL "
               f"SELECT r.location_id AS entity_id, {s_cols}, 'resident' AS link, {child} AS member_child, "
               f"r.f AS mf, r.l AS ml, true AS is_member, true AS certain "
               f"FROM {sig} s JOIN ({resident}) r ON r.person_id = s.person_id {pa_join} WHERE {window}")
        if possible:  # a person whose recorded home address fits this premises among a few
            periods = self.residence_periods_sql()  # type: ignore[attr-defined]
            maybe = (f"SELECT pc.person_id, pl.location_id, pl.placed, min(p.f) AS f, max(p.l) AS l FROM {possible} pl "
                     f"JOIN person_clusters pc ON pc.source = pl.source AND pc.record_key = pl.record_key "
                     f"JOIN address_matches am ON am.source = pl.source AND am.record_key = pl.record_key "
                     f"JOIN ({periods}) p ON p.person_id = pc.person_id AND p.location_id = am.location_id "
                     f"WHERE pl.origin = 'person' GROUP BY ALL")
            r_cols = s_cols.replace("s.location_origin", "r.placed AS location_origin")
            out += (f" UNION ALL SELECT r.location_id AS entity_id, {r_cols}, 'resident' AS link, "
                    f"{child} AS member_child, r.f AS mf, r.l AS ml, true AS is_member, false AS certain "
                    f"FROM {sig} s JOIN ({maybe}) r ON r.person_id = s.person_id {pa_join} WHERE {window}")
        return out
