"""Which of uk_address_matcher's answers the engine accepts, and why it refuses the others.

Every best candidate of the matcher is checked against named conditions (one boolean column each in
``_loc_uam_chk``).  They come in two kinds:

*hard* -- never waived, whatever the matcher's weight (issue 16's guards):

* ``number_changed``: the candidate has another house number or suffix than the text's (26 is not 26A);
* ``extra_number``: a number the text writes (with its suffix) is none of the candidate's numbers;
* ``flat_changed``: the candidate is another flat than the one the text names;
* ``flat_as_house``: "Flat 9, Foundry Wharf" is not 9 Foundry Wharf's street (a flat label read as a house number);
* ``area_other``: the text names a town or locality the candidate is not in (a relaxed answer waiving it was
  wrong on address-errors output: "13 Ashdale Road, Edstead" is not 13 Ashdale Road in Cardale), also where the
  parsed street, no gazetteer street, swallowed it ("13 ASHDALE RAD EDSTEAD");
* ``building_other``: the text names a building the gazetteer gives to another property of that street ("The Barn,
  21 Bradby Crescent" is not 21 Bradby Crescent; "Calham Mansions, 4, Thornfield Drive" is not 4 Thornfield Drive);
* ``twin``: another gazetteer property is written exactly like the candidate (two "The Lodge, Fenton Street,
  Riverside"; with their postcode too, or the text gives none): no text can choose between them;

*soft* -- checks that catch the model's guesses on clean text but also refuse texts a recording error touched
(a misspelt street, an added or dropped locality, a dropped house number):

* ``weak``: the weight or the gap to the runner-up (distinguishability) is below the normal thresholds;
* ``number_unwritten``: the candidate's house number is not written in the text (the text has no number);
* ``street_unwritten``: the candidate's street is not written in the text (nor a close spelling of its first word).

An answer with no failed check is accepted.  An answer whose only failures are soft ones is accepted when the
matcher is sure of it (``relaxed_min_match_weight`` and ``relaxed_min_distinguishability``, both well above the
normal thresholds), and at most ``relaxed_max_soft`` soft checks fail: method ``uk_address_matcher_relaxed``,
its confidence scaled by ``relaxed_confidence_factor``.  The guards of :mod:`.guards` (home never on a
commercial UPRN, position words, street type) still apply to it afterwards.  Every refused answer leaves a reason in
``_loc_why`` naming the candidate and the checks it failed, so ``addresses.parquet`` says why nothing was chosen.
"""

from __future__ import annotations

import logging

import duckdb
import pyarrow as pa

from ecins_link.locations.keys import area_consistent, postcode_close

log = logging.getLogger(__name__)

HARD_CHECKS = {
    "number_changed": "another house number or suffix",
    "extra_number": "a number the text writes is not the candidate's",
    "flat_changed": "another flat",
    "flat_as_house": "the text's flat number read as a house number",
    "building_other": "the text names another building of that street",
    "area_other": "the text names another town or locality",
    "twin": "another property is written the same (the text cannot tell them apart)",
}
# waived only when an exact key of the text names the candidate alone (``accept_keyed``), never by weight
KEYED_CHECKS = {
    "building_numberless": "the text names a house of that street known by name alone",
}
SOFT_CHECKS = {
    "weak": "not clearly better than the runner-up",
    "flat_read_as_house": "the number the text gives as a flat is its house number (or it has no number)",
    "number_unwritten": "its house number is not in the text",
    "street_unwritten": "its street is not in the text",
}


def _without_last(text: str, word: str) -> str:
    """SQL: ``text`` without the last whole-word occurrence of ``word`` (unchanged when ``word`` is NULL)."""
    return f"coalesce(regexp_replace({text}, '^(.*)\\b\\Q' || {word} || '\\E\\b', '\\1'), {text})"


# gazetteer properties another property is written exactly like (flat, number, building, organisation, street,
# locality, town; ``same_postcode``: the postcode too), among the matcher's candidates
TWINS_SQL = """
    CREATE OR REPLACE TEMP TABLE _loc_twins AS
    WITH c AS (SELECT DISTINCT g.* FROM _loc_gaz g WHERE g.uprn IN (SELECT uprn FROM _loc_uam)),
    k AS (SELECT g.uprn, g.postcode, x.uprn AS other, x.postcode AS other_postcode
          FROM c g JOIN _loc_gaz x
            ON x.uprn <> g.uprn AND x.street IS NOT DISTINCT FROM g.street AND x.number IS NOT DISTINCT FROM g.number
           AND x.flat_id IS NOT DISTINCT FROM g.flat_id AND x.building IS NOT DISTINCT FROM g.building
           AND x.organisation IS NOT DISTINCT FROM g.organisation AND x.locality IS NOT DISTINCT FROM g.locality
           AND x.town IS NOT DISTINCT FROM g.town)
    SELECT uprn, bool_or(other_postcode IS NOT DISTINCT FROM postcode) AS same_postcode FROM k GROUP BY uprn"""


