"""Reading helpers shared by the CSV, XLSX and Parquet readers: encoding and delimiter sniffing, header
cleaning (blank and repeated names renamed, each with a note), and what a reader found, attached to the table
as schema metadata."""

from __future__ import annotations

import csv
import json
import re

import pyarrow as pa

DELIMITERS = (",", ";", "\t", "|")
_SURROGATE = re.compile("[\udc80-\udcff]")
csv.field_size_limit(2**31 - 1)  # a huge field is quarantined as field_too_long with its key, not a parse error
META = b"ecins_read"  # schema metadata key: JSON {encoding, delimiter, header_notes, ignored}


class ReadError(Exception):
    """The file cannot be read at all (missing, empty, wrong format, no header)."""


def sniff_encoding(data: bytes) -> str:
    """The encoding a byte-order mark or the NUL pattern shows ('utf-8' when neither says otherwise)."""
    for bom, name in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                      (b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            return name
    head = data[:4096]
    if len(head) >= 4 and head.count(0) >= len(head) // 4:  # UTF-16 text without a BOM: every other byte NUL
        odd, even = head[1::2].count(0), head[0::2].count(0)
        return "utf-16-le" if odd > even else "utf-16-be"
    return "utf-8"


def decode(data: bytes, encoding: str) -> tuple[str, bool, str]:
    """Bytes -> (text, had_undecodable_bytes, encoding used).

    ``auto``: a BOM or NUL pattern decides (UTF-8, UTF-16, UTF-32); else UTF-8, else cp1252.  Bytes that
    the chosen encoding cannot decode become lone surrogates so the rows holding them can be quarantined
    as ``undecodable`` rather than failing the whole file.
    """
    enc = encoding.lower()
    if enc == "auto":
        enc = sniff_encoding(data)
        if enc.startswith(("utf-16", "utf-32")):
            bom = {"utf-16-le": 2, "utf-16-be": 2, "utf-32-le": 4, "utf-32-be": 4}[enc]
            body = data[bom:] if data[:bom] in (b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00",
                                                b"\x00\x00\xfe\xff") else data
            text = body.decode(enc, errors="replace")
            return text, False, enc
        enc = "auto"
    if enc in ("auto", "utf-8", "utf8", "utf-8-sig"):
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            return data.decode("utf-8"), False, "utf-8"
        except UnicodeDecodeError:
            if enc != "auto":
                text = data.decode("utf-8", errors="surrogateescape")
                return text, True, "utf-8"
        encoding = "cp1252"
    try:
        text = data.decode(encoding, errors="surrogateescape")
    except LookupError:
        raise ReadError(f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as err:  # e.g. a declared UTF-16 file with an odd byte count
        raise ReadError(f"not valid {encoding}: {err.reason} at byte {err.start}") from None
    return text, bool(_SURROGATE.search(text)), encoding


def sniff_delimiter(lines: list[str]) -> str | None:
    """The delimiter (``, ; tab |``) that splits the header into the most fields and the sample records into
    the same number; None when none splits the header (a one-column file)."""
    best, best_n = None, 1
    for d in DELIMITERS:
        head = _parse_one(lines[0], d)
        n = len(head) if head else 0
        if n <= best_n:
            continue
        sample = [ln for ln in lines[1:51] if ln.strip()]
        counts = [len(f) for f in (_parse_one(ln, d) for ln in sample) if f]
        if sample and sum(c == n for c in counts) < 0.5 * len(sample):
            continue  # splits the header but not the records: not this file's delimiter
        best, best_n = d, n
    return best


def clean_header(names: list[object]) -> tuple[list[str], list[dict]]:
    """Header cells -> unique column names, and a note for each one renamed.

    Names are stripped of surrounding whitespace (so none can start with a space: the working-column
    namespace).  A blank or whitespace-only name becomes ``column_<position>``; a name repeating an
    earlier one (ignoring case, as SQL does) gets ``_2``, ``_3``... — never the name of another column.
    """
    stripped = ["" if n is None else str(n).strip().lstrip("\ufeff").strip() for n in names]
    taken = {n.casefold() for n in stripped if n}
    seen: set[str] = set()
    out, notes = [], []
    for i, (orig, name) in enumerate(zip(names, stripped, strict=True), start=1):
        problem = None
        if not name:
            problem, base = "blank header", f"column_{i}"
        elif name.casefold() in seen:
            problem, base = f"header {str(orig)!r} repeats an earlier column", name
        else:
            base = name
        new = base
        if problem:
            k = 1 if not name else 2
            new = base if k == 1 else f"{base}_{k}"
            while new.casefold() in seen or new.casefold() in taken:
                k += 1
                new = f"{base}_{k}"
            notes.append({"column": i, "header": "" if orig is None else str(orig), "renamed": new,
                          "problem": f"{problem} (column {i}); renamed {new!r}"})
        seen.add(new.casefold())
        out.append(new)
    return out, notes


def with_info(table: pa.Table, **info: object) -> pa.Table:
    """Attach what the reader found (encoding, delimiter, header notes, ignored columns) to the table."""
    return table.replace_schema_metadata({META: json.dumps(info, default=str).encode("utf-8")})


def read_info(table: pa.Table) -> dict:
    """What the reader found, as attached by :func:`with_info` (empty dict when absent)."""
    meta = table.schema.metadata or {}
    return json.loads(meta[META]) if META in meta else {}


def _parse_one(text: str, delimiter: str) -> list[str] | None:
    try:
        rows = list(csv.reader([text], delimiter=delimiter, strict=False))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None
