"""Read one agency extract (CSV, XLSX, Parquet) into an all-text Arrow table with exact data-row numbers.

Every table returned has the working columns ``ROW`` (1-based data row, header not counted), ``ISSUE`` (a
quarantine reason found while reading: ragged_row, broken_quoting, undecodable; else NULL), ``RAW`` (the
record as read, only for rows with an issue) — named in a namespace no header can use, see
:mod:`ecins_link.ingest.sql` — and one VARCHAR column per header name, cleaned by :func:`clean_header`
(blank and repeated names renamed, each with a note).  :func:`read_info` gives the encoding and delimiter
used, the header notes and the columns ignored.  Blank lines are not records and are not
counted.  A file that cannot be read at all raises :class:`ReadError` (ingest turns it into one
``unreadable_file`` quarantine entry).

CSV records are delimited line by line so that a broken quote costs one row, not the rest of the file: a
line with an odd number of quote characters is joined with the following lines only while that yields a
well-formed record with the header's number of fields (a properly quoted embedded newline); otherwise the
first line alone is quarantined as ``broken_quoting`` and reading resumes on the next line.  A file where
every line is a whole record (no blank line, no odd quote count) is split in Arrow without the line loop.

Fields: records that are plain RFC 4180 with exactly the header's field count (checked with one vectorised
regex) are parsed by Arrow's multi-threaded CSV reader; every other record (stray or unbalanced quotes,
ragged, undecodable bytes) goes through Python's ``csv`` module as before, so reasons and row numbers do
not depend on which path a record took (tests compare the two paths).  XLSX: :mod:`ecins_link.ingest.xlsx`;
Parquet: :mod:`ecins_link.ingest.parquet`; sniffing and header cleaning: :mod:`ecins_link.ingest.sniff`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ecins_link.ingest.sniff import (  # noqa: F401 - re-exported: the readers' public names
    _SURROGATE,
    ReadError,
    _parse_one,
    clean_header,
    decode,
    read_info,
    sniff_delimiter,
    sniff_encoding,
    with_info,
)
from ecins_link.ingest.sql import INTERNAL, ISSUE, RAW, ROW

MAX_RECORD_LINES = 200  # a quoted field spanning more physical lines than this is treated as a broken quote
FAST_MAX_CHARS = 1 << 22  # longer records (e.g. a 50 MB field) skip Arrow's block-based parser


def read_csv(path: Path, encoding: str = "auto", delimiter: str = "auto") -> pa.Table:
    """Read a delimited text file into the all-text table described in the module docstring.

    ``encoding``/``delimiter`` ``auto``: sniffed (see :func:`decode`, :func:`sniff_delimiter`).  A declared
    delimiter that leaves the header in one piece while another splits it is a :class:`ReadError` saying so.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ReadError(f"cannot read file: {err.strerror or err}") from None
    text, had_bad, used = decode(data, encoding)
    del data
    head = text[:4000]
    if head and sum(ord(c) < 32 and c not in "\t\r\n" for c in head) > len(head) // 20:
        raise ReadError(f"does not look like delimited text (control characters throughout, read as {used}): "
                        "is this the right file and format?")
    lines = text.replace("\r\n", "\n").split("\n")  # a trailing CR is part of the line ending
    del text
    if lines and lines[-1] == "":
        lines.pop()
    start = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if start is None:
        raise ReadError("file is empty (no header)")
    sniffed = sniff_delimiter(lines[start:start + 51])
    if delimiter == "auto":
        delimiter = sniffed or ","
    elif sniffed and sniffed != delimiter and len(_parse_one(lines[start], delimiter) or []) <= 1:
        raise ReadError(f"the header does not split on the declared delimiter {delimiter!r} but does on "
                        f"{sniffed!r}: set delimiter = {json.dumps(sniffed)} (or \"auto\")")
    raw_header = _parse_one(lines[start], delimiter)
    if not raw_header:
        raise ReadError("header line cannot be parsed")
    header, notes = clean_header(raw_header)
    ncols = len(header)
    rownums, texts, issues = _split_records(lines, start + 1, ncols, delimiter)
    del lines
    bad = {k for k, t in enumerate(texts) if _SURROGATE.search(t)} if had_bad else set()
    fast = _plain_records(texts, bad, issues, ncols, delimiter)
    parts = []
    if fast is not None and pc.any(fast).as_py():
        try:
            parts.append(_arrow_parse(texts, rownums, fast, header, delimiter))
        except (pa.ArrowException, ValueError):  # e.g. a record larger than Arrow's block: parse all carefully
            fast = None
    slow = range(len(texts)) if fast is None else pc.indices_nonzero(pc.invert(fast)).to_pylist()
    if slow or not parts:
        parts.append(_python_parse([texts[k] for k in slow], [rownums[k] for k in slow],
                                   {j: issues[k] for j, k in enumerate(slow) if k in issues},
                                   {j for j, k in enumerate(slow) if k in bad}, header, delimiter))
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        table = table.take(pc.sort_indices(table.column(ROW)))
    return with_info(table, encoding=used, delimiter=delimiter, header_notes=notes, ignored=[])


