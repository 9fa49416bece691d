"""Read one sheet of an XLSX workbook into the all-text table of :mod:`ecins_link.ingest.readers`.

The sheet XML is read directly (openpyxl's workbook, shared-string and style readers are reused, cell values
follow openpyxl's ``parse_cell`` with ``data_only``); any surprise falls back to openpyxl's own reader.
Rows are numbered as data rows after the header; blank rows are not records; typed dates become ISO text.
Blank header cells, and values beyond the last header cell, become columns named ``column_<n>`` (a sheet
cannot tell a blank header cell from none), each with a header note.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pyarrow as pa

from ecins_link.ingest.readers import ReadError, clean_header, with_info
from ecins_link.ingest.sql import ISSUE, RAW, ROW


def _cell(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d") if v.time() == dt.time(0) else v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, dt.date):
        return v.strftime("%Y-%m-%d")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def read_xlsx(path: Path, sheet: str | None = None) -> pa.Table:
    """Read one sheet of a workbook (first sheet unless named); typed dates become ISO text."""
    if not path.exists():
        raise ReadError("file not found")
    try:
        all_rows = _fast_rows(path, sheet)
    except ReadError:
        raise
    except Exception:  # noqa: BLE001 - anything unusual: openpyxl's own (slower) reader decides
        all_rows = _openpyxl_rows(path, sheet)
    rows = iter(all_rows)
    header = None
    for r in rows:
        if any(v is not None and str(v).strip() for v in r):
            header = [_cell(v) or "" for v in r]
            break
    if not header:
        raise ReadError("sheet is empty (no header)")
    while header and not header[-1].strip():
        header.pop()
    # values beyond the last header cell: a column whose header cell is blank (not a ragged row: a sheet
    # cannot tell a blank header cell from none), renamed like any blank header
    width = max((len(r) for r in all_rows), default=0)
    if width > len(header):
        used = max((k + 1 for r in all_rows if len(r) > len(header)
                    for k in range(len(header), len(r)) if r[k] is not None and str(r[k]).strip()), default=0)
        header += [""] * max(0, used - len(header))
    header, notes = clean_header(header)
    ncols = len(header)
    cols: list[list[str | None]] = [[] for _ in range(ncols)]
    rownums, issues, raws, row = [], [], [], 0
    for r in rows:
        values = [_cell(v) for v in r]
        if not any(v is not None and v.strip() for v in values):
            continue
        row += 1
        extra = [v for v in values[ncols:] if v is not None and v.strip()]
        issue = f"ragged_row: {ncols + len(extra)} fields where the header has {ncols}" if extra else None
        values = (values + [None] * ncols)[:ncols]
        for c in range(ncols):
            cols[c].append(values[c])
        rownums.append(row)
        issues.append(issue)
        raws.append(",".join(v or "" for v in values + extra)[:1000] if issue else None)
    arrays = {ROW: pa.array(rownums, pa.int64()), ISSUE: pa.array(issues, pa.string()),
              RAW: pa.array(raws, pa.string())}
    for name, values in zip(header, cols, strict=True):
        arrays[name] = pa.array(values, pa.string())
    return with_info(pa.table(arrays), encoding="xlsx", delimiter=None, header_notes=notes, ignored=[])


XLSX_TREE_MAX = 64 << 20  # sheet XML bytes parsed as one tree; larger sheets are streamed
_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _openpyxl_rows(path: Path, sheet: str | None) -> list[tuple]:
    """All rows of the sheet through openpyxl's public read-only API (the reference behaviour)."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable workbook is one clear quarantine entry
        raise ReadError(f"not a readable workbook ({type(err).__name__})") from None
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise ReadError(f"sheet {sheet!r} not in workbook")
        if not wb.worksheets:
            raise ReadError("workbook has no sheets")
        ws = wb[sheet] if sheet else wb.worksheets[0]
        return list(ws.iter_rows(values_only=True))
    finally:
        wb.close()


