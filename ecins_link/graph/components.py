"""Connected clusters of people for panels (``ecins_link.components.label_components``, min-label propagation
in DuckDB), computed on a private in-memory DuckDB connection (inputs and result copied as Arrow; only the
finished ``person_components`` table is written to the store).
"""

from __future__ import annotations

import logging

import duckdb

from ecins_link.components import label_components

log = logging.getLogger(__name__)


def person_components(con: duckdb.DuckDBPyConnection, edge_types: list[str], max_iterations: int = 200,
                      memory_limit: str | None = None) -> int:
    """Write ``person_components(person_id, component_id)`` for every person in ``person_attributes``.

    ``component_id`` = ``C`` + the smallest person_id of the component (stable while membership is).
    ``memory_limit`` applies to the private connection the rounds run on.  Returns the number of rounds used.
    """
    types = ", ".join("'" + t.replace("'", "''") + "'" for t in edge_types) or "NULL"
    edges = con.execute(f"""SELECT DISTINCT src AS a, dst AS b FROM graph_edges
                            WHERE edge_type IN ({types}) AND src <> dst""").to_arrow_table()
    people = con.execute("SELECT person_id FROM person_attributes").to_arrow_table()
    mem = duckdb.connect()
    try:
        if memory_limit:
            mem.execute(f"SET memory_limit = '{memory_limit}'")
        for name, table in (("_pc_e", edges), ("_pc_people", people)):
            mem.register("__pc_in", table)
            mem.execute(f"CREATE TABLE {name} AS SELECT * FROM __pc_in")
            mem.unregister("__pc_in")
        rounds = label_components(mem, "SELECT person_id AS node FROM _pc_people", """SELECT a, b FROM _pc_e  -- between people only
            WHERE a IN (SELECT person_id FROM _pc_people) AND b IN (SELECT person_id FROM _pc_people)""",
                                  "_pc_label", max_iterations)
        result = mem.execute("SELECT node AS person_id, 'C' || cid AS component_id FROM _pc_label").to_arrow_table()
    finally:
        mem.close()
    con.register("__pc_out", result)
    try:
        con.execute("CREATE OR REPLACE TABLE person_components AS SELECT * FROM __pc_out")
    finally:
        con.unregister("__pc_out")
    return rounds
