"""Connected clusters of people for panels (``ecins_link.components.label_components``, min-label propagation
in DuckDB).  The graph stage runs it on a scratch cursor (:mod:`ecins_link.scratch_steps`): the rounds' tables
are that cursor's temp tables and the result lands in the scratch database.
"""

from __future__ import annotations

import logging

import duckdb

from ecins_link.components import label_components

log = logging.getLogger(__name__)


def person_components(con: duckdb.DuckDBPyConnection, edge_types: list[str], max_iterations: int = 200,
                      edges: str = "graph_edges") -> int:
    """Create ``person_components(person_id, component_id)`` on ``con`` for every person in ``person_attributes``,
    joined by the edges of the given types in ``edges`` (a table or view with graph_edges' columns).

    ``component_id`` = ``C`` + the smallest person_id of the component (stable while membership is).
    Returns the number of rounds used.
    """
    types = ", ".join("'" + t.replace("'", "''") + "'" for t in edge_types) or "NULL"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _pc_e AS SELECT DISTINCT src AS a, dst AS b FROM {edges}
                    WHERE edge_type IN ({types}) AND src <> dst""")
    con.execute("CREATE OR REPLACE TEMP TABLE _pc_people AS SELECT person_id FROM person_attributes")
    try:
        rounds = label_components(con, "SELECT person_id AS node FROM _pc_people", """SELECT a, b FROM _pc_e  -- between people only
            WHERE a IN (SELECT person_id FROM _pc_people) AND b IN (SELECT person_id FROM _pc_people)""",
                                  "_pc_label", max_iterations)
        con.execute("CREATE OR REPLACE TABLE person_components AS "
                    "SELECT node AS person_id, 'C' || cid AS component_id FROM _pc_label")
    finally:
        for name in ("_pc_e", "_pc_people", "_pc_label"):
            con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")
    return rounds
