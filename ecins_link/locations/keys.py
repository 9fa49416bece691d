"""Set-based address resolution steps in DuckDB SQL: distinct addresses, key joins, premises names, clusters.

All work happens on temporary tables of the store connection:

* ``_loc_addr``  — one row per distinct address (``akey``) with its parsed parts and flags;
* ``_loc_gaz``   — the gazetteer with ``has_flats`` (a shell property whose flats are listed separately);
* ``_loc_res``   — (akey, uprn, match_method, match_confidence) for every address resolved so far.

Each key stage accepts a gazetteer entry only when it is the single UPRN for that key: a tie is refused.
"""

from __future__ import annotations

import re

import duckdb

from ecins_link.locations.reread import plot_numbers_sql, reread_parts
from ecins_link.standardise.address_flats import rewrite_descriptors_sql

# Key expressions over a row alias {t}: NULL when a part the key needs is missing.  The gazetteer side of
# the *area* keys is matched on both its town and its locality (agencies write either).
_KEYS: dict[str, tuple[str, str]] = {
    # method: (required columns, parts joined with '|')
    "exact_key": ("number, street, postcode", "coalesce({t}.flat_id, ''), {t}.number, {t}.street, {t}.postcode"),
    "building_key": ("building, postcode", "coalesce({t}.flat_id, ''), {t}.building, {t}.postcode"),
    "street_number": ("number, street, town", "coalesce({t}.flat_id, ''), {t}.number, {t}.street, {t}.town"),
    "street_sector": ("number, street, postcode_sector",
                      "coalesce({t}.flat_id, ''), {t}.number, {t}.street, {t}.postcode_sector"),
    "building_street": ("building, street", "coalesce({t}.flat_id, ''), {t}.building, {t}.street"),
    "street_unique": ("number, street", "coalesce({t}.flat_id, ''), {t}.number, {t}.street"),
}
_AREA_KEYS = {"street_number"}
# keys that ignore the postcode: accepted only for addresses with no unexplained words, no area named in the
# text that the candidate is not in, and no postcode more than two edits from the candidate's
WEAK_KEYS = {"street_number", "street_sector", "building_street", "street_unique"}
KEY_METHODS = list(_KEYS)


def _key_expr(method: str, alias: str) -> str:
    required, parts = _KEYS[method]
    cond = " AND ".join(f"{alias}.{c.strip()} IS NOT NULL" for c in required.split(","))
    return f"CASE WHEN {cond} THEN concat_ws('|', {parts.format(t=alias)}) END"


def proximity_regex(prefixes: list[str]) -> str:
    """A regular expression matching an address text that starts with one of the proximity prefixes."""
    alts = sorted((re.escape(p.upper()) for p in prefixes), key=len, reverse=True)
    return r"^\s*(" + "|".join(alts) + r")(\s|,|$)"


def _tokens(expr: str) -> str:
    return f"list_filter(string_split(upper(coalesce({expr}, '')), ' '), x -> x <> '')"


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def flat_id_expr(col: str, label_words: list[str]) -> str:
    """SQL: the flat identifier of a flat label ('FLAT 2', 'APARTMENT 2' -> '2')."""
    words = "|".join(re.escape(w.upper()) for w in label_words) or "$^"
    rx = _sql_str("^(" + words + r")\.?\s*")
    # "FLAT 08" is flat 8
    return f"nullif(regexp_replace(trim(regexp_replace(upper({col}), {rx}, '')), '^0+([0-9])', '\\1'), '')"