def checks_sql(settings: dict) -> str:
    """SQL over ``_loc_uam`` (the matcher's answers): one row per answer with a boolean column per check."""
    w_min = float(settings.get("min_match_weight", 4.0))
    d_min = float(settings.get("min_distinguishability", 7.0))
    w_single = float(settings.get("single_candidate_min_weight", 8.0))
    flat_label = r"'\b(FLAT|FLT|APARTMENT|APT|UNIT|ROOM)\.?\s*0*' || regexp_extract(a.flat_id, '^\d+') || '\b'"
    rest = _without_last(_without_last("coalesce(a.address_norm, upper(a.address_text), '')", "g.town"), "g.locality")
    # (a development plot's number is no number of the address: "PLOT 51, FLAT A, 18 ...")
    text_numbers = (r"list_filter(regexp_extract_all(upper(coalesce(a.address_text, '')), "
                    r"'\b(?:FLAT|FLT|FL|F|APT)?(\d+[A-Z]?)\b', 1), "
                    r"x -> NOT list_contains(coalesce(a.plot_numbers, []), x))")
    cand_numbers = (r"regexp_extract_all(concat_ws(' ', g.flat, g.number, g.building, g.organisation, "
                    r"g.number || CASE WHEN length(g.flat_id) = 1 THEN g.flat_id END), '\b(\d+[A-Z]?)\b', 1)")
    return rf"""
        SELECT u.akey, u.uprn, u.match_weight, u.dist, u.reason, u.reason LIKE 'exact%' AS exact,
               NOT coalesce(u.reason LIKE 'exact%' OR (u.match_weight >= {w_min} AND u.dist >= {d_min})
                            OR ((u.dist IS NULL OR isnan(u.dist)) AND u.match_weight >= {w_single}), false) AS weak,
               coalesce(a.number IS NOT NULL AND g.number IS NOT NULL AND a.number <> g.number
                        -- a parser that took a bare flat number for the house number: fine when it is the flat
                        AND NOT (a.number = g.flat_id AND list_contains(
                            regexp_extract_all(upper(coalesce(a.address_text, '')), '\b(\d+[A-Z]?)\b', 1),
                            g.number)), true) AS number_changed,
               -- every number of the text (with its suffix: 26A is not 26) is one of the candidate's; "22A" may
               -- be flat A of 22
               NOT coalesce(list_has_all({cand_numbers}, {text_numbers}), false) AS extra_number,
               coalesce(a.flat_id IS NOT NULL AND g.flat_id IS NOT NULL AND a.flat_id <> g.flat_id, true)
                   AND NOT {_org_unit('a', 'g')} AS flat_changed,
               {_org_unit('a', 'g')} AS org_unit,
               -- "Flat 9, Foundry Wharf, Ashfield Pl" is not 9 Ashfield Pl: the text labels the number a flat and
               -- names a building the candidate is not (or the candidate is a building with flats) ...
               coalesce(a.flat_id IS NOT NULL AND a.number IS NULL AND g.flat_id IS NULL
                        AND regexp_extract(g.number, '^\d+') = regexp_extract(a.flat_id, '^\d+')
                        AND regexp_matches(upper(coalesce(a.address_text, '')), {flat_label})
                        AND (g.has_flats OR (a.building IS NOT NULL AND a.building IS DISTINCT FROM g.building
                                             AND a.building IS DISTINCT FROM g.organisation)), false)
                   AS flat_as_house,
               -- ... else ("FLAT 24 CARHAM DRIVE" where 24 is a house; "2, Wenby Gaadens" parsed as flat 2 of a
               -- building "Wenby Gaadens") the one number may be the house number: a soft check (as is a text
               -- naming a flat and no number, for a candidate that is neither a flat nor numbered)
               coalesce(a.flat_id IS NOT NULL AND a.number IS NULL AND g.flat_id IS NULL
                        AND regexp_extract(g.number, '^\d+') = regexp_extract(a.flat_id, '^\d+'), true)
                   AS flat_read_as_house,
               NOT coalesce(g.number IS NULL OR g.flat_id IS NOT NULL OR list_contains(
                   regexp_extract_all(upper(coalesce(a.address_text, a.address_norm, '')), '\d+'),
                   regexp_extract(g.number, '^\d+')), false) AS number_unwritten,
               -- the text names (as whole words) a building or premises of the candidate's street that is not
               -- the candidate's, and not the candidate's own
               coalesce(EXISTS (SELECT 1 FROM _loc_gaz x
                                WHERE x.street = g.street AND length(coalesce(x.building, x.organisation)) >= 4
                                  AND NOT ({_numberless_house('x')} AND {_plain_house('a', 'g')})
                                  AND coalesce(x.building, x.organisation) IS DISTINCT FROM g.building
                                  AND coalesce(x.building, x.organisation) IS DISTINCT FROM g.organisation
                                  AND contains(' ' || a.address_norm || ' ',
                                               ' ' || coalesce(x.building, x.organisation) || ' '))
                        AND NOT coalesce(contains(' ' || a.address_norm || ' ', ' ' || g.building || ' '), false)
                        AND NOT coalesce(contains(' ' || a.address_norm || ' ', ' ' || g.organisation || ' '), false),
                        false) AS building_other,
               -- the same for a house name the gazetteer gives to a numberless house of the street, when the text
               -- names no flat and the candidate is a numbered house ("Willow Bank, 25 Edbury Gardens": a name
               -- added to number 25, or a number added to Willow Bank): soft, waived only with an exact key
               coalesce({_plain_house('a', 'g')} AND EXISTS (
                            SELECT 1 FROM _loc_gaz x
                            WHERE x.street = g.street AND {_numberless_house('x')} AND x.uprn <> g.uprn
                              AND length(coalesce(x.building, x.organisation)) >= 4
                              AND contains(' ' || a.address_norm || ' ', ' ' || coalesce(x.building, x.organisation) || ' ')),
                        false) AS building_numberless,
               NOT {area_consistent('a', 'g')} OR {_area_in_unknown_street('a', 'g')} AS area_other,
               -- two properties written alike (two "The Lodge, Fenton Street, Riverside"): no text picks one
               coalesce(u.uprn IN (SELECT uprn FROM _loc_twins WHERE same_postcode OR a.postcode IS NULL), false)
                   AS twin,
               -- the candidate's street is written in the text (its first word, or a close spelling of it) apart
               -- from the candidate's town and locality names: "15 CARTONPLACE, YORKFORD" is not 15 Yorkford Grove
               NOT coalesce(g.street IS NULL OR length(split_part(g.street, ' ', 1)) < 3
                   OR (length(g.building) >= 4 AND contains(u.rest, g.building))
                   OR contains(replace(u.rest, ' ', ''), split_part(g.street, ' ', 1))
                   OR coalesce(list_max(list_transform(string_split(u.rest, ' '),
                                        t -> jaro_winkler_similarity(t, split_part(g.street, ' ', 1)))), 0) >= 0.88,
                   false) AS street_unwritten
        FROM (SELECT u.*, {rest} AS rest
              FROM _loc_uam u JOIN _loc_addr a USING (akey) JOIN _loc_gaz g ON g.uprn = u.uprn) u
        JOIN _loc_addr a USING (akey) JOIN _loc_gaz g ON g.uprn = u.uprn
        WHERE u.akey NOT IN (SELECT akey FROM _loc_res)"""


