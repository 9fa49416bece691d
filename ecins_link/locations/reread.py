"""Re-read address parts the parser split wrongly, where the gazetteer shows the right reading.

Each rule changes ``_loc_addr`` only where the parsed reading names nothing in the gazetteer (``_loc_gaz``) and the
re-reading names something there; the key joins that follow still need exactly one UPRN.
"""

from __future__ import annotations

import re

import duckdb


def reread_parts(con: duckdb.DuckDBPyConnection, suffix_as_flat_letter: bool = False,
                 plot_words: list[str] | None = None) -> None:
    """Re-read address parts the parser split wrongly, where the gazetteer shows the right reading.

    ``suffix_as_flat_letter``: read "22A Mill Lane", where the street has no 22A and the gazetteer lists a flat A at
    22, as flat A of 22 (``[flats] suffix_as_flat_letter`` in the location rules).  Off by default: on
    address-errors output (recording errors learned from six councils' registers, where a suffix is often added to
    a flat whose own label was dropped) that reading was right only 14 times in 46 (two gazetteers, four house
    styles), a 0.93-confidence answer right 30 % of the time; off, such a text is answered at its building (level
    ``building``), never at another flat.  An extract known to write flats that way may turn it on.

    ``plot_words``: words that label a development plot ("PLOT 51, FLAT A, 18 WILFIELD LANE"); see
    :func:`_plot_numbers`.
    """
    _plot_numbers(con, plot_words or [])
    _joined_building_name(con)
    _block_own_number(con)
    _label_in_unknown_name(con)
    _range_end(con)
    if suffix_as_flat_letter:
        _suffix_as_flat_letter(con)
    # otherwise, where 22 is a building with flats: the number is read as 22, a flat the text names is kept ("First
    # Floor Flat, 22a" is the first-floor flat of 22), and a text naming none gets the suffix as a flat id no
    # gazetteer flat has ("22A?"): the answer is the building, at level "building"
    con.execute(r"""
        UPDATE _loc_addr a SET number = regexp_extract(a.number, '^(\d+)', 1),
                               flat_id = coalesce(a.flat_id, a.number || '?')
        WHERE regexp_matches(a.number, '^\d+[A-Z]$') AND a.street IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.number = a.number AND g.street = a.street)
          AND EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.street = a.street
                      AND g.number = regexp_extract(a.number, '^(\d+)', 1)
                      AND (g.has_flats OR g.flat_id IS NOT NULL)
                      AND (a.postcode IS NULL OR g.postcode_sector = a.postcode_sector))""")
    # "22 Beckett House 6 Easton Rd" (no commas) parsed as number 22, street "BECKETT HOUSE 6 EASTON ROAD": when
    # that is no gazetteer street but its tail is, and the gazetteer has that building at that number there,
    # read it as flat 22, Beckett House, 6 Easton Road (the keys then still need exactly one UPRN)
    con.execute(r"""
        UPDATE _loc_addr a SET building = q.b, number = q.n, street = q.s, flat_id = coalesce(a.flat_id, a.number)
        FROM (SELECT akey, p.b AS b, p.n AS n, p.s AS s FROM (
                  SELECT akey, regexp_extract(street, '^(.*\D) (\d+[A-Z]?) (.+)$', ['b', 'n', 's']) AS p
                  FROM _loc_addr x
                  WHERE (flat_id IS NULL OR number IS NULL) AND building IS NULL AND street IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.street = x.street))
              WHERE p.s <> '' AND EXISTS (SELECT 1 FROM _loc_gaz g
                                          WHERE g.street = p.s AND g.number = p.n AND g.building = p.b)) q
        WHERE a.akey = q.akey""")
    # "Fern Lea, Barton Rd" / "13 Foundry Wharf 12 Glebe Cl" parsed with the house or building name as the street:
    # when that "street" is no gazetteer street but a gazetteer building name, and the text goes on with
    # "[number] street" where the gazetteer has that building (at that number), read it so -- one reading only
    con.execute(r"""
        UPDATE _loc_addr a SET building = q.b, number = q.n, street = q.s, flat_id = q.f,
               lo = list_filter(a.lo, x -> NOT list_contains(string_split(concat_ws(' ', q.n, q.s), ' '), x)),
               n_leftover = len(list_filter(a.lo, x -> NOT list_contains(string_split(concat_ws(' ', q.n, q.s), ' '), x)))
        FROM (SELECT x.akey, x.street AS b, g.number AS n, g.street AS s,
                     CASE WHEN g.number IS NOT NULL THEN coalesce(x.flat_id, x.number) ELSE x.flat_id END AS f,
                     count(*) OVER (PARTITION BY x.akey) AS k
              FROM (SELECT akey, street, number, flat_id,
                           trim(substr(address_norm, strpos(' ' || address_norm || ' ', ' ' || street || ' ')
                                                     + length(street))) || ' ' AS rest
                    FROM _loc_addr y
                    WHERE building IS NULL AND street IS NOT NULL AND (flat_id IS NULL OR number IS NULL)
                      AND strpos(' ' || address_norm || ' ', ' ' || street || ' ') > 0
                      AND NOT EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.street = y.street)) x
              JOIN (SELECT DISTINCT building, number, street FROM _loc_gaz
                    WHERE building IS NOT NULL AND street IS NOT NULL) g ON g.building = x.street
              WHERE (g.number IS NOT NULL OR x.number IS NULL)
                AND starts_with(x.rest, concat_ws(' ', g.number, g.street) || ' ')) q
        WHERE a.akey = q.akey AND q.k = 1""")
    _number_as_flat_of_named_block(con)


