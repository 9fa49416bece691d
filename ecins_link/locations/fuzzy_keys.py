"""Key joins on what a misspelt street leaves intact: flat + house number + the full postcode, or a close spelling.

"27, Chlmouts Road, Oxham ZX1 6FU": the street is misspelt, so every key with the street in it misses, and the
matcher's model sees a runner-up at the same number nearby.  A full postcode holds a few dozen properties, so
flat + number + postcode nearly always names one.  It is accepted only when

* exactly one UPRN has that flat, number (with its suffix) and postcode;
* the text writes the candidate's street, or a close spelling of it (Jaro-Winkler >= ``min_street_similarity``
  against the parsed street, or against a word of the text for the street's first word): a postcode mistyped
  into a neighbour's must not move an address to another street;
* the text names no area the candidate is not in, names no building but the candidate's (or one no property of
  that street has), and has no unexplained words when the candidate is a building with flats and the text names
  no flat.
"""

from __future__ import annotations

import duckdb

from ecins_link.locations.keys import area_consistent, building_fits, postcode_close


def resolve_postcode_number(con: duckdb.DuckDBPyConnection, confidence: float,
                            min_street_similarity: float = 0.88) -> dict[str, int]:
    """Resolve unresolved addresses whose flat + number + full postcode names one UPRN and whose text writes that
    UPRN's street (or a close spelling); method ``postcode_number``.  Returns resolved and refused-tie counts."""
    sim = float(min_street_similarity)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_cand AS
        SELECT a.akey, min(g.uprn) AS uprn, count(DISTINCT g.uprn) AS n, bool_or(g.has_flats) AS has_flats
        FROM ({_READING}) a JOIN _loc_gaz g
          ON g.postcode = a.postcode AND g.number = a.number AND coalesce(g.flat_id, '') = coalesce(a.flat_id, '')
        WHERE a.number IS NOT NULL AND a.postcode IS NOT NULL
        GROUP BY a.akey""")
    before = con.execute("SELECT count(*) FROM _loc_res").fetchone()[0]
    con.execute(f"""
        INSERT INTO _loc_res
        SELECT c.akey, c.uprn, 'postcode_number', {float(confidence)}
        FROM _loc_cand c JOIN _loc_gaz g ON g.uprn = c.uprn JOIN ({_READING}) a ON a.akey = c.akey
        WHERE c.n = 1 AND g.street IS NOT NULL
          AND NOT (c.has_flats AND a.flat_id IS NULL AND a.n_unexplained > 0)
          AND (a.street = g.street
               OR jaro_winkler_similarity(coalesce(a.street, ''), g.street) >= {sim}
               OR (length(split_part(g.street, ' ', 1)) >= 4 AND coalesce(list_max(list_transform(
                       string_split(coalesce(a.address_norm, ''), ' '),
                       t -> jaro_winkler_similarity(t, split_part(g.street, ' ', 1)))), 0) >= {sim}))
          AND {area_consistent('a', 'g')} AND {building_fits('a', 'g')}""")
    n = con.execute("SELECT count(*) FROM _loc_res").fetchone()[0] - before
    _adopt_reading(con, "postcode_number")
    ties = con.execute("SELECT count(*) FROM _loc_cand WHERE n > 1").fetchone()[0]
    con.execute("INSERT INTO _loc_ties SELECT akey, 'postcode_number', n FROM _loc_cand WHERE n > 1")
    return {"resolved": int(n), "ties_refused": int(ties)}


# each unresolved address, read once more: a lone number the parser took for a flat ("3, Wenby Gaadens" parsed as
# flat 3 of a building "WENBY GAADENS", the street's type misspelt) is the house number when the text labels no
# flat and names no known street; ``street_unknown``: the parsed street is no gazetteer street
_READING = r"""
    SELECT a.akey, a.address_norm, a.postcode, a.n_unexplained,
           CASE WHEN lone THEN a.flat_id ELSE a.number END AS number,
           CASE WHEN lone THEN NULL ELSE a.flat_id END AS flat_id,
           CASE WHEN lone THEN NULL ELSE a.building END AS building, a.street, street_unknown
    FROM (SELECT x.*, NOT EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.street = x.street) AS street_unknown,
                 (x.number IS NULL AND x.street IS NULL AND regexp_full_match(coalesce(x.flat_id, ''), '\d{1,4}[A-Z]?')
                  AND NOT regexp_matches(upper(coalesce(x.address_text, '')), '\b(FLAT|FLT|APARTMENT|APT|UNIT|ROOM)\b'))
                     AS lone
          FROM _loc_addr x WHERE NOT EXISTS (SELECT 1 FROM _loc_res r WHERE r.akey = x.akey)) a"""


def _adopt_reading(con: duckdb.DuckDBPyConnection, method: str) -> None:
    """Addresses ``method`` just resolved on the lone-number reading keep that reading (number, no flat), so their
    level and location id are the property's."""
    con.execute(r"""
        UPDATE _loc_addr a SET number = a.flat_id, flat_id = NULL, building = NULL
        FROM _loc_res r
        WHERE r.akey = a.akey AND r.match_method = ? AND a.number IS NULL AND a.street IS NULL
          AND regexp_full_match(coalesce(a.flat_id, ''), '\d{1,4}[A-Z]?')
          AND NOT regexp_matches(upper(coalesce(a.address_text, '')), '\b(FLAT|FLT|APARTMENT|APT|UNIT|ROOM)\b')""",
                [method])


