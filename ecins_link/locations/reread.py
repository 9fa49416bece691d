"""Re-read address parts the parser split wrongly, where the gazetteer shows the right reading.

Each rule changes ``_loc_addr`` only where the parsed reading names nothing in the gazetteer (``_loc_gaz``) and the
re-reading names something there; the key joins that follow still need exactly one UPRN.
"""

from __future__ import annotations

import duckdb


def reread_parts(con: duckdb.DuckDBPyConnection) -> None:
    """Re-read address parts the parser split wrongly, where the gazetteer shows the right reading."""
    # "22A Mill Lane": flat A of 22 when the gazetteer has no number 22A on that street but has flat A at 22
    con.execute(r"""
        UPDATE _loc_addr a SET number = regexp_extract(a.number, '^(\d+)', 1),
                               flat_id = regexp_extract(a.number, '([A-Z])$', 1)
        WHERE a.flat_id IS NULL AND regexp_matches(a.number, '^\d+[A-Z]$') AND a.street IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.number = a.number AND g.street = a.street)
          AND EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.street = a.street
                      AND g.number = regexp_extract(a.number, '^(\d+)', 1)
                      AND g.flat_id = regexp_extract(a.number, '([A-Z])$', 1))""")
    # "First Floor Flat, 21a Penby Cres" where the street has no 21A but 21 is a building with flats: the suffix
    # marks a part of 21 (as "21A" often does), so the flat the text names is read at 21; a text naming no flat
    # keeps the letter as its flat id ("21a" -> flat A of 21: the building, unless the gazetteer lists flat A)
    con.execute(r"""
        UPDATE _loc_addr a SET number = regexp_extract(a.number, '^(\d+)', 1),
                               flat_id = coalesce(a.flat_id, regexp_extract(a.number, '([A-Z])$', 1))
        WHERE regexp_matches(a.number, '^\d+[A-Z]$') AND a.street IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.number = a.number AND g.street = a.street)
          AND EXISTS (SELECT 1 FROM _loc_gaz g WHERE g.street = a.street AND g.has_flats
                      AND g.number = regexp_extract(a.number, '^(\d+)', 1)
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