def _number_as_flat_of_named_block(con: duckdb.DuckDBPyConnection) -> None:
    """"7 Belfield Point Melley Gardens", "5 Calham Mansions, Thornfield Drive", "Calham Mansions, 12, Thornfield
    Drive": a number written with the name of a block of flats, the block's own number left out, is a flat of that
    block (the usual way a flat in a named block is written).

    Read so only when the gazetteer has a building of that name on the street the text goes on with (or names), at
    another number, and lists that flat in it; the parsed reading names no property of that building (no gazetteer
    street of the parsed name, or no such number in the block); and the reading is the only one.  The key joins
    then still need exactly one UPRN.
    """
    con.execute(r"""
        UPDATE _loc_addr a SET building = q.b, number = q.n, street = q.s, flat_id = q.f,
               lo = list_filter(a.lo, x -> NOT list_contains(string_split(concat_ws(' ', q.b, q.s), ' '), x)),
               n_leftover = len(list_filter(a.lo, x -> NOT list_contains(string_split(concat_ws(' ', q.b, q.s), ' '), x)))
        FROM (WITH x AS (SELECT akey, number, building, street, address_norm,
                                split_part(coalesce(building, street), ' ', 1) AS w FROM _loc_addr y
                         WHERE flat_id IS NULL AND number IS NOT NULL AND street IS NOT NULL
                           AND regexp_full_match(number, '\d{1,4}[A-Z]?')
                           AND (building IS NOT NULL
                                OR NOT EXISTS (SELECT 1 FROM _loc_gaz s WHERE s.street = y.street))),
                   g AS (SELECT DISTINCT building, number, street, split_part(building, ' ', 1) AS w FROM _loc_gaz
                         WHERE building IS NOT NULL AND street IS NOT NULL AND number IS NOT NULL
                           AND (has_flats OR flat_id IS NOT NULL))
              SELECT x.akey, g.building AS b, g.number AS n, g.street AS s, x.number AS f,
                     count(*) OVER (PARTITION BY x.akey) AS k
              -- joined on the building name's first word (a hash join), then checked
              FROM x JOIN g ON g.w = x.w AND g.number <> x.number
              WHERE (-- "Calham Mansions, 12, Thornfield Drive": the building and street parsed as such
                     (x.building = g.building AND x.street = g.street)
                     -- "7 Belfield Point Melley Gardens" / "5 Calham Mansions, Thornfield Drive": the parsed street,
                     -- no gazetteer street, begins with the building's name, and the text goes on with its street
                     OR (x.building IS NULL AND starts_with(x.street || ' ', g.building || ' ')
                         AND starts_with(trim(substr(' ' || x.address_norm || ' ',
                                                     strpos(' ' || x.address_norm || ' ', ' ' || g.building || ' ')
                                                     + length(g.building) + 1)) || ' ', g.street || ' ')))
                AND EXISTS (SELECT 1 FROM _loc_gaz f WHERE f.building = g.building AND f.street = g.street
                                                       AND f.number = g.number AND f.flat_id = x.number)) q
        WHERE a.akey = q.akey AND q.k = 1""")