def resolve_misspelt_street(con: duckdb.DuckDBPyConnection, confidence: float,
                            min_similarity: float = 0.92) -> dict[str, int]:
    """flat + number + a street written with a typo ("5 Barstead Laane", "1 Fenford Drivve", "4 Langton Cose",
    "3 Bradbyplace"): for an unresolved address whose parsed street is no gazetteer street, the gazetteer
    properties with its flat and number on a street that the text after the number begins with, spaces ignored
    (Jaro-Winkler >= ``min_similarity``, same first two letters).  Exactly one UPRN, in every area the text names,
    with a close postcode (when given) and a fitting building name: resolved (method ``misspelt_street``)."""
    sim = float(min_similarity)
    con.execute(rf"""
        CREATE OR REPLACE TEMP TABLE _loc_fz AS
        SELECT akey, number, flat_id,
               replace(regexp_extract(address_norm, '(?:^| )' || number || ' (.+)$', 1), ' ', '') AS rest
        FROM ({_READING}) a
        WHERE number IS NOT NULL AND address_norm IS NOT NULL AND street_unknown""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_cand AS
        WITH s AS (SELECT DISTINCT street, replace(street, ' ', '') AS squashed FROM _loc_gaz
                   WHERE length(street) >= 6),
             hit AS (SELECT f.akey, s.street FROM _loc_fz f JOIN s
                       ON left(f.rest, 2) = left(s.squashed, 2)
                      AND jaro_winkler_similarity(left(f.rest, length(s.squashed)), s.squashed) >= {sim}),
             c AS (SELECT h.akey, g.uprn, g.has_flats FROM hit h JOIN _loc_fz f USING (akey)
                   JOIN _loc_gaz g ON g.street = h.street AND g.number = f.number
                    AND coalesce(g.flat_id, '') = coalesce(f.flat_id, ''))
        SELECT akey, min(uprn) AS uprn, count(DISTINCT uprn) AS n, bool_or(has_flats) AS has_flats
        FROM c GROUP BY akey""")
    before = con.execute("SELECT count(*) FROM _loc_res").fetchone()[0]
    con.execute(f"""
        INSERT INTO _loc_res
        SELECT c.akey, c.uprn, 'misspelt_street', {float(confidence)}
        FROM _loc_cand c JOIN _loc_gaz g ON g.uprn = c.uprn JOIN ({_READING}) a ON a.akey = c.akey
        WHERE c.n = 1 AND NOT (c.has_flats AND a.flat_id IS NULL)
          AND {area_consistent('a', 'g')} AND {postcode_close('a', 'g')} AND {building_fits('a', 'g')}
          -- the parsed street may have swallowed an area ("13 ASHDALE RAD EDSTEAD"): every town or locality the
          -- whole text names, outside the candidate's street name, is the candidate's
          AND NOT EXISTS (SELECT 1 FROM (SELECT DISTINCT town AS area FROM _loc_gaz_area WHERE length(town) >= 3) ar
                          WHERE contains(' ' || a.address_norm || ' ', ' ' || ar.area || ' ')
                            AND ar.area <> g.town AND ar.area IS DISTINCT FROM g.locality
                            AND NOT contains(' ' || g.street || ' ', ' ' || ar.area || ' '))""")
    n = con.execute("SELECT count(*) FROM _loc_res").fetchone()[0] - before
    _adopt_reading(con, "misspelt_street")
    ties = con.execute("SELECT count(*) FROM _loc_cand WHERE n > 1").fetchone()[0]
    con.execute("INSERT INTO _loc_ties SELECT akey, 'misspelt_street', n FROM _loc_cand WHERE n > 1")
    return {"resolved": int(n), "ties_refused": int(ties)}
