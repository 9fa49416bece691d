"""The HTML panel pack: panel/index.html (ranked worklist) and panel/cases/<case>.html (one page per case).

Self-contained: inline CSS, inline SVG pictures, no script and no external link, so it opens from a USB
stick with no network.  Rendered with jinja2 autoescape ON; the only values not escaped by jinja are the
SVGs built by :mod:`ecins_link.report.charts`, the table rows built by ``Cells`` and the flag and person
blocks built by :mod:`ecins_link.report.pagedata`, which escape every text themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from ecins_link.config import ProjectConfig
from ecins_link.report import cases as gather
from ecins_link.report import pagedata
from ecins_link.report.cells import Cells, fmt, named_records, person_label, val, write_page
from ecins_link.report.charts import network_svg, timeline_svg
from ecins_link.report.evidence_words import condition_selectors, evidence_sentences
from ecins_link.report.fanout import default_workers, forked_map
from ecins_link.report.labels import entity_label, header_label
from ecins_link.report.views import View
from ecins_link.store import Store

log = logging.getLogger(__name__)
INDEX: dict = {}  # the worklist page, as an item of the render work (compared by identity)
PERSON_FIELDS = ("person_id", "dob", "age", "is_child", "sex", "n_records")  # what a case page shows of a person row
RECORD_FIELDS = {"name": ["title", "forenames", "surname"], "dob": ["dob"], "sex": ["sex"],
                 "address": ["address_text", "postcode"], "phone": ["phone"], "email": ["email"]}


def _env() -> jinja2.Environment:
    """The template environment: autoescape on, templates compiled once (no file check per page)."""
    loader = jinja2.FileSystemLoader(str(resources.files("ecins_link.report") / "templates"))
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, auto_reload=False,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["d"] = fmt
    return env


def _breakdowns(store: Store, pairs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Per-field match-weight summary for each (unique_id_l, unique_id_r) pair, scored in one batch with the
    saved linkage model (``ecins_link.matching.explain.score_pairs``), and for a pair a pass accepted at the match
    threshold the rule that did (``person_pairs.link_rule``); empty if no model is available."""
    if pairs.empty:
        return {}
    try:
        from ecins_link.matching.explain import score_pairs

        scored = score_pairs(store, pairs)
    except Exception as err:  # noqa: BLE001 - an explanation must never break the pack
        log.info("per-field match weights unavailable: %s", type(err).__name__)
        return {}
    if not {"unique_id_l", "unique_id_r", "breakdown"} <= set(scored.columns):
        return {}
    out = {tuple(sorted((str(a), str(b)))): str(t) for a, b, t in
           scored[["unique_id_l", "unique_id_r", "breakdown"]].itertuples(index=False) if isinstance(t, str)}
    # a pair a pass accepted at the threshold says so: the model's own weights above add up to less
    from ecins_link.matching.explain_rows import link_rule_texts

    for key, text in link_rule_texts(store, pairs).items():
        out[key] = f"{out[key]}; {text}" if key in out else text
    return out