def prepare(con: duckdb.DuckDBPyConnection, prox_prefixes: list[str], with_gazetteer: bool,
            flat_words: list[str] | None = None, flat_hints: list[str] | None = None,
            at_prefixes: list[str] | None = None, suffix_as_flat_letter: bool = False,
            plot_words: list[str] | None = None) -> None:
    """Create ``_loc_addr`` (distinct addresses), ``_loc_map`` (record -> akey) and ``_loc_gaz``.

    ``flat_words`` are flat label words stripped to compare flats ('FLAT', 'APARTMENT', ...);
    ``flat_hints`` are regexes (one group) that read a flat id from an unexplained token such as 'FB'.
    """
    flat_words = flat_words or []
    hint = "NULL"
    for pat in reversed(flat_hints or []):
        q = _sql_str(pat)
        hint = (f"coalesce(nullif(regexp_extract(list_filter(lo, x -> regexp_matches(x, {q}))[1], {q}, 1), ''), "
                f"{hint})")
    rx = proximity_regex(prox_prefixes).replace("'", "''")
    # a parser may leave "NEAR" / "REAR OF" / "IN" as a building name: strip such words from it
    rx_all = proximity_regex(prox_prefixes + (at_prefixes or [])).replace("'", "''")
    # a "building" that is one letter or a short number ("B, 1 Chester Grove") is a flat label; each record gets
    # its akey here, in the same pass (the key of everything the later steps read)
    con.execute(rf"""
        CREATE OR REPLACE TEMP TABLE _loc_rows AS
        SELECT *, md5(concat_ws('|', coalesce(address_norm, ''), coalesce(flat, ''), coalesce(number, ''),
                      coalesce(building, ''), coalesce(street, ''), coalesce(town, ''), coalesce(postcode, ''),
                      coalesce(source_uprn, ''), near::VARCHAR, home::VARCHAR)) AS akey
        FROM (SELECT * REPLACE (
                  coalesce(flat, CASE WHEN regexp_full_match(building, '[A-Z]|\d{{1,3}}[A-Z]?') THEN building END) AS flat,
                  CASE WHEN flat IS NULL AND regexp_full_match(building, '[A-Z]|\d{{1,3}}[A-Z]?') THEN NULL
                       ELSE building END AS building)
              FROM (
        SELECT CAST(source AS VARCHAR) AS source, CAST(record_key AS VARCHAR) AS record_key,
               CAST(address_text AS VARCHAR) AS address_text, upper(CAST(address_norm AS VARCHAR)) AS address_norm,
               nullif(trim(CAST(flat AS VARCHAR)), '') AS flat, nullif(trim(CAST(number AS VARCHAR)), '') AS number,
               nullif(trim(regexp_replace(upper(CAST(building AS VARCHAR)), '{rx_all}', '')), '') AS building,
               nullif(trim(CAST(street AS VARCHAR)), '') AS street,
               nullif(trim(CAST(town AS VARCHAR)), '') AS town, nullif(trim(CAST(postcode AS VARCHAR)), '') AS postcode,
               nullif(trim(CAST(postcode_outward AS VARCHAR)), '') AS postcode_outward,
               nullif(trim(CAST(postcode_sector AS VARCHAR)), '') AS postcode_sector,
               nullif(trim(CAST(uprn AS VARCHAR)), '') AS source_uprn,
               -- "REAR FLAT, 4 ..." is a flat (standardise's flat descriptors), not a position
               -- (CASE: the descriptor rewrite runs only on texts that start with a position word)
               CASE WHEN regexp_matches(upper(coalesce(address_text, '')), '{rx}')
                    THEN regexp_matches({rewrite_descriptors_sql("upper(coalesce(address_text, ''))")}, '{rx}')
                    ELSE false END AS near,
               coalesce(CAST(origin AS VARCHAR) = 'person', false) AS home
        FROM address_std)) """)
    con.execute("CREATE OR REPLACE TEMP TABLE _loc_map AS SELECT source, record_key, akey FROM _loc_rows")
    # the numbers written after a plot word, read by reread_parts (with a gazetteer only)
    plot = f", {plot_numbers_sql(plot_words or [])} AS plot_numbers" if with_gazetteer else ""
    known = _tokens("concat_ws(' ', r.flat, r.number, r.building, r.street, r.town, r.postcode)")
    place = _tokens("concat_ws(' ', r.town, r.postcode, r.postcode_outward)")
    norm = _tokens("r.address_norm")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_addr AS
        WITH one AS (
            -- the first record (by source, record_key) of each akey: a hash aggregate, no sort
            SELECT r.akey, arg_min(r, (r.source, r.record_key)) AS r, count(*) AS n_records
            FROM _loc_rows r GROUP BY r.akey)
        -- the token lists once per address (inside the lambdas below they would be rebuilt for every token)
        , toks AS (SELECT akey, n_records, r, {norm} AS t_norm, {known} AS t_known, {place} AS t_place FROM one)
        , two AS (
            SELECT akey, n_records, r.address_text, r.address_norm, r.flat, r.number, r.building, r.street,
                   r.town, r.postcode, r.postcode_outward, r.postcode_sector, r.source_uprn, r.near, r.home,
                   list_filter(t_norm, x -> NOT list_contains(t_known, x)) AS lo,
                   array_to_string(list_filter(t_norm, x -> NOT list_contains(t_place, x)), ' ') AS place_text
            FROM toks)
        SELECT *, len(lo) AS n_leftover, len(lo) AS n_unexplained,
               coalesce({flat_id_expr('flat', flat_words)}, CASE WHEN flat IS NULL THEN {hint} END) AS flat_id
               {plot}
        FROM two""")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _loc_res (akey VARCHAR, uprn VARCHAR, match_method VARCHAR, "
        "match_confidence DOUBLE)"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE _loc_ties (akey VARCHAR, method VARCHAR, n INTEGER)")
    if with_gazetteer:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _loc_gaz AS
            WITH g AS (
                SELECT CAST(uprn AS VARCHAR) AS uprn, nullif(trim(CAST(flat AS VARCHAR)), '') AS flat,
                       nullif(trim(CAST(number AS VARCHAR)), '') AS number, nullif(trim(CAST(building AS VARCHAR)), '') AS building,
                       nullif(trim(CAST(organisation AS VARCHAR)), '') AS organisation, nullif(trim(CAST(street AS VARCHAR)), '') AS street,
                       nullif(trim(CAST(locality AS VARCHAR)), '') AS locality, nullif(trim(CAST(town AS VARCHAR)), '') AS town,
                       nullif(trim(CAST(postcode AS VARCHAR)), '') AS postcode, nullif(trim(CAST(postcode_outward AS VARCHAR)), '') AS postcode_outward,
                       nullif(trim(CAST(postcode_sector AS VARCHAR)), '') AS postcode_sector,
                       CAST(full_address AS VARCHAR) AS full_address, CAST(address_norm AS VARCHAR) AS address_norm,
                       nullif(trim(CAST(parent_uprn AS VARCHAR)), '') AS parent_uprn,
                       CAST(address_class AS VARCHAR) AS address_class
                FROM gazetteer_std WHERE uprn IS NOT NULL),
            shells AS (
                SELECT DISTINCT number, street, postcode FROM g WHERE flat IS NOT NULL AND number IS NOT NULL),
            parents AS (SELECT DISTINCT parent_uprn AS uprn FROM g WHERE parent_uprn IS NOT NULL)
            -- a building "has flats" when flats are listed at its number, street and postcode, or name it parent
            SELECT g.*, (g.flat IS NULL AND (s.number IS NOT NULL OR p.uprn IS NOT NULL)) AS has_flats,
                   {flat_id_expr('g.flat', flat_words)} AS flat_id
            FROM g LEFT JOIN shells s
              ON g.number = s.number AND g.street IS NOT DISTINCT FROM s.street
             AND g.postcode IS NOT DISTINCT FROM s.postcode
            LEFT JOIN parents p ON p.uprn = g.uprn""")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _loc_gaz_area AS
            SELECT * REPLACE (area AS town) FROM (
                SELECT *, unnest(list_distinct(list_filter([town, locality], x -> x IS NOT NULL))) AS area
                FROM _loc_gaz)""")
        reread_parts(con, suffix_as_flat_letter, plot_words or [])
        # areas (towns, localities) named in each address outside its building and street names, and words
        # nothing explains.  The standardiser expands street-type abbreviations, so a locality such as "St Marys"
        # can reach address_norm as "STREET MARYS": such spellings of an area count as the area
        aliases = _area_aliases([r[0] for r in con.execute(
            "SELECT DISTINCT town FROM _loc_gaz_area WHERE length(town) >= 3").fetchall() if r[0]])
        con.execute("CREATE OR REPLACE TEMP TABLE _loc_area_alias (area VARCHAR, spelling VARCHAR)")
        if aliases:
            con.executemany("INSERT INTO _loc_area_alias VALUES (?, ?)", aliases)
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _loc_mention AS
            WITH areas AS (SELECT DISTINCT town AS area, town AS spelling FROM _loc_gaz_area WHERE length(town) >= 3
                           UNION SELECT area, spelling FROM _loc_area_alias),
            txt AS (SELECT akey, replace(replace(address_norm, coalesce(building, '\x01'), ' '),
                                         coalesce(street, '\x01'), ' ') AS address_norm
                    FROM _loc_addr WHERE address_norm IS NOT NULL),
            toks AS (SELECT akey, address_norm, unnest(list_distinct(string_split(address_norm, ' '))) AS tok FROM txt),
            hits AS (SELECT t.akey, ar.area, ar.spelling
                     FROM toks t JOIN areas ar ON t.tok = split_part(ar.spelling, ' ', 1)
                     WHERE contains(' ' || t.address_norm || ' ', ' ' || ar.spelling || ' ')),
            -- the areas; apart, the words of the few other spellings (not every hit split into words)
            m AS (SELECT akey, list(DISTINCT area) AS areas FROM hits GROUP BY akey),
            al AS (SELECT akey, list(DISTINCT w) AS alias_words
                   FROM (SELECT akey, unnest(string_split(spelling, ' ')) AS w FROM hits WHERE spelling <> area)
                   GROUP BY akey)
            SELECT m.akey, m.areas, al.alias_words FROM m LEFT JOIN al USING (akey)""")
        area_words = [r[0] for r in con.execute(
            "SELECT DISTINCT unnest(string_split(town, ' ')) FROM _loc_gaz_area").fetchall() if r[0]]
        words = sorted({w.upper() for p in prox_prefixes + (at_prefixes or []) for w in p.split()} | set(area_words))
        lit = ", ".join(_sql_str(w) for w in words) or "''"
        con.execute(f"UPDATE _loc_addr SET n_unexplained = len(list_filter(lo, x -> NOT list_contains([{lit}], x)))")
        con.execute(f"""
            UPDATE _loc_addr a SET n_unexplained = len(list_filter(a.lo, x -> NOT list_contains([{lit}], x)
                                                                    AND NOT list_contains(m.alias_words, x)))
            FROM _loc_mention m WHERE m.akey = a.akey AND m.alias_words IS NOT NULL""")


