"""Same identity at another address: records agreeing exactly on full forename, surname and date of birth.

At scale a common name weighs little (term frequencies), the prior falls with the number of records, and a move
costs the address comparison: on a 250,000-person town, pairs that agree exactly on forename, surname and full
date of birth but not on address scored 3.3-4.2 bits (probability 0.91-0.95), just under the match threshold, and
most of them were one person (housing tenancies at successive addresses, a council record from before a move).
The loss fell on the commonest names, so on one name-origin group far more than on the others.

This pass accepts such a pair at the match threshold (no further) when

- forename and surname agree exactly (neither a bare initial) and so does the full date of birth;
- that date is not a placeholder: at most ``max_dob_share`` of the extract's dated records carry it;
- the recorded sexes do not differ;
- the model already gives the pair at least ``min_probability`` (nothing in it contradicts strongly);
- the exact (forename, surname, date of birth) is not carried by records of two *other* clusters besides the
  pair's (a name and date shared that widely is a coincidence to leave to the reviewer);
- the identity is distinctive at this size: the expected number of *other* people who share it by chance,
  ``lambda = (clusters carrying the full name - 1) x share of dated records born that year / 365.25``, is at most
  ``max_expected_namesakes`` (default ``(1 - threshold) / threshold``: with more expected namesakes than that the
  pair is likelier a coincidence than the threshold allows).  Namesake collisions grow with the population (about
  N^2 x sum of name-frequency^2 x sum of date-frequency^2: 449 pairs of people in the 250k town, as independence
  predicts, 502): a name as common as JOHN SMITH in a town of millions is left to the model and the reviewer.

The over-merge guard then runs on the new clusters as on any other.  Switched on by ``[identity] enabled`` in
the model file (on in the packaged model; off where a model file has no such section).
"""

from __future__ import annotations

import duckdb

from ecins_link.matching.person_home import accept_at_threshold
from ecins_link.matching.person_source_priors import withhold_within_source

# the CTEs ``dated`` and ``common_dob`` over a CTE ``n`` with a ``dob`` column: the dates of birth more than
# the share (the one ``?``) of the dated records carry -- placeholders, never accepted by the identity passes
PLACEHOLDER_DOBS = """dated AS (SELECT count(dob) AS total FROM n),
        common_dob AS (SELECT dob FROM n, dated WHERE dob IS NOT NULL GROUP BY dob, total
                       HAVING count(*) > greatest(2, ? * total))"""


def same_identity_elsewhere(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, clusters: str,
                            threshold: float, mc: dict, held_sources: list[str] | None = None) -> dict:
    """Accept at ``threshold`` the pairs of ``pairs`` (on ``con``) described in the module doc, using the first
    clustering ``clusters`` (unique_id, cluster_id); returns what was done (``reweighted`` = pairs accepted).
    ``held_sources``: sources whose within-source pairs it leaves alone (``person_source_priors``)."""
    cfg = mc.get("identity") or {}
    if not cfg.get("enabled", False):
        return {"enabled": False}
    low, share = float(cfg.get("min_probability", 0.5)), float(cfg.get("max_dob_share", 0.001))
    t = min(max(float(threshold), 1e-9), 1 - 1e-9)
    most = float(cfg.get("max_expected_namesakes", (1 - t) / t))
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _id_accept AS
        WITH n AS (SELECT unique_id, forename, surname, dob, sex FROM "{nodes}"),
        {PLACEHOLDER_DOBS},
        triple AS (SELECT n.forename, n.surname, n.dob, count(DISTINCT c.cluster_id) AS clusters
                   FROM n JOIN "{clusters}" c USING (unique_id)
                   WHERE n.dob IS NOT NULL AND n.forename IS NOT NULL AND n.surname IS NOT NULL GROUP BY 1, 2, 3),
        -- people the extract holds under each full name (first clustering), and the share born in each year
        named AS (SELECT n.forename, n.surname, count(DISTINCT c.cluster_id) AS people
                  FROM n JOIN "{clusters}" c USING (unique_id)
                  WHERE n.forename IS NOT NULL AND n.surname IS NOT NULL GROUP BY 1, 2),
        born AS (SELECT year(n.dob) AS y, count(*) / any_value(dated.total) AS share FROM n, dated
                 WHERE n.dob IS NOT NULL GROUP BY 1)
        SELECT p.unique_id_l, p.unique_id_r
        FROM "{pairs}" p JOIN n l ON l.unique_id = p.unique_id_l JOIN n r ON r.unique_id = p.unique_id_r
        JOIN triple t ON t.forename = l.forename AND t.surname = l.surname AND t.dob = l.dob
        JOIN named m ON m.forename = l.forename AND m.surname = l.surname JOIN born b ON b.y = year(l.dob)
        WHERE p.match_probability >= ? AND p.match_probability < ?
          AND (m.people - 1) * b.share / 365.25 <= ?
          AND l.forename = r.forename AND l.surname = r.surname AND l.dob = r.dob
          AND length(l.forename) > 1 AND length(l.surname) > 1
          AND coalesce(l.sex = r.sex, TRUE) AND t.clusters <= 2
          AND l.dob NOT IN (SELECT dob FROM common_dob)""", [share, low, float(threshold), most])
    held = withhold_within_source(con, nodes, "_id_accept", held_sources or [])
    n_pairs = accept_at_threshold(con, pairs, "_id_accept", threshold, "same_identity")
    con.execute("DROP TABLE IF EXISTS _id_accept")
    return {"enabled": True, "reweighted": n_pairs, "held_within_source": held, "min_probability": low, "max_dob_share": share,
            "max_expected_namesakes": round(most, 6)}
