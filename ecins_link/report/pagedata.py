"""A share of the case pages' data, turned into ready HTML pieces column by column (not cell by cell).

A page worker (:mod:`ecins_link.report.fanout`) renders a share of the cases.  Instead of turning every
gathered row into a dict and formatting and escaping its cells one at a time on every page, the rows of
the share's cases are processed once per *column*: each distinct value of a column is formatted and
escaped once (``Cells.td``, so the cell text is exactly what a per-cell pass gives) and every row's cells
are picked from those.  A signal row's cells do not depend on the page (only its "used by a rule" marker
does), so a whole row is one string; a record keeps one cell per column (a page shows only the columns
its person has values in).  Pages then only pick rows by case and join strings.

Plain Python over frames already fetched from the store (no store access): safe in a forked worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from markupsafe import escape as markup_escape

from ecins_link.report.cells import Cells, column, fmt, group_by_case, val
from ecins_link.report.labels import (
    agency_label,
    category_label,
    entity_label,
    role_label,
    signal_label,
    source_label,
)
from ecins_link.report.tables import STATUS_ORDER

SIGNAL_CELLS = ("event_date", "agency", "source", "record_key", "signal", "category", "role")
AT_RISK_CATEGORIES = {"VULNERABILITY", "CHILD_WELFARE", "EXPLOITATION"}
VICTIM_ROLES = {"V", "VICTIM"}
TIMELINE_FIELDS = ("event_date", "agency", "signal", "category", "role")


def _worded(frame: pd.DataFrame) -> pd.DataFrame:
    """The signal frame with codes as words (signal, category, role, agency, source): each distinct value
    mapped once."""
    if not len(frame):
        return frame
    out = frame.copy()
    for col, fn in (("signal", signal_label), ("category", category_label), ("role", role_label),
                    ("agency", agency_label), ("source", source_label)):
        if col in out.columns:
            values = out[col].astype("object")
            uniques = {v: fn(v) for v in pd.unique(values.dropna())}
            out[col] = values.map(uniques)
    return out


def page_cells(cells: Cells, series: pd.Series) -> list[str]:
    """``cell_column`` for a page table: date cells never wrap at their hyphens (``class="nowrap"``)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype) or (
            series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) == "date"):
        return [c.replace("<td>", '<td class="nowrap">', 1) for c in cell_column(cells, series)]
    return cell_column(cells, series)


def cell_column(cells: Cells, series: pd.Series) -> list[str]:
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
        return [cells.td(v) for v in column(series)]  # lists, mixed types: value by value (1 == True in a dict)
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # unhashable values
        return [cells.td(v) for v in column(series)]
    table = [cells.td(u) for u in uniques.tolist()]
    table.append(cells.td(None))  # code -1 (missing: None, NaN, NaT, NA) picks this last entry
    return [table[c] for c in codes.tolist()]


def cells_of(cells: Cells, values: list) -> list[str]:
    """``Cells.td`` of each value (values already Python objects, e.g. computed labels)."""
    td = cells.td
    return [td(v) for v in values]


def _index_by_case(cases: list) -> dict[object, list[int]]:
    out: dict[object, list[int]] = {}
    for i, key in enumerate(cases):
        out.setdefault(key, []).append(i)
    return out


def _agencies(frame: pd.DataFrame) -> list:
    """Each row's agency when present (None otherwise)."""
    if "agency" not in frame.columns:
        return [None] * len(frame)
    return [a if val(a) is not None else None for a in column(frame["agency"])]


def _detail(frame: pd.DataFrame) -> list[bool]:
    return frame["detail"].fillna(False).astype(bool).tolist() if len(frame) else []


