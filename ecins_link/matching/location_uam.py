"""The residue of address resolution goes to uk_address_matcher's pre-trained Splink model.

The matcher runs on its own in-memory DuckDB connection (with a memory limit and thread cap) so its many
intermediate tables never touch the project store; only (akey, uprn, match_weight, distinguishability)
comes back.  A candidate is accepted only with a strong weight and a clear gap to the runner-up
(``distinguishability``), or from its exact stages; ambiguous ones stay unresolved rather than guessed.
"""

from __future__ import annotations

import logging

import duckdb

from ecins_link.matching.location_keys import area_consistent

log = logging.getLogger(__name__)


def run_uk_address_matcher(con: duckdb.DuckDBPyConnection, todo_sql: str, settings: dict) -> int:
    """Resolve the addresses selected by ``todo_sql`` (columns akey, address_concat, postcode).

    Accepted matches are inserted into ``_loc_res`` with method ``uk_address_matcher``; returns how many.
    """
    from uk_address_matcher import AddressMatcher

    messy = con.execute(todo_sql).to_arrow_table()
    if messy.num_rows == 0:
        return 0
    canonical = con.execute("""
        SELECT uprn AS unique_id,
               coalesce(nullif(full_address, ''), concat_ws(', ', organisation, flat, building, number,
                        street, locality, town)) AS address_concat,
               postcode
        FROM _loc_gaz""").to_arrow_table()
    scratch = duckdb.connect()
    try:
        scratch.execute(f"SET memory_limit = '{settings.get('memory_limit', '2GB')}'")
        scratch.execute(f"SET threads = {int(settings.get('threads', 2))}")
        scratch.register("messy_in", messy)
        scratch.register("canonical_in", canonical)
        scratch.execute(
            "CREATE TABLE messy AS SELECT akey AS unique_id, address_concat, postcode FROM messy_in"
        )
        scratch.execute("CREATE TABLE canon AS SELECT * FROM canonical_in")
        matcher = AddressMatcher(
            canonical_addresses=scratch.table("canon"),
            addresses_to_match=scratch.table("messy"),
            con=scratch,
            show_progress="off",
        )
        result = matcher.match()
        out = (
            result.matches()
            .select(
                "CAST(unique_id AS VARCHAR) AS akey, CAST(resolved_canonical_id AS VARCHAR) AS uprn, "
                "CAST(match_weight AS DOUBLE) AS match_weight, CAST(distinguishability AS DOUBLE) AS dist, "
            "CAST(match_reason AS VARCHAR) AS reason"
            )
            .to_arrow_table()
        )
    finally:
        scratch.close()
    con.register("_loc_uam_out", out)
    try:
        w_min = float(settings.get("min_match_weight", 4.0))
        d_min = float(settings.get("min_distinguishability", 7.0))
        w_single = float(settings.get("single_candidate_min_weight", 8.0))
        cap = float(settings.get("max_confidence", 0.9))
        con.execute("CREATE OR REPLACE TEMP TABLE _loc_uam AS SELECT * FROM _loc_uam_out")
    finally:
        con.unregister("_loc_uam_out")
    before = con.execute("SELECT count(*) FROM _loc_res").fetchone()[0]
    # consistency guards: the candidate's house number must be the address's (parsed; for a house, also one
    # of the text's numbers), every number in the text must be one of the candidate's (flat, house,
    # building), a parsed flat must be the candidate's flat, and areas the text names must be the candidate's -- the model alone sometimes takes a flat number for a house number
    # ("Apt 8, 33 X Way" -> "8 X Way").
    con.execute(rf"""
        INSERT INTO _loc_res
        SELECT u.akey, u.uprn, 'uk_address_matcher',
               CASE WHEN u.reason LIKE 'exact%' THEN {cap}
                    ELSE least({cap}, 1.0 / (1.0 + pow(2.0, -least(u.match_weight,
                         coalesce(CASE WHEN isnan(u.dist) THEN NULL ELSE u.dist END, u.match_weight)) / 2.0))) END
        FROM _loc_uam u JOIN _loc_addr a USING (akey) JOIN _loc_gaz g ON g.uprn = u.uprn
        WHERE (u.reason LIKE 'exact%' OR (u.match_weight >= {w_min} AND u.dist >= {d_min})
               OR ((u.dist IS NULL OR isnan(u.dist)) AND u.match_weight >= {w_single}))
          AND NOT (a.number IS NOT NULL AND g.number IS NOT NULL
                   AND regexp_extract(a.number, '^\d+') <> regexp_extract(g.number, '^\d+')
                   -- a parser that took a bare flat number for the house number: fine when it is the flat
                   AND NOT (a.number = g.flat_id AND list_contains(
                       regexp_extract_all(upper(coalesce(a.address_text, '')), '\b(\d+)[A-Z]?\b', 1),
                       regexp_extract(g.number, '^\d+'))))
          AND (g.number IS NULL OR g.flat_id IS NOT NULL OR list_contains(
                   regexp_extract_all(upper(coalesce(a.address_text, a.address_norm, '')), '\d+'),
                   regexp_extract(g.number, '^\d+')))
          AND NOT (a.flat_id IS NOT NULL AND g.flat_id IS NOT NULL AND a.flat_id <> g.flat_id)
          -- "Flat 9, Foundry Wharf, Ashfield Pl" is not 9 Ashfield Pl: a flat label read as a house number
          AND NOT (a.flat_id IS NOT NULL AND a.number IS NULL AND g.flat_id IS NULL
                   AND regexp_extract(g.number, '^\d+') = regexp_extract(a.flat_id, '^\d+'))
          AND list_has_all(regexp_extract_all(concat_ws(' ', g.flat, g.number, g.building, g.organisation),
                                              '\b(\d+)[A-Z]?\b', 1),
                           regexp_extract_all(upper(coalesce(a.address_text, '')), '\b(\d+)[A-Z]?\b', 1))
          AND {area_consistent('a', 'g')}
          AND u.akey NOT IN (SELECT akey FROM _loc_res)""")
    n = con.execute("SELECT count(*) FROM _loc_res").fetchone()[0] - before
    log.info("uk_address_matcher: %d sent, %d accepted", messy.num_rows, n)
    return int(n)
