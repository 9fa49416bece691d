"""Key joins for texts that lost one part of the address, on what the rest still names uniquely.

* ``flat_postcode``: "A, Barstead Avenue, ZX2 4BT", "Ground Floor Flat, Yorkby Place ZX5 4FS" -- the house number
  dropped.  The flat, the street (as written, or a close spelling) and the full postcode name one property: a full
  postcode holds a few dozen properties, and a flat label rarely repeats among them on one street.  Without a
  postcode (street and town only) the same reading was right about half the time on address-errors output, so it
  is not made.
* ``building_number``: "FLAT 2 GARHAMCOURT 12 ASHDALE ROAD" for flat 2, Garham Court, 12 Belburs Drive -- the
  street replaced by another real street.  The flat, the building's name and the building's own number agree on
  one property in every area the text names; the street the text writes holds no property with that building
  name.

Each accepts exactly one UPRN (a tie is refused and listed), in every area the text names, never changing a house
number, suffix or flat: the text's flat and number (with its suffix) must be the candidate's.
"""

from __future__ import annotations

import duckdb

from ecins_link.locations.keys import (
    accept_unique,
    area_consistent,
    building_fits,
    postcode_close,
    unresolved,
)


def resolve_flat_postcode(con: duckdb.DuckDBPyConnection, confidence: float,
                          min_street_similarity: float = 0.88) -> dict[str, int]:
    """A flat text with no house number: flat + street (or a close spelling, Jaro-Winkler >=
    ``min_street_similarity``) + full postcode naming one gazetteer flat (method ``flat_postcode``)."""
    sim = float(min_street_similarity)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_cand AS
        SELECT a.akey, min(g.uprn) AS uprn, count(DISTINCT g.uprn) AS n
        FROM {unresolved("a.flat_id IS NOT NULL AND a.number IS NULL AND a.street IS NOT NULL AND a.postcode IS NOT NULL")} a
        JOIN _loc_gaz g ON g.postcode = a.postcode AND g.flat_id = a.flat_id
        -- (a home is never a shop: "Ground Floor Flat" is not the ground-floor shop unit of the same postcode)
        WHERE (g.street = a.street OR jaro_winkler_similarity(a.street, g.street) >= {sim})
          AND NOT (a.home AND coalesce(g.address_class, '') = 'commercial')
        GROUP BY a.akey""")
    return accept_unique(con, "flat_postcode", confidence,
                   f"{area_consistent('a', 'g')} AND {building_fits('a', 'g')}")


def resolve_building_number(con: duckdb.DuckDBPyConnection, confidence: float) -> dict[str, int]:
    """Flat + building name + the building's own number naming one gazetteer property in every area the text names,
    when the street the text writes has no building of that name (method ``building_number``)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_cand AS
        SELECT a.akey, min(g.uprn) AS uprn, count(DISTINCT g.uprn) AS n
        FROM {unresolved("a.building IS NOT NULL AND a.number IS NOT NULL AND length(a.building) >= 4")} a
        JOIN _loc_gaz g ON g.building = a.building AND g.number = a.number
                       AND coalesce(g.flat_id, '') = coalesce(a.flat_id, '')
        WHERE {area_consistent('a', 'g')} AND {postcode_close('a', 'g')}
        GROUP BY a.akey""")
    return accept_unique(con, "building_number", confidence, """
        NOT EXISTS (SELECT 1 FROM _loc_gaz x WHERE x.street = a.street AND x.building = a.building)
        AND NOT (g.has_flats AND a.flat_id IS NULL AND a.n_unexplained > 0)""")


def resolve_building_spelling(con: duckdb.DuckDBPyConnection, confidence: float) -> dict[str, int]:
    """A building or house name misspelt ("Slone House, Fenburs Place" for Stone House; "ORCHAD HOUSE BARSTEAD
    AVENUE"): the gazetteer properties of the street the text writes whose building name is one edit from the text's
    (two for names of ten letters or more; names of six letters at least), with the text's flat and number (or none),
    in every area the text names.  Exactly one UPRN: resolved (method ``building_spelling``)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_cand AS
        SELECT a.akey, min(g.uprn) AS uprn, count(DISTINCT g.uprn) AS n
        FROM {unresolved("a.building IS NOT NULL AND a.street IS NOT NULL AND length(a.building) >= 6")} a
        JOIN _loc_gaz g ON g.street = a.street AND g.building IS NOT NULL AND g.building <> a.building
                       AND coalesce(g.flat_id, '') = coalesce(a.flat_id, '')
                       AND g.number IS NOT DISTINCT FROM a.number
        WHERE damerau_levenshtein(g.building, a.building) <= CASE WHEN length(g.building) >= 10 THEN 2 ELSE 1 END
          AND left(g.building, 1) = left(a.building, 1)
          AND NOT EXISTS (SELECT 1 FROM _loc_gaz x WHERE x.street = a.street
                          AND (x.building = a.building OR x.organisation = a.building))
          AND {area_consistent('a', 'g')} AND {postcode_close('a', 'g')}
        GROUP BY a.akey""")
    return accept_unique(con, "building_spelling", confidence, "NOT (g.has_flats AND a.flat_id IS NULL AND a.n_unexplained > 0)")