class SignalRows:
    """A share's signal rows: per case its row numbers; per row detail, agency, (source, record key) and its
    cells as one escaped string (without the opening ``<tr>``: that marks rows used by a rule)."""

    def __init__(self, frame: pd.DataFrame, cells: Cells, person_label: Callable[[object], object],
                 loc_label: Callable[[object], str], linked_persons: set[str] | None = None) -> None:
        self.frame = frame
        self._risk: list | None = None
        shown = _worded(frame)
        self._timeline: dict[str, list] | None = None
        self.by_case = _index_by_case(column(frame["case"])) if len(frame) else {}
        self.detail = _detail(frame)
        self.agency = _agencies(frame)
        sources = column(frame["source"]) if len(frame) else []
        self.key = [(s, str(k)) for s, k in zip(sources, column(frame["record_key"]) if len(frame) else [],
                                                strict=True)]
        parts = [page_cells(cells, shown[c]) for c in SIGNAL_CELLS]
        memo: dict = {}
        persons = column(frame["person_id"]) if len(frame) else []
        parts.append(cells_of(cells, [memo[p] if p in memo else memo.setdefault(p, person_label(p))
                                      for p in persons]))
        locs = column(frame["location_id"]) if len(frame) else []
        loc_memo: dict = {}
        parts.append(cells_of(cells, [loc_memo[x] if x in loc_memo else loc_memo.setdefault(x, loc_label(x))
                                      for x in locs]))
        conf = frame["link_confidence"] if len(frame) else frame.get("link_confidence")
        if len(frame) and linked_persons is not None:  # a confidence only where the person's records were linked
            conf = conf.where(frame["person_id"].astype("string").isin(list(linked_persons)).fillna(False).to_numpy())
        parts.append(cell_column(cells, conf) if len(frame) else [])
        self.html = ["".join(t) + "</tr>\n" for t in zip(*parts, strict=True)]

    def rows(self, case: object) -> list[int]:
        return self.by_case.get(case, [])

    def at_risk_persons(self, rows: Sequence[int]) -> set[str]:
        """Persons of ``rows`` recorded as a victim or with a vulnerability, child-welfare or exploitation
        signal (who a case is about, when it is headed by an address or household)."""
        if not rows:
            return set()
        if self._risk is None:
            cats = column(self.frame["category"].astype("string").str.upper())
            roles = column(self.frame["role"].astype("string").str.upper())
            persons = column(self.frame["person_id"])
            self._risk = [str(p) if p is not None and (c in AT_RISK_CATEGORIES or r in VICTIM_ROLES) else None
                          for p, c, r in zip(persons, cats, roles, strict=True)]
        return {self._risk[i] for i in rows if self._risk[i] is not None}

    def timeline_rows(self, rows: Sequence[int]) -> list[dict]:
        """The rows as dicts of the fields the timeline draws (the columns listed once, when first needed)."""
        if self._timeline is None:
            self._timeline = {f: column(self.frame[f]) for f in TIMELINE_FIELDS}
        cols = self._timeline
        return [{f: cols[f][i] for f in TIMELINE_FIELDS} for i in rows]


class RecordRows:
    """A share's source records: per case its row numbers; per row person, detail, agency, cluster
    confidence, its cells for each displayable column and its escaped 'why linked' text."""

    def __init__(self, frame: pd.DataFrame, cells: Cells, cols: list[str], linked: Callable[[object, object],
                 tuple[object, str | None]]) -> None:
        n = len(frame)
        self.by_case = _index_by_case(column(frame["case"])) if n else {}
        self.person = column(frame["person_id"]) if n else []
        self.detail = _detail(frame)
        self.agency = _agencies(frame)
        self.available = [c for c in cols if c in frame.columns]
        self.conf = ([val(v) for v in column(frame["cluster_confidence"])] if n and "cluster_confidence" in
                     frame.columns else [None] * n)
        why: list[str | None] = [None] * n
        shown_link: list = [None] * n
        if n and "linked_to" in frame.columns:
            ids = column(frame["unique_id"]) if "unique_id" in frame.columns else [None] * n
            for i, (uid, partner) in enumerate(zip(ids, column(frame["linked_to"]), strict=True)):
                shown_link[i], text = linked(uid, partner)
                why[i] = str(markup_escape(text)) if text else None
        self.why = why
        self.cells: dict[str, list[str]] = {}
        # per row, a bit per displayable column: set when the row has a value there (a person's table shows
        # only the columns some record of theirs fills)
        filled = np.zeros(n, dtype=np.int64)
        for j, c in enumerate(self.available):
            if c == "linked_to":
                self.cells[c] = cells_of(cells, shown_link)
                has = np.array([v is not None for v in shown_link], dtype=bool)
            else:
                self.cells[c] = page_cells(cells, frame[c])
                has = frame[c].notna().to_numpy(dtype=bool)  # (None, NaN, NaT and NA are all missing)
            filled |= has.astype(np.int64) << j
        self.filled: list[int] = filled.tolist()

    def shown_columns(self, rows: list[int]) -> list[str]:
        """The columns a table of ``rows`` shows: source, agency and record key, and every other column
        that one of the rows fills."""
        if not rows:
            return []
        mask = 0
        for i in rows:
            mask |= self.filled[i]
        return [c for j, c in enumerate(self.available) if c in ("source", "agency", "record_key") or mask >> j & 1]

    def rows(self, case: object) -> list[int]:
        return self.by_case.get(case, [])

    def body(self, rows: list[int], shown: list[str]) -> str:
        """Table body of ``rows``: one row of ``shown`` columns each, then its 'why linked' line."""
        cols = [self.cells[c] for c in shown]
        out = []
        for i in rows:
            out.append("<tr>" + "".join([col[i] for col in cols]) + "</tr>\n")
            if self.why[i]:
                out.append(f'<tr class="why"><td colspan="{len(shown)}">why linked: {self.why[i]}</td></tr>')
        return "".join(out)


