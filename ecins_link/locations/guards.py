"""Hard guards on resolved addresses, descriptor flats, and the level and reason of every answer.

Guards (applied after the key joins and again after uk_address_matcher; an agency-supplied UPRN is exempt):

* a match never changes a house number (with its suffix: 26 is not 26A) or a flat id;
* a person's home never resolves to a UPRN the gazetteer classifies as commercial;
* a text placed by position words ("O/S", "REAR OF") resolves to the building, never to a flat inside it (a
  text that names the flat keeps it only when the building has no UPRN of its own);
* a flat address never resolves to a building that has flats as if it were the flat: it is reported at level
  ``building`` ("building known, flat not") with a location id of its own, so residents of different flats
  are not put at one location;
* a flat address at a house the gazetteer lists beside lettered properties of its number (18, 18A, 18B; none
  with flats) stays unresolved: the flat is one of them, and the text does not say which.

Every refusal leaves a row in ``_loc_why(akey, reason)``; :func:`matches_sql` turns the result into
``address_matches`` rows with ``match_level`` (exact / flat / building / approximate / street / unresolved) and
``match_reason``.
"""

from __future__ import annotations

import duckdb

from ecins_link.locations.keys import area_consistent


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def init(con: duckdb.DuckDBPyConnection) -> None:
    """Create the empty ``_loc_why`` table."""
    con.execute("CREATE OR REPLACE TEMP TABLE _loc_why (akey VARCHAR, reason VARCHAR)")