# every character Python's str.isspace() accepts (so "blank line" means exactly what ``not line.strip()`` does)
_BLANK_RE = "^[\\t\\n\\x0b\\x0c\\r\\x1c-\\x20\\x85\\xa0\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]*$"


def _one_line_records(lines: list[str], first: int) -> bool:
    """True when every line from ``first`` is a whole record: none blank, none with an odd number of quotes."""
    if first >= len(lines):
        return False
    try:
        arr = pa.array(lines[first:] if first else lines, pa.large_string())
    except (UnicodeError, pa.ArrowException):  # undecodable bytes (lone surrogates): the careful loop
        return False
    if pc.any(pc.match_substring_regex(arr, _BLANK_RE)).as_py():
        return False
    return not pc.any(pc.not_equal(pc.bit_wise_and(pc.count_substring(arr, '"'), 1), 0)).as_py()


def _split_records(lines: list[str], first: int, ncols: int,
                   delimiter: str) -> tuple[list[int], list[str], dict[int, str]]:
    """Physical lines -> (data-row numbers, record texts, {index: broken_quoting issue}); blank lines skipped."""
    if _one_line_records(lines, first):  # the usual file: one line per record, checked in Arrow
        texts = lines[first:] if first else lines
        return list(range(1, len(texts) + 1)), texts, {}
    rownums: list[int] = []
    texts: list[str] = []
    issues: dict[int, str] = {}  # index into texts -> issue
    i, n, row = first, len(lines), 0
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        row += 1
        if line.count('"') % 2 == 0:
            rownums.append(row)
            texts.append(line)
            i += 1
            continue
        alone = _parse_one(line, delimiter)
        if alone is not None and len(alone) == ncols and "\n" not in "".join(alone):
            rownums.append(row)  # a stray quote inside an unquoted field is literal data
            texts.append(line)
            i += 1
            continue
        j, quotes, buf = i + 1, line.count('"'), [line]
        while j < n and quotes % 2 == 1 and j - i <= MAX_RECORD_LINES:
            buf.append(lines[j])
            quotes += lines[j].count('"')
            j += 1
        joined = "\n".join(buf)
        fields = _parse_one(joined, delimiter) if quotes % 2 == 0 else None
        if fields is not None and len(fields) == ncols:
            rownums.append(row)
            texts.append(joined)
            i = j
        else:
            issues[len(texts)] = "broken_quoting: unbalanced quote character; record cannot be delimited"
            rownums.append(row)
            texts.append(line)
            i += 1
    return rownums, texts, issues


def _plain_records(texts: list[str], bad: set[int], issues: dict[int, str], ncols: int,
                   delimiter: str) -> pa.BooleanArray | None:
    """Which records are plain RFC 4180 with exactly ``ncols`` fields (None: parse every record in Python).

    Plain = every field either unquoted (no quote, delimiter, CR, LF, NUL, BOM) or fully quoted with doubled
    inner quotes.  On such records Arrow's CSV parser and Python's ``csv`` give identical fields, so they take
    the fast path; anything else (stray quotes, ragged rows, undecodable bytes) keeps the careful parse.
    """
    if not texts or ncols > 900 or len(delimiter) != 1 or delimiter in '"\r\n':
        return None
    d = f"\\x{{{ord(delimiter):x}}}"
    field = f'(?:[^"{d}\\r\\n\\x00\\x{{feff}}]*|"(?:[^"\\r\\x00\\x{{feff}}]|"")*")'
    pattern = f"^{field}(?:{d}{field}){{{ncols - 1}}}$" if ncols > 1 else f"^{field}$"
    arr = pa.array(texts if not bad else ["\x00" if k in bad else t for k, t in enumerate(texts)], pa.large_string())
    mask = pc.match_substring_regex(arr, pattern)
    mask = pc.and_(mask, pc.less(pc.utf8_length(arr), FAST_MAX_CHARS))
    if issues:
        flagged = np.zeros(len(texts), dtype=bool)
        flagged[list(issues)] = True
        mask = pc.and_(mask, pa.array(~flagged))
    return mask


