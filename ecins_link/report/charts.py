"""Static, offline pictures for the panel pack: a signal timeline and a case network, both inline SVG.

The pack must open from a USB stick with no network, so no chart may need JavaScript.  Both pictures are
written directly as SVG text here (a few hundred microseconds each; rendering the timeline through
altair + vl-convert cost 50-200 ms per case, most of the report stage at scale); the network is laid out
here too (radial rings per connected component, on plain adjacency dicts: building a networkx graph per
case cost more than drawing it).  Every label is XML-escaped; neither picture contains script.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from html import escape

import pandas as pd

from ecins_link.report.labels import category_colour, category_label, edge_label

log = logging.getLogger(__name__)
MAX_NODES = 60


# one colour per category on every page (labels.toml), not a palette re-dealt per chart


def _ticks(start: dt.date, end: dt.date) -> list[dt.date]:
    """Axis ticks: first days of years, quarters or months between ``start`` and ``end`` (at most ~8); for
    spans under ~4 months also the 15th of each month."""
    if (end - start).days < 120:
        days = [dt.date(y, m, d) for y in range(start.year, end.year + 1) for m in range(1, 13) for d in (1, 15)]
        return [day for day in days if start <= day <= end]
    months = (end.year - start.year) * 12 + end.month - start.month
    step = next((s for s in (1, 3, 6, 12, 24, 60, 120) if months / s <= 8), 240)
    first = start.year * 12 + start.month - 1
    first += (-first) % step
    ticks = []
    for m in range(first, end.year * 12 + end.month, step):
        tick = dt.date(m // 12, m % 12 + 1, 1)
        if start <= tick <= end:
            ticks.append(tick)
    return ticks


def _day(value: object) -> dt.date | None:
    """A date from a date, datetime, pandas Timestamp or ISO text; None when missing or unreadable."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _text(value: object) -> str:
    return "" if value is None or value != value else str(value)  # noqa: PLR0124 - NaN test