def _refuse(con: duckdb.DuckDBPyConnection, where: str, reason: str, addresses: str = "_loc_addr") -> int:
    """Delete ``_loc_res`` rows (aliases r, a = address, g = gazetteer) meeting ``where``; log ``reason``.

    ``addresses``: the table ``a`` reads (``_loc_addr``, or :func:`apply_guards`' copy of the few addresses whose
    answers it checks)."""
    sel = f"""SELECT r.akey FROM _loc_res r JOIN {addresses} a USING (akey) JOIN _loc_gaz g ON g.uprn = r.uprn
              WHERE r.match_method <> 'source_uprn' AND r.match_method IN (SELECT method FROM _loc_guard_methods)
                AND ({where})"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _loc_refused AS {sel}")
    n = con.execute("SELECT count(*) FROM _loc_refused").fetchone()[0]
    if n:
        con.execute(f"INSERT INTO _loc_why SELECT akey, {_q(reason)} FROM _loc_refused")
        con.execute("DELETE FROM _loc_res WHERE akey IN (SELECT akey FROM _loc_refused)")
    return int(n)


def apply_guards(con: duckdb.DuckDBPyConnection, home_not_commercial: bool = True,
                 street_types: list[str] | None = None, methods: list[str] | None = None) -> dict[str, int]:
    """Apply the hard guards to ``_loc_res``; return how many answers each refused or moved.

    ``street_types``: full street-type words ("ROAD", "MEWS"); a candidate whose street ends in another one than
    the text's is refused ("10 Ranton Mews" is not "10 Ranton Road").  ``methods``: check only answers of these
    methods (all when None)."""
    street_types = street_types or []
    out: dict[str, int] = {}
    # only answers of these methods are checked (the others were checked when they were made)
    con.execute("CREATE OR REPLACE TEMP TABLE _loc_guard_methods AS SELECT DISTINCT match_method AS method FROM _loc_res"
                + (" WHERE list_contains(?, match_method)" if methods else ""), [methods] if methods else [])
    # position words: a flat inside the building becomes the building (its parent, or the one shell there)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _loc_up AS
        SELECT r.akey, CASE WHEN g.parent_uprn IS NOT NULL THEN g.parent_uprn
                            WHEN count(DISTINCT s.uprn) = 1 THEN min(s.uprn) END AS uprn
        FROM _loc_res r JOIN _loc_addr a USING (akey) JOIN _loc_gaz g ON g.uprn = r.uprn
        LEFT JOIN _loc_gaz s ON s.has_flats AND s.number = g.number AND s.street IS NOT DISTINCT FROM g.street
                            AND s.postcode IS NOT DISTINCT FROM g.postcode
        WHERE a.near AND g.flat_id IS NOT NULL AND r.match_method <> 'source_uprn'
          AND r.match_method IN (SELECT method FROM _loc_guard_methods)
        GROUP BY r.akey, g.parent_uprn""")
    out["position_to_building"] = con.execute("SELECT count(*) FROM _loc_up WHERE uprn IS NOT NULL").fetchone()[0]
    con.execute("""UPDATE _loc_res r SET uprn = u.uprn FROM _loc_up u
                   WHERE u.akey = r.akey AND u.uprn IS NOT NULL AND u.uprn IN (SELECT uprn FROM _loc_gaz)""")
    addresses = "_loc_addr"
    if methods:
        # the few addresses whose answers are checked, once (each check below would otherwise join every address)
        con.execute("""CREATE OR REPLACE TEMP TABLE _loc_guard_addr AS
                       SELECT * FROM _loc_addr WHERE akey IN (
                           SELECT akey FROM _loc_res WHERE match_method <> 'source_uprn'
                             AND match_method IN (SELECT method FROM _loc_guard_methods))""")
        addresses = "_loc_guard_addr"
    # a text that names no flat never lands on one; one that names the flat keeps it when the building has no
    # UPRN of its own (still marked approximate)
    out["position_flat_refused"] = _refuse(con, "a.near AND g.flat_id IS NOT NULL AND a.flat_id IS NULL",
                                           "position words, and the only candidate is a flat inside a building",
                                           addresses)
    if home_not_commercial:
        out["home_on_commercial"] = _refuse(con, "a.home AND g.address_class = 'commercial'",
                                            "a home address matched only a commercial property (refused)", addresses)
    out["number_changed"] = _refuse(con, r"""
        a.number IS NOT NULL AND g.number IS NOT NULL AND a.number <> g.number
        -- a parser that took a bare flat number for the house number: fine when it is the flat
        AND NOT (a.number = g.flat_id AND list_contains(
            regexp_extract_all(upper(coalesce(a.address_text, '')), '\b(\d+[A-Z]?)\b', 1), g.number))""",
        "the best candidate has another house number or suffix (refused)", addresses)
    out["number_dropped"] = _refuse(
        con, "a.number IS NOT NULL AND g.number IS NULL AND g.flat_id IS NULL",
        "the best candidate has no house number; the text has one (refused)", addresses)
    types = ", ".join(_q(w) for w in street_types) or "''"
    out["street_type_changed"] = _refuse(
        con, f"""a.street IS NOT NULL AND g.street IS NOT NULL AND a.street <> g.street
                 AND list_contains([{types}], split_part(a.street, ' ', -1))
                 AND list_contains([{types}], split_part(g.street, ' ', -1))
                 AND split_part(a.street, ' ', -1) <> split_part(g.street, ' ', -1)
                 -- one street name with another type; two different names are the street checks' business
                 AND jaro_winkler_similarity(regexp_replace(a.street, ' [^ ]+$', ''),
                                             regexp_replace(g.street, ' [^ ]+$', '')) >= 0.9
                 -- unless the candidate's building name is in the text ("WILFIELD POINT, 34 ASHBURY WAY")
                 AND NOT coalesce(length(g.building) >= 4 AND contains(coalesce(a.address_norm, ''), g.building),
                                  false)""",
        "the best candidate is on a street of another type (Mews, Road ...) (refused)", addresses)
    out["flat_changed"] = _refuse(
        con, "a.flat_id IS NOT NULL AND g.flat_id IS NOT NULL AND a.flat_id <> g.flat_id "
             "AND r.match_method NOT IN ('flat_descriptor', 'only_home_in_building', 'premises_in_building') "
             # an event naming a unit's organisation is at that unit ("Marford Pharmacy, Flat 1, 30 ...")
             "AND NOT (r.match_method = 'premises_name' AND NOT a.home)",
        "the best candidate is another flat (refused)", addresses)
    # "Flat 2, 18 Halbs St" where the gazetteer lists 18 and 18A (and 18B) as properties of their own, none with
    # flats: the flat is one of them, which one the text does not say (address-errors output, two gazetteers:
    # 18 itself was right 5 times in 31, the flat letter read as the suffix 2 times in 7)
    out["flat_at_lettered_house"] = _refuse(con, r"""
        a.flat_id IS NOT NULL AND g.flat_id IS NULL AND NOT g.has_flats AND regexp_full_match(g.number, '\d+')
        AND EXISTS (SELECT 1 FROM _loc_gaz x WHERE x.street = g.street AND x.flat_id IS NULL
                      AND x.postcode_sector IS NOT DISTINCT FROM g.postcode_sector
                      AND regexp_full_match(x.number, g.number || '[A-Z]'))""",
        "the text names a flat at a house the gazetteer lists beside lettered properties of its number "
        "(18, 18A ...): which one is not known (refused)", addresses)
    return out