def _area_aliases(areas: list[str]) -> list[tuple[str, str]]:
    """(area, spelling) for each area with a word the standardiser expands as a street type ("ST MARYS" ->
    "STREET MARYS"), from the standardiser's own vocabulary."""
    from ecins_link.standardise.address_clean import vocab

    types = {k.upper(): str(v).upper() for k, v in vocab().get("street_types", {}).items()}
    out = []
    for area in areas:
        words = area.split()
        spelt = " ".join(types.get(w, w) for w in words)
        if spelt != area:
            out.append((area, spelt))
    return out


def area_consistent(a: str, g: str) -> str:
    """SQL: every area the address names is the candidate's town or locality."""
    return (f"coalesce(list_has_all(list_filter([{g}.town, {g}.locality], x -> x IS NOT NULL), "
            f"(SELECT m.areas FROM _loc_mention m WHERE m.akey = {a}.akey)), true)")


def building_fits(a: str, g: str) -> str:
    """SQL: the address names no building, the candidate's building or organisation, or a house name the
    gazetteer does not give to any property of that street ("Rose Cottage, 9 Wenworth Close" where the
    gazetteer has only 9 Wenworth Close: residents name houses the register does not).  A name cut short to its
    first words ("Kendale, 7 Chelmouts Rd" for Kendale Mansions) is the candidate's; so is the candidate's name
    followed by another that no property of that street has ("Langdale Lodge, Stone House, 7 Bradworts Close")."""
    return (f"({a}.building IS NULL OR {a}.building = {g}.building OR {a}.building = {g}.organisation "
            f"OR starts_with({g}.building, {a}.building || ' ') "
            # each NOT EXISTS repeats the terms it is joined with (same answer; the subquery then reads only the
            # street's properties for the rows that need it, not for every candidate)
            f"OR (starts_with({a}.building, {g}.building || ' ') AND NOT EXISTS (SELECT 1 FROM _loc_gaz x "
            f"WHERE starts_with({a}.building, {g}.building || ' ') "
            f"AND x.street = {g}.street AND x.uprn <> {g}.uprn AND x.building IS DISTINCT FROM {g}.building "
            f"AND (contains({a}.building, x.building) OR contains({a}.building, x.organisation)))) "
            f"OR ({g}.building IS NULL AND {g}.number IS NOT NULL AND NOT EXISTS (SELECT 1 FROM _loc_gaz x "
            f"WHERE {a}.building IS NOT NULL AND {g}.building IS NULL "
            f"AND x.street = {g}.street AND (x.building = {a}.building OR x.organisation = {a}.building))))")


