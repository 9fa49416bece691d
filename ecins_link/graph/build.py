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
from ecins_link.store import Store

RULES_FILE = Path(__file__).with_name("graph_rules.toml")
EDGE_COLUMNS = ("CAST(src AS VARCHAR) AS src, CAST(dst AS VARCHAR) AS dst, CAST(edge_type AS VARCHAR) AS edge_type, "
                "CAST(role AS VARCHAR) AS role, CAST(start_date AS DATE) AS start_date, "
                "CAST(end_date AS DATE) AS end_date, CAST(weight AS DOUBLE) AS weight, "
                "CAST(source AS VARCHAR) AS source, CAST(record_key AS VARCHAR) AS record_key")


def load_graph_rules(path: str | Path | None = None) -> dict:
    """Read the graph settings (``graph_rules.toml`` by default)."""
    return read_settings(Path(path) if path else RULES_FILE, "graph rules", ("ages", "churn", "roles", "components"))


def resolve_as_of(store: Store, config: ProjectConfig) -> dt.date:
    """``project.as_of``, else the latest event date in ``event_records``, else today (docs/contracts.md)."""
    return store.as_of(config.project.as_of)


def build_graph(store: Store, config: ProjectConfig, rules_path: str | Path | None = None) -> None:
    """The graph stage: write person_attributes, residences, households, graph_nodes, graph_edges,
    person_components and location_churn (docs/contracts.md)."""
    store.require("person_clusters", "person_records", "event_records", "address_matches", stage="graph")
    rules = load_graph_rules(rules_path)
    as_of = resolve_as_of(store, config)
    con = store.con
    has_std = store.has_table("person_std")
    has_gaz = store.has_table("gazetteer_std")
    has_addr = store.has_table("address_records")
    # the event temp tables read only committed inputs: built before the stage transaction, they are
    # committed (session-local) storage, which the four edge/node queries read about twice as fast as
    # tables created inside the transaction
    ev.build_event_tables(con, config)
    with store.stage("graph"):
        store.write_table("person_attributes",
                          people.person_attributes_sql(as_of, int(rules["ages"]["child_under"]), has_std))
        people.build_residences(con, has_addr)
        people.build_households(con, as_of)
        roles, comp = rules["roles"], rules["components"]
        parts = [
            """SELECT person_id AS src, location_id AS dst, 'resides_at' AS edge_type, NULL AS role,
                      first_seen AS start_date, last_seen AS end_date, n_records AS weight, NULL AS source,
                      NULL AS record_key FROM residences""",
            ev.involved_sql(), ev.occurred_sql(), people.same_household_edges_sql(),
            ev.co_involved_sql(roles.get("victim", []), roles.get("suspect", []),
                               int(comp.get("max_people_per_event", 25))),
        ]
        store.write_table("graph_edges", " UNION ALL ".join(f"SELECT {EDGE_COLUMNS} FROM ({p})" for p in parts))
        store.write_table("graph_nodes", ev.nodes_sql(has_gaz, has_addr))
        rounds = person_components(con, comp.get("edge_types", []), int(comp.get("max_iterations", 200)),
                                   store.memory_limit)
        store.write_table("location_churn", ev.churn_sql(as_of, int(rules["churn"]["window_days"])))
        con.execute("DROP TABLE IF EXISTS _g_rows")
        con.execute("DROP TABLE IF EXISTS _g_events")
        counts = {t: store.count(t) for t in ("person_attributes", "residences", "households", "graph_nodes",
                                              "graph_edges", "person_components", "location_churn")}
        by_type = dict(con.execute("SELECT edge_type, count(*) FROM graph_edges GROUP BY 1").fetchall())
        store.audit("combination", "build_graph",
                    details={"as_of": as_of.isoformat(), "component_rounds": rounds,
                             "edges_by_type": by_type,
                             "households": con.execute("SELECT count(DISTINCT household_id) FROM households")
                             .fetchone()[0]},
                    row_counts=counts)