def _area_in_unknown_street(a: str, g: str) -> str:
    """SQL: the parsed street is no gazetteer street and has swallowed an area ("13 ASHDALE RAD EDSTEAD" parsed with
    the street "ASHDALE RAD EDSTEAD"): a town or locality the whole text names, outside the candidate's street and
    building names, that the candidate is not in."""
    return (f"({a}.street IS NOT NULL AND NOT EXISTS (SELECT 1 FROM _loc_gaz s WHERE s.street = {a}.street) AND EXISTS ("
            f"SELECT 1 FROM (SELECT DISTINCT town AS area FROM _loc_gaz_area WHERE length(town) >= 3) ar "
            f"WHERE contains(' ' || coalesce({a}.address_norm, '') || ' ', ' ' || ar.area || ' ') "
            f"AND ar.area IS DISTINCT FROM {g}.town AND ar.area IS DISTINCT FROM {g}.locality "
            f"AND NOT contains(' ' || coalesce({g}.street, '') || ' ', ' ' || ar.area || ' ') "
            f"AND NOT contains(' ' || coalesce({g}.building, '') || ' ', ' ' || ar.area || ' ')))")


def _org_unit(a: str, g: str) -> str:
    """SQL: "Greggs, 28, Langworth Rod": the text's one number, parsed as a flat of a building "GREGGS" (the street
    type misspelt), is the candidate's house number, the text labels no flat, and it names the candidate unit's
    organisation -- the organisation's unit of number 28, not another flat."""
    return (f"coalesce({a}.number IS NULL AND {a}.flat_id = {g}.number AND {g}.flat_id IS NOT NULL "
            f"AND length({g}.organisation) >= 4 "
            f"AND contains(' ' || {a}.address_norm || ' ', ' ' || {g}.organisation || ' ') "
            rf"AND NOT regexp_matches(upper(coalesce({a}.address_text, '')), '\b(FLAT|FLT|APARTMENT|APT|UNIT|ROOM)\b'), "
            "false)")