def postcode_close(a: str, g: str) -> str:
    """SQL: no postcode on one side, or the two are at most two edits apart (a mistype, not another place)."""
    return (f"({a}.postcode IS NULL OR {g}.postcode IS NULL "
            f"OR damerau_levenshtein({a}.postcode, {g}.postcode) <= 2)")


def _todo(extra: str = "") -> str:
    return f"(SELECT * FROM _loc_addr a WHERE NOT EXISTS (SELECT 1 FROM _loc_res r WHERE r.akey = a.akey) {extra})"


def unresolved(condition: str) -> str:
    """SQL: the addresses of ``_loc_addr`` (alias ``a``) no step has resolved yet that meet ``condition``."""
    return _todo(f"AND {condition}")


def accept_unique(con: duckdb.DuckDBPyConnection, method: str, confidence: float, where: str) -> dict[str, int]:
    """Resolve as ``method`` the ``_loc_cand`` rows (akey, uprn, n = UPRNs the key names) naming exactly one UPRN
    that meet ``where`` (aliases ``c`` candidate, ``g`` its gazetteer row, ``a`` the address); list each tie (n > 1)
    in ``_loc_ties``.  Returns the counts resolved and refused as ties."""
    n = _insert(con, f"""SELECT c.akey, c.uprn, '{method}', {float(confidence)} FROM _loc_cand c
                         JOIN _loc_gaz g ON g.uprn = c.uprn JOIN _loc_addr a ON a.akey = c.akey
                         WHERE c.n = 1 AND {where}""")
    ties = con.execute("SELECT count(*) FROM _loc_cand WHERE n > 1").fetchone()[0]
    con.execute(f"INSERT INTO _loc_ties SELECT akey, '{method}', n FROM _loc_cand WHERE n > 1")
    return {"resolved": int(n), "ties_refused": int(ties)}