def _joined_building_name(con: duckdb.DuckDBPyConnection) -> None:
    """"Flat 1, Halsteadhouse, Fenburs Place", "FLAT 2 GARHAMCOURT 12 ...": a building name written with its words run
    together is the gazetteer's building of that spelling, spaces ignored, when exactly one building name fits."""
    con.execute("""
        UPDATE _loc_addr a SET building = q.b
        FROM (SELECT x.akey, min(g.building) AS b, count(DISTINCT g.building) AS k
              FROM _loc_addr x
              JOIN (SELECT DISTINCT building, replace(building, ' ', '') AS squashed FROM _loc_gaz
                    WHERE contains(building, ' ') AND length(building) >= 6) g
                ON g.squashed = replace(x.building, ' ', '')
              WHERE x.building IS NOT NULL AND x.building <> g.building
              GROUP BY x.akey) q
        WHERE a.akey = q.akey AND q.k = 1""")


def _block_own_number(con: duckdb.DuckDBPyConnection) -> None:
    """"Bromstead House, 3, Edbury Gardens" where Bromstead House is number 3 (and holds a flat 3): a bare number written
    after a block's name, labelled as no flat, that is the block's own number is the building's number, not a flat of it
    (the parser reads a lone number after a building name as a flat).  The answer is then the building, flat not
    known; a number that is not the block's ("Birch House, 3, High St" where Birch House is 19) stays a flat."""
    con.execute(r"""
        UPDATE _loc_addr a SET number = a.flat_id, flat_id = NULL, flat = NULL
        WHERE a.number IS NULL AND a.building IS NOT NULL AND regexp_full_match(coalesce(a.flat_id, ''), '\d{1,4}[A-Z]?')
          AND NOT regexp_matches(upper(coalesce(a.address_text, '')),
                                 '\b(FLAT|FLT|FL|APARTMENT|APT|UNIT|ROOM|STUDIO|MAISONETTE)\b')
          -- written after the name ("1, Kenford Mansions" before it is flat 1 of the block)
          AND regexp_matches(upper(coalesce(a.address_text, '')), '\b\Q' || a.building || '\E[\s,]+' || a.flat_id || '\b')
          AND EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.building = a.building AND g.number = a.flat_id AND g.has_flats)""")


def _label_in_unknown_name(con: duckdb.DuckDBPyConnection) -> None:
    """"Lfaat C, 2, Bradby Crescent": a "building name" of one unknown word followed by a flat letter or number (a flat
    label misspelt beyond the spelling rules) is that flat, when the gazetteer has no such building name on the
    street and lists that flat at the number and street the text gives (the keys then still need one UPRN)."""
    con.execute(r"""
        UPDATE _loc_addr a SET flat_id = q.f, building = NULL
        FROM (SELECT akey, regexp_extract(building, '^[A-Z]{2,6}\.? ([A-Z]|\d{1,3})$', 1) AS f FROM _loc_addr x
              WHERE flat_id IS NULL AND number IS NOT NULL AND street IS NOT NULL
                AND regexp_full_match(coalesce(building, ''), '[A-Z]{2,6}\.? ([A-Z]|\d{1,3})')) q
        WHERE a.akey = q.akey
          AND NOT EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.street = a.street
                          AND (g.building = a.building OR g.organisation = a.building))
          AND EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.street = a.street AND g.number = a.number AND g.flat_id = q.f)""")


def _suffix_as_flat_letter(con: duckdb.DuckDBPyConnection) -> None:
    """"22A Mill Lane" -> flat A of 22 Mill Lane (see :func:`reread_parts`)."""
    # "22A Mill Lane" where the street has no 22A and the gazetteer lists a flat A at 22, the text naming no other flat
    con.execute(r"""
        UPDATE _loc_addr a SET number = regexp_extract(a.number, '^(\d+)', 1),
                               flat_id = regexp_extract(a.number, '([A-Z])$', 1)
        WHERE a.flat_id IS NULL AND regexp_matches(a.number, '^\d+[A-Z]$') AND a.street IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.number = a.number AND g.street = a.street)
          AND EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.street = a.street
                      AND g.number = regexp_extract(a.number, '^(\d+)', 1)
                      AND g.flat_id = regexp_extract(a.number, '([A-Z])$', 1))""")


def plot_numbers_sql(plot_words: list[str]) -> str:
    """SQL over a ``_loc_addr`` row: every number its text writes after a plot word (``_loc_addr.plot_numbers``,
    :func:`_plot_numbers`), computed as the table is made; a NULL list when there are no plot words."""
    words = [w.upper() for w in plot_words if w.strip()]
    if not words:
        return "CAST(NULL AS VARCHAR[])"
    rx = r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\.?\s*(\d+[A-Z]?)\b"
    return "regexp_extract_all(upper(coalesce(address_text, '')), '" + rx.replace("'", "''") + "', 1)"


