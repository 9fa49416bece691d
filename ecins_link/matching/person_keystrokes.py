"""Same identity with one keying error, at another address: one name mistyped by one keystroke.

A record keyed as OLVIIA BROWN, GEOGRE COOPER or SSAN WRIGHT, with the person's full date of birth, is one keystroke
from the name the person's other records carry.  At one address the same-home rule (``person_home``) accepts it.
At another address such a pair scores just under the match threshold: a keying error weighs less than an exact
name, a common surname weighs little at scale, and the move costs the address comparison.  The loss falls on the
commonest names, and so on the name origins that carry them.  On the 250,000-person synthetic town (seed 1) these
pairs were the largest class of missed pairs with a full date of birth in the lowest origin groups.

This pass accepts such a pair at the match threshold (no further) when

- one name agrees, exactly or in canonical form (the nickname and transliteration vocabularies, as for
  ``person_variants``), and the other is one keystroke (Damerau-Levenshtein distance 1: a letter missed, added,
  changed or two letters swapped) from a spelling of the other record's name in the extract: GEOGRE / GEORGE,
  HUSWEIN / HUSSEIN where the other record reads HUSSAIN; both spellings at least ``min_length`` letters;
- the mistyped spelling is a keying error, not a second name: it is carried by at most ``max_spelling_ratio`` as
  many records as the spelling it is a keystroke from (SARA and SARAH, FATEMA and FATIMA are names in their own
  right);
- the full dates of birth agree and are no placeholder (at most ``max_dob_share`` of the dated records carry it);
- the recorded sexes do not differ, and the model already gives the pair at least ``min_probability``;
- the record with the keying error is in a cluster that holds no record of the name meant (there the model has
  compared the two people by the same name and kept them apart);
- the identity meant (both names in canonical form, date of birth) is carried by at most ``max_clusters``
  clusters: with two such people the mistyped record could be either;
- the two clusters share no address (two people of one date of birth and surname at one home are twins, whose
  names are often one letter apart: AIDAN / AIDEN);
- the pair is not within a source the source-prior step holds the identity passes off.

What it cannot tell apart: a keying error of one person from a second person of the same surname and date of
birth whose name is one letter from the first's (on the 250k town, seed 1, 226 of the 232 record pairs it accepted
with names of four letters or more were one person).  Switched on by ``[keystrokes] enabled`` in the model file (on in the packaged model,
off where a model file has no such section).
"""

from __future__ import annotations

import duckdb

from ecins_link.matching.person_fields import table_columns
from ecins_link.matching.person_home import accept_at_threshold
from ecins_link.matching.person_identity import PLACEHOLDER_DOBS
from ecins_link.matching.person_source_priors import withhold_within_source
from ecins_link.matching.person_variants import surname_key

_ACCEPT = "_ks_accept"


def _home_key(con: duckdb.DuckDBPyConnection, nodes: str) -> str:
    """The address key of ``nodes``: the UPRN where the records carry one, else the normalised address."""
    return "coalesce(n.uprn, n.address_norm)" if "uprn" in table_columns(con, nodes) else "n.address_norm"