class PanelBuilder:
    """Gathers case data (set-based) and renders the index and one page per case."""

    def __init__(self, store: Store, view: View, flags: pd.DataFrame, cases: pd.DataFrame,
                 sources: pd.DataFrame, run_label: str, max_charts: int = 500,
                 config: ProjectConfig | None = None) -> None:
        self.store, self.view, self.flags, self.cases = store, view, flags, cases
        self.sources, self.run_label, self.max_charts = sources, run_label, max_charts
        self.agency_of = dict(zip(sources["source"], sources["agency"], strict=False))
        self.config = config  # the project: each condition worded with its own records' agencies, its review band
        self.env = _env()
        self.cells = Cells()
        css = (resources.files("ecins_link.report") / "templates" / "style.css").read_text(encoding="utf-8")
        # the package's own stylesheet, inserted as is: HTML-escaping text inside <style> (a raw-text element)
        # turned its quotes into &#34; and the browser dropped every quoted declaration (font family, the
        # protective marking of printed pages)
        if "</" in css:
            raise ValueError("style.css must not contain '</'")
        self.css = Markup(css)

    def _gather(self, on_records: Callable[[pd.DataFrame], object]) -> dict[str, pd.DataFrame]:
        """The case frames (see :mod:`ecins_link.report.cases`); ``on_records`` is called with the records
        frame as soon as it is known (before the other queries)."""
        with gather.registered(self.store, self.cases, self.sources):
            records = gather.case_records(self.store, self.view)
            on_records(records)
            edges, nodes = gather.case_graph(self.store, self.view)
            return {"persons": gather.case_persons(self.store, self.view), "records": records,
                    "signals": gather.case_signals(self.store, self.view),
                    "overrides": gather.case_overrides(self.store, self.cases, self.view), "edges": edges,
                    "possible_same": gather.case_possible_same(self.store, *self._review_band()),
                    "nodes": nodes,
                    "locs": gather.location_labels(self.store, self.view, self._edge_locations(edges, nodes))}

    def write(self, panel_dir: Path) -> dict[str, int]:
        """Write index.html and cases/*.html under ``panel_dir``; returns counts."""
        self.prepare()
        return self.render(panel_dir)

    def prepare(self) -> None:
        """Everything the pages need from the store, gathered set-based for all cases at once (the pages
        themselves need no store access, see :meth:`render`).

        The link explanations (Splink: Python building SQL, then DuckDB) are scored on a second thread and
        cursor, started as soon as the records are known, while this thread runs the other queries
        (DuckDB releases the GIL, so the two overlap)."""
        self.why: dict[tuple[str, str], str] = {}
        self.evidence_text: dict[int, str] = {}
        with ThreadPoolExecutor(max_workers=1) as side, self.store.reader() as cursor:
            jobs = []
            data = self._gather(lambda recs: jobs.append(side.submit(self._why, cursor, recs))) if len(self.cases) else {}
            node_types = dict(zip(data["nodes"]["node_id"], data["nodes"]["node_type"], strict=False)) if data else {}
            loc_labels = dict(zip(data["locs"]["location_id"], data["locs"]["label"], strict=False)) if data else {}
            person_labels: dict[str, str] = {}
            self.visible_persons: set[str] = set()
            if data:
                recs = data["records"]
                shared = recs.loc[recs["detail"].fillna(False).astype(bool), "person_id"] if len(recs) else []
                self.visible_persons = ({str(p) for p in shared} if self.view.name is not None
                                        else {str(p) for p in data["persons"]["person_id"]})
                for row in data["persons"].drop_duplicates("person_id").to_dict("records"):
                    pid = str(row["person_id"])
                    person_labels[pid] = person_label(row, self.view) if pid in self.visible_persons else pid
                self.evidence_text = self._pretty_evidence()
            self.neighbour_labels = self._neighbour_labels(data, person_labels) if data else {}
            if jobs:
                self.why = jobs[0].result()
        self.data = data
        self.page_data = (node_types, loc_labels, person_labels)

    def render(self, panel_dir: Path) -> dict[str, int]:
        """Write index.html and cases/*.html under ``panel_dir`` (after :meth:`prepare`); returns counts.

        Pages are rendered by forked worker processes (see :mod:`ecins_link.report.fanout`), each for an
        interleaved share of the cases: call this with no other thread of the process running."""
        (panel_dir / "cases").mkdir(parents=True, exist_ok=True)
        self.panel_dir = panel_dir
        cases = self.cases.to_dict("records")
        pages = {Path(c["page"]).name for c in cases}
        for old in (panel_dir / "cases").glob("case_*.html"):
            if old.name not in pages:  # a page of an earlier run for a case that is gone (the rest are rewritten)
                old.unlink()
        # the worklist is one more item of the work, second in the list: with workers it falls to a child, so
        # the parent (which also waits for the children) does not render it after its share of pages
        items: list = list(cases)
        items.insert(min(1, len(items)), INDEX)
        forked_map(self._render_share, items, default_workers(len(cases)))
        return {"case_pages": len(self.cases), "explained_links": len(self.why)}

    def _render_share(self, items: Sequence[dict]) -> None:
        """Render one share of the work: case pages, and the worklist if ``INDEX`` is in it."""
        self._render_pages([c for c in items if c is not INDEX])
        if any(c is INDEX for c in items):
            self._render_index()

    def _render_index(self) -> None:
        """Write index.html: the ranked worklist, one row per case."""
        _, loc_labels, person_labels = self.page_data
        rule_label = dict(zip(self.flags["rule"], self.flags["label"].fillna(self.flags["rule"]), strict=False)) \
            if len(self.flags) else {}
        index_rows = [dict(c, label=self._entity_label(c, person_labels, loc_labels),
                           rule_words="; ".join(rule_label.get(r, r) for r in str(c["rules"]).split(";") if r))
                      for c in self.cases.to_dict("records")]
        index = self.env.get_template("index.html.j2").render(
            cases=index_rows, rows_html=Markup(pagedata.worklist_rows(index_rows)), view=self.view, run_label=self.run_label, css=self.css, n_flags=len(self.flags))
        (self.panel_dir / "index.html").write_text(index, encoding="utf-8")

    def _render_pages(self, cases: Sequence[dict]) -> None:
        """Render and write the pages of ``cases`` (run in the parent and in forked workers: no store use).

        The gathered frames' rows of these cases are turned into HTML pieces column by column
        (:mod:`ecins_link.report.pagedata`), so a page costs a few look-ups, joins and one render of the
        compiled template."""
        if not cases:
            return
        share = self._share(cases)
        flag_rows = self._flag_rows({f for c in cases for f in c["flag_ids"]})
        case_tpl = self.env.get_template("case.html.j2")
        # one writer thread: file creation waits on the disk (GIL released) while the next page renders
        with ThreadPoolExecutor(max_workers=1) as writer:
            pending = []
            for case in cases:
                flags = sorted((flag_rows[f] for f in case["flag_ids"] if f in flag_rows), key=lambda f: f["rank"])
                ctx = self._case_context(case, flags, share)
                pending.append(writer.submit(write_page, self.panel_dir / case["page"], case_tpl.render(ctx)))
                if len(pending) >= 256:
                    for done in pending:
                        done.result()  # re-raises a write error here
                    pending = []
            for done in pending:
                done.result()

    def _share(self, cases: Sequence[dict]) -> dict:
        """The page data of a share of the cases: signal, record and edge rows as HTML pieces and tuples,
        persons and overrides as dicts, all by case."""
        node_types, loc_labels, person_labels = self.page_data
        frames = pagedata.share_frames(self.data, [c["case"] for c in cases])
        neighbours = self.neighbour_labels

        def signal_person(p: object) -> object:
            pid = str(p)
            return person_labels.get(pid) or neighbours.get(pid) or val(p)

        def linked(uid: object, partner: object) -> tuple[object, str | None]:
            if not isinstance(partner, str):
                return None, None
            why = self.why.get(tuple(sorted((str(uid), partner))))
            return (partner.replace(":", " ", 1) if self._partner_visible(partner) else "(withheld)"), why

        cols = ["source", "agency", "record_key"] + [c for f, cs in RECORD_FIELDS.items() if self.view.field(f)
                                                     for c in cs]
        cols += ["cluster_confidence", "linked_to", "best_match_weight", "best_match_probability"]
        linked_ids = self._linked_persons(frames.get("persons"))
        return {"signals": pagedata.SignalRows(frames["signals"], self.cells, signal_person,
                                               lambda x: self._loc_label(x, loc_labels), linked_ids),
                "records": pagedata.RecordRows(frames["records"], self.cells, cols, linked),
                "edges": pagedata.EdgeRows(frames["edges"]), "persons": pagedata.grouped(frames.get("persons"), PERSON_FIELDS),
                "overrides": pagedata.grouped(frames.get("overrides")),
                "possible_same": pagedata.grouped(frames.get("possible_same"))}

    def _review_band(self) -> tuple[float, float]:
        """The project's review band (``linkage.review_band``; the documented default without a config)."""
        band = self.config.linkage.review_band if self.config is not None else (0.5, 0.95)
        return float(band[0]), float(band[1])

    def _same_notes(self, rows: list[dict], person_labels: dict) -> list[str]:
        """"Possible same person" sentences, once per pair; a person the view may not show stays unnamed."""
        out, seen = [], set()
        for r in rows:
            a, b = str(r["person_id"]), str(r["other_person_id"])
            if a not in self.visible_persons or (b, a) in seen:
                continue
            seen.add((a, b))
            other = person_labels.get(b) if b in self.visible_persons else self.neighbour_labels.get(b)
            out.append(f"{person_labels.get(a, a)} and {other or 'a person outside this case'} "
                       f"may be the same person (match probability {float(r['match_probability']):.2f}, inside the "
                       "review band): their records were kept apart; check before acting.")
        return out

    @staticmethod
    def _linked_persons(persons: pd.DataFrame | None) -> set[str]:
        """Persons made of more than one record: only their links have a confidence worth showing."""
        if persons is None or not len(persons) or "n_records" not in persons.columns:
            return set()
        many = persons["n_records"].fillna(0).astype(int) > 1
        return {str(p) for p in persons.loc[many, "person_id"]}

    @staticmethod
    def _edge_locations(edges: pd.DataFrame, nodes: pd.DataFrame) -> list[str]:
        """Location nodes drawn in any case network (so neighbours get an address label, not an id)."""
        locs = set(nodes.loc[nodes["node_type"] == "location", "node_id"].astype(str)) if len(nodes) else set()
        ends = set(edges["src"].astype(str)) | set(edges["dst"].astype(str)) if len(edges) else set()
        return sorted(locs & ends)

    def _neighbour_labels(self, data: dict[str, pd.DataFrame], known: dict[str, str]) -> dict[str, str]:
        """Names of people met in a case's network or signals but not flagged in it: full view only (a
        purpose view shows their ids)."""
        if self.view.name is not None or not self.store.has_table("person_attributes"):
            return {}
        edges, sig = data["edges"], data["signals"]
        ids = set(edges["src"].astype(str)) | set(edges["dst"].astype(str)) | set(sig["person_id"].dropna().astype(str))
        ids = sorted(ids - set(known))
        rows = self.store.con.execute(  # a join on the unnested ids (list_contains per row: 15 s at 250k)
            "SELECT a.person_id, a.display_name FROM person_attributes a "
            "SEMI JOIN (SELECT unnest(?::VARCHAR[]) AS person_id) w USING (person_id)", [ids]).fetchall()
        return {str(p): str(n) for p, n in rows if n}

    def _partner_visible(self, unique_id: object) -> bool:
        if not isinstance(unique_id, str) or ":" not in unique_id:
            return False
        return self.view.agency_detail(self.agency_of.get(unique_id.split(":", 1)[0]))

    def _why(self, store: Store, records: pd.DataFrame) -> dict[tuple[str, str], str]:
        """Per-field summaries for every displayed record's strongest link (both ends visible)."""
        if records.empty or "linked_to" not in records.columns:
            return {}
        shown = records[records["detail"].fillna(False).astype(bool) & records["linked_to"].notna()]
        shown = shown.loc[[self._partner_visible(u) for u in shown["linked_to"]]] if len(shown) else shown
        pairs = pd.DataFrame({"unique_id_l": shown["unique_id"].astype(str),
                              "unique_id_r": shown["linked_to"].astype(str)}).drop_duplicates()
        return _breakdowns(store, pairs)

    def _case_context(self, case: dict, flags: list[dict], share: dict) -> dict:
        view = self.view
        key = case["case"]
        node_types, loc_labels, person_labels = self.page_data
        sig: pagedata.SignalRows = share["signals"]
        rec: pagedata.RecordRows = share["records"]
        sig_rows, rec_rows = sig.rows(key), rec.rows(key)
        hidden = ({sig.agency[i] for i in sig_rows if not sig.detail[i]}
                  | {rec.agency[i] for i in rec_rows if not rec.detail[i]}) - {None}
        sig_rows = [i for i in sig_rows if sig.detail[i]]
        rec_rows = [i for i in rec_rows if rec.detail[i]]
        shown_agencies = {sig.agency[i] for i in sig_rows} | {rec.agency[i] for i in rec_rows}
        existence = sorted(hidden - shown_agencies) if view.existence_only else []
        contributing = self._contributing(flags)
        # <tr> rows in the provenance table's column order; rows used by a rule marked
        signal_body = "".join([('<tr class="contributing" title="used by a rule">' if sig.key[i] in contributing
                                else "<tr>") + sig.html[i] for i in sig_rows])
        rec_of: dict[object, list[int]] = {}
        for i in rec_rows:
            rec_of.setdefault(rec.person[i], []).append(i)
        persons = []
        for p in share["persons"].get(key, []):
            recs = rec_of.get(p["person_id"], [])
            if str(p["person_id"]) not in self.visible_persons:  # known only to partners outside the view
                p = {"person_id": p["person_id"], "is_child": None}
            conf = [v for i in recs if (v := rec.conf[i]) is not None]
            shown = rec.shown_columns(recs)
            persons.append({
                "person_id": p["person_id"], "label": person_labels.get(str(p["person_id"]), p["person_id"]),
                "dob": val(p.get("dob")) if view.field("dob") else None,
                "age": val(p.get("age")) if view.field("dob") else None,
                "sex": val(p.get("sex")) if view.field("sex") else None, "is_child": val(p.get("is_child")),
                "rows": bool(recs), "head": self.cells.head([header_label(c) for c in shown]), "body": rec.body(recs, shown),
                # "confidence" only where records were linked (one record alone has no link to be sure of)
                "confidence": min(conf) if len(conf) > 1 else None})
        edges = share["edges"].rows(key)
        seeds = list(case["person_ids"]) + ["U" + u for u in case["uprns"]]
        if case["entity_type"] == "location":
            seeds.append(case["entity_id"])
        # label only this case's nodes (all-node labels per case made the report O(cases x nodes))
        case_nodes = set(seeds) | {n for e in edges for n in e[:2]}
        # a person's name, else a neighbour's, else a place's label (as one dict: a ChainMap look-up is slow)
        neighbours, labels = self.neighbour_labels, {}
        for k in case_nodes:
            if k in person_labels:
                labels[k] = person_labels[k]
            elif k in neighbours:
                labels[k] = neighbours[k]
            elif k in node_types:
                labels[k] = self._loc_label(k, loc_labels)
        net = network_svg(edges, node_types, labels, [s for s in seeds if s in node_types]) if edges else None
        charted = bool(sig_rows) and case["rank"] <= self.max_charts
        return {"case": case, "flags": flags, "signal_rows": bool(sig_rows), "signal_body": Markup(signal_body),
                "flags_html": Markup("".join([f["html"] for f in flags])),
                "persons": persons, "persons_html": Markup("".join([pagedata.person_html(p) for p in persons])), "existence": existence, "overrides": share["overrides"].get(key, []),
                "network_svg": net, "timeline_svg": timeline_svg(sig.timeline_rows(sig_rows)) if charted else None,
                "chart_omitted": bool(sig_rows) and not charted,
                "view": view, "run_label": self.run_label, "css": self.css,
                "entity_label": self._entity_label(case, person_labels, loc_labels),
                "entity_words": entity_label(case["entity_type"]),
                "case_ref": Path(case["page"]).stem.removeprefix("case_"),
                "at_risk": self._at_risk(case, persons, sig.at_risk_persons(sig_rows)),
                "possible_same": self._same_notes(share["possible_same"].get(key, []), person_labels)}

    @staticmethod
    def _at_risk(case: dict, persons: list[dict], flagged: set[str]) -> list[dict]:
        """Who is at risk, first on the page: the case's children (youngest first), then people recorded as
        victims or vulnerable, else the case's own person."""
        shown = [p for p in persons if p.get("label") and p.get("is_child") is not None]
        children = sorted([p for p in shown if p.get("is_child")],
                          key=lambda p: p["age"] if p.get("age") is not None else 99)
        others = [p for p in shown if not p.get("is_child") and str(p["person_id"]) in flagged]
        if children or others:
            return children + others
        return [p for p in persons if case["entity_type"] == "person" and str(p["person_id"]) == str(case["entity_id"])]

    def _loc_label(self, location_id: object, loc_labels: dict) -> str:
        if location_id is None or (isinstance(location_id, float) and pd.isna(location_id)):
            return ""
        if self.view.field("address") and loc_labels.get(location_id):
            return str(loc_labels[location_id])
        return str(location_id)

    def _entity_label(self, case: dict, person_labels: dict, loc_labels: dict) -> str:
        if case["entity_type"] == "person":
            return person_labels.get(case["entity_id"], case["entity_id"])
        if case["entity_type"] == "location":
            return self._loc_label(case["entity_id"], loc_labels)
        uprns = list(case.get("uprns") or [])
        if case["entity_type"] == "household" and uprns:
            return f"household at {self._loc_label('U' + str(uprns[0]), loc_labels)}"
        return f"{case['entity_type']} {case['entity_id']}"

    @staticmethod
    def _contributing(flags: list[dict]) -> set[tuple[str, str]]:
        """(source, record_key) of records named in the flags' evidence (any nesting)."""
        return set().union(*(f["named_records"] for f in flags))

    def _pretty_evidence(self) -> dict[int, str]:
        """Each flag's evidence pretty-printed, by its position in the flags frame (DuckDB ``json_pretty``,
        one query for all flags; missing when not JSON, cut at 20,000 characters)."""
        frame = pd.DataFrame({"i": range(len(self.flags)), "evidence": self.flags["evidence"].astype("string")})
        self.store.con.register("__c_evidence", frame)
        try:
            return dict(self.store.con.execute(
                "SELECT i, CASE WHEN json_valid(evidence) THEN left(json_pretty(evidence), 20000) END "
                "FROM __c_evidence").fetchall())
        finally:
            self.store.con.unregister("__c_evidence")

    def _category_of(self) -> dict[str, str]:
        """signal code -> category, from the gathered signals (no store access: called in page workers)."""
        sig = self.data.get("signals") if self.data else None
        if sig is None or not len(sig):
            return {}
        pairs = sig[["signal", "category"]].dropna().drop_duplicates()
        return dict(zip(pairs["signal"].astype(str), pairs["category"].astype(str), strict=False))

    def _flag_rows(self, flag_ids: set) -> dict[object, dict]:
        """The flags in ``flag_ids`` by id, each with its pretty-printed evidence ("" when missing or not
        JSON) and the records it names."""
        pretty = self.evidence_text
        wanted = self.flags["flag_id"].isin(pd.Series(list(flag_ids), dtype=object)).to_numpy()
        rows = {f["flag_id"]: dict(f, evidence_text=pretty.get(i) or "", named_records=named_records(f.get("evidence")))
                for i, f in zip(wanted.nonzero()[0].tolist(), self.flags[wanted].to_dict("records"), strict=True)}
        selectors = condition_selectors(self.config)
        category_of = self._category_of()
        for f in rows.values():
            f["sentences"] = evidence_sentences(f.get("evidence"), selectors, category_of)
            f["html"] = pagedata.flag_html(f)
        return rows