def _plot_numbers(con: duckdb.DuckDBPyConnection, plot_words: list[str]) -> None:
    """"PLOT 51, FLAT A, 18 WILFIELD LANE" parsed as number 51, building "PLOT", street "18 WILFIELD LANE": a number
    after a plot word is a development plot, not the house number.  Every such number of the text is listed in
    ``_loc_addr.plot_numbers`` (the matcher's checks do not ask the candidate to carry it); a parsed number that is
    one of them is dropped, the plot word leaves the building name, and a street that begins with a number followed
    by a gazetteer street is read as that number and street.  The rules after this one then read the rest."""
    # the column itself is made with _loc_addr (plot_numbers_sql), as it is with a gazetteer, the only case this runs
    words = [w.upper() for w in plot_words if w.strip()]
    if not words:
        return
    # "PLOT 7 24 HIGH ST" parsed as flat 7 of 24: a flat id that is the plot's number, not written after a flat word
    con.execute(r"""
        UPDATE _loc_addr SET flat_id = NULL, flat = NULL
        WHERE list_contains(plot_numbers, flat_id) AND number IS NOT NULL
          AND NOT regexp_matches(upper(coalesce(address_text, '')),
                                 '\b(FLAT|FLT|APARTMENT|APT|UNIT|ROOM)\.?\s*' || flat_id || '\b')""")
    tail = r"(^|\s)(?:" + "|".join(re.escape(w) for w in words) + r")$"
    con.execute("UPDATE _loc_addr SET building = nullif(trim(regexp_replace(building, ?, '')), '') "
                "WHERE len(plot_numbers) > 0 AND building IS NOT NULL", [tail])
    # the plot word and number explain themselves (the weak keys ask for no unexplained words)
    con.execute("UPDATE _loc_addr SET lo = list_filter(lo, x -> NOT (list_contains(?, x) OR list_contains(plot_numbers, x))) "
                "WHERE len(plot_numbers) > 0", [words])
    con.execute("UPDATE _loc_addr SET n_leftover = len(lo) WHERE len(plot_numbers) > 0")
    con.execute(r"""
        UPDATE _loc_addr a
        SET number = CASE WHEN g.street IS NOT NULL THEN regexp_extract(a.street, '^(\d+[A-Z]?) ', 1) END,
            street = CASE WHEN g.street IS NOT NULL THEN g.street ELSE a.street END
        FROM (SELECT x.akey, s.street FROM _loc_addr x
              LEFT JOIN (SELECT DISTINCT street FROM _loc_gaz) s
                ON s.street = regexp_replace(x.street, '^\d+[A-Z]? ', '') AND regexp_matches(x.street, '^\d+[A-Z]? ')
              WHERE list_contains(x.plot_numbers, x.number)) g
        WHERE a.akey = g.akey""")


def _range_end(con: duckdb.DuckDBPyConnection) -> None:
    """"Flat 1, Edton Mansions, 3-5, Kenton Gardens" where the gazetteer has no 3-5 on that street but Edton Mansions
    (with a flat 1) at 3: a number range is read as the one end of it where the street has a property fitting the
    rest of the text (the flat it names, or none; the building it names, if any; its postcode sector, if given).
    Both ends fitting ("16-18 Belbury Way", two houses): the range stays as written and the keys find nothing."""
    con.execute(r"""
        UPDATE _loc_addr a SET number = q.n
        FROM (SELECT a.akey, min(g.number) AS n, count(DISTINCT g.number) AS k
              FROM _loc_addr a JOIN _loc_gaz g
                ON g.street = a.street AND coalesce(g.flat_id, '') = coalesce(a.flat_id, '')
               AND g.number IN (regexp_extract(a.number, '^(\d+[A-Z]?)-', 1),
                                regexp_extract(a.number, '-(\d+[A-Z]?)$', 1))
              WHERE regexp_full_match(a.number, '\d+[A-Z]?-\d+[A-Z]?') AND a.street IS NOT NULL
                AND (a.building IS NULL OR a.building = g.building OR a.building = g.organisation)
                AND (a.postcode IS NULL OR g.postcode_sector = a.postcode_sector)
                AND NOT EXISTS (SELECT 1 FROM _loc_gaz x WHERE x.street = a.street AND x.number = a.number)
              GROUP BY a.akey) q
        WHERE a.akey = q.akey AND q.k = 1""")
