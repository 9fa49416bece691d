"""What a purpose-bound :class:`~ecins_link.api.project.Project` may show (the purpose's view)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx

    from ecins_link.config import ProjectConfig


def source_shown(config: ProjectConfig, purpose: str | None) -> Callable[[str], bool]:
    """``shown(source)``: whether ``purpose`` may see a source's records in detail (always, with no purpose)."""
    if purpose is None:
        return lambda source: True
    from ecins_link.report.views import view_for

    view = view_for(config, purpose)
    agency = {s.name: s.agency for s in config.sources}
    return lambda source: view.agency_detail(agency.get(source))


def check_view(out_dir: Path, purpose: str, exported: Iterable[str | None]) -> None:
    """Raise ``PermissionError`` unless ``out_dir`` was last written for ``purpose`` (fails closed).

    ``exported`` are the ``details`` (JSON) of the store's ``run_outputs_exported`` audit rows, newest first;
    the first naming ``out_dir`` says which view wrote it.  A folder holding the full view or another
    purpose's, or one the log has no record of (copied or moved in), is refused.
    """
    here, held = Path(out_dir).resolve(), None
    for details in exported:
        try:
            info = json.loads(details or "{}")
        except ValueError:
            continue
        if info.get("out_dir") and Path(info["out_dir"]).resolve() == here:
            if info.get("purpose") == purpose:
                return
            held = f"purpose {info['purpose']!r}" if info.get("purpose") else "the full view"
            break
    what = f"holds {held}" if held else "has no record in this store's audit log"
    raise PermissionError(f"{out_dir} {what}, not purpose {purpose!r}: run "
                          f"Project.run(stages=['report'], purpose={purpose!r}, out=...) to build its view")


def purpose_graph(graph: nx.MultiGraph, shown: Callable[[str], bool]) -> nx.MultiGraph:
    """A case graph as a purpose may see it: edges only from permitted records (events left with no edge
    dropped) and no labels (ids only).  Changes ``graph`` in place and returns it."""
    hidden = [(a, b, k) for a, b, k, d in graph.edges(keys=True, data=True)
              if d.get("source") and not shown(d["source"])]
    graph.remove_edges_from(hidden)
    graph.remove_nodes_from([n for n, d in graph.nodes(data=True)
                             if d.get("node_type") == "event" and graph.degree(n) == 0])
    for _, d in graph.nodes(data=True):
        d["label"] = ""
    return graph
