"""Static, offline pictures for the panel pack: a signal timeline (altair -> SVG) and a case network (SVG).

The pack must open from a USB stick with no network, so no chart may need JavaScript from a CDN.  The
timeline is an altair chart rendered to SVG by ``vl-convert-python`` (the Vega renderer shipped inside the
wheel, no network); the network is laid out with networkx and drawn as SVG here.  Every label is
XML-escaped; neither picture contains script.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from html import escape

import networkx as nx
import pandas as pd

log = logging.getLogger(__name__)
MAX_NODES = 60


@functools.lru_cache(maxsize=1)
def timeline_spec() -> str:
    """The timeline chart (altair, Vega-Lite JSON) with a named data slot filled per case."""
    import altair as alt

    chart = (
        alt.Chart(alt.Data(name="signals"))
        .mark_point(filled=True, size=90, opacity=0.85)
        .encode(
            x=alt.X("event_date:T", title="date"),
            y=alt.Y("agency:N", title=None),
            color=alt.Color("category:N", title="category"),
            tooltip=[alt.Tooltip("event_date:T", title="date"), "agency:N", "signal:N", "role:N"],
        )
        .properties(width=640, height=60, title="Signals by agency")
    )
    return json.dumps(chart.to_dict())


def timeline_svg(signals: pd.DataFrame) -> str | None:
    """SVG of signals by agency over time (one dot per signal, coloured by category); None if unavailable.

    The altair spec is built once; each case only fills in its data values and is rendered offline by
    vl-convert (no JavaScript, no network).
    """
    if signals.empty or signals["event_date"].isna().all():
        return None
    try:
        import vl_convert as vlc
    except ImportError:  # pragma: no cover - vl-convert is a declared dependency
        log.warning("vl-convert-python missing: timeline drawn as a table only")
        return None
    data = signals.loc[signals["event_date"].notna(), ["event_date", "agency", "signal", "category", "role"]].copy()
    data["event_date"] = pd.to_datetime(data["event_date"]).dt.strftime("%Y-%m-%d")
    data = data.astype(object).where(data.notna(), "")
    spec = json.loads(timeline_spec())
    spec["data"] = {"values": data.to_dict("records")}
    spec["height"] = max(60, 34 * data["agency"].nunique())
    try:
        return vlc.vegalite_to_svg(spec)
    except Exception as err:  # noqa: BLE001 - a picture must never break the pack
        log.warning("timeline rendering failed: %s", type(err).__name__)
        return None


def _trim(graph: nx.Graph, seeds: list[str]) -> nx.Graph:
    """At most MAX_NODES nodes: every seed, then the neighbours most connected to the seeds."""
    if graph.number_of_nodes() <= MAX_NODES:
        return graph
    keep = [s for s in seeds if s in graph][:MAX_NODES]
    others = sorted((n for n in graph if n not in set(keep)),
                    key=lambda n: (-sum(1 for m in graph[n] if m in set(seeds)), -graph.degree(n), str(n)))
    return graph.subgraph(keep + others[: MAX_NODES - len(keep)]).copy()


def _layout(graph: nx.Graph) -> dict:
    """Positions in [0, 1]^2: each connected component laid out on its own (seeded spring layout) in a
    grid cell, biggest first, so separate groups stay readable instead of being flung to the corners."""
    comps = sorted((sorted(c, key=str) for c in nx.connected_components(graph)), key=lambda c: (-len(c), str(c[0])))
    cols = math.ceil(math.sqrt(len(comps)))
    rows = math.ceil(len(comps) / cols)
    pos: dict = {}
    for i, comp in enumerate(comps):
        sub = graph.subgraph(comp)
        local = (nx.spring_layout(sub, seed=7, iterations=150) if len(comp) > 2
                 else {n: (j - (len(comp) - 1) / 2, 0.0) for j, n in enumerate(comp)})
        xs = [p[0] for p in local.values()]
        ys = [p[1] for p in local.values()]
        span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
        cx, cy = i % cols, i // cols
        for n, (x, y) in local.items():
            fx = 0.5 if len(set(xs)) == 1 else 0.1 + 0.8 * (x - min(xs)) / span_x
            fy = 0.5 if len(set(ys)) == 1 else 0.1 + 0.8 * (y - min(ys)) / span_y
            pos[n] = ((cx + fx) / cols, (cy + fy) / rows)
    return pos


def network_svg(edges: pd.DataFrame, node_types: dict[str, str], labels: dict[str, str],
                seeds: list[str], width: int = 760, height: int = 520) -> str | None:
    """SVG network of the people (circles) and places (squares) of a case; seeds drawn bold.

    ``edges`` has src, dst, edge_type; ``labels`` maps node id -> the text to show (already limited to
    what the view may display).  None when there is nothing to draw.
    """
    graph = nx.Graph()
    for node in seeds:
        graph.add_node(node)
    for src, dst, etype in edges[["src", "dst", "edge_type"]].itertuples(index=False):
        if src in node_types and dst in node_types:
            graph.add_edge(src, dst, edge_type=etype)
    if graph.number_of_nodes() == 0:
        return None
    graph = _trim(graph, seeds)
    height = min(height, 180 + 36 * graph.number_of_nodes())
    pos = _layout(graph)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    pad = 70

    def sx(v: float) -> float:
        return pad + v * (width - 2 * pad)

    def sy(v: float) -> float:
        return pad / 3 + v * (height - pad)

    colours = {"resides_at": "#8c8c8c", "same_household": "#2b7bba", "co_involved": "#d08c00",
               "victim_suspect": "#c0392b"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="case network">',
           '<rect width="100%" height="100%" fill="#ffffff"/>']
    for a, b, data in graph.edges(data=True):
        etype = str(data.get("edge_type", ""))
        out.append(f'<line x1="{sx(pos[a][0]):.1f}" y1="{sy(pos[a][1]):.1f}" x2="{sx(pos[b][0]):.1f}" '
                   f'y2="{sy(pos[b][1]):.1f}" stroke="{colours.get(etype, "#999999")}" stroke-width="2">'
                   f'<title>{escape(etype)}</title></line>')
    seed_set = set(seeds)
    for node in graph.nodes:
        x, y = sx(pos[node][0]), sy(pos[node][1])
        bold = node in seed_set
        fill = "#fde2c8" if bold else "#eef2f7"
        stroke = "#a04000" if bold else "#5d6d7e"
        raw = str(labels.get(node, node))
        label = escape(raw)
        if node_types.get(node) == "location":
            out.append(f'<rect x="{x - 9:.1f}" y="{y - 9:.1f}" width="18" height="18" fill="{fill}" '
                       f'stroke="{stroke}" stroke-width="{3 if bold else 1.5}"><title>{label}</title></rect>')
        else:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="10" fill="{fill}" stroke="{stroke}" '
                       f'stroke-width="{3 if bold else 1.5}"><title>{label}</title></circle>')
        short = escape(raw if len(raw) <= 34 else raw[:32] + "…")
        anchor = "start" if x < width / 2 else "end"
        dx = 13 if anchor == "start" else -13
        out.append(f'<text x="{x + dx:.1f}" y="{y + 4:.1f}" font-size="11" text-anchor="{anchor}" '
                   f'font-family="sans-serif">{short}</text>')
    legend_y = height - 8
    for i, (etype, colour) in enumerate(colours.items()):
        out.append(f'<text x="{10 + i * 150}" y="{legend_y}" font-size="10" fill="{colour}" '
                   f'font-family="sans-serif">— {escape(etype)}</text>')
    out.append("</svg>")
    if not math.isfinite(sum(xs) + sum(ys)):  # pragma: no cover - degenerate layout
        return None
    return "\n".join(out)