def _numberless_house(x: str) -> str:
    """SQL: gazetteer row ``x`` is a house known by name alone (no number, no flat, no flats inside)."""
    return f"({x}.number IS NULL AND {x}.flat_id IS NULL AND NOT {x}.has_flats)"


def _plain_house(a: str, g: str) -> str:
    """SQL: the text names no flat and the candidate is a numbered house (no flat, no flats inside)."""
    return f"({a}.flat_id IS NULL AND {g}.number IS NOT NULL AND {g}.flat_id IS NULL AND NOT {g}.has_flats)"


def accept_matches(con: duckdb.DuckDBPyConnection, out: pa.Table, settings: dict) -> int:
    """Insert the matcher's answers that pass the checks into ``_loc_res``; log the others' reasons in
    ``_loc_why``.  Returns how many were accepted."""
    con.register("_loc_uam_out", out)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _loc_uam AS SELECT * FROM _loc_uam_out")
    finally:
        con.unregister("_loc_uam_out")
    con.execute(TWINS_SQL)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _loc_uam_chk AS {checks_sql(settings)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _loc_uam_key AS {exact_keys_sql()}")
    cap = float(settings.get("max_confidence", 0.9))
    hard = " OR ".join([*HARD_CHECKS, *KEYED_CHECKS])
    n_soft = " + ".join(f"{c}::INT" for c in SOFT_CHECKS)
    relaxed = ""
    if settings.get("relaxed", True):
        w_r = float(settings.get("relaxed_min_match_weight", 20.0))
        d_r = float(settings.get("relaxed_min_distinguishability", 5.0))
        max_soft = int(settings.get("relaxed_max_soft", 1))
        # the matcher is sure: a clear weight and gap (a lone candidate counts as a clear gap)
        relaxed = (f"OR (u.match_weight >= {w_r} AND coalesce(CASE WHEN isnan(u.dist) THEN NULL ELSE u.dist END, "
                   f"{d_r}) >= {d_r} AND ({n_soft}) <= {max_soft})")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_uam_ok AS
        SELECT u.*, ({n_soft}) > 0 AS relaxed FROM _loc_uam_chk u
        WHERE NOT ({hard}) AND (({n_soft}) = 0 {relaxed})""")
    # a relaxed answer states a lower confidence than a clean one of the same weight
    factor = float(settings.get("relaxed_confidence_factor", 0.9))
    con.execute(f"""
        INSERT INTO _loc_res
        SELECT akey, uprn, CASE WHEN relaxed THEN 'uk_address_matcher_relaxed' ELSE 'uk_address_matcher' END,
               CASE WHEN relaxed THEN {factor} ELSE 1.0 END *
               CASE WHEN exact THEN {cap}
                    ELSE least({cap}, 1.0 / (1.0 + pow(2.0, -least(match_weight,
                         coalesce(CASE WHEN isnan(dist) THEN NULL ELSE dist END, match_weight)) / 2.0))) END
        FROM _loc_uam_ok""")
    # "Greggs, 28, ..." accepted as the Greggs unit of 28: the address keeps that reading (28 its house number)
    con.execute("""UPDATE _loc_addr a SET number = a.flat_id, flat_id = NULL, building = NULL
                   FROM _loc_uam_ok u WHERE u.akey = a.akey AND u.org_unit AND a.number IS NULL""")
    n_keyed = accept_keyed(con, settings)
    checks = {**HARD_CHECKS, **KEYED_CHECKS, **SOFT_CHECKS}
    failed = ", ".join(f"CASE WHEN {c} THEN '{why.replace(chr(39), chr(39) * 2)}' END" for c, why in checks.items())
    con.execute(f"""
        INSERT INTO _loc_why
        SELECT akey, 'uk_address_matcher''s best candidate ' || uprn || ' refused: ' || concat_ws('; ', {failed})
        FROM _loc_uam_chk WHERE akey NOT IN (SELECT akey FROM _loc_uam_ok)""")
    log.debug("uk_address_matcher: %d answers accepted on an exact key", n_keyed)
    return int(con.execute("SELECT count(*) FROM _loc_uam_ok").fetchone()[0])


def exact_keys_sql() -> str:
    """SQL over ``_loc_uam_chk``: per answer, whether an exact key of the text names its candidate alone.

    * ``street_key``: the text's flat, number (with its suffix) and street give one gazetteer property in every
      area the text names (and near its postcode, when it has one), and it is the candidate;
    * ``postcode_key``: the text's flat, number and full postcode give one property, the candidate, and the
      street the text writes holds no property with that flat and number in the areas it names (another real
      street written for the right one: the postcode and number agree, the street cannot be right).
    """
    flat_eq = "coalesce(g.flat_id, '') = coalesce(a.flat_id, '')"
    return f"""
        WITH u AS (SELECT DISTINCT akey, uprn FROM _loc_uam_chk),
        sk AS (SELECT u.akey, count(DISTINCT g.uprn) = 1 AND min(g.uprn) = any_value(u.uprn) AS ok
               FROM u JOIN _loc_addr a USING (akey)
               JOIN _loc_gaz g ON g.number = a.number AND g.street = a.street AND {flat_eq}
               WHERE {area_consistent('a', 'g')} AND {postcode_close('a', 'g')}
               GROUP BY u.akey),
        pk AS (SELECT u.akey, count(DISTINCT g.uprn) = 1 AND min(g.uprn) = any_value(u.uprn) AS ok
               FROM u JOIN _loc_addr a USING (akey)
               JOIN _loc_gaz g ON g.postcode = a.postcode AND g.number = a.number AND {flat_eq}
               WHERE a.street IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM _loc_gaz x
                                 WHERE x.street = a.street AND x.number = a.number
                                   AND coalesce(x.flat_id, '') = coalesce(a.flat_id, '') AND {area_consistent('a', 'x')})
               GROUP BY u.akey)
        SELECT u.akey, coalesce(sk.ok, false) AS street_key, coalesce(pk.ok, false) AS postcode_key
        FROM u LEFT JOIN sk USING (akey) LEFT JOIN pk USING (akey)"""


def accept_keyed(con: duckdb.DuckDBPyConnection, settings: dict) -> int:
    """Accept a clear answer (not ``weak``, no hard check failed) whose other failed checks an exact key of the
    text answers (:func:`exact_keys_sql`): its street not written, where the postcode key names it
    (``postcode_key``); a house name of another house of its street written, where the street key names it
    (``street_key``).  Method ``uk_address_matcher_keyed``, confidence ``keyed_confidence``.  Returns how many."""
    if not settings.get("keyed", True):
        return 0
    conf = float(settings.get("keyed_confidence", 0.85))
    hard = " OR ".join(HARD_CHECKS)
    other_soft = " OR ".join(c for c in SOFT_CHECKS if c != "street_unwritten")
    con.execute(f"""
        INSERT INTO _loc_res
        SELECT u.akey, u.uprn, 'uk_address_matcher_keyed', {conf}
        FROM _loc_uam_chk u JOIN _loc_uam_key k USING (akey)
        WHERE u.akey NOT IN (SELECT akey FROM _loc_uam_ok) AND NOT ({hard}) AND NOT ({other_soft})
          AND (u.street_unwritten OR u.building_numberless)
          AND (NOT u.street_unwritten OR k.postcode_key) AND (NOT u.building_numberless OR k.street_key)""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _loc_uam_ok AS
                   SELECT akey FROM _loc_uam_ok UNION ALL
                   SELECT akey FROM _loc_res WHERE match_method = 'uk_address_matcher_keyed'""")
    return int(con.execute("SELECT count(*) FROM _loc_res WHERE match_method = 'uk_address_matcher_keyed'").fetchone()[0])