def one_keystroke_elsewhere(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, clusters: str,
                            threshold: float, mc: dict, held_sources: list[str] | None = None) -> dict:
    """Accept at ``threshold`` the pairs of ``pairs`` (on ``con``) described in the module doc, using the first
    clustering ``clusters`` (unique_id, cluster_id); returns what was done (``reweighted`` = pairs accepted).
    ``held_sources``: sources whose within-source pairs it leaves alone (``person_source_priors``)."""
    cfg = mc.get("keystrokes") or {}
    if not cfg.get("enabled", False):
        return {"enabled": False}
    low, share = float(cfg.get("min_probability", 0.5)), float(cfg.get("max_dob_share", 0.001))
    ratio, min_length = float(cfg.get("max_spelling_ratio", 0.01)), int(cfg.get("min_length", 3))
    max_clusters = int(cfg.get("max_clusters", 1))
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {_ACCEPT} AS
        WITH n AS (SELECT n.unique_id, n.forename AS f, coalesce(n.forename_canonical, n.forename) AS fc,
                          n.surname_compact AS s, {surname_key(con, nodes)} AS sc, n.dob, n.sex,
                          {_home_key(con, nodes)} AS home, c.cluster_id
                   FROM "{nodes}" n JOIN "{clusters}" c USING (unique_id)),
        {PLACEHOLDER_DOBS},
        -- records per spelling, and the canonical form(s) of each spelling, per field
        spelt AS (SELECT 'forename' AS field, f AS v, count(*) AS k FROM n WHERE f IS NOT NULL GROUP BY 2
                  UNION ALL SELECT 'surname', s, count(*) FROM n WHERE s IS NOT NULL GROUP BY 2),
        canon AS (SELECT DISTINCT 'forename' AS field, f AS v, fc AS c FROM n WHERE f IS NOT NULL
                  UNION ALL SELECT DISTINCT 'surname', s, sc FROM n WHERE s IS NOT NULL),
        -- one name agrees in canonical form, the other does not
        cand AS (SELECT p.unique_id_l, p.unique_id_r, l.cluster_id AS cl_l, r.cluster_id AS cl_r, l.dob,
                        CASE WHEN l.sc = r.sc THEN 'forename' ELSE 'surname' END AS field,
                        CASE WHEN l.sc = r.sc THEN l.f ELSE l.s END AS v_l,
                        CASE WHEN l.sc = r.sc THEN r.f ELSE r.s END AS v_r,
                        CASE WHEN l.sc = r.sc THEN l.fc ELSE l.sc END AS c_l,
                        CASE WHEN l.sc = r.sc THEN r.fc ELSE r.sc END AS c_r, l.fc AS fc_l, l.sc AS sc_l
                 FROM "{pairs}" p JOIN n l ON l.unique_id = p.unique_id_l JOIN n r ON r.unique_id = p.unique_id_r
                 WHERE p.match_probability >= ? AND p.match_probability < ?
                   AND l.cluster_id <> r.cluster_id AND l.dob = r.dob AND coalesce(l.sex = r.sex, TRUE)
                   AND length(l.f) > 1 AND length(r.f) > 1
                   AND ((l.sc = r.sc AND l.fc <> r.fc) OR (l.fc = r.fc AND l.sc <> r.sc))
                   AND l.dob NOT IN (SELECT dob FROM common_dob)),
        -- either record may carry the keying error (t); the other's canonical form is the name meant
        sides AS (SELECT *, cl_l AS typo_cluster, v_l AS t, c_r AS meant FROM cand
                  UNION ALL SELECT *, cl_r, v_r, c_l FROM cand),
        -- a keying error: one keystroke from a spelling of the name meant, and far rarer than that spelling
        keyed AS (SELECT DISTINCT x.* FROM sides x
                  JOIN spelt tk ON tk.field = x.field AND tk.v = x.t
                  JOIN canon w ON w.field = x.field AND w.c = x.meant
                  JOIN spelt wk ON wk.field = x.field AND wk.v = w.v
                  WHERE least(length(x.t), length(w.v)) >= ? AND damerau_levenshtein(x.t, w.v) = 1
                    AND tk.k <= ? * wk.k),
        written AS (SELECT DISTINCT cluster_id, 'forename' AS field, fc AS c FROM n WHERE fc IS NOT NULL
                    UNION ALL SELECT DISTINCT cluster_id, 'surname', sc FROM n WHERE sc IS NOT NULL),
        identity AS (SELECT fc, sc, dob, count(DISTINCT cluster_id) AS clusters FROM n
                     WHERE dob IS NOT NULL AND fc IS NOT NULL AND sc IS NOT NULL GROUP BY 1, 2, 3),
        homes AS (SELECT DISTINCT cluster_id, home FROM n WHERE home IS NOT NULL),
        shared AS (SELECT DISTINCT k.cl_l, k.cl_r FROM keyed k JOIN homes a ON a.cluster_id = k.cl_l
                   JOIN homes b ON b.cluster_id = k.cl_r AND b.home = a.home)
        SELECT DISTINCT k.unique_id_l, k.unique_id_r FROM keyed k
        JOIN identity i ON i.dob = k.dob
         AND i.fc = CASE WHEN k.field = 'forename' THEN k.meant ELSE k.fc_l END
         AND i.sc = CASE WHEN k.field = 'forename' THEN k.sc_l ELSE k.meant END
        WHERE i.clusters <= ?
          AND NOT EXISTS (SELECT 1 FROM written w
                          WHERE w.cluster_id = k.typo_cluster AND w.field = k.field AND w.c = k.meant)
          AND NOT EXISTS (SELECT 1 FROM shared s WHERE s.cl_l = k.cl_l AND s.cl_r = k.cl_r)""",
                [share, low, float(threshold), min_length, ratio, max_clusters])
    held = withhold_within_source(con, nodes, _ACCEPT, held_sources or [])
    n_pairs = accept_at_threshold(con, pairs, _ACCEPT, threshold, "same_identity_keystroke")
    con.execute(f"DROP TABLE IF EXISTS {_ACCEPT}")
    return {"enabled": True, "reweighted": n_pairs, "held_within_source": held, "min_probability": low,
            "max_dob_share": share, "max_spelling_ratio": ratio, "min_length": min_length,
            "max_clusters": max_clusters}
