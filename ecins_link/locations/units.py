"""From a building with flats to the one unit inside it the record must mean.

An answer at a building with flats (``match_level`` ``building``: "building known, flat not") moves to one of its
units only when the gazetteer and the record leave exactly one:

* :func:`resolve_only_home` -- a person's home, and the building holds one dwelling (a flat above a shop);
* :func:`resolve_named_unit` -- an event's text names the organisation of exactly one unit of the building
  ("Betfred, 7 High St" where 7 is a shell with the betting shop on the ground floor and a flat above).

A building's units are the gazetteer entries that name it as parent, or flats at its number, street and postcode.
Both run on ``_loc_res`` after each resolution step and before its guards; the guards skip their methods' flat
check (the unit is reached through the building, so its flat id is the gazetteer's, not the text's).
"""

from __future__ import annotations

import duckdb

METHODS = ["only_home_in_building", "premises_in_building"]

_UNITS = """
    b AS (
        SELECT r.akey, g.uprn, g.number, g.street, g.postcode, g.organisation AS borg, a.flat_id AS tflat,
               a.address_norm
        FROM _loc_res r JOIN _loc_addr a USING (akey) JOIN _loc_gaz g ON g.uprn = r.uprn
        WHERE {who} AND NOT a.near AND g.has_flats AND g.flat_id IS NULL
          AND r.match_method NOT IN ('source_uprn', 'only_home_in_building', 'premises_in_building')),
    -- two equi-joins (an OR in one join condition would be a nested loop over the gazetteer)
    units AS (
        SELECT DISTINCT * FROM (
            SELECT b.akey, b.tflat, b.address_norm, b.borg, u.uprn, u.flat_id, u.address_class, u.organisation
            FROM b JOIN _loc_gaz u ON u.parent_uprn = b.uprn AND u.uprn <> b.uprn
            UNION ALL
            SELECT b.akey, b.tflat, b.address_norm, b.borg, u.uprn, u.flat_id, u.address_class, u.organisation
            FROM b JOIN _loc_gaz u ON u.number = b.number AND u.street IS NOT DISTINCT FROM b.street
                                  AND u.postcode IS NOT DISTINCT FROM b.postcode
            WHERE u.flat_id IS NOT NULL AND u.uprn <> b.uprn))"""


def _move(con: duckdb.DuckDBPyConnection, method: str, confidence: float) -> int:
    con.execute(f"""UPDATE _loc_res r SET uprn = h.uprn, match_method = '{method}',
                            match_confidence = {float(confidence)}
                    FROM _loc_unit h WHERE h.akey = r.akey""")
    return int(con.execute("SELECT count(*) FROM _loc_unit").fetchone()[0])


def resolve_only_home(con: duckdb.DuckDBPyConnection, confidence: float) -> int:
    """A person's home placed at a building with flats -> the building's one residential unit, when it has exactly one.

    A home is a dwelling: at a building that holds one dwelling (a flat above a shop), "18 High St", "Flat, 18 High
    St", "Flat 1, 18 High St" or "18a High St" is that flat.  Taken only when

    * the record is a person's address, not placed by position words, and its answer is a building with flats
      that is not itself a dwelling (the level would be ``building``);
    * the gazetteer lists exactly one residential unit in it;
    * the flat the text names (if any) is that unit's, or is "1" / "A" / a suffix read as a flat ("18a") while the
      unit has no number or letter of its own (a floor descriptor): another numbered flat or another floor is
      another flat, never changed;
    * the text names no organisation of the building or of its units ("Boots, 5 High St" given as a home says
      the shop, not the flat above it: left as it was).

    Method ``only_home_in_building`` (level ``flat``).  Returns how many."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_unit AS
        WITH {_UNITS.format(who="a.home")}
        SELECT akey, min(uprn) FILTER (WHERE address_class = 'residential') AS uprn,
               min(flat_id) FILTER (WHERE address_class = 'residential') AS flat_id, min(tflat) AS tflat
        FROM units
        GROUP BY akey
        HAVING count(DISTINCT uprn) FILTER (WHERE address_class = 'residential') = 1
           AND NOT bool_or(list_bool_or(list_transform([organisation, borg], o -> coalesce(
                   length(o) >= 3 AND contains(' ' || coalesce(address_norm, '') || ' ', ' ' || upper(o) || ' '),
                   false))))""")
    # the building itself must not be a dwelling (a house with a granny flat is the house)
    con.execute("""DELETE FROM _loc_unit WHERE akey IN (
                       SELECT r.akey FROM _loc_res r JOIN _loc_gaz g ON g.uprn = r.uprn
                       WHERE g.address_class = 'residential')""")
    con.execute(r"""
        DELETE FROM _loc_unit
        WHERE NOT (tflat IS NULL OR tflat = flat_id
                   OR ((tflat IN ('1', 'A') OR ends_with(tflat, '?'))
                       AND NOT regexp_full_match(coalesce(flat_id, ''), '\d+[A-Z]?|[A-Z]')))""")
    return _move(con, "only_home_in_building", confidence)


def resolve_named_unit(con: duckdb.DuckDBPyConnection, confidence: float, min_chars: int = 4) -> int:
    """An event placed at a building with flats whose text names (as whole words) the organisation of exactly one
    of its units -> that unit ("Betfred, Flat 1, 8 Walhas Ave": the betting shop on the ground floor of 8).

    Not for a person's home (a home is never a shop).  Method ``premises_in_building``.  Returns how many."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_unit AS
        WITH {_UNITS.format(who="NOT a.home")}
        SELECT akey, min(uprn) AS uprn
        FROM units
        WHERE length(organisation) >= {int(min_chars)}
          AND contains(' ' || coalesce(address_norm, '') || ' ', ' ' || upper(organisation) || ' ')
        GROUP BY akey HAVING count(DISTINCT uprn) = 1""")
    return _move(con, "premises_in_building", confidence)


def resolve_units(con: duckdb.DuckDBPyConnection, conf: dict) -> dict[str, int]:
    """Both moves, with their confidences from the ``[confidence]`` settings; counts by method."""
    return {"only_home_in_building": resolve_only_home(con, float(conf.get("only_home_in_building", 0.9))),
            "premises_in_building": resolve_named_unit(con, float(conf.get("premises_in_building", 0.9)))}
