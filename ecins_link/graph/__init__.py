"""The person + location + event graph (docs/contracts.md, "Graph tables").

Entry points:

* ``build_graph(store, config)`` — the graph stage: person_attributes, residences, households,
  person_components, graph_nodes, graph_edges, location_churn.
* ``ego_network(store, person_id=None, location_id=None, hops=2) -> nx.Graph`` and
  ``case_subgraph(store, person_ids, location_ids) -> nx.MultiGraph`` — case-sized networkx graphs.
* ``bridging_people(G)`` — people whose removal splits a case graph (articulation points, ranked).
* ``address_churn(store, window_days=90, as_of=None)`` — churn per location for any window (DataFrame).
* ``export_graph(store, out_dir, component_id=None)`` — nodes/edges to Parquet and GraphML.
"""

from ecins_link.graph.analysis import address_churn, bridging_people, case_subgraph, ego_network
from ecins_link.graph.build import build_graph, load_graph_rules, resolve_as_of
from ecins_link.graph.export import export_graph

__all__ = ["build_graph", "load_graph_rules", "resolve_as_of", "ego_network", "case_subgraph", "bridging_people",
           "address_churn", "export_graph"]