def resolve_source_uprn(con: duckdb.DuckDBPyConnection, confidence: float, with_gazetteer: bool) -> int:
    """Accept a UPRN the agency supplied (checked against the gazetteer when there is one)."""
    check = "AND a.source_uprn IN (SELECT uprn FROM _loc_gaz)" if with_gazetteer else ""
    return _insert(
        con,
        f"""SELECT a.akey, a.source_uprn, 'source_uprn', {confidence}
                             FROM {_todo()} a WHERE a.source_uprn IS NOT NULL {check}""",
    )


def _insert(con: duckdb.DuckDBPyConnection, select_sql: str) -> int:
    before = con.execute("SELECT count(*) FROM _loc_res").fetchone()[0]
    con.execute(f"INSERT INTO _loc_res {select_sql}")
    return con.execute("SELECT count(*) FROM _loc_res").fetchone()[0] - before


def resolve_key(con: duckdb.DuckDBPyConnection, method: str, confidence: float) -> dict[str, int]:
    """Resolve addresses whose ``method`` key names exactly one gazetteer UPRN; count refused ties.

    A key with no flat that lands on a shell property (one whose flats are listed separately) is only
    accepted when the address text has no unexplained tokens (e.g. "FB 10 High St" is left for later).
    """
    gk, ak = _key_expr(method, "g"), _key_expr(method, "a")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_cand AS
        WITH gk AS (SELECT {gk} AS k, g.uprn, g.has_flats FROM {"_loc_gaz_area" if method in _AREA_KEYS else "_loc_gaz"} g),
             gu AS (SELECT k, min(uprn) AS uprn, count(DISTINCT uprn) AS n, bool_or(has_flats) AS has_flats
                    FROM gk WHERE k IS NOT NULL GROUP BY k)
        SELECT a.akey, gu.uprn, gu.n, gu.has_flats, a.n_leftover, a.n_unexplained, a.flat_id, a.postcode
        FROM {_todo()} a JOIN gu ON {ak} = gu.k""")
    # parts present on both sides must agree (a building key must not override a different number/street)
    # (a building key with the postcode may meet a misspelt street: "Norham Lodge, Chlmouts Road ZX1 6FU")
    close = " AND jaro_winkler_similarity(a.street, g.street) < 0.88" if method == "building_key" else ""
    weak = ("AND NOT (a.number IS NOT NULL AND g.number IS NOT NULL AND a.number <> g.number) "
            f"AND NOT (a.street IS NOT NULL AND g.street IS NOT NULL AND a.street <> g.street{close})")
    if method in WEAK_KEYS:
        weak += (f" AND c.n_unexplained = 0 AND {area_consistent('c', 'g')} AND {postcode_close('c', 'g')}"
                 f" AND {building_fits('a', 'g')}")
    return accept_unique(con, method, confidence,
                         f"NOT (c.has_flats AND c.flat_id IS NULL AND c.n_unexplained > 0) {weak}")


def resolve_street_area(con: duckdb.DuckDBPyConnection, confidence: float) -> dict[str, int]:
    """flat + number + street + an area (locality or town) the text names, when that names one UPRN.

    "9 River St, Kingsley, Northtown": the parser's town is the last part (NORTHTOWN), where several River
    Streets may be; the locality Kingsley the text also names settles it.  Same guards as the other weak keys.
    """
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _loc_cand AS
        WITH a AS (SELECT t.akey, t.flat_id, t.number, t.street, len(m.areas) AS n_areas, unnest(m.areas) AS area
                   FROM (SELECT * FROM _loc_addr x WHERE NOT EXISTS (SELECT 1 FROM _loc_res r WHERE r.akey = x.akey)
                         AND x.number IS NOT NULL AND x.street IS NOT NULL) t
                   JOIN _loc_mention m USING (akey)),
             -- a candidate must lie in every area the text names (its town and its locality)
             hits AS (SELECT a.akey, g.uprn, bool_or(g.has_flats) AS has_flats FROM a JOIN _loc_gaz_area g
                        ON g.number = a.number AND g.street = a.street AND g.town = a.area
                       AND coalesce(g.flat_id, '') = coalesce(a.flat_id, '')
                      GROUP BY a.akey, g.uprn HAVING count(DISTINCT a.area) = max(a.n_areas))
        SELECT akey, min(uprn) AS uprn, count(DISTINCT uprn) AS n, bool_or(has_flats) AS has_flats
        FROM hits GROUP BY akey""")
    n = _insert(
        con,
        f"""SELECT c.akey, c.uprn, 'street_area', {confidence} FROM _loc_cand c JOIN _loc_gaz g ON g.uprn = c.uprn
            JOIN _loc_addr a ON a.akey = c.akey
            WHERE c.n = 1 AND NOT (c.has_flats AND a.flat_id IS NULL AND a.n_unexplained > 0)
              AND a.n_unexplained = 0 AND {area_consistent('a', 'g')} AND {postcode_close('a', 'g')}
              AND {building_fits('a', 'g')}""",
    )
    ties = con.execute("SELECT count(*) FROM _loc_cand WHERE n > 1").fetchone()[0]
    con.execute("INSERT INTO _loc_ties SELECT akey, 'street_area', n FROM _loc_cand WHERE n > 1")
    return {"resolved": n, "ties_refused": int(ties)}


