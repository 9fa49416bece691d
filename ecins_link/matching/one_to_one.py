"""One-to-one linking between extracts that hold at most one record per person.

When two sources are each declared to hold one record per person (``linkage.one_to_one_sources``; e.g. two
de-duplicated registers being linked), a record's best candidate in the other source is strong evidence on its
own: below the match threshold, a *mutual* best match (each record is the other's single best-scoring candidate
in the other source, no tie) with probability >= ``linkage.one_to_one_min_probability`` is linked, provided
both records are still alone in their clusters and no clerical cannot-link decision forbids it.  This is the
one-to-one assignment of classic record linkage (cf. recordlinkage's ``OneToOneLinking``) done in SQL over the
scored pairs, restricted so that it can only join two singletons: it never grows or bridges clusters.
"""

from __future__ import annotations

import duckdb
import pandas as pd

_SQL = """
WITH cand AS (
    SELECT p.unique_id_l AS x, p.unique_id_r AS y, p.match_probability AS pr
    FROM {pairs} p JOIN {clusters} a ON a.unique_id = p.unique_id_l JOIN {clusters} b ON b.unique_id = p.unique_id_r
    WHERE a.source <> b.source AND list_contains($sources, a.source) AND list_contains($sources, b.source)
),
sym AS (SELECT x, y, pr FROM cand UNION ALL SELECT y, x, pr FROM cand),
top AS (SELECT x, max(pr) AS m FROM sym GROUP BY x),
best AS (  -- each record's single best candidate in another one-to-one source (a tie: no best)
    SELECT s.x, any_value(s.y) AS y, max(s.pr) AS pr FROM sym s JOIN top t ON t.x = s.x AND s.pr = t.m
    GROUP BY s.x HAVING count(*) = 1
),
sizes AS (SELECT cluster_id, count(*) AS n FROM {clusters} GROUP BY cluster_id),
single AS (SELECT c.unique_id, c.cluster_id FROM {clusters} c JOIN sizes USING (cluster_id) WHERE n = 1)
SELECT b1.x, b1.y, b1.pr, sx.cluster_id AS cx
FROM best b1 JOIN best b2 ON b2.x = b1.y AND b2.y = b1.x
JOIN single sx ON sx.unique_id = b1.x JOIN single sy ON sy.unique_id = b1.y
WHERE b1.x < b1.y AND b1.pr >= $floor
  AND NOT EXISTS (SELECT 1 FROM _oto_cannot c WHERE c.a = least(b1.x, b1.y) AND c.b = greatest(b1.x, b1.y))
"""


def link_one_to_one(con: duckdb.DuckDBPyConnection, clusters: str, pairs: str, sources: list[str],
                    min_probability: float, cannot_link: list[tuple[str, str]]) -> int:
    """Join mutual-best singleton pairs across ``sources`` in ``clusters`` (unique_id, source, cluster_id,
    cluster_confidence; updated in place) from scored ``pairs``; returns how many pairs were linked."""
    if len(set(sources)) < 2:
        return 0
    con.register("_oto_cannot_df", pd.DataFrame(cannot_link, columns=["a", "b"], dtype="string"))
    try:
        con.execute("""CREATE OR REPLACE TEMP TABLE _oto_cannot AS
                       SELECT least(a, b) AS a, greatest(a, b) AS b FROM _oto_cannot_df""")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _oto_links AS {_SQL.format(pairs=pairs, clusters=clusters)}",
                    {"sources": sorted(set(sources)), "floor": float(min_probability)})
        n = con.execute("SELECT count(*) FROM _oto_links").fetchone()[0]
        if n:
            con.execute(f"""UPDATE {clusters} c SET cluster_id = l.cx, cluster_confidence = l.pr
                            FROM (SELECT x AS u, cx, pr FROM _oto_links UNION ALL SELECT y, cx, pr FROM _oto_links) l
                            WHERE c.unique_id = l.u""")
    finally:
        con.unregister("_oto_cannot_df")
        con.execute("DROP TABLE IF EXISTS _oto_cannot; DROP TABLE IF EXISTS _oto_links")
    return int(n)
