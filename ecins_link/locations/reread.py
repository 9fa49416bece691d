"""Re-read address parts the parser split wrongly, where the gazetteer shows the right reading.

Each rule changes ``_loc_addr`` only where the parsed reading names nothing in the gazetteer (``_loc_gaz``) and the
re-reading names something there; the key joins that follow still need exactly one UPRN.
"""

from __future__ import annotations

import duckdb


def reread_parts(con: duckdb.DuckDBPyConnection) -> None:
    """Re-read address parts the parser split wrongly, where the gazetteer shows the right reading."""
    # "22A Mill Lane" where the street has no 22A: a part of 22.  When the gazetteer lists a flat A at 22 and the
    # text names no other flat, it is read as flat A (the usual way "22A" is written for "Flat A, 22").  Measured
    # on address-errors output (recording errors learned from six councils' registers, where a suffix is often added
    # to a flat's number), that reading was right only 8 times in 21, against every time on the synthetic towns:
    # kept, and reported here.
    con.execute(r"""
        UPDATE _loc_addr a SET number = regexp_extract(a.number, '^(\d+)', 1),
                               flat_id = regexp_extract(a.number, '([A-Z])$', 1)
        WHERE a.flat_id IS NULL AND regexp_matches(a.number, '^\d+[A-Z]$') AND a.street IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.number = a.number AND g.street = a.street)
          AND EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.street = a.street
                      AND g.number = regexp_extract(a.number, '^(\d+)', 1)
                      AND g.flat_id = regexp_extract(a.number, '([A-Z])$', 1))""")
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