def _fast_rows(path: Path, sheet: str | None) -> list[list[object]]:
    """The sheet's non-missing rows as openpyxl's ``iter_rows(values_only=True)`` gives them, read straight
    from the sheet XML.  openpyxl's loader parses every sheet once just to size it and builds objects per
    cell (~10x slower); here only its workbook, shared-string and style readers are used.  Raises on
    anything unexpected (the caller then uses :func:`_openpyxl_rows`)."""
    from xml.etree.ElementTree import fromstring, iterparse

    from openpyxl.reader.excel import ExcelReader
    from openpyxl.styles.stylesheet import apply_stylesheet
    from openpyxl.utils.cell import column_index_from_string
    from openpyxl.utils.datetime import from_excel, from_ISO8601

    reader = ExcelReader(path, read_only=True, data_only=True)
    try:
        reader.read_manifest()
        reader.read_strings()
        reader.read_workbook()
        apply_stylesheet(reader.archive, reader.wb)
        targets = {s.name: rel.target for s, rel in reader.parser.find_sheets()
                   if rel.target in reader.valid_files and "chartsheet" not in rel.Type}
        if sheet is not None and sheet not in targets:
            raise ReadError(f"sheet {sheet!r} not in workbook")
        target = targets[sheet] if sheet is not None else next(iter(targets.values()))
        wb = reader.wb
        return _sheet_rows(reader.archive, target, reader.shared_strings, wb._date_formats,
                           wb._timedelta_formats, wb.epoch, (fromstring, iterparse, column_index_from_string,
                                                             from_excel, from_ISO8601))
    finally:
        reader.archive.close()


def _sheet_rows(archive: zipfile.ZipFile, target: str, shared: list, dates: object, deltas: object,
                epoch: object, fns: tuple) -> list[list[object]]:
    fromstring, iterparse, column_index_from_string, from_excel, from_ISO8601 = fns
    row_tag, cell_tag, v_tag, is_tag, t_tag, r_tag = (_NS + x for x in ("row", "c", "v", "is", "t", "r"))
    out: list[list[object]] = []
    with archive.open(target) as src:
        if archive.getinfo(target).file_size <= XLSX_TREE_MAX:  # one C call; huge sheets are streamed
            root = fromstring(src.read())
            elements = root.iter(row_tag)
        else:
            elements = (el for _event, el in iterparse(src) if el.tag == row_tag)
        for el in elements:
            values: list[object] = []
            for c in el:
                if c.tag != cell_tag:
                    continue
                ref = c.get("r")
                col = column_index_from_string(ref.rstrip("0123456789")) if ref else len(values) + 1
                if col <= len(values):
                    raise ValueError("cells out of order")
                values.extend([None] * (col - 1 - len(values)))
                values.append(_xml_cell(c, shared, dates, deltas, epoch, (v_tag, is_tag, t_tag, r_tag),
                                        from_excel, from_ISO8601))
            out.append(values)
            el.clear()
    return out


def _xml_cell(c: object, shared: list, dates: object, deltas: object, epoch: object, tags: tuple,
              from_excel: object, from_iso: object) -> object:
    """One ``<c>`` element -> its value, following openpyxl's ``WorkSheetParser.parse_cell`` (data_only)."""
    v_tag, is_tag, t_tag, r_tag = tags
    kind = c.get("t", "n")
    if kind == "inlineStr":
        node = c.find(is_tag)
        if node is None:
            return None
        plain = node.find(t_tag)
        parts = [plain.text] if plain is not None and plain.text is not None else []
        parts += [t.text for r in node if r.tag == r_tag for t in r if t.tag == t_tag and t.text is not None]
        return "".join(parts)
    value = c.findtext(v_tag) or None
    if value is None:
        return None
    if kind == "n":
        number = float(value) if ("." in value or "E" in value or "e" in value) else int(value)
        style = int(c.get("s", 0) or 0)
        if style and style in dates:
            try:
                return from_excel(number, epoch, timedelta=style in deltas)
            except (OverflowError, ValueError):
                return "#VALUE!"
        return number
    if kind == "s":
        return shared[int(value)]
    if kind == "b":
        return bool(int(value))
    if kind in ("str", "e"):
        return value
    if kind == "d":
        return from_iso(value)
    raise ValueError(f"unknown cell type {kind!r}")


