"""Rows and cells of the panel pack's pages: display text of a value, escaped table cells, gathered
frames as plain row dicts grouped by case, and the records a flag's evidence names.

Everything here is plain Python over values already fetched from the store (no store access), so it can
run in the forked page workers (:mod:`ecins_link.report.fanout`).
"""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from pathlib import Path

import pandas as pd
from markupsafe import Markup
from markupsafe import escape as markup_escape

from ecins_link.report.views import View


def fmt(value: object) -> str:
    """Display text for a cell: blanks for nulls, ISO dates, rounded floats, joined lists."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is int or kind is bool:
        return str(value)
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT or value is pd.NA:
        return ""
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M") if (value.hour or value.minute) else value.strftime("%Y-%m-%d")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    if hasattr(value, "tolist"):
        return fmt(value.tolist())
    return str(value)


def val(value: object) -> object:
    """``value`` with pandas' missing markers (NaN, NaT, NA) turned into None, so templates can test it."""
    kind = value.__class__
    if kind is str or kind is int or kind is bool or value is None:  # the common cases, without pd.isna
        return value
    if kind is float:
        return None if value != value else value  # noqa: PLR0124 - NaN test
    try:
        return None if pd.isna(value) else value
    except (TypeError, ValueError):  # lists and arrays are never "missing" here
        return value


class Cells:
    """``<td>`` cells of table rows, every value formatted (``fmt``) and HTML-escaped here (rows are joined
    cells, not a template loop per cell: the pack has ~1M cells at 250k persons; see ``pagedata``).  The
    cell of each distinct text, date or number is built once and reused (agencies, sources, dates and
    signal codes repeat on every page)."""

    MEMO_TYPES = (str, int, float, pd.Timestamp, dt.date)

    def __init__(self) -> None:
        self.memo: dict = {}  # (type, value) -> cell, for non-text values; also column tuples -> <th> cells
        self.text: dict[str, str] = {}  # text -> cell (most cells: a look-up without building a key)

    def td(self, value: object) -> str:
        """One escaped cell."""
        kind = value.__class__
        if kind is str:
            hit = self.text.get(value)  # type: ignore[arg-type]
            if hit is None:
                hit = self.text[value] = "<td>" + escape(value, quote=True) + "</td>"  # type: ignore[index]
            return hit
        if kind in self.MEMO_TYPES and value == value:  # noqa: PLR0124 - NaN is not memoised
            key = (kind, value)  # the type too: True == 1 == 1.0 but True is shown as "True"
            hit = self.memo.get(key)
            if hit is None:
                hit = self.memo[key] = "<td>" + escape(fmt(value), quote=True) + "</td>"
            return hit
        return "<td>" + escape(fmt(value), quote=True) + "</td>"

    def head(self, columns: list[str]) -> Markup:
        """``<th>`` cells naming ``columns`` (underscores shown as spaces)."""
        key = tuple(columns)
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = Markup("".join(["<th>" + str(markup_escape(c.replace("_", " "))) + "</th>"
                                                   for c in columns]))
        return hit


def write_page(path: Path, html: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(html)


def column(series: pd.Series) -> list:
    """A column as native Python values, pandas' ``NA`` (nullable and object columns) as None, the same
    values ``DataFrame.to_dict("records")`` gives."""
    values = series.tolist()
    if series.dtype == object or isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        na = pd.NA
        return [None if v is na else v for v in values]
    return values


def group_by_case(frame: pd.DataFrame) -> dict[str, list[dict]]:
    """Rows of a gathered frame as dicts grouped by case (order kept), ``detail`` made a plain bool.

    Built from whole-column lists (``Series.tolist``: native Python values, Timestamps for dates), several
    times faster than ``DataFrame.to_dict("records")``."""
    if "detail" in frame.columns:
        frame = frame.assign(detail=frame["detail"].fillna(False).astype(bool))
    names = list(frame.columns)
    out: dict[str, list[dict]] = {}
    for values in zip(*(column(frame[c]) for c in names), strict=True):
        row = dict(zip(names, values, strict=True))
        out.setdefault(row["case"], []).append(row)
    return out


def person_label(row: dict, view: View) -> str:
    name = row.get("display_name")
    if view.field("name") and isinstance(name, str) and name:
        return name
    return str(row["person_id"])


def named_records(evidence: str | None) -> frozenset[tuple[str, str]]:
    """(source, record_key) of every record named in a flag's evidence JSON (any nesting)."""
    found: set[tuple[str, str]] = set()

    def seen(obj: dict) -> dict:  # called by the JSON decoder for every object, however deeply nested
        if "source" in obj and "record_key" in obj:
            found.add((str(obj["source"]), str(obj["record_key"])))
        return obj

    try:
        json.loads(evidence, object_hook=seen) if evidence else None
    except (TypeError, ValueError):
        pass
    return frozenset(found)