def _arrow_parse(texts: list[str], rownums: list[int], fast: pa.BooleanArray, header: list[str],
                 delimiter: str) -> pa.Table:
    """Parse the plain records with Arrow's multi-threaded CSV reader."""
    idx = pc.indices_nonzero(fast).to_numpy()
    chosen = [texts[k] for k in idx] if len(idx) < len(texts) else texts
    body = "\n".join(chosen)
    multiline = "\n" in body and len(chosen) < body.count("\n") + 1
    tmp_names = [f"c{k}" for k in range(len(header))]
    t = pacsv.read_csv(
        pa.BufferReader(body.encode("utf-8")),
        read_options=pacsv.ReadOptions(column_names=tmp_names, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=multiline),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(tmp_names, pa.string()),
                                             strings_can_be_null=False, quoted_strings_can_be_null=False))
    if t.num_rows != len(chosen):
        raise ValueError("fast CSV parse disagrees on the record count")
    n = t.num_rows
    arrays = {ROW: pa.array(np.asarray(rownums, dtype=np.int64)[idx]), ISSUE: pa.nulls(n, pa.string()),
              RAW: pa.nulls(n, pa.string())}
    for name, tmp in zip(header, tmp_names, strict=True):
        arrays[name] = t.column(tmp).combine_chunks()
    return pa.table(arrays)


def _python_parse(texts: list[str], rownums: list[int], issues: dict[int, str], bad: set[int], header: list[str],
                  delimiter: str) -> pa.Table:
    """The careful parse: Python ``csv`` per record, read problems recorded with the raw record."""
    ncols = len(header)
    parsed = _parse_all(texts, delimiter, issues)
    cols: list[list[str | None]] = [[] for _ in range(ncols)]
    issue_col: list[str | None] = []
    raw_col: list[str | None] = []
    for k, fields in enumerate(parsed):
        issue = issues.get(k)
        if issue is None and len(fields) != ncols:
            issue = f"ragged_row: {len(fields)} fields where the header has {ncols}"
        if issue is None and k in bad:
            issue = "undecodable: bytes not valid in the file's encoding"
        if issue is not None:
            fields = (fields + [None] * ncols)[:ncols]
            raw = _SURROGATE.sub("\ufffd", texts[k])[:1000]
            fields = [_SURROGATE.sub("\ufffd", f) if f else f for f in fields]
        else:
            raw = None
        for c in range(ncols):
            cols[c].append(fields[c])
        issue_col.append(issue)
        raw_col.append(raw)
    arrays = {ROW: pa.array(rownums, pa.int64()), ISSUE: pa.array(issue_col, pa.string()),
              RAW: pa.array(raw_col, pa.string())}
    for name, values in zip(header, cols, strict=True):
        arrays[name] = pa.array(values, pa.string())
    return pa.table(arrays)


def _parse_all(texts: list[str], delimiter: str, issues: dict[int, str]) -> list[list[str]]:
    """Parse records in one pass of the C parser; fall back record by record if one upsets it."""
    try:
        out = list(csv.reader(texts, delimiter=delimiter, strict=False))
        if len(out) == len(texts):
            return out
    except csv.Error:
        pass
    out = []
    for k, t in enumerate(texts):
        fields = _parse_one(t, delimiter)
        if fields is None:
            issues.setdefault(k, "broken_quoting: record cannot be parsed")
            fields = []
        out.append(fields)
    return out


def read_source(path: Path, fmt: str, encoding: str = "auto", delimiter: str = "auto",
                sheet: str | None = None, wanted: set[str] | None = None) -> pa.Table:
    """Dispatch on format; raises :class:`ReadError` for a file that cannot be read at all.

    ``wanted``: the columns the project maps (a nested Parquet column is read only when mapped).
    """
    if not path.exists():
        raise ReadError("file not found")
    if path.is_dir():
        raise ReadError("path is a folder, not a file")
    if fmt == "csv":
        return read_csv(path, encoding, delimiter)
    if fmt == "xlsx":
        from ecins_link.ingest.xlsx import read_xlsx

        return read_xlsx(path, sheet)
    if fmt == "parquet":
        from ecins_link.ingest.parquet import read_parquet

        return read_parquet(path, wanted)
    raise ReadError(f"unsupported format {fmt!r}")


def data_columns(table: pa.Table) -> list[str]:
    """The extract's own columns (every column but the readers' working ones)."""
    return [c for c in table.column_names if c not in INTERNAL]