class EdgeRows:
    """A share's network edges (src, dst, edge_type) shown in detail, by case."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.by_case: dict[object, list[tuple]] = {}
        if not len(frame):
            return
        for case, src, dst, etype, shown in zip(column(frame["case"]), column(frame["src"]), column(frame["dst"]),
                                                column(frame["edge_type"]), _detail(frame), strict=True):
            if shown:
                self.by_case.setdefault(case, []).append((src, dst, etype))

    def rows(self, case: object) -> list[tuple]:
        return self.by_case.get(case, [])


def share_frames(data: dict[str, pd.DataFrame], keys: Sequence[object]) -> dict[str, pd.DataFrame]:
    """The gathered frames' rows of the cases ``keys`` (frames without a case column left out)."""
    wanted = pd.Series(list(keys), dtype=object)
    return {k: v[v["case"].isin(wanted)] for k, v in data.items() if "case" in v.columns}


def grouped(frame: pd.DataFrame | None, columns: Sequence[str] | None = None) -> dict[str, list[dict]]:
    """Rows of a (small) frame as dicts by case (``group_by_case``), only ``columns`` (and ``case``) of
    them if given; empty when there is no frame."""
    if frame is None or not len(frame):
        return {}
    if columns is not None:
        frame = frame[["case", *[c for c in columns if c in frame.columns]]]
    return group_by_case(frame)


def flag_html(f: dict) -> str:
    """A flag's part of a case page's summary (heading, guidance, evidence), every value escaped as the
    template would (``markupsafe.escape``); the same for every page that shows the flag."""
    e = markup_escape
    out = (f'<h3>{e(f["label"] or f["rule"])} <span class="muted">(rank {e(f["rank"])}, '
           f'score {e(fmt(f["score"]))}, {e(fmt(f["first_date"]))} – {e(fmt(f["last_date"]))})</span></h3>\n')
    if f.get("status"):
        out += (f'<p class="muted">Status: {e(f["status"])}; criterion first met {e(fmt(f.get("first_met")))}, '
                f'last met {e(fmt(f.get("last_met")))}</p>\n')
    if f.get("sentences"):
        out += "<ul class=\"evidence\">" + "".join(f"<li>{e(t)}</li>" for t in f["sentences"]) + "</ul>\n"
    if f["guidance"]:
        out += f'<div class="guidance">{e(f["guidance"])}</div>'
    if f["evidence_text"]:
        out += f'<details><summary>Evidence as the rule recorded it (technical)</summary><pre>{e(f["evidence_text"])}</pre></details>'
    return out


def person_html(p: dict) -> str:
    """A person's part of a case page: heading (id, birth date, age, sex, child, link confidence as the
    view allows; values escaped) and the table of their records (``head`` and ``body``: escaped HTML)."""
    e = markup_escape
    out = f'<h3>{e(p["label"])} <span class="muted">({e(p["person_id"])}'
    if p["dob"]:
        out += f", born {e(fmt(p['dob']))}"
    if p["age"] is not None:
        out += f", age {e(p['age'])}"
    if p["sex"]:
        out += f", {e(p['sex'])}"
    if p["is_child"]:
        out += ", child"
    if p["confidence"] is not None:
        out += f", link confidence {e(fmt(p['confidence']))}"
    out += ")</span></h3>\n"
    if p["rows"]:
        return out + (f'<table class="records">\n<thead><tr>{p["head"]}</tr></thead>\n'
                      f'<tbody>{p["body"]}</tbody>\n</table>\n')
    return out + '<p class="muted">No records shared for this purpose.</p>'


def worklist_rows(cases: Sequence[dict]) -> str:
    """The worklist table's rows (index.html), one per case with its ``label``, every value escaped as the
    template would (``markupsafe.escape``)."""
    e = markup_escape
    marker = ("<span class=\"marker\" title=\"No single agency's records meet this rule\">"
              "invisible to any single agency</span>")
    return "".join([
        f'<tr{_status_class(c)}>\n  <td>{e(c["rank"])}</td>\n  <td><a href="{e(c["page"])}">{e(entity_label(c["entity_type"]))} {e(c["entity_id"])}'
        f'</a></td>\n  <td>{e(c["label"])}</td>\n  <td>{e(c.get("rule_words") or str(c["rules"]).replace(";", ", "))}</td>\n'
        f'  <td>{e(fmt(c["score"]))}</td>\n  <td>{e(fmt(c["agencies"]))}</td>\n'
        f'  <td>{marker if c["invisible_to_single_agency"] == "yes" else ""}</td>\n'
        f'  <td>{e(fmt(c["first_date"]))} – {e(fmt(c["last_date"]))}{_status(c)}</td>\n</tr>\n' for c in cases])


def _status_class(c: dict) -> str:
    """`` class="st-<status>"`` for a known status (``tables.STATUS_ORDER``: the only values that reach the
    attribute), else "": the class the worklist's status filter (index.html, CSS only) hides rows by."""
    status = c.get("status")
    return f' class="st-{status}"' if status in STATUS_ORDER else ""


def _status(c: dict) -> str:
    """A case's status and the dates its criteria were met, for the worklist's dates cell (escaped)."""
    if not c.get("status"):
        return ""
    e = markup_escape
    return (f'<br><span class="muted">{e(c["status"])}: met {e(fmt(c.get("first_met")))} – '
            f'{e(fmt(c.get("last_met")))}</span>')