def resolve_upper_flat(con: duckdb.DuckDBPyConnection, confidence: float, upper_ids: list[str]) -> dict[str, int]:
    """"FLAT ABOVE, 25 HIGH ST" / "TOP FLOOR FLAT ..." -> the one flat above the ground floor at that building.

    For an unresolved address whose flat id is an upper-floor descriptor (``upper = true`` in the address
    vocabulary): the gazetteer flats at the same number and street (and postcode, when the text has one; else
    in every area the text names) whose ids are upper-floor descriptors too.  Exactly one such UPRN: resolved
    (method ``flat_descriptor``); several: left alone, the reason names them.
    """
    ids = ", ".join(_q(i) for i in upper_ids) or "''"
    # one side must be vague ("ABOVE", "TOP"): a first-floor flat is not the gazetteer's only second-floor flat
    vague = ", ".join(_q(i) for i in upper_ids if not i.startswith("FLOOR")) or "''"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_cand AS
        SELECT a.akey, min(g.uprn) AS uprn, count(DISTINCT g.uprn) AS n, string_agg(DISTINCT g.uprn, ';' ORDER BY g.uprn) AS uprns
        FROM _loc_addr a JOIN _loc_gaz g ON g.number = a.number AND g.street = a.street
        WHERE NOT EXISTS (SELECT 1 FROM _loc_res r WHERE r.akey = a.akey)
          AND list_contains([{ids}], a.flat_id) AND list_contains([{ids}], g.flat_id)
          AND (list_contains([{vague}], a.flat_id) OR list_contains([{vague}], g.flat_id))
          AND (a.postcode IS NULL OR a.postcode = g.postcode
               OR (damerau_levenshtein(a.postcode, g.postcode) <= 1 AND a.postcode_sector = g.postcode_sector))
          AND {area_consistent('a', 'g')}
        GROUP BY a.akey""")
    con.execute(f"INSERT INTO _loc_res SELECT akey, uprn, 'flat_descriptor', {float(confidence)} "
                "FROM _loc_cand WHERE n = 1")
    con.execute("INSERT INTO _loc_why SELECT akey, 'several upper-floor flats fit: ' || uprns FROM _loc_cand WHERE n > 1")
    return {"resolved": int(con.execute("SELECT count(*) FROM _loc_cand WHERE n = 1").fetchone()[0]),
            "ties_refused": int(con.execute("SELECT count(*) FROM _loc_cand WHERE n > 1").fetchone()[0])}


def matches_sql(factor: float, building_factor: float, reasons: dict[str, str], with_gazetteer: bool) -> str:
    """SQL: one ``address_matches`` row per record, with ``match_level`` and ``match_reason``.

    ``factor`` scales the confidence of a text placed by position words, ``building_factor`` that of a flat
    address known only to its building; ``reasons`` describes each method in words.
    """
    said = "CASE r.match_method " + " ".join(f"WHEN {_q(k)} THEN {_q(v)}" for k, v in sorted(reasons.items())) + \
        " ELSE r.match_method END" if reasons else "r.match_method"
    gaz = ("LEFT JOIN _loc_gaz g ON g.uprn = r.uprn "
           "LEFT JOIN (SELECT DISTINCT street FROM _loc_gaz) gs ON gs.street = a.street") if with_gazetteer else \
        ("LEFT JOIN (SELECT NULL::VARCHAR AS flat_id, false AS has_flats, NULL::VARCHAR AS uprn, "
         "NULL::VARCHAR AS address_class) g ON false "
         "LEFT JOIN (SELECT NULL::VARCHAR AS street) gs ON false")
    return f"""
        WITH why AS (SELECT akey, string_agg(DISTINCT reason, '; ' ORDER BY reason) AS why FROM (
                         SELECT akey, reason FROM _loc_why
                         UNION ALL SELECT akey, 'several UPRNs fit (' || max(n) || ', ' || string_agg(DISTINCT method, '/' ORDER BY method)
                                               || ')' FROM _loc_ties GROUP BY akey) GROUP BY akey),
        b AS (
            SELECT m.source, m.record_key, r.uprn, r.match_method AS method, r.match_confidence AS conf, a.near,
                   a.flat_id, c.vague, c.ckey, w.why, {said} AS said,
                   CASE WHEN r.uprn IS NULL THEN CASE WHEN NOT coalesce(c.vague, false) AND a.number IS NULL
                                                           AND gs.street IS NOT NULL THEN 'street' ELSE 'unresolved' END
                        WHEN a.near AND r.match_method <> 'source_uprn' THEN 'approximate'
                        WHEN a.flat_id IS NOT NULL AND g.uprn IS NOT NULL AND g.flat_id IS NULL THEN 'building'
                        WHEN a.flat_id IS NULL AND coalesce(g.has_flats, false)
                             AND coalesce(g.address_class, 'other') = 'other' THEN 'building'
                        WHEN g.flat_id IS NOT NULL THEN 'flat'
                        ELSE 'exact' END AS level
            FROM _loc_map m JOIN _loc_addr a USING (akey)
            LEFT JOIN _loc_res r USING (akey) LEFT JOIN _loc_clu c USING (akey) LEFT JOIN why w USING (akey)
            {gaz})
        SELECT source, record_key, uprn,
               CASE WHEN uprn IS NOT NULL AND level = 'building' AND flat_id IS NOT NULL
                        THEN 'L' || substr(md5('flat|' || uprn || '|' || flat_id), 1, 16)
                    WHEN uprn IS NOT NULL THEN 'U' || uprn
                    WHEN vague THEN 'L' || substr(md5('record|' || source || '|' || record_key), 1, 16)
                    ELSE 'L' || substr(md5(CASE WHEN near THEN 'near|' ELSE '' END || ckey), 1, 16)
               END AS location_id,
               CAST(CASE WHEN uprn IS NULL THEN 0.0
                         WHEN level = 'approximate' THEN conf * {float(factor)}
                         WHEN level = 'building' AND flat_id IS NOT NULL THEN conf * {float(building_factor)}
                         ELSE conf END AS DOUBLE) AS match_confidence,
               CASE WHEN uprn IS NULL AND vague THEN 'too_vague'
                    WHEN uprn IS NULL THEN 'unresolved'
                    WHEN level = 'approximate' THEN 'proximity'
                    ELSE method END AS match_method,
               level AS match_level,
               CASE WHEN uprn IS NOT NULL THEN said
                         || CASE level WHEN 'approximate' THEN '; placed near it by position words'
                                       WHEN 'building' THEN CASE WHEN flat_id IS NOT NULL
                                           THEN '; the building: its flat is not known' ELSE
                                           '; the building: the text names no flat of it' END
                                       ELSE '' END
                    WHEN why IS NOT NULL THEN why
                    WHEN vague THEN 'too vague: no street, building or number'
                    ELSE 'no gazetteer entry fits' END AS match_reason
        FROM b"""


def resolve_building_only(con: duckdb.DuckDBPyConnection, confidence: float) -> int:
    """A flat address still unresolved whose building is one gazetteer UPRN (same number -- or, for a text with no
    number, the same building name on a property with none -- and street, no flat;
    its postcode when the text has one, else in every area the text names): resolved to the building (method
    ``building_only``; :func:`matches_sql` reports it at level ``building``, or ``approximate`` for a text after a
    position word: "O/S 35a Mill Lane" where 35 is a building of flats).  Returns how many."""
    # every gazetteer entry at that number and street (flats too) must lie at one place (postcode sector, locality):
    # "Apt A, 5 Lancaster Ave" whose flat is listed in Kingsley is not the house 5 Lancaster Ave in another locality
    fits = f"""(a.postcode IS NULL OR a.postcode = g.postcode
                OR (damerau_levenshtein(a.postcode, g.postcode) <= 1 AND a.postcode_sector = g.postcode_sector))
               AND {area_consistent('a', 'g')}"""
    # the open flat addresses first; then the building by its number, or ("Flat A, Orchard House, Bromfiels
    # Terrace") by its name alone: two equi-joins (one join on the street with the two as an OR is far larger)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_cand AS
        WITH a AS MATERIALIZED (
            SELECT * FROM _loc_addr a
            WHERE NOT EXISTS (SELECT 1 FROM _loc_res r WHERE r.akey = a.akey) AND a.flat_id IS NOT NULL),
        pairs AS (
            SELECT a.akey, g.uprn, g.flat_id, g.postcode_sector, g.locality, g.town
            FROM a JOIN _loc_gaz g ON g.street = a.street AND g.number = a.number
            WHERE {fits}
            UNION ALL
            SELECT a.akey, g.uprn, g.flat_id, g.postcode_sector, g.locality, g.town
            FROM a JOIN _loc_gaz g ON g.street = a.street AND g.building = a.building
            WHERE a.number IS NULL AND g.number IS NULL AND {fits})
        SELECT akey, min(uprn) FILTER (WHERE flat_id IS NULL) AS uprn,
               count(DISTINCT uprn) FILTER (WHERE flat_id IS NULL) AS n,
               count(DISTINCT concat_ws('|', postcode_sector, locality, town)) AS places
        FROM pairs GROUP BY akey""")
    con.execute("DELETE FROM _loc_cand WHERE places > 1")
    con.execute(f"INSERT INTO _loc_res SELECT akey, uprn, 'building_only', {float(confidence)} FROM _loc_cand WHERE n = 1")
    return int(con.execute("SELECT count(*) FROM _loc_cand WHERE n = 1").fetchone()[0])
