"""Connected components in SQL: min-label propagation with pointer jumping (no networkx).

Used by person clustering (records linked above the threshold) and by the graph (people linked by chosen edge
types).  Every node with an edge starts with its own label; each round it takes the smallest label among itself
and its neighbours, then adopts its label's label (pointer jumping keeps the rounds near log(diameter)); rounds
stop when nothing changes.  The rounds run over integer ids numbered in id order (so the smallest number is the
smallest id; joins on integers are ~3x faster than on text ids) and only over nodes that have an edge: every
other node is a component of one.
"""

from __future__ import annotations

import logging

import duckdb

log = logging.getLogger(__name__)


def label_components(con: duckdb.DuckDBPyConnection, nodes: str, edges: str, out: str,
                     max_iterations: int | None = None) -> int:
    """Write temp table ``out(node, cid)``: every ``node`` of the query ``nodes`` (one column ``node``) with
    ``cid`` = the smallest node of its component over the query ``edges`` (columns ``a``, ``b``; either
    direction).  ``max_iterations``: stop (with a warning) after that many rounds; None = until stable.
    Returns the number of rounds."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _lc_ids AS
        SELECT node, CAST(row_number() OVER (ORDER BY node) AS INTEGER) AS i
        FROM (SELECT a AS node FROM ({edges}) UNION SELECT b FROM ({edges}))""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _lc_adj AS
        WITH e AS (SELECT x.i AS a, y.i AS b FROM ({edges}) g JOIN _lc_ids x ON x.node = g.a
                   JOIN _lc_ids y ON y.node = g.b)
        SELECT a, b FROM e UNION SELECT b, a FROM e""")
    con.execute("CREATE OR REPLACE TEMP TABLE _lc_label AS SELECT i AS node, i AS cid FROM _lc_ids")
    rounds = 0
    while max_iterations is None or rounds < max_iterations:
        rounds += 1
        con.execute("""CREATE OR REPLACE TEMP TABLE _lc_next AS
            WITH hop AS (
                SELECT l.node, least(l.cid, min(n.cid)) AS cid
                FROM _lc_label l JOIN _lc_adj e ON e.a = l.node JOIN _lc_label n ON n.node = e.b
                GROUP BY l.node, l.cid)
            SELECT h.node, least(h.cid, coalesce(p.cid, h.cid)) AS cid
            FROM hop h LEFT JOIN hop p ON p.node = h.cid""")
        changed = con.execute("""SELECT count(*) FROM _lc_next x JOIN _lc_label o USING (node)
                                 WHERE x.cid <> o.cid""").fetchone()[0]
        con.execute("CREATE OR REPLACE TEMP TABLE _lc_label AS SELECT * FROM _lc_next")
        if changed == 0:
            break
    else:
        log.warning("label_components: stopped after %d rounds before converging", max_iterations)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {out} AS
        WITH lab AS (SELECT m.node, c.node AS cid FROM _lc_label l JOIN _lc_ids m ON m.i = l.node
                     JOIN _lc_ids c ON c.i = l.cid)
        SELECT n.node, coalesce(lab.cid, n.node) AS cid FROM ({nodes}) n LEFT JOIN lab USING (node)""")
    con.execute("DROP TABLE _lc_next; DROP TABLE _lc_adj; DROP TABLE _lc_label; DROP TABLE _lc_ids")
    return rounds
