"""Set-based address standardisation over DISTINCT texts in DuckDB (the standardise stage's entry points).

* :func:`address_table` -- distinct agency address texts -> ``raw, norm, flat, number, building, street, town,
  postcode, approximate``.  Cleaning (folding, punctuation, postcode, position words) is SQL
  (:func:`~ecins_link.standardise.address_clean.clean_select`); only the part assignment runs in Python, once
  per distinct *cleaned* text (:func:`~ecins_link.standardise.address.parse_clean`).
* :func:`gazetteer_table` -- gazetteer rows (already in parts) -> normalised parts, all SQL.

Both give the same parts as the one-text functions in :mod:`ecins_link.standardise.address` (tests check).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ecins_link.standardise.address_clean import _JUNK, _q, clean_select
from ecins_link.standardise.address_flats import address_class_sql, rewrite_descriptors_sql
from ecins_link.standardise.address_shape import (
    FIELDS,
    FLAT_TOKEN_RX,
    FTOK,
    LETTER,
    LETTER_RX,
    NUM,
    NUM_RX,
    SLASH,
    SLASH_RX,
    template,
    vocab_masks,
    vocab_sets,
)
from ecins_link.standardise.text import fold

ADDRESS_COLUMNS = ["raw", "norm", "flat", "number", "building", "street", "town", "postcode", "approximate"]
GAZETTEER_COLUMNS = ["uprn", "address_norm", "flat", "number", "building", "organisation", "street", "locality",
                     "town", "postcode_raw", "full_address", "parent_uprn", "address_class", "x", "y"]
# optional columns of the ingested gazetteer (ecins_link/ingest/gazetteer.py); NULL where a table lacks them
_GAZ_EXTRA = ("parent_uprn", "classification", "x", "y")


def _folded(con: duckdb.DuckDBPyConnection, values_sql: str, name: str) -> None:
    """Temp table ``name(raw, folded)`` of the non-ASCII values (folded in Python: few, and SQL cannot)."""
    rows = [r[0] for r in con.execute(
        f"SELECT DISTINCT v FROM ({values_sql}) t(v) WHERE v IS NOT NULL AND strlen(v) <> length(v)").fetchall()]
    tbl = pa.table({"raw": pa.array(rows, pa.string()), "folded": pa.array([fold(r) for r in rows], pa.string())})
    con.register("_addr_fold_in", tbl)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _addr_fold_in")
    finally:
        con.unregister("_addr_fold_in")


def address_table(con: duckdb.DuckDBPyConnection, values_sql: str, name: str) -> int:
    """Create temp table ``name`` (:data:`ADDRESS_COLUMNS`) for the distinct non-NULL texts of ``values_sql``.

    ``values_sql`` selects one text column.  Returns the number of distinct texts.
    """
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _addr_raw AS
                    SELECT DISTINCT CAST(v AS VARCHAR) AS raw FROM ({values_sql}) t(v) WHERE v IS NOT NULL""")
    _folded(con, "SELECT raw FROM _addr_raw", "_addr_fold")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _addr_clean AS {clean_select(
        "SELECT r.raw, coalesce(f.folded, upper(r.raw)) AS folded FROM _addr_raw r LEFT JOIN _addr_fold f USING (raw)")}""")
    _maps_table(con)
    # regex classes, tested only where they can match (a digit first, one character, F + a short rest)
    def rx(r: str) -> str:
        return f"regexp_full_match(w, {_q(r)})"

    regex_bits = (f"CASE WHEN w[1] BETWEEN '0' AND '9' THEN CAST({rx(NUM_RX)} AS INT) * {NUM} "
                  f"| CAST({rx(SLASH_RX)} AS INT) * {SLASH} "
                  f"WHEN length(w) = 1 THEN CAST({rx(LETTER_RX)} AS INT) * {LETTER} "
                  f"WHEN w[1] = 'F' THEN CAST({rx(FLAT_TOKEN_RX)} AS INT) * {FTOK} ELSE 0 END")
    # tokens (commas kept as tokens), a street type expanded after a word; class bits; flat-word forms
    # (vocabulary words all start with a letter: other tokens skip the map look-ups)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _addr_tok AS
        SELECT clean, toks, list_transform(toks, w -> CASE WHEN w[1] >= 'A' THEN mp.flat[w] END) AS fws,
               array_to_string(list_transform(toks, w -> CASE WHEN w = ',' THEN ',' ELSE
                   printf('%02x', CASE WHEN w[1] >= 'A' THEN coalesce(mp.masks[w], 0) ELSE 0 END | {regex_bits}) END), '')
                   AS sig
        FROM (SELECT clean, list_transform(t0, (w, i) -> CASE
                  WHEN w[1] < 'A' THEN w
                  WHEN mp.words[w] IS NOT NULL THEN mp.words[w]
                  WHEN i > 1 AND mp.abbrev[w] IS NOT NULL AND regexp_full_match(t0[i - 1], '[A-Z]+') THEN mp.abbrev[w]
                  ELSE w END) AS toks
              FROM (SELECT DISTINCT clean, CASE WHEN clean = '' THEN []::VARCHAR[]
                           ELSE string_split(replace(clean, ',', ' , '), ' ') END AS t0 FROM _addr_clean), _addr_maps mp
             ), _addr_maps mp""")
    sigs = [r[0] for r in con.execute("SELECT DISTINCT sig FROM _addr_tok").fetchall()]
    tpls = [template(sg) for sg in sigs]
    # per field: piece kinds ('t', 'w', 'a', 's', 'r' or the literal 'L:FLAT') and token indices (0 for literals)
    cols = {"sig": pa.array(sigs, pa.string())}
    for k, fld in enumerate(FIELDS):
        cols[fld + "_k"] = pa.array([[p if p[0] == "L" else p[0] for p in t[k]] for t in tpls], pa.list_(pa.string()))
        cols[fld + "_i"] = pa.array([[0 if p[0] == "L" else int(p[1:]) for p in t[k]] for t in tpls],
                                    pa.list_(pa.int32()))
    con.register("_addr_tpl_in", pa.table(cols))

    def field(fld: str) -> str:
        tok = f"toks[tp.{fld}_i[j]]"
        piece = (f"CASE k WHEN 't' THEN {tok} WHEN 'w' THEN fws[tp.{fld}_i[j]] WHEN 'a' THEN {tok}[2:] "
                 f"WHEN 's' THEN split_part({tok}, '/', 1) WHEN 'r' THEN split_part({tok}, '/', 2) ELSE k[3:] END")
        return f"nullif(array_to_string(list_transform(tp.{fld}_k, (k, j) -> {piece}), ' '), '') AS {fld}"

    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {name} AS
            SELECT c.raw, p.norm, p.flat, p.number, p.building, p.street, p.town, c.postcode, c.approximate
            FROM _addr_clean c JOIN (
                SELECT t.clean, {", ".join(field(f) for f in FIELDS)}
                FROM _addr_tok t JOIN _addr_tpl_in tp USING (sig)) p USING (clean)""")
    finally:
        con.unregister("_addr_tpl_in")
    n = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
    for t in ("_addr_raw", "_addr_fold", "_addr_clean", "_addr_tok", "_addr_maps"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return int(n)


def _map(d: dict[str, str] | dict[str, int]) -> str:
    items = ", ".join(f"{_q(k)}: {v if isinstance(v, int) else _q(v)}" for k, v in sorted(d.items()))
    return "MAP {" + items + "}"


def _maps_table(con: duckdb.DuckDBPyConnection) -> None:
    """One-row temp table ``_addr_maps`` (words, abbrev, masks, flat): vocabulary maps to cross join.

    (A map column is looked up fast; a MAP literal inside a lambda is rebuilt for every row.)
    """
    v = vocab_sets()
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _addr_maps AS
        SELECT {_map(v.words or {"": ""})} AS words, {_map(v.abbrev)} AS abbrev,
               {_map(vocab_masks())} AS masks, {_map(v.flat)} AS flat""")


