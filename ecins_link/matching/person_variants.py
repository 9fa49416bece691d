"""Same identity, written differently, at another address: name variants of one forename and surname, same date of birth.

The same-identity pass (``person_identity``) accepts a moved person's records when forename, surname and full date
of birth agree *exactly*.  Agencies rarely write a name the same way twice: one records MOHAMMED HUSSAIN, the next
MUHAMMAD HUSSEIN; GARY and GARRY, SARAH and SARA, JIM and JAMES, CLARK and CLARKE, AISHA and AYESHA.  At another
address such a pair scores just under the match threshold (a variant weighs less than an exact name, and the move
costs the address comparison), and the loss falls hardest on the name origins with several romanisations of one
name.  On the 250,000-person synthetic town these pairs were the largest class of missed pairs left after the
identity pass (778 pairs, each with an exact date of birth).

This pass accepts such a pair at the match threshold (no further) when

- the forenames have one canonical form (``person_std.forename_canonical``: the nickname and transliteration
  vocabulary, ``standardise/data/nicknames.csv``) and the surnames have one canonical form
  (``person_std.surname_canonical``: ``standardise/data/surname_variants.csv``), and the two are *not* both exact
  (exact pairs are the identity pass's);
- or the two are written in the other order (forename of one = surname of the other and the other way round, in
  canonical form: ZAHID ALI / ALI ZAHID, MIAH MOHAMMAD / MOHAMMED MIAH), as a combined name column, a family name
  written first (Chinese, Korean, Vietnamese, Hungarian) or a form filled in the other order gives them.  Each
  name is compared in one vocabulary: a surname field read as a forename (``surname_forename_canonical``) against
  the other's forename, so WAI WONG / WONG WEI (WAI and WEI one given name) is a swap although WONG, read as a
  surname, is a spelling of WANG;
- neither forename is a bare initial, and the full dates of birth agree and are no placeholder (at most
  ``max_dob_share`` of the dated records carry the date);
- or (``dob_day_month_swap``) the dates of birth are one date with day and month in the other order (06/05/1993
  and 05/06/1993: a form or system reading dates month first), neither a placeholder, and the names agree exactly
  or in canonical form (or in the other order).  Measured on 10k towns (seeds 3, 7, 11) and 20k seed 5 before
  building it: of 129 scored pairs with such dates and names, 127 were one person; all 17 below the threshold with
  a model probability of at least 0.5 were;
- the recorded sexes do not differ;
- the model already gives the pair at least ``min_probability``;
- the canonical (forename, surname, date of birth) is not carried by records of more than two clusters.

The over-merge guard then runs as on any other link.  Switched on by ``[variants] enabled`` in the model file (on in
the packaged model, off where a model file has no such section).
"""

from __future__ import annotations

import duckdb

from ecins_link.matching.person_fields import table_columns
from ecins_link.matching.person_home import accept_at_threshold
from ecins_link.matching.person_identity import PLACEHOLDER_DOBS
from ecins_link.matching.person_source_priors import withhold_within_source


def surname_key(con: duckdb.DuckDBPyConnection, nodes: str) -> str:
    """The canonical surname column of ``nodes`` (``surname_compact`` on a store standardised before it existed)."""
    if "surname_canonical" in table_columns(con, nodes):
        return "coalesce(surname_canonical, surname_compact)"
    return "surname_compact"


def surname_as_forename(con: duckdb.DuckDBPyConnection, nodes: str) -> str:
    """The surname field read as a forename (``surname_forename_canonical``; the surname itself on a store
    standardised before that column existed)."""
    return ("coalesce(surname_forename_canonical, surname)" if "surname_forename_canonical" in table_columns(con, nodes)
            else "surname")


def same_identity_variants(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, clusters: str,
                           threshold: float, mc: dict, held_sources: list[str] | None = None) -> dict:
    """Accept at ``threshold`` the pairs of ``pairs`` (on ``con``) described in the module doc, using the first
    clustering ``clusters`` (unique_id, cluster_id); returns what was done (``reweighted`` = pairs accepted).
    ``held_sources``: sources whose within-source pairs it leaves alone (``person_source_priors``)."""
    cfg = mc.get("variants") or {}
    if not cfg.get("enabled", False):
        return {"enabled": False}
    low, share = float(cfg.get("min_probability", 0.5)), float(cfg.get("max_dob_share", 0.001))
    max_clusters = int(cfg.get("max_clusters", 2))
    swap = bool(cfg.get("dob_day_month_swap", False))
    sur = surname_key(con, nodes)
    sfc = surname_as_forename(con, nodes)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _va_accept AS
        WITH n AS (SELECT unique_id, forename, forename_canonical AS fc, surname, {sur} AS sc, {sfc} AS sfc, dob, sex
                   FROM "{nodes}"),
        {PLACEHOLDER_DOBS},
        triple AS (SELECT n.fc, n.sc, n.dob, count(DISTINCT c.cluster_id) AS clusters
                   FROM n JOIN "{clusters}" c USING (unique_id)
                   WHERE n.dob IS NOT NULL AND n.fc IS NOT NULL AND n.sc IS NOT NULL GROUP BY 1, 2, 3),
        cand AS (SELECT p.unique_id_l, p.unique_id_r, l.fc, l.sc, l.dob, r.dob AS dob_r
                 FROM "{pairs}" p JOIN n l ON l.unique_id = p.unique_id_l JOIN n r ON r.unique_id = p.unique_id_r
                 WHERE p.match_probability >= ? AND p.match_probability < ?
                   AND ((l.dob = r.dob
                         AND ((l.fc = r.fc AND l.sc = r.sc AND NOT (l.forename = r.forename AND l.surname = r.surname))
                              OR (l.fc = r.sc AND l.sc = r.fc) OR (l.fc = r.sfc AND r.fc = l.sfc)))
                        -- day and month written in the other order (05/06 and 06/05), names exact or variants
                        OR (? AND year(l.dob) = year(r.dob) AND day(l.dob) = month(r.dob) AND month(l.dob) = day(r.dob)
                            AND ((l.fc = r.fc AND l.sc = r.sc) OR (l.fc = r.sc AND l.sc = r.fc))))
                   AND length(l.forename) > 1 AND length(r.forename) > 1 AND length(l.sc) > 1
                   AND coalesce(l.sex = r.sex, TRUE))
        SELECT c.unique_id_l, c.unique_id_r FROM cand c
        JOIN triple t ON t.fc = c.fc AND t.sc = c.sc AND t.dob = c.dob
        WHERE t.clusters <= ? AND c.dob NOT IN (SELECT dob FROM common_dob)
          AND c.dob_r NOT IN (SELECT dob FROM common_dob)""",
                [share, low, float(threshold), swap, max_clusters])
    held = withhold_within_source(con, nodes, "_va_accept", held_sources or [])
    n_pairs = accept_at_threshold(con, pairs, "_va_accept", threshold, "same_identity_variants")
    con.execute("DROP TABLE IF EXISTS _va_accept")
    return {"enabled": True, "reweighted": n_pairs, "held_within_source": held, "min_probability": low, "max_dob_share": share,
            "dob_day_month_swap": swap}
