"""The graph stage: person, location and event nodes and their edges, households, clusters and churn.

Whole-population work is SQL on the store connection; networkx is used only for case-sized subgraphs
(:mod:`ecins_link.graph.analysis`).  Settings live in ``graph_rules.toml``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ecins_link.config import ProjectConfig, read_settings
from ecins_link.graph import events as ev
from ecins_link.graph import people
from ecins_link.graph.components import person_components
from ecins_link.scratch_steps import Scratch, Step, scratch, sql_step
from ecins_link.store import Store

RULES_FILE = Path(__file__).with_name("graph_rules.toml")
EDGE_COLUMNS = ("CAST(src AS VARCHAR) AS src, CAST(dst AS VARCHAR) AS dst, CAST(edge_type AS VARCHAR) AS edge_type, "
                "CAST(role AS VARCHAR) AS role, CAST(start_date AS DATE) AS start_date, "
                "CAST(end_date AS DATE) AS end_date, CAST(weight AS DOUBLE) AS weight, "
                "CAST(source AS VARCHAR) AS source, CAST(record_key AS VARCHAR) AS record_key")

# the edge types each part of graph_edges holds
PART_TYPES = {"_g_resides_at": ("resides_at",), "_g_involved_in": ("involved_in",), "_g_occurred_at": ("occurred_at",),
              "_g_same_household": ("same_household",), "_g_co_involved": ("co_involved", "victim_suspect")}


def load_graph_rules(path: str | Path | None = None) -> dict:
    """Read the graph settings (``graph_rules.toml`` by default)."""
    return read_settings(Path(path) if path else RULES_FILE, "graph rules", ("ages", "churn", "roles", "components"))


def resolve_as_of(store: Store, config: ProjectConfig) -> dt.date:
    """``project.as_of``, else the latest event date in ``event_records``, else today (docs/contracts.md)."""
    return store.as_of(config.project.as_of)


GRAPH_TABLES = ("person_attributes", "residences", "households", "graph_nodes", "graph_edges", "person_components",
                "location_churn")


def graph_steps(work: Scratch, config: ProjectConfig, rules: dict, as_of: dt.date) -> tuple[list[Step], list[Step]]:
    """The graph as scratch steps (run on cursors, side by side) and the main steps that write the store's
    tables in the stage transaction."""
    store = work.store
    roles, comp = rules["roles"], rules["components"]
    parts = {
        "_g_resides_at": ("""SELECT person_id AS src, location_id AS dst, 'resides_at' AS edge_type, NULL AS role,
                      first_seen AS start_date, last_seen AS end_date, n_records AS weight, NULL AS source,
                      NULL AS record_key FROM residences""", ("residences",)),
        "_g_involved_in": (ev.involved_sql(), ("_g_rows",)),
        "_g_occurred_at": (ev.occurred_sql(), ("_g_events", "residences")),
        "_g_same_household": (people.same_household_edges_sql(), ("households",)),
        "_g_co_involved": (ev.co_involved_sql(roles.get("victim", []), roles.get("suspect", []),
                                              int(comp.get("max_people_per_event", 25))), ("_g_events",)),
    }
    # graph_edges is a view over the parts in the scratch database (churn and the store's table read it);
    # components read a view over only the parts with their edge types, so they start sooner
    edges = " UNION ALL ".join(f"SELECT {EDGE_COLUMNS} FROM {work.table(p)}" for p in parts)
    linking = [p for p in parts if set(PART_TYPES[p]) & set(comp.get("edge_types", []))] or list(parts)
    person_edges = " UNION ALL ".join(f"SELECT {EDGE_COLUMNS} FROM {work.table(p)}" for p in linking)
    child_under = int(rules["ages"]["child_under"])
    has_gaz, has_addr = store.has_table("gazetteer_std"), store.has_table("address_records")
    steps = [  # longest chains first: a free cursor takes the first step in this order that can start
        sql_step("_g_rows", ev.event_rows_sql(config)),
        sql_step("residences", people.residences_sql(has_addr)),
        sql_step("person_attributes", people.person_attributes_sql(as_of, child_under, store.has_table("person_std"))),
        sql_step("_g_events", ev.events_sql(), ("_g_rows",)),
        sql_step("_g_location_nodes", ev.location_nodes_sql(has_gaz, has_addr)),  # early: graph_nodes' write
        sql_step("households", people.households_sql(as_of), ("residences", "person_attributes")),
        # occurred_at ends the longest chain (rows -> events -> occurred_at -> the graph_edges write)
        *(sql_step(name, f"SELECT * FROM ({parts[name][0]})", parts[name][1])
          for name in sorted(parts, key=lambda n: n != "_g_occurred_at")),
        Step("graph_edges", lambda cur: cur.execute(f"CREATE OR REPLACE VIEW graph_edges AS {edges}"), tuple(parts)),
        Step("_g_person_edges", lambda cur: cur.execute(f"CREATE OR REPLACE VIEW _g_person_edges AS {person_edges}"),
             tuple(linking)),
        Step("person_components", lambda cur: person_components(cur, comp.get("edge_types", []),
                                                                int(comp.get("max_iterations", 200)),
                                                                "_g_person_edges"),
             ("_g_person_edges", "person_attributes")),
        sql_step("location_churn", ev.churn_sql(as_of, int(rules["churn"]["window_days"])),
                 ("residences", "households", "graph_edges")),
    ]
    nodes = work.write("graph_nodes", ev.nodes_sql(has_gaz, has_addr, "_g_location_nodes"),
                       ("person_attributes", "_g_location_nodes", "_g_events"))
    # one CREATE TABLE AS: rows appended to a table made in the same transaction are written again at commit
    edge_write = work.write("graph_edges", f"SELECT * FROM {work.table('graph_edges')}", ("graph_edges",))
    main = [work.copy("residences"), work.copy("person_attributes"), work.copy("households"), nodes, edge_write,
            work.copy("person_components"), work.copy("location_churn")]
    return steps, main


def build_graph(store: Store, config: ProjectConfig, rules_path: str | Path | None = None) -> None:
    """The graph stage: write person_attributes, residences, households, graph_nodes, graph_edges,
    person_components and location_churn (docs/contracts.md).

    The tables are built side by side on cursors in an attached in-memory scratch database from the committed
    inputs (:mod:`ecins_link.scratch_steps`), while the stage transaction copies each finished one into the
    store (graph_nodes and graph_edges are written there only).
    """
    store.require("person_clusters", "person_records", "event_records", "address_matches", stage="graph")
    rules = load_graph_rules(rules_path)
    as_of = resolve_as_of(store, config)
    con = store.con
    with scratch(store, "graph") as work:
        steps, main = graph_steps(work, config, rules, as_of)
        with store.stage("graph"):
            done = work.run(steps, main=main)
            by_type = dict(con.execute(f"SELECT edge_type, count(*) FROM {work.table('graph_edges')} GROUP BY 1")
                           .fetchall())
            n_households = con.execute(f"SELECT count(DISTINCT household_id) FROM {work.table('households')}"
                                       ).fetchone()[0]
            store.audit("combination", "build_graph",
                        details={"as_of": as_of.isoformat(), "component_rounds": done["person_components"],
                                 "edges_by_type": by_type, "households": n_households},
                        row_counts={t: store.count(t) for t in GRAPH_TABLES})