def clean_part_sql(x: str) -> str:
    """SQL twin of :func:`~ecins_link.standardise.address.clean_part` over an already folded expression."""
    t = f"regexp_replace(replace(replace({x}, '.', ''), '''', ''), {_q(_JUNK)}, ' ', 'g')"
    return f"nullif(trim(regexp_replace(replace({t}, ',', ' '), ' +', ' ', 'g')), '')"


def expand_street_sql(x: str, mp: str = "mp") -> str:
    """SQL twin of :func:`~ecins_link.standardise.address.expand_street` over an already folded expression.

    ``mp`` is the alias of the cross-joined ``_addr_maps`` row.
    """
    toks = f"string_split({clean_part_sql(x)}, ' ')"
    return (f"nullif(array_to_string(list_transform({toks}, (w, i) -> CASE "
            f"WHEN {mp}.words[w] IS NOT NULL THEN {mp}.words[w] "
            f"WHEN i > 1 AND {mp}.abbrev[w] IS NOT NULL AND regexp_full_match({toks}[i - 1], '[A-Z]+') "
            f"THEN {mp}.abbrev[w] ELSE w END), ' '), '')")


def normalise_flat_sql(x: str, mp: str = "mp") -> str:
    """SQL twin of :func:`~ecins_link.standardise.address.normalise_flat` over an already folded expression."""
    one = (f"trim(regexp_replace(replace(regexp_replace(replace({x}, '.', ''), {_q(_JUNK)}, ' ', "
           "'g'), ',', ' '), ' +', ' ', 'g'))")
    toks = f"list_filter(string_split({rewrite_descriptors_sql(one)}, ' '), w -> w <> '')"
    return f"""(SELECT CASE
        WHEN len(t) = 0 THEN NULL
        WHEN len(t) = 1 AND regexp_full_match(t[1], 'F(\\d+[A-Z]?|[A-Z])') THEN 'FLAT ' || t[1][2:]
        WHEN len(t) = 1 AND (regexp_full_match(t[1], '\\d+[A-Z]?(-\\d+[A-Z]?)?') OR length(t[1]) = 1)
            THEN 'FLAT ' || t[1]
        WHEN len(t) = 1 THEN t[1]
        WHEN {mp}.flat[t[1]] IS NOT NULL THEN {mp}.flat[t[1]] || ' ' || array_to_string(t[2:], ' ')
        ELSE array_to_string(t, ' ') END FROM (SELECT {toks} AS t))"""


