"""Premises named in an address ("BOOTS, <town>", "The Red Lion, Aldton", "GREGGS, 10 HIGH ST") -> the one UPRN
of that name there (at that number and street, when the text gives a number).

A gazetteer organisation name, or the name of an unnumbered building, must appear as whole words in the text
(leading words such as THE and trailing ones such as LTD ignored on both sides), and the candidate must lie in
every town or locality the text names (or, naming none, in its parsed town or postcode district), and on the street
the text names, if it names one (or a close spelling of it).  Among the names found the longest wins.
A person's home naming a flat is never matched by a premises name (the flat above the shop is not the shop); an
event naming a flat is, at the number it gives.  One UPRN: resolved (``premises_name``).  Several (a chain with
branches in that town): left unresolved, and the reason lists the candidates.  A text that names no area or
postcode is not matched by name alone.
"""

from __future__ import annotations

import re

import duckdb


def _strip_sql(x: str, leading: list[str], trailing: list[str]) -> str:
    lead = "|".join(re.escape(w.upper()) for w in leading) or "$^"
    trail = "|".join(re.escape(w.upper()) for w in trailing) or "$^"
    return (f"trim(regexp_replace(regexp_replace(upper({x}), '^(({lead})\\s+)+', ''), "
            f"'(\\s+({trail}))+$', ''))")


def resolve_premises(con: duckdb.DuckDBPyConnection, confidence: float, ignore_leading: list[str], min_chars: int,
                     ignore_trailing: list[str] | None = None) -> dict[str, int]:
    """Resolve unnumbered addresses naming a premises (see module docstring); counts resolved and refused ties."""
    name = _strip_sql("{x}", ignore_leading, ignore_trailing or [])
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_cand AS
        WITH names AS (
            SELECT uprn, {name.format(x="organisation")} AS name, town, locality, postcode_outward, number, street
            FROM _loc_gaz WHERE organisation IS NOT NULL
            UNION
            SELECT uprn, {name.format(x="building")}, town, locality, postcode_outward, number, street FROM _loc_gaz
            WHERE building IS NOT NULL AND number IS NULL AND flat IS NULL),
             todo AS (SELECT a.akey, ' ' || {name.format(x="coalesce(a.address_norm, '')")} || ' ' AS txt,
                             a.town, a.postcode_outward, coalesce(m.areas, []) AS areas, a.number, a.street
                      FROM _loc_addr a LEFT JOIN _loc_mention m USING (akey)
                      WHERE NOT EXISTS (SELECT 1 FROM _loc_res r WHERE r.akey = a.akey)
                        -- an event may name a unit ("Marford Pharmacy, Flat 1, 30 ..."): the name and number decide
                        AND (a.flat IS NULL OR (NOT a.home AND a.number IS NOT NULL))),
             toks AS (SELECT DISTINCT akey, txt, town, postcode_outward, areas, number, street,
                             unnest(string_split(trim(txt), ' ')) AS tok FROM todo),
             named AS (SELECT *, split_part(name, ' ', 1) AS first FROM names WHERE length(name) >= {int(min_chars)}),
             hits AS (
                SELECT DISTINCT t.akey, n.uprn, length(n.name) AS len FROM toks t JOIN named n ON t.tok = n.first
                WHERE contains(t.txt, ' ' || n.name || ' ')
                  -- "BOOTS, 15 HIGH ST": a numbered text names the premises at that number (and street)
                  AND (t.number IS NULL OR (t.number = n.number AND (t.street IS NULL OR t.street = n.street)))
                  -- a text naming another street names another place ("Norham Lodge, Chelmouts Rd" is not The
                  -- Lodge, Edworth Lane); a close spelling of the premises' own street is its street
                  -- (or one letter apart: "CRSTEAD WAY" for Carstead Way, a dropped letter near the start)
                  AND (t.street IS NULL OR n.street IS NULL OR jaro_winkler_similarity(t.street, n.street) >= 0.88
                       OR (length(n.street) >= 8 AND damerau_levenshtein(t.street, n.street) <= 1))
                  -- in every town / locality the text names; else in its parsed town or postcode district
                  AND CASE WHEN len(t.areas) > 0
                           THEN list_has_all(list_filter([n.town, n.locality], x -> x IS NOT NULL), t.areas)
                           ELSE t.town = n.town OR t.town = n.locality OR t.postcode_outward = n.postcode_outward END),
             best AS (SELECT akey, max(len) AS len FROM hits GROUP BY akey)
        SELECT h.akey, min(h.uprn) AS uprn, count(DISTINCT h.uprn) AS n,
               string_agg(DISTINCT h.uprn, ';' ORDER BY h.uprn) AS uprns
        FROM hits h JOIN best b USING (akey, len) GROUP BY h.akey""")
    con.execute(f"INSERT INTO _loc_res SELECT akey, uprn, 'premises_name', {float(confidence)} FROM _loc_cand WHERE n = 1")
    con.execute("INSERT INTO _loc_why SELECT akey, 'several premises of that name in the area: ' || uprns "
                "FROM _loc_cand WHERE n > 1")
    n, ties = con.execute("SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n > 1) FROM _loc_cand").fetchone()
    return {"resolved": int(n), "ties_refused": int(ties)}
