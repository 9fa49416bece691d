"""Inject malformed rows into the CSV extracts (``--bad-rows K``) and record what ingest should do with each.

Rows are inserted at random positions (broken quoting last, as an unclosed quote swallows what follows);
``row_number`` is the 1-based data row of the final file.  One source (council people) is written in cp1252.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ecins_link.synth import noise, vocab
from ecins_link.synth.truth import record_key
from ecins_link.synth.writer import public

CP1252_SOURCE = "council_people"
_UNDECODABLE = "\x00UNDECODABLE\x00"


class _EmptySource(Exception):
    """The source has no row to base a defect on."""


@dataclass
class BadRows:
    """Raw file bytes for the sources that got bad rows, extra truth rows and the bad-row truth table."""

    raw_csv: dict[str, bytes] = field(default_factory=dict)
    extra_rows: dict[str, int] = field(default_factory=dict)
    truth: pd.DataFrame = field(default_factory=pd.DataFrame)
    extra_records: list[dict] = field(default_factory=list)
    extra_addresses: list[dict] = field(default_factory=list)


def _line(df: pd.DataFrame) -> str:
    """One CSV data line (no header, no newline) for a one-row frame of public columns."""
    return public(df).to_csv(index=False, header=False, lineterminator="\n").rstrip("\n")


def inject(rng: np.random.Generator, tables: dict[str, pd.DataFrame], k: int, encodings: dict[str, str],
           people: pd.DataFrame | None = None) -> BadRows:
    """Choose ``k`` defects (catalogue order, repeating date defects beyond it) and build the raw files."""
    out = BadRows()
    inserts: dict[str, list[tuple[str, str, str, bool]]] = {}  # source -> [(line, expected, key, at_end)]

    def row(source: str, plain: bool = False) -> pd.DataFrame:
        """A random existing row (``plain``: one whose CSV line has no quoted field)."""
        df = tables[source]
        if not len(df):
            raise _EmptySource(source)
        for _ in range(200):
            r = df.iloc[[int(rng.integers(len(df)))]].copy()
            if not plain or '"' not in _line(r):
                return r
        return r

    def add(source: str, df: pd.DataFrame | str, expected: str, key: str, at_end: bool = False) -> None:
        line = df if isinstance(df, str) else _line(df)
        inserts.setdefault(source, []).append((line, expected, key, at_end))

    def fresh(prefix: str) -> str:
        return f"{prefix}{int(rng.integers(10**8, 10**9))}"

    def accepted(source: str, r: pd.DataFrame, keycol: str) -> None:
        key = str(r[keycol].iat[0])
        out.extra_records.append({"source": source, "record_key": key,
                                  "true_person_id": int(r["_person"].iat[0])})
        if "_uprn" in r and str(r["_uprn"].iat[0]):
            out.extra_addresses.append({"source": source, "record_key": key, "true_uprn": str(r["_uprn"].iat[0])})

    def d_impossible() -> None:
        r = row("police_nominals")
        r["NOMINAL_ID"], r["DOB"] = fresh("N"), "31/02/1990"
        add("police_nominals", r, "bad_date", r["NOMINAL_ID"].iat[0])

    def d_future() -> None:
        r = row("council_people")
        r["PERSON_ID"], r["DOB"] = fresh("C"), "12-Mar-2031"
        add("council_people", r, "future_date", r["PERSON_ID"].iat[0])

    def d_unparseable() -> None:
        r = row("police_occurrences")
        r["OCC_REF"], r["OCC_DATETIME"] = fresh("OC"), "not known"
        add("police_occurrences", r, "bad_date", f"{r['OCC_REF'].iat[0]}|{r['NOMINAL_ID'].iat[0]}")

    def d_missing_key() -> None:
        r = row("housing_cases")
        r["CASE_ID"] = ""
        add("housing_cases", r, "missing_key", "")

    def d_conflict() -> None:
        key = fresh("CT")
        for code in ("INFO", "ASC-MH"):
            r = row("council_contacts")
            r["CONTACT_ID"], r["CONTACT_TYPE"] = key, code
            add("council_contacts", r, "duplicate_key_conflict", key)

    def d_identical() -> None:
        r = row("police_nominals")
        add("police_nominals", r, "accepted_duplicate", r["NOMINAL_ID"].iat[0])

    def d_ragged_many() -> None:
        r = row("police_occurrences")
        r["OCC_REF"] = fresh("OC")
        add("police_occurrences", _line(r) + ",EXTRA,COLUMNS", "ragged_row", f"{r['OCC_REF'].iat[0]}|{r['NOMINAL_ID'].iat[0]}")

    def d_ragged_few() -> None:
        r = row("council_contacts", plain=True)
        r["CONTACT_ID"] = fresh("CT")
        add("council_contacts", ",".join(_line(r).split(",")[:3]), "ragged_row", r["CONTACT_ID"].iat[0])

    def d_long() -> None:
        r = row("police_nominals")
        r["NOMINAL_ID"], r["ADDRESS"] = fresh("N"), "X" * 100_000
        add("police_nominals", r, "field_too_long", r["NOMINAL_ID"].iat[0])

    def d_orphan() -> None:
        r = row("council_contacts")
        r["CONTACT_ID"], r["PERSON_ID"] = fresh("CT"), "C0000001"
        add("council_contacts", r, "orphan_reference", r["CONTACT_ID"].iat[0])

    def d_formula() -> None:
        r = row("council_people")
        r["PERSON_ID"], r["FORENAME"] = fresh("C"), '=HYPERLINK("http://evil.example/x","Click me")'
        add("council_people", r, "accepted_unsafe", r["PERSON_ID"].iat[0])
        accepted("council_people", r, "PERSON_ID")

    def d_cmd() -> None:
        r = row("police_nominals")
        r["NOMINAL_ID"] = fresh("N")
        r["NAME"] = "+CMD|' /C CALC'!A0, " + r["NAME"].iat[0].split(", ", 1)[-1]
        add("police_nominals", r, "accepted_unsafe", r["NOMINAL_ID"].iat[0])
        accepted("police_nominals", r, "NOMINAL_ID")

    def d_script() -> None:
        r = row("council_people")
        r["PERSON_ID"], r["SURNAME"] = fresh("C"), "<script>alert(1)</script>"
        add("council_people", r, "accepted_unsafe", r["PERSON_ID"].iat[0])
        accepted("council_people", r, "PERSON_ID")

    def d_broken_quote() -> None:
        r = row("council_contacts", plain=True)
        r["CONTACT_ID"] = fresh("CT")
        parts = _line(r).split(",")
        parts[2] = '"' + parts[2]
        add("council_contacts", ",".join(parts), "broken_quoting", r["CONTACT_ID"].iat[0], at_end=True)

    def d_undecodable() -> None:
        r = row("council_people")
        r["PERSON_ID"], r["SURNAME"] = fresh("C"), "NOW" + _UNDECODABLE + "K"
        add("council_people", r, "undecodable", r["PERSON_ID"].iat[0])

    def d_cp1252() -> None:
        encodings[CP1252_SOURCE] = "auto"
        out.raw_csv.setdefault(CP1252_SOURCE, b"")
        df = tables[CP1252_SOURCE]
        if people is None or (~(df["FORENAME"] + df["SURNAME"]).map(_folds_to_ascii)).sum() >= 3:
            return
        idx = df["_person"].to_numpy().astype(int)
        fore, sur = people["forenames"].to_numpy()[idx], people["surname"].to_numpy()[idx]
        accented = [i for i in range(len(df)) if not _folds_to_ascii(fore[i] + sur[i])][:3]
        for i in accented:  # this agency kept the accents for a few people
            df.iloc[i, df.columns.get_loc("FORENAME")] = str(fore[i]).title()
            df.iloc[i, df.columns.get_loc("SURNAME")] = str(sur[i]).title()
        if accented:
            return
        spelled = {}  # ASCII name -> an accented spelling of it (Chloë, André, Seán) from the variant table
        for name, variants in vocab.name_variants().items():
            for v, _kind in variants:
                for plain, fancy in ((name, v), (v, name)):
                    if plain.isascii() and not _folds_to_ascii(fancy) and noise.fold(fancy) == plain:
                        spelled.setdefault(plain, fancy)
        col = df.columns.get_loc("FORENAME")
        hits = [i for i in range(len(df)) if str(df.iat[i, col]).upper() in spelled][:3]
        for i in hits:
            df.iat[i, col] = spelled[str(df.iat[i, col]).upper()].title()

    catalogue = [d_cp1252, d_impossible, d_future, d_unparseable, d_missing_key, d_conflict, d_identical,
                 d_ragged_many, d_ragged_few, d_broken_quote, d_long, d_orphan, d_formula, d_cmd, d_script,
                 d_undecodable]
    repeat = [d_impossible, d_unparseable, d_future, d_ragged_many, d_orphan]
    for i in range(k):
        try:
            (catalogue[i] if i < len(catalogue) else repeat[(i - len(catalogue)) % len(repeat)])()
        except _EmptySource:  # a tiny town may have no rows to copy from in some source
            continue
    truth_rows = []
    for source in sorted(set(inserts) | set(out.raw_csv)):
        data, rows = _assemble(rng, tables[source], inserts.get(source, []))
        truth_rows += [{"source": source, **r} for r in rows]
        if source == CP1252_SOURCE and CP1252_SOURCE in out.raw_csv:
            data = ["".join(c if _cp1252_ok(c) else noise.fold(c) for c in line) for line in data]
            truth_rows += [{"source": source, **r} for r in _decoded_rows(tables[source], data, rows)]
            raw = "\n".join(data).encode("cp1252", errors="strict") + b"\n"
            raw = raw.replace(_UNDECODABLE.encode("cp1252"), b"\x81\x8d")
        else:
            raw = ("\n".join(data) + "\n").encode("utf-8")
        out.raw_csv[source] = raw
        out.extra_rows[source] = len(inserts.get(source, []))
    out.truth = pd.DataFrame(truth_rows, columns=["source", "row_number", "record_key", "expected"])
    out.truth = out.truth.sort_values(["source", "row_number"], kind="stable").reset_index(drop=True)
    return out


def _assemble(rng: np.random.Generator, df: pd.DataFrame, inserts: list[tuple[str, str, str, bool]]
              ) -> tuple[list[str], list[dict]]:
    """Header + data lines with the inserts placed; returns (lines, [{row_number, record_key, expected}])."""
    text = public(df).to_csv(index=False, lineterminator="\n")
    lines = text.rstrip("\n").split("\n")
    header, body = lines[0], lines[1:]
    middle = [x for x in inserts if not x[3]]
    end = [x for x in inserts if x[3]]
    pos = sorted(rng.integers(0, len(body) + 1, len(middle)).tolist())
    merged: list[tuple[str, tuple | None]] = []
    j = 0
    for i, line in enumerate(body):
        while j < len(middle) and pos[j] == i:
            merged.append((middle[j][0], middle[j]))
            j += 1
        merged.append((line, None))
    merged += [(m[0], m) for m in middle[j:]] + [(e[0], e) for e in end]
    rows = [{"row_number": n + 1, "record_key": m[2], "expected": m[1]} for n, (_line_, m) in enumerate(merged)
            if m is not None]
    return [header] + [x[0] for x in merged], rows


def _folds_to_ascii(text: str) -> bool:
    """True when nothing non-ASCII survives writing ``text`` in cp1252."""
    return all(c.isascii() or not _cp1252_ok(c) for c in text)


def _cp1252_ok(c: str) -> bool:
    try:
        c.encode("cp1252")
        return True
    except UnicodeEncodeError:
        return c == _UNDECODABLE[0]


def _decoded_rows(df: pd.DataFrame, lines: list[str], bad: list[dict]) -> list[dict]:
    """Good rows of the cp1252 file that carry non-ASCII characters: accepted after decoding."""
    bad_rows = {r["row_number"] for r in bad}
    keys = record_key(df, CP1252_SOURCE)
    key_set = set(keys)
    out = []
    for n, line in enumerate(lines[1:], start=1):
        if n in bad_rows or line.isascii():
            continue
        key = line.split(",", 1)[0]
        if key in key_set:
            out.append({"row_number": n, "record_key": key, "expected": "accepted_decoded"})
    return out