def full_address_sql(g: str) -> str:
    """SQL: a gazetteer row's address as one line from its raw parts (``gazetteer_std.full_address``)."""
    return (f"nullif(concat_ws(', ', {g}.sub_building, {g}.organisation, {g}.building_name, "
            f"nullif(concat_ws(' ', {g}.number, {g}.street), ''), {g}.locality, {g}.town, {g}.postcode), '')")


def gazetteer_table(con: duckdb.DuckDBPyConnection, name: str, source: str = "gazetteer") -> int:
    """Create temp table ``name`` (:data:`GAZETTEER_COLUMNS`) from ``source`` (the ingested gazetteer).

    Parts are cleaned like agency addresses (street types expanded, flats as ``FLAT 2``); ``address_norm`` is
    flat, premises name, building, number, street, locality and town in that order -- what the parser makes
    of an agency text naming the same property.  ``parent_uprn``, ``address_class`` (residential / commercial /
    other, from the classification) and the coordinates ``x``, ``y`` are carried when ``source`` has them.
    """
    cols = ["sub_building", "number", "building_name", "organisation", "street", "locality", "town"]
    have = {r[0] for r in con.execute(f"DESCRIBE {source}").fetchall()}
    extra = {c: (c if c in have else "NULL") for c in _GAZ_EXTRA}
    union = " UNION ".join(f"SELECT CAST({c} AS VARCHAR) FROM {source}" for c in cols)
    _folded(con, union, "_gaz_fold")
    _maps_table(con)

    folded = ", ".join(f"CASE WHEN strlen({c}) = length({c}) THEN upper({c}) "
                       f"ELSE (SELECT folded FROM _gaz_fold x WHERE x.raw = {c}) END AS f_{c}" for c in cols)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {name} AS
        WITH g AS (SELECT *, {folded} FROM {source}),
        p AS (
            SELECT CAST(g.uprn AS VARCHAR) AS uprn, {normalise_flat_sql('f_sub_building')} AS flat,
                   {clean_part_sql('f_number')} AS number, {clean_part_sql('f_building_name')} AS building,
                   {clean_part_sql('f_organisation')} AS organisation, {expand_street_sql('f_street')} AS street,
                   {clean_part_sql('f_locality')} AS locality, {clean_part_sql('f_town')} AS town,
                   CAST(g.postcode AS VARCHAR) AS postcode_raw,
                   {full_address_sql('g')} AS full_address,
                   nullif(trim(CAST({extra['parent_uprn']} AS VARCHAR)), '') AS parent_uprn,
                   {address_class_sql(extra['classification'])} AS address_class,
                   TRY_CAST({extra['x']} AS DOUBLE) AS x, TRY_CAST({extra['y']} AS DOUBLE) AS y
            FROM g, _addr_maps mp)
        SELECT uprn, nullif(concat_ws(' ', flat, CASE WHEN number IS NULL AND building IS NULL THEN organisation END,
                                      building, number, street, locality, town), '') AS address_norm,
               flat, number, building, organisation, street, locality, town, postcode_raw, full_address,
               parent_uprn, address_class, x, y
        FROM p""")
    con.execute("DROP TABLE IF EXISTS _gaz_fold")
    con.execute("DROP TABLE IF EXISTS _addr_maps")
    return int(con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