def cluster_unresolved(con: duckdb.DuckDBPyConnection) -> None:
    """Give every unresolved address a cluster key (``_loc_clu(akey, ckey, vague)``).

    Base = flat|number|street (or flat|building|street, or the remaining place words); area = postcode,
    else town.  A base without postcode adopts the single postcode cluster of the same base in its town
    (or anywhere when no town is known).  Addresses with nothing more specific than a town or postcode are
    'vague': each record gets its own location so that unrelated people are never put together.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_clu AS
        WITH t AS (
            SELECT akey, town, postcode,
                   CASE WHEN number IS NOT NULL AND street IS NOT NULL
                            THEN concat_ws('|', coalesce(flat_id, ''), number, street)
                        WHEN building IS NOT NULL
                            THEN concat_ws('|', coalesce(flat_id, ''), 'B:' || building, coalesce(street, ''))
                        WHEN nullif(place_text, '') IS NOT NULL AND (number IS NOT NULL OR street IS NOT NULL)
                            THEN 'T:' || place_text
                   END AS base
            FROM {_todo()} a),
             pc AS (SELECT base, town, min(postcode) AS postcode, count(DISTINCT postcode) AS n
                    FROM t WHERE base IS NOT NULL AND postcode IS NOT NULL GROUP BY ALL),
             pc_any AS (SELECT base, min(postcode) AS postcode, count(DISTINCT postcode) AS n
                        FROM t WHERE base IS NOT NULL AND postcode IS NOT NULL GROUP BY base)
        SELECT t.akey, t.base IS NULL AS vague,
               CASE WHEN t.base IS NULL THEN NULL
                    WHEN t.postcode IS NOT NULL THEN t.base || '|' || t.postcode
                    WHEN t.town IS NOT NULL AND pc.n = 1 THEN t.base || '|' || pc.postcode
                    WHEN t.town IS NOT NULL THEN t.base || '|T:' || t.town
                    WHEN pa.n = 1 THEN t.base || '|' || pa.postcode
                    ELSE t.base || '|?' END AS ckey
        FROM t LEFT JOIN pc ON pc.base = t.base AND pc.town = t.town
               LEFT JOIN pc_any pa ON pa.base = t.base""")
