"""Connected clusters of people for panels, by iterative min-label propagation in DuckDB (no networkx).

Each person starts with its own id as label; each round every person takes the smallest label among
itself and its neighbours over the person-person edges; rounds stop when nothing changes.  Pointer
jumping (a label adopts its own label's label) keeps the number of rounds near log(diameter).

The rounds run on a private in-memory DuckDB connection (inputs and result copied as Arrow; only the
finished ``person_components`` table is written to the store), over integer ids numbered in person_id
order (so the smallest number is the smallest id) and over only the people who have an edge: joins on
integers are ~3x faster than on the text ids, and everyone else is a component of one.
"""

from __future__ import annotations

import logging

import duckdb

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
        mem.execute("""CREATE TABLE _pc_ids AS
                       SELECT person_id, CAST(row_number() OVER (ORDER BY person_id) AS INTEGER) AS i FROM _pc_people""")
        mem.execute("""CREATE TABLE _pc_edges AS  -- both directions, between people only
                       WITH e AS (SELECT x.i AS a, y.i AS b FROM _pc_e
                                  JOIN _pc_ids x ON x.person_id = _pc_e.a JOIN _pc_ids y ON y.person_id = _pc_e.b)
                       SELECT a, b FROM e UNION SELECT b, a FROM e""")
        mem.execute("CREATE TABLE _pc_label AS SELECT DISTINCT a AS node, a AS label FROM _pc_edges")
        rounds = _propagate(mem, max_iterations)
        result = mem.execute("""SELECT p.person_id, 'C' || m.person_id AS component_id
                                FROM _pc_ids p LEFT JOIN _pc_label l ON l.node = p.i
                                JOIN _pc_ids m ON m.i = coalesce(l.label, p.i)""").to_arrow_table()
    finally:
        mem.close()
    con.register("__pc_out", result)
    try:
        con.execute("CREATE OR REPLACE TABLE person_components AS SELECT * FROM __pc_out")
    finally:
        con.unregister("__pc_out")
    return rounds


def _propagate(mem: duckdb.DuckDBPyConnection, max_iterations: int) -> int:
    """Min-label rounds over ``_pc_edges(a, b)`` (both directions) until ``_pc_label(node, label)`` is stable."""
    rounds = 0
    for rounds in range(1, max_iterations + 1):  # noqa: B007 - rounds reported after the loop
        mem.execute("""
            CREATE OR REPLACE TABLE _pc_next AS
            WITH hop AS (
                SELECT l.node, min(coalesce(n.label, l.label)) AS label
                FROM _pc_label l LEFT JOIN _pc_edges e ON e.a = l.node LEFT JOIN _pc_label n ON n.node = e.b
                GROUP BY l.node),
            best AS (SELECT h.node, least(h.label, l.label) AS label FROM hop h JOIN _pc_label l USING (node))
            SELECT b.node, least(b.label, coalesce(j.label, b.label)) AS label
            FROM best b LEFT JOIN best j ON j.node = b.label""")
        changed = mem.execute("""SELECT count(*) FROM _pc_next n JOIN _pc_label l USING (node)
                                 WHERE n.label <> l.label""").fetchone()[0]
        mem.execute("CREATE OR REPLACE TABLE _pc_label AS SELECT * FROM _pc_next")
        if changed == 0:
            break
    else:
        log.warning("person_components: stopped after %d rounds before converging", max_iterations)
    return rounds
