"""Connected clusters of people for panels, by iterative min-label propagation in DuckDB (no networkx).

Each person starts with its own id as label; each round every person takes the smallest label among
itself and its neighbours over the person-person edges; rounds stop when nothing changes.  Pointer
jumping (a label adopts its own label's label) keeps the number of rounds near log(diameter).
"""

from __future__ import annotations

import logging

import duckdb

log = logging.getLogger(__name__)


def person_components(con: duckdb.DuckDBPyConnection, edge_types: list[str], max_iterations: int = 200) -> int:
    """Write ``person_components(person_id, component_id)`` for every person in ``person_attributes``.

    ``component_id`` = ``C`` + the smallest person_id of the component (stable while membership is).
    Returns the number of rounds used.
    """
    types = ", ".join("'" + t.replace("'", "''") + "'" for t in edge_types) or "NULL"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pc_edges AS
        SELECT DISTINCT src AS a, dst AS b FROM graph_edges WHERE edge_type IN ({types}) AND src <> dst
        UNION SELECT DISTINCT dst, src FROM graph_edges WHERE edge_type IN ({types}) AND src <> dst""")
    con.execute("CREATE OR REPLACE TEMP TABLE _pc_label AS SELECT person_id AS node, person_id AS label "
                "FROM person_attributes")
    rounds = 0
    for rounds in range(1, max_iterations + 1):  # noqa: B007 - rounds reported after the loop
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _pc_next AS
            WITH hop AS (
                SELECT l.node, min(coalesce(n.label, l.label)) AS label
                FROM _pc_label l LEFT JOIN _pc_edges e ON e.a = l.node LEFT JOIN _pc_label n ON n.node = e.b
                GROUP BY l.node),
            best AS (SELECT h.node, least(h.label, l.label) AS label FROM hop h JOIN _pc_label l USING (node))
            SELECT b.node, least(b.label, coalesce(j.label, b.label)) AS label
            FROM best b LEFT JOIN best j ON j.node = b.label""")
        changed = con.execute("""SELECT count(*) FROM _pc_next n JOIN _pc_label l USING (node)
                                 WHERE n.label <> l.label""").fetchone()[0]
        con.execute("CREATE OR REPLACE TEMP TABLE _pc_label AS SELECT * FROM _pc_next")
        if changed == 0:
            break
    else:
        log.warning("person_components: stopped after %d rounds before converging", max_iterations)
    con.execute("""CREATE OR REPLACE TABLE person_components AS
                   SELECT node AS person_id, 'C' || label AS component_id FROM _pc_label""")
    for t in ("_pc_edges", "_pc_label", "_pc_next"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return rounds
