"""A household link worth no more than chance allows: the surname level ``changed, household link`` by frequency.

The surname comparison's level ``changed, household link`` (forename and full date of birth agree, the surnames
differ, and the other record's surname was recorded at this record's address: a woman whose old record carries
her maiden name at her husband's family's address) has one weight for every pair, bounded in the model file.
But how much such a link says depends on how likely it is by chance: at an address where three surnames were
recorded, a common surname (JONES, about 2 % of records) is found for about 6 % of strangers, a rare one for
almost none.  Whatever the true share of married women with such a link, the link cannot be worth more than
``1 / chance`` (the Bayes factor with every true pair linked), so a pair at that level is weighed at

    min(level weight, -log2(chance)),   chance = surnames recorded at the address x frequency of the linked surname

(the most favourable side when both records' addresses link).  A link through a rare surname keeps the level's
weight; one through a common surname at a shared address loses up to a few bits.  Measured on the 250k town
(seed 1) before the pass existed: of the pairs at this level at or above the threshold at different addresses,
88 of 601 were two people (KAREN THOMPSON and KAREN EDWARDS, born the same day, some EDWARDS at her address);
the bound alone would move 63 of those 88 below the threshold and 102 of the 513 true ones; none of the 699 at
one home.

Switched on by ``[home] household_link_chance = true`` in the model file (off where a model file does not ask).
"""

from __future__ import annotations

import math

import duckdb

from ecins_link.matching.person_home import _add, _comparison, _level_case, _weights

LEVEL = "changed, household link"


def household_link_by_chance(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, settings: dict,
                             cfg: dict) -> dict:
    """Lower the pairs of ``pairs`` whose surname level is the household link to ``-log2(chance)`` when that is
    below the level's weight (see the module doc); returns ``{"reweighted": n, ...}``."""
    if not cfg.get("household_link_chance", False):
        return {"reweighted": 0, "enabled": False}
    comp = _comparison(settings, "surname")
    weights = _weights(comp) if comp else {}
    if LEVEL not in weights:
        return {"reweighted": 0, "enabled": True, "note": f"surname level {LEVEL!r} absent"}
    cols = [r[0] for r in con.execute(f'DESCRIBE "{nodes}"').fetchall()]
    if "address_surnames" not in cols:
        return {"reweighted": 0, "enabled": True, "note": "no address_surnames column"}
    sides = ", ".join(f'l."{c}" AS "{c}_l", r."{c}" AS "{c}_r"' for c in cols)
    # candidates: date agrees, surnames differ, one side's address lists the other's surname; chance per linking side
    side = """SELECT unique_id_l, unique_id_r, len(string_split(trim({a}, '|'), '|')) * tf.f AS chance
              FROM cand JOIN tf ON tf.surname = {b} WHERE contains({a}, '|' || {b} || '|')"""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _hc_pairs AS
        WITH tf AS (SELECT surname, count(*) / (SELECT count(surname) FROM "{nodes}") AS f FROM "{nodes}"
                    WHERE surname IS NOT NULL GROUP BY 1),
        cand AS (SELECT p.unique_id_l, p.unique_id_r, l.surname AS sl, r.surname AS sr,
                        l.address_surnames AS hl, r.address_surnames AS hr FROM "{pairs}" p
                 JOIN "{nodes}" l ON l.unique_id = p.unique_id_l JOIN "{nodes}" r ON r.unique_id = p.unique_id_r
                 WHERE l.dob = r.dob AND l.surname <> r.surname
                   AND (contains(l.address_surnames, '|' || r.surname || '|')
                        OR contains(r.address_surnames, '|' || l.surname || '|'))),
        sided AS ({side.format(a="hl", b="sr")} UNION ALL {side.format(a="hr", b="sl")})
        SELECT unique_id_l, unique_id_r, min(chance) AS chance FROM sided GROUP BY 1, 2""")
    rows = con.execute(f"""SELECT unique_id_l, unique_id_r, chance, {_level_case(comp)} AS level FROM (
        SELECT t.chance, {sides} FROM _hc_pairs t
        JOIN "{nodes}" l ON l.unique_id = t.unique_id_l JOIN "{nodes}" r ON r.unique_id = t.unique_id_r)""").fetchall()
    con.execute("DROP TABLE IF EXISTS _hc_pairs")
    w = weights[LEVEL]
    deltas = [(a, b, -math.log2(chance) - w) for a, b, chance, level in rows
              if level == LEVEL and chance and chance > 0 and -math.log2(chance) < w]
    _add(con, pairs, deltas, "household_link_chance")
    return {"reweighted": len(deltas), "enabled": True, "level": f"surname.{LEVEL}", "level_weight": round(w, 3)}