def timeline_svg(signals: pd.DataFrame | list[dict], width: int = 760) -> str | None:
    """SVG of a case's dated signals: one row per agency, one dot per signal coloured by category, a date
    axis and a category legend; each dot's tooltip gives date, agency, signal and role.  ``signals`` are
    rows (a frame or a list of dicts) with event_date, agency, signal, category, role.  None when no signal
    has a date.  Drawn directly (no JavaScript, no renderer process), every text XML-escaped."""
    records = signals.to_dict("records") if isinstance(signals, pd.DataFrame) else signals
    points = [(day, _text(r.get("agency")), _text(r.get("signal")), _text(r.get("category")), _text(r.get("role")))
              for r in records if (day := _day(r.get("event_date"))) is not None]
    if not points:
        return None
    dates = [p[0] for p in points]
    agencies = sorted({p[1] for p in points})
    categories = sorted({p[3] for p in points})
    colour = {c: category_colour(c) for c in categories}
    lo, hi = min(dates), max(dates)
    pad_days = max(15, (hi - lo).days // 25)
    lo, hi = lo - dt.timedelta(days=pad_days), hi + dt.timedelta(days=pad_days)
    left, right, top, row = 120, 180, 34, 34
    plot_w = width - left - right
    height = max(top + row * len(agencies) + 34, top + 16 * len(categories) + 12)
    span = (hi - lo).days or 1

    def x(day: dt.date) -> float:
        return left + plot_w * (day - lo).days / span

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="signals by agency over time" '
           'font-family="sans-serif">',
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">Signals by agency</text>']
    axis_y = top + row * len(agencies)
    for tick in _ticks(lo, hi):
        tx = x(tick)
        label = (tick.isoformat() if tick.day != 1 or (hi - lo).days < 120
                 else str(tick.year) if tick.month == 1 else tick.strftime("%Y-%m"))
        out.append(f'<line x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{axis_y + 4}" stroke="#e4e8ee"/>'
                   f'<text x="{tx:.1f}" y="{axis_y + 17}" font-size="10" text-anchor="middle" '
                   f'fill="#3d4b5c">{label}</text>')
    out.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#888888"/>')
    row_of = {a: i for i, a in enumerate(agencies)}
    for i, agency in enumerate(agencies):
        cy = top + row * i + row / 2
        short = agency if len(agency) <= 16 else agency[:15] + "…"
        out.append(f'<text x="{left - 8}" y="{cy + 4:.1f}" font-size="11" text-anchor="end">{escape(short)}</text>')
    for day, agency, signal, category, role in points:
        cy = top + row * row_of[agency] + row / 2
        tip = " · ".join(v for v in (day.isoformat(), agency, signal, role) if v)
        out.append(f'<circle cx="{x(day):.1f}" cy="{cy:.1f}" r="5.5" fill="{colour[category]}" fill-opacity="0.85" '
                   f'stroke="#ffffff" stroke-width="0.8"><title>{escape(tip)}</title></circle>')
    out.append(f'<text x="{width - right + 14}" y="{top + 2}" font-size="11" font-weight="bold">category</text>')
    for i, cat in enumerate(categories):
        ly = top + 16 + 16 * i
        words = category_label(cat) or cat
        short = words if len(words) <= 24 else words[:23] + "…"
        out.append(f'<circle cx="{width - right + 19}" cy="{ly - 4}" r="5" fill="{colour[cat]}"/>'
                   f'<text x="{width - right + 29}" y="{ly}" font-size="10">{escape(short)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _add_edge(adj: dict, u: str, v: str, etype: object) -> None:
    """networkx ``Graph.add_edge`` on a plain adjacency dict: nodes appended in first-seen order, a repeated
    edge keeps its place and takes the latest type."""
    adj.setdefault(u, {})
    adj.setdefault(v, {})
    adj[u][v] = etype
    adj[v][u] = etype


def _degree(adj: dict, node: str) -> int:
    """Degree as networkx counts it (a self-loop counts twice)."""
    nbrs = adj[node]
    return len(nbrs) + (node in nbrs)


def _edges(adj: dict) -> list[tuple[str, str, object]]:
    """Each edge once, in networkx ``Graph.edges`` order (by node, then neighbour, first end first)."""
    seen: set = set()
    out = []
    for n, nbrs in adj.items():
        out.extend((n, m, t) for m, t in nbrs.items() if m not in seen)
        seen.add(n)
    return out


def _components(adj: dict) -> list[set]:
    """Connected components (as sets of nodes)."""
    seen: set = set()
    comps = []
    for start in adj:
        if start in seen:
            continue
        comp, frontier = {start}, [start]
        while frontier:
            nxt = [m for n in frontier for m in adj[n] if m not in comp]
            comp.update(nxt)
            frontier = nxt
        seen |= comp
        comps.append(comp)
    return comps


def _trim(adj: dict, seeds: list[str]) -> dict:
    """At most MAX_NODES nodes: every seed, then the neighbours most connected to the seeds (the kept
    nodes and their edges in the original order, as networkx's ``subgraph(...).copy()`` for graphs of up
    to twice MAX_NODES nodes)."""
    if len(adj) <= MAX_NODES:
        return adj
    keep = [s for s in seeds if s in adj][:MAX_NODES]
    kept, seed_set = set(keep), set(seeds)
    others = sorted((n for n in adj if n not in kept),
                    key=lambda n: (-sum(1 for m in adj[n] if m in seed_set), -_degree(adj, n), str(n)))
    wanted = set(keep + others[: MAX_NODES - len(keep)])
    out: dict = {n: {} for n in adj if n in wanted}
    for u in list(out):
        for v, etype in adj[u].items():
            if v in wanted:
                _add_edge(out, u, v, etype)
    return out


def _mean_angle(adj: dict, node: object, inner: set, angle: dict) -> float:
    """Circular mean of the angles of ``node``'s neighbours in ``inner`` (0 when it has none)."""
    vals = [angle[m] for m in adj[node] if m in inner]
    if not vals:
        return 0.0
    return math.atan2(sum(map(math.sin, vals)), sum(map(math.cos, vals))) % (2 * math.pi)


def _radial(adj: dict, comp: list, seeds: set) -> dict:
    """Positions in [-1, 1]^2 for one component: its case members (or, if none, its best-connected node) at
    the centre and everything else on rings by hop distance, each ring ordered by the mean angle of its
    nodes' inner neighbours so that links stay short.  Deterministic and O(nodes + edges)."""
    centre = sorted((n for n in comp if n in seeds), key=str) or [
        max(sorted(comp, key=str), key=lambda n: _degree(adj, n))]
    layers, seen = [centre], set(centre)
    while len(seen) < len(comp):
        ring = sorted({m for n in layers[-1] for m in adj[n] if m not in seen}, key=str) or sorted(
            (n for n in comp if n not in seen), key=str)  # (always non-empty inside a connected component)
        layers.append(ring)
        seen.update(ring)
    depth = len(layers) - 1
    angle: dict = {}
    for k, layer in enumerate(layers):
        if k == 0:
            wanted = {n: math.pi / 2 + 2 * math.pi * i / len(layer) for i, n in enumerate(layer)}
        else:
            inner = set(layers[k - 1])
            target = {n: _mean_angle(adj, n, inner, angle) for n in layer}
            layer = sorted(layer, key=lambda n: (target[n], str(n)))  # noqa: PLW2901 - reorder the ring
            # around a lone centre every target is the same: start straight down, so that labels (drawn
            # beside the nodes) of a short ring sit one above the other instead of running into each other
            # (with more than two, turned off the horizontal so no label runs into the centre's)
            start = (math.pi / 2 + (math.pi / len(layer) if len(layer) > 2 else 0.0)
                     if len(layers[k - 1]) == 1 and k == 1 else target[layer[0]])
            wanted = {n: start + 2 * math.pi * i / len(layer) for i, n in enumerate(layer)}
        angle.update({n: a % (2 * math.pi) for n, a in wanted.items()})
    radius_of = {n: (k / depth if k else (0.0 if len(layers[0]) == 1 else
                                          (min(0.35, 1.0 / depth) if depth else 1.0)))
                 for k, layer in enumerate(layers) for n in layer}
    return {n: (radius_of[n] * math.cos(angle[n]), radius_of[n] * math.sin(angle[n])) for n in comp}


def _layout(adj: dict, seeds: set | None = None, components: list[set] | None = None) -> dict:
    """Positions in [0, 1]^2: each connected component laid out on its own (radial, see ``_radial``) in a
    grid cell, biggest first, so separate groups stay readable instead of being flung to the corners.
    ``components``: ``_components(adj)`` when already known."""
    seeds = seeds or set()
    comps = sorted((sorted(c, key=str) for c in (components if components is not None else _components(adj))),
                   key=lambda c: (-len(c), str(c[0])))
    cols = min(3, math.ceil(math.sqrt(len(comps))))  # labels need width: at most three groups side by side
    rows = math.ceil(len(comps) / cols)
    pos: dict = {}
    for i, comp in enumerate(comps):
        local = _radial(adj, comp, seeds)
        cx, cy = i % cols, i // cols
        for n, (x, y) in local.items():
            pos[n] = ((cx + 0.5 + 0.4 * x) / cols, (cy + 0.5 + 0.4 * y) / rows)
    return pos


# edge colours keep 3:1 against white (WCAG 2.1 non-text contrast); legend text is dark, the swatch coloured
EDGE_COLOURS = {"resides_at": "#6e6e6e", "same_household": "#1f5fa8", "co_involved": "#a35f00",
                "victim_suspect": "#b8322c"}
_NODE_STYLE = {  # fill, stroke and stroke width of a node: case members (seeds) bold
    True: 'fill="#fde2c8" stroke="#a04000" stroke-width="3"',
    False: 'fill="#eef2f7" stroke="#5d6d7e" stroke-width="1.5"'}
_edge_styles: dict = {}
_legends: dict[int, str] = {}


def _edge_style(etype: object) -> str:
    """The rest of an edge's ``<line>`` after its coordinates: colour and escaped type tooltip (built once
    per edge type)."""
    hit = _edge_styles.get(etype)
    if hit is None:
        text = str(etype)
        hit = _edge_styles[etype] = (f' stroke="{EDGE_COLOURS.get(text, "#999999")}" stroke-width="2">'
                                     f'<title>{escape(edge_label(text))}</title></line>')
    return hit


def _legend(y: int) -> str:
    """The edge-type colour legend at height ``y`` and the closing tag (built once per height)."""
    hit = _legends.get(y)
    if hit is None:
        hit = _legends[y] = "\n".join(
            [f'<line x1="{10 + i * 185}" y1="{y - 4}" x2="{28 + i * 185}" y2="{y - 4}" stroke="{colour}" '
             f'stroke-width="3"/><text x="{32 + i * 185}" y="{y}" font-size="10" fill="#1d2733" '
             f'font-family="sans-serif">{escape(edge_label(etype))}</text>'
             for i, (etype, colour) in enumerate(EDGE_COLOURS.items())]
            + ["</svg>"])
    return hit


def network_svg(edges: pd.DataFrame | list[tuple[str, str, str]], node_types: dict[str, str], labels: dict[str, str],
                seeds: list[str], width: int = 760, height: int = 520) -> str | None:
    """SVG network of the people (circles) and places (squares) of a case; seeds drawn bold.

    ``edges`` has src, dst, edge_type (a frame or a list of tuples); ``labels`` maps node id -> the text to
    show (already limited to what the view may display).  None when there is nothing to draw.
    """
    adj: dict = {node: {} for node in seeds}
    if isinstance(edges, pd.DataFrame):
        edges = list(edges[["src", "dst", "edge_type"]].itertuples(index=False, name=None))
    for src, dst, etype in edges:
        if src in node_types and dst in node_types:
            _add_edge(adj, src, dst, etype)
    if not adj:
        return None
    adj = _trim(adj, seeds)
    components = _components(adj)
    groups = len(components)
    rows = math.ceil(groups / min(3, math.ceil(math.sqrt(groups))))
    height = min(max(height, 130 * rows), 180 + 36 * len(adj))
    max_chars = {1: 40, 2: 30}.get(min(3, math.ceil(math.sqrt(groups))), 22)  # label width per grid column
    pos = _layout(adj, set(seeds), components)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    pad = 70
    # each node's coordinates as drawn, formatted once (edges reuse them)
    at = {n: (pad + x * (width - 2 * pad), pad / 3 + y * (height - pad)) for n, (x, y) in pos.items()}
    txt = {n: (f"{x:.1f}", f"{y:.1f}") for n, (x, y) in at.items()}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="case network">',
           '<rect width="100%" height="100%" fill="#ffffff"/>']
    for a, b, data in _edges(adj):
        (ax, ay), (bx, by) = txt[a], txt[b]
        out.append(f'<line x1="{ax}" y1="{ay}" x2="{bx}" y2="{by}"{_edge_style(data)}')
    seed_set = set(seeds)
    for node in adj:
        x, y = at[node]
        bold = node in seed_set
        raw = str(labels.get(node, node))
        label = escape(raw)
        if node_types.get(node) == "location":
            out.append(f'<rect x="{x - 9:.1f}" y="{y - 9:.1f}" width="18" height="18" '
                       f'{_NODE_STYLE[bold]}><title>{label}</title></rect>')
        else:
            out.append(f'<circle cx="{txt[node][0]}" cy="{txt[node][1]}" r="10" {_NODE_STYLE[bold]}>'
                       f'<title>{label}</title></circle>')
        short = raw if len(raw) <= max_chars else raw[:max_chars - 1] + "…"
        # labels run right (so side-by-side groups do not collide) unless that would leave the picture
        anchor = "start" if x + 13 + 6.3 * len(short) < width - 4 else "end"
        short = label if short is raw else escape(short)
        dx = 13 if anchor == "start" else -13
        out.append(f'<text x="{x + dx:.1f}" y="{y + 4:.1f}" font-size="11" text-anchor="{anchor}" '
                   f'font-family="sans-serif">{short}</text>')
    out.append(_legend(height - 8))
    if not math.isfinite(sum(xs) + sum(ys)):  # pragma: no cover - degenerate layout
        return None
    return "\n".join(out)
