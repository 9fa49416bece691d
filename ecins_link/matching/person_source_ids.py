"""A source's own reference for a person: its rows that share one are one person.

A housing system keeps a person reference across that person's tenancies; a social-care system keeps a client id
across referrals.  The model compares names, dates of birth and addresses, and two tenancy rows of one person under
a maiden name at an old address score far below the match threshold (on a 250k synthetic town, 744 record pairs
sharing a housing person reference were left in different clusters, 543 of them of English-origin names).  The
project file names such a column (``[sources.person] source_person_id``); standardise writes it, qualified by the
source, to ``person_std.source_person_id``; the blocking adds one rule on it, so those pairs are scored; and this
step accepts them at the match threshold (no further; ``link_rule`` ``same_source_person_id``) when

- both records come from the one source and carry the same reference;
- their dates of birth do not contradict: one is missing, they agree, or one keystroke or a day-month swap
  explains the difference.

A column named as a person reference that is not one (a household or tenancy reference shared by a family) would
merge families, so the step first checks it: among the references whose records all carry a date of birth, the
share whose records disagree beyond a keying error must be at most ``max_contradicting_share`` (a person's own
reference: about none; a household's: most), and at least one such reference must exist (a source recording no
date of birth cannot be checked).  Otherwise it accepts nothing and the run summary says why.  The
model itself never sees the column, so declaring it changes no model parameter.  On by default
(``[source_ids] enabled``) and inert for a project that names no such column.
"""

from __future__ import annotations

import duckdb

from ecins_link.matching.person_fields import table_columns
from ecins_link.matching.person_home import accept_at_threshold

_ACCEPT = "_sid_accept"

# two dates of birth one person's records may carry: equal, one keystroke apart (as ISO text), or day and month swapped
_DOB_AGREES = """(l.dob IS NULL OR r.dob IS NULL OR l.dob = r.dob
                  OR damerau_levenshtein(strftime(l.dob, '%Y-%m-%d'), strftime(r.dob, '%Y-%m-%d')) <= 1
                  OR (year(l.dob) = year(r.dob) AND month(l.dob) = day(r.dob) AND day(l.dob) = month(r.dob)))"""


def same_source_person_id(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, threshold: float,
                          mc: dict) -> dict:
    """Accept at ``threshold`` the pairs of ``pairs`` (on ``con``) whose two records share their source's person
    reference (``nodes.source_person_id``), as the module doc says; returns what was done (``reweighted`` = pairs
    accepted)."""
    cfg = mc.get("source_ids") or {"enabled": True}
    if not cfg.get("enabled", True) or "source_person_id" not in table_columns(con, nodes):
        return {"enabled": bool(cfg.get("enabled", True)), "reweighted": 0}
    most = float(cfg.get("max_contradicting_share", 0.05))
    groups, contradicting = con.execute(f"""
        WITH d AS (SELECT source_person_id AS sid, dob FROM "{nodes}" WHERE source_person_id IS NOT NULL),
        g AS (SELECT sid FROM d GROUP BY sid HAVING count(*) >= 2 AND count(dob) = count(*))
        SELECT (SELECT count(*) FROM g),
               (SELECT count(DISTINCT l.sid) FROM d l JOIN d r ON l.sid = r.sid AND l.dob < r.dob
                WHERE l.sid IN (SELECT sid FROM g) AND NOT {_DOB_AGREES})""").fetchone()
    done = {"enabled": True, "references_checked": int(groups), "references_contradicting": int(contradicting),
            "max_contradicting_share": most, "reweighted": 0}
    if not groups:
        done["note"] = ("not used: no reference has two or more records all with a date of birth, so nothing shows "
                        "that the column names a person rather than a household")
        return done
    if contradicting > most * groups:
        done["note"] = (f"not used: the records of {contradicting:,} of {groups:,} references disagree on the date of "
                        "birth; a person's own reference should almost never do so (is it a household or case "
                        "reference?)")
        return done
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {_ACCEPT} AS
        SELECT p.unique_id_l, p.unique_id_r FROM "{pairs}" p
        JOIN "{nodes}" l ON l.unique_id = p.unique_id_l JOIN "{nodes}" r ON r.unique_id = p.unique_id_r
        WHERE l.source_person_id = r.source_person_id AND p.match_probability < ? AND {_DOB_AGREES}""",
                [float(threshold)])
    done["reweighted"] = accept_at_threshold(con, pairs, _ACCEPT, threshold, "same_source_person_id")
    con.execute(f"DROP TABLE IF EXISTS {_ACCEPT}")
    return done
