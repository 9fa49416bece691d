"""Case-sized graph analyses with networkx, fed by SQL selections from the store's graph tables.

Only a neighbourhood (an ego network or a case's persons and locations) is ever loaded into networkx;
whole-population measures stay in SQL.
"""

from __future__ import annotations

import datetime as dt
import math

import networkx as nx
import pandas as pd

from ecins_link.graph.events import churn_sql
from ecins_link.store import Store

PERSON_EDGES = ("same_household", "co_involved", "victim_suspect")


def _clean(v: object) -> object:
    """networkx/GraphML-friendly attribute values (no NaN/NaT/None, dates as ISO text)."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return ""
    if isinstance(v, (dt.date, pd.Timestamp)):
        return v.isoformat()[:10]
    return v


def _load(store: Store, nodes: list[str], graph: nx.Graph) -> nx.Graph:
    """Add ``nodes`` (with type/label) and every graph edge between two of them to ``graph``."""
    store.con.register("_g_sel", pd.DataFrame({"node_id": sorted(set(nodes))}))
    try:
        nd = store.df("SELECT n.* FROM graph_nodes n JOIN _g_sel s USING (node_id)")
        ed = store.df("""SELECT e.* FROM graph_edges e JOIN _g_sel a ON a.node_id = e.src
                         JOIN _g_sel b ON b.node_id = e.dst""")
    finally:
        store.con.unregister("_g_sel")
    for r in nd.itertuples(index=False):
        graph.add_node(r.node_id, node_type=_clean(r.node_type), label=_clean(r.label))
    for r in ed.itertuples(index=False):
        attrs = {k: _clean(getattr(r, k)) for k in ("edge_type", "role", "start_date", "end_date", "weight",
                                                   "source", "record_key")}
        if graph.is_multigraph():
            graph.add_edge(r.src, r.dst, **attrs)
        elif graph.has_edge(r.src, r.dst):
            d = graph.edges[r.src, r.dst]
            d["edge_types"] = ",".join(sorted(set(d["edge_types"].split(",")) | {attrs["edge_type"]}))
            d["n_edges"] += 1
        else:
            graph.add_edge(r.src, r.dst, edge_types=attrs["edge_type"], n_edges=1, **attrs)
    return graph


def ego_network(store: Store, person_id: str | None = None, location_id: str | None = None, hops: int = 2,
                max_degree: int = 200) -> nx.Graph:
    """The nodes within ``hops`` edges of a person or a location, with the edges among them.

    Nodes with more than ``max_degree`` edges (a busy pub, a hostel) are included but not expanded, so
    the result stays case-sized.  Parallel edges are merged (``edge_types``, ``n_edges``).
    """
    start = person_id or location_id
    if not start or (person_id and location_id):
        raise ValueError("give exactly one of person_id or location_id")
    store.require("graph_edges", "graph_nodes", stage="ego_network")
    if not store.con.execute("SELECT count(*) FROM graph_nodes WHERE node_id = ?", [start]).fetchone()[0]:
        raise KeyError(f"no graph node {start!r}")
    con = store.con
    con.execute("CREATE OR REPLACE TEMP TABLE _ego AS SELECT ?::VARCHAR AS node_id, 0 AS hop", [start])
    for hop in range(1, max(0, int(hops)) + 1):
        con.execute(f"""
            INSERT INTO _ego
            WITH frontier AS (
                SELECT f.node_id FROM _ego f WHERE f.hop = {hop - 1}
                  AND (SELECT count(*) FROM graph_edges e WHERE e.src = f.node_id OR e.dst = f.node_id)
                      <= {int(max_degree)}),
            nb AS (SELECT e.dst AS node_id FROM graph_edges e JOIN frontier f ON e.src = f.node_id
                   UNION SELECT e.src FROM graph_edges e JOIN frontier f ON e.dst = f.node_id)
            SELECT DISTINCT node_id, {hop} FROM nb WHERE node_id NOT IN (SELECT node_id FROM _ego)""")
    nodes = [r[0] for r in con.execute("SELECT node_id FROM _ego").fetchall()]
    con.execute("DROP TABLE IF EXISTS _ego")
    return _load(store, nodes, nx.Graph())


def case_subgraph(store: Store, person_ids: list[str], location_ids: list[str] | None = None) -> nx.MultiGraph:
    """A case's persons and locations, their events, the events' locations and the persons' residences.

    Every graph edge between two selected nodes is kept (a MultiGraph: one edge per record).
    """
    store.require("graph_edges", "graph_nodes", stage="case_subgraph")
    seeds = pd.DataFrame({"node_id": sorted(set(person_ids) | set(location_ids or []))})
    store.con.register("_case_seed", seeds)
    try:
        rows = store.con.execute("""
            WITH ev AS (
                SELECT dst AS node_id FROM graph_edges WHERE edge_type = 'involved_in'
                  AND src IN (SELECT node_id FROM _case_seed)
                UNION SELECT src FROM graph_edges WHERE edge_type = 'occurred_at'
                  AND dst IN (SELECT node_id FROM _case_seed))
            SELECT node_id FROM _case_seed UNION SELECT node_id FROM ev
            UNION SELECT dst FROM graph_edges WHERE edge_type = 'occurred_at' AND src IN (SELECT node_id FROM ev)
            UNION SELECT dst FROM graph_edges WHERE edge_type = 'resides_at'
              AND src IN (SELECT node_id FROM _case_seed)""").fetchall()
    finally:
        store.con.unregister("_case_seed")
    return _load(store, [r[0] for r in rows], nx.MultiGraph())


def bridging_people(G: nx.Graph) -> list[dict]:  # noqa: N803 - networkx convention
    """People whose removal disconnects the graph (articulation points), ranked.

    Each item: ``person_id``, ``label``, ``splits`` (how many extra pieces removing them leaves) and
    ``betweenness`` (normalised).  Non-person nodes are never reported.
    """
    simple = nx.Graph(G)
    if simple.number_of_nodes() < 3:
        return []
    between = nx.betweenness_centrality(simple, normalized=True)
    base = nx.number_connected_components(simple)
    out = []
    for node in nx.articulation_points(simple):
        if simple.nodes[node].get("node_type") != "person":
            continue
        h = simple.copy()
        h.remove_node(node)
        out.append({"person_id": node, "label": simple.nodes[node].get("label", ""),
                    "splits": nx.number_connected_components(h) - base, "betweenness": round(between[node], 4)})
    return sorted(out, key=lambda d: (-d["splits"], -d["betweenness"], d["person_id"]))


def address_churn(store: Store, window_days: int = 90, as_of: dt.date | None = None) -> pd.DataFrame:
    """``location_churn`` columns for any window ending at ``as_of`` (default: latest event date).

    ``unrelated_persons`` counts people linked to the location in the window who were not established
    household members there before it opened — the cuckooing signal.
    """
    store.require("residences", "households", "graph_edges", stage="address_churn")
    return store.df(churn_sql(store.as_of(as_of), window_days) + " ORDER BY unrelated_persons DESC, location_id")
