"""Extracts in layouts and states the engine had not met (issue 17): each gives a clear message or a
quarantine row with a reason, never a crash, a silent drop or a silently replaced column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ecins_link.config import parse_config
from ecins_link.ingest import ingest
from ecins_link.store import Store

HEADER = ["PERSON_ID", "FORENAME", "SURNAME", "DOB", "POSTCODE"]
ROWS = [["C1", "John", "Smith", "01/02/1980", "NT1 2AB"],
        ["C2", "Mary", "Jones", "03/04/1975", "NT1 3AB"],
        ["C3", "Ann", "Lee", "05/03/1970", "NT2 1EF"]]
PERSON = {"forenames": "FORENAME", "surname": "SURNAME", "dob": "DOB", "postcode": "POSTCODE"}


def _cfg(tmp: Path, sources: list[dict]) -> object:
    return parse_config({"project": {"name": "t", "as_of": "2026-09-30"}, "sources": sources}, root=tmp)


def _src(path: str, **extra: object) -> dict:
    return {"name": "people", "agency": "council", "path": path, "key": "PERSON_ID", "date_formats": ["%d/%m/%Y"],
            "person": PERSON, **extra}


def _ingest(tmp: Path, sources: list[dict]) -> dict:
    """Ingest; the tables a test looks at, as lists of tuples."""
    with Store(tmp / "s.duckdb") as store:
        ingest(store, _cfg(tmp, sources))
        q = store.con.execute
        return {"acc": q("SELECT source, rows_read, rows_accepted, rows_quarantined FROM accounting ORDER BY 1").fetchall(),
                "quarantine": q("SELECT source, row_number, record_key, reason FROM quarantine ORDER BY 1, 2").fetchall(),
                "issues": q("SELECT source, row_number, record_key, field, problem FROM field_issues ORDER BY ALL").fetchall(),
                "people": q("SELECT record_key, forenames, surname, dob, postcode FROM person_records "
                            "ORDER BY record_key").fetchall(),
                "events": q("SELECT record_key, person_source, person_record_key, signal FROM event_records "
                            "ORDER BY record_key").fetchall()}


def _write_csv(path: Path, header: list[str], rows: list[list[str]], sep: str = ",", encoding: str = "utf-8",
               tail: str = "") -> None:
    text = "\n".join(sep.join(r) + tail for r in [header] + rows) + "\n"
    path.write_bytes(text.encode(encoding))


def _good(got: dict) -> None:
    assert [r[0] for r in got["people"]] == ["C1", "C2", "C3"]
    assert got["people"][0][1:] == ("John", "Smith", dt.date(1980, 2, 1), "NT1 2AB")
    assert got["quarantine"] == []


def test_trailing_comma_gives_a_blank_last_header_renamed_not_a_crash(tmp_path: Path) -> None:
    _write_csv(tmp_path / "p.csv", HEADER, ROWS, tail=",")
    got = _ingest(tmp_path, [_src("p.csv")])
    _good(got)
    assert got["issues"] == [("people", 0, None, "column_6", "blank header (column 6); renamed 'column_6'")]


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_delimiter_sniffed_when_not_declared(tmp_path: Path, sep: str) -> None:
    rows = [r[:] for r in ROWS]
    rows[0][2] = "Smith, Jnr" if sep != "," else rows[0][2]  # a comma inside a field of a non-comma file
    _write_csv(tmp_path / "p.csv", HEADER, rows, sep=sep)
    got = _ingest(tmp_path, [_src("p.csv")])
    assert [r[0] for r in got["people"]] == ["C1", "C2", "C3"] and got["quarantine"] == []
    assert got["people"][0][2] == "Smith, Jnr"


def test_wrong_declared_delimiter_is_a_clear_file_level_message(tmp_path: Path) -> None:
    _write_csv(tmp_path / "p.csv", HEADER, ROWS, sep=";")
    got = _ingest(tmp_path, [_src("p.csv", delimiter=",")])
    (reason,) = [r[3] for r in got["quarantine"]]
    assert reason.startswith("unreadable_file: ") and "';'" in reason and "delimiter" in reason


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_read(tmp_path: Path, encoding: str) -> None:
    rows = [r[:] for r in ROWS]
    rows[1][1] = "Zoë"
    _write_csv(tmp_path / "p.csv", HEADER, rows, encoding=encoding)  # "utf-16"/"utf-32" write a BOM
    got = _ingest(tmp_path, [_src("p.csv")])
    assert [r[0] for r in got["people"]] == ["C1", "C2", "C3"] and got["quarantine"] == []
    assert got["people"][1][1] == "Zoë"


def test_duplicate_and_case_duplicate_csv_headers_never_overwrite(tmp_path: Path) -> None:
    header = HEADER + ["SURNAME", "surname ", "SURNAME_2"]
    rows = [r + [f"x{i}", f"y{i}", f"z{i}"] for i, r in enumerate(ROWS)]
    _write_csv(tmp_path / "p.csv", header, rows)
    got = _ingest(tmp_path, [_src("p.csv")])
    _good(got)  # the mapped SURNAME is the first one
    renamed = {i[3]: i[4] for i in got["issues"]}
    assert set(renamed) == {"SURNAME_3", "surname_4"}  # SURNAME_2 is a real column: never reused
    assert "repeats an earlier column" in renamed["SURNAME_3"]
    mapped = _ingest(tmp_path, [_src("p.csv", person={**PERSON, "surname": "SURNAME_3"})])
    assert [p[2] for p in mapped["people"]] == ["x0", "x1", "x2"]


def test_xlsx_blank_and_duplicate_header_cells(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER[:2] + [None] + HEADER[2:] + ["FORENAME"])
    for i, r in enumerate(ROWS):
        ws.append(r[:2] + [f"note {i}"] + r[2:] + [f"alias {i}"])
    wb.save(tmp_path / "p.xlsx")
    got = _ingest(tmp_path, [_src("p.xlsx", format="xlsx")])
    _good(got)
    assert {i[3] for i in got["issues"]} == {"column_3", "FORENAME_2"}


def test_parquet_struct_column_ignored_unless_mapped_and_padded_duplicate_names(tmp_path: Path) -> None:
    cols = {h: pa.array([r[k] for r in ROWS]) for k, h in enumerate(HEADER)}
    meta = pa.array([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, None])
    tags = pa.array([["p", "q"], [], None], pa.list_(pa.string()))
    table = pa.Table.from_arrays(list(cols.values()) + [meta, tags, pa.array(["n1", "n2", "n3"])],
                                 names=HEADER + ["META", "TAGS", "SURNAME "])
    pq.write_table(table, tmp_path / "p.parquet")
    got = _ingest(tmp_path, [_src("p.parquet", format="parquet")])
    _good(got)
    problems = {i[3]: i[4] for i in got["issues"]}
    assert problems["META"].startswith("nested column ignored") and problems["TAGS"].startswith("nested")
    assert "repeats an earlier column" in problems["SURNAME_2"]
    # a mapped nested column is read as JSON text
    mapped = _src("p.parquet", format="parquet", person={**PERSON, "address": "META"})
    with Store(tmp_path / "m.duckdb") as store:
        ingest(store, _cfg(tmp_path, [mapped]))
        addr = store.con.execute("SELECT address_text FROM person_records ORDER BY record_key").fetchall()
    assert addr[0][0] == '{"a":1,"b":"x"}' and addr[2][0] is None


def test_extract_columns_named_like_working_columns(tmp_path: Path) -> None:
    """Columns called _reason, _key, _row, _issue, _longest, _raw, _h, _dup are plain data: quarantine still
    applies, keys are the mapped key, and such a column can itself be mapped."""
    header = HEADER + ["_reason", "_key", "_row", "_issue", "_longest", "_raw", "_h", "_dup", "_d_DOB"]
    junk = ["", "K", "999", "", "1", "raw", "h", "TRUE", "2000-01-01"]
    rows = [r + junk for r in ROWS] + [["", "No", "Key", "01/01/1990", ""] + junk,
                                       ["C9", "Future", "Born", "01/01/2099", ""] + junk]
    _write_csv(tmp_path / "p.csv", header, rows)
    got = _ingest(tmp_path, [_src("p.csv")])
    assert [r[0] for r in got["people"]] == ["C1", "C2", "C3"]
    assert [(r[1], r[3].split(":")[0]) for r in got["quarantine"]] == [(4, "missing_key"), (5, "future_date")]
    assert got["acc"] == [("people", 5, 3, 2)]
    by_key = _ingest(tmp_path, [_src("p.csv", key="_row", person={**PERSON, "title": "_key"})])
    assert by_key["quarantine"][0][3].startswith("duplicate_key_conflict")  # every row has _row = 999


@pytest.mark.slow
def test_fifty_megabyte_field_is_field_too_long_with_its_key(tmp_path: Path) -> None:
    rows = [r[:] for r in ROWS]
    rows[1][1] = "X" * 50_000_000
    _write_csv(tmp_path / "p.csv", HEADER, rows)
    got = _ingest(tmp_path, [_src("p.csv")])
    assert [r[0] for r in got["people"]] == ["C1", "C3"]
    (q,) = got["quarantine"]
    assert q[1:3] == (2, "C2") and q[3].startswith("field_too_long: a field has 50000000 characters")


def test_unexpected_failure_in_one_source_is_a_file_level_entry(tmp_path: Path, monkeypatch) -> None:
    from ecins_link.ingest import source

    _write_csv(tmp_path / "p.csv", HEADER, ROWS)
    _write_csv(tmp_path / "q.csv", HEADER, ROWS)
    real = source._persons

    def boom(store: Store, src: object, cols: list[str]) -> None:
        if src.name == "other":
            raise RuntimeError("disk on fire")
        real(store, src, cols)

    monkeypatch.setattr(source, "_persons", boom)
    got = _ingest(tmp_path, [_src("p.csv"), _src("q.csv", name="other")])
    assert [r[0] for r in got["people"]] == ["C1", "C2", "C3"]  # the other source is unharmed
    (q,) = got["quarantine"]
    assert q[0] == "other" and "RuntimeError: disk on fire" in q[3] and "q.csv" in q[3]
    assert ("other", 0, 0, 0) in got["acc"]


# --- references by any column, conflicts keep their evidence -------------------------------------------------

TENANCIES = [["TENANCY_REF", "PERSON_REF", "FIRST_NAME", "LAST_NAME", "START", "END"],
             ["T1", "P1", "Amy", "Ng", "2015-01-01", "2019-12-31"],  # Amy's old tenancy
             ["T2", "P1", "Amy", "Ng", "2020-01-01", ""],  # ... and her current one
             ["T3", "P2", "Ben", "Oh", "2018-01-01", ""],
             ["T4", "P3", "Cy", "Li", "2018-01-01", ""],
             ["T5", "P3", "Cy", "Li", "2019-01-01", ""]]  # two open tenancies at once: the date cannot decide
CASES = [["CASE_ID", "PERSON_REF", "CASE_TYPE", "OPENED"],
         ["H1", "P1", "ASB", "2018-06-01"], ["H2", "P1", "ASB", "2022-06-01"], ["H3", "P2", "ASB", "2021-01-01"],
         ["H4", "P3", "ASB", "2021-01-01"], ["H5", "P9", "ASB", "2021-01-01"]]
TEN_SRC = {"name": "ten", "agency": "housing", "path": "ten.csv", "key": ["TENANCY_REF", "PERSON_REF"],
           "date_formats": ["%Y-%m-%d"],
           "person": {"forenames": "FIRST_NAME", "surname": "LAST_NAME", "resident_from": "START",
                      "resident_to": "END"}}
CASE_SRC = {"name": "cases", "agency": "housing", "path": "cases.csv", "key": "CASE_ID", "date_formats": ["%Y-%m-%d"],
            "max_quarantine_share": 1.0,
            "event": {"code": "CASE_TYPE", "date": "OPENED", "codes": [{"code": "ASB", "signal": "ASB_REPORT"}],
                      "person_ref": {"source": "ten", "column": "PERSON_REF", "on": "PERSON_REF"}}}


def test_reference_by_part_of_a_compound_key_resolved_by_date(tmp_path: Path) -> None:
    _write_csv(tmp_path / "ten.csv", TENANCIES[0], TENANCIES[1:])
    _write_csv(tmp_path / "cases.csv", CASES[0], CASES[1:])
    got = _ingest(tmp_path, [CASE_SRC, TEN_SRC])
    events = {e[0]: e[1:3] for e in got["events"]}
    assert events == {"H1": ("ten", "T1|P1"), "H2": ("ten", "T2|P1"), "H3": ("ten", "T3|P2"), "H4": (None, None)}
    assert [(q[2], q[3].split(":")[0]) for q in got["quarantine"]] == [("H5", "orphan_reference")]
    (amb,) = [i for i in got["issues"] if i[0] == "cases"]
    assert amb[2] == "H4" and amb[4].startswith("ambiguous_reference: 2 records of ten")
    assert ("cases", 5, 4, 1) in got["acc"]


def test_events_referencing_a_conflicting_key_are_kept_and_tied_to_it(tmp_path: Path) -> None:
    _write_csv(tmp_path / "p.csv", HEADER, ROWS + [["C2", "Maria", "Jones", "03/04/1975", "NT1 3AB"]])
    _write_csv(tmp_path / "c.csv", ["CONTACT_ID", "PERSON_ID", "TYPE", "DATE"],
               [["X1", "C1", "ASB", "01/01/2024"], ["X2", "C2", "ASB", "02/01/2024"], ["X3", "C7", "ASB", "02/01/2024"]])
    contacts = {"name": "contacts", "agency": "council", "path": "c.csv", "key": "CONTACT_ID",
                "date_formats": ["%d/%m/%Y"],
                "event": {"code": "TYPE", "date": "DATE", "codes": [{"code": "ASB", "signal": "ASB_REPORT"}],
                          "person_ref": {"source": "people", "column": "PERSON_ID"}}}
    got = _ingest(tmp_path, [_src("p.csv"), contacts])
    assert {e[0]: e[2] for e in got["events"]} == {"X1": "C1", "X2": "C2"}
    assert [(q[0], q[2], q[3].split(":")[0]) for q in got["quarantine"]] == [
        ("contacts", "X3", "orphan_reference"), ("people", "C2", "duplicate_key_conflict"),
        ("people", "C2", "duplicate_key_conflict")]
    (tie,) = [i for i in got["issues"] if i[0] == "contacts"]
    assert tie[2] == "X2" and tie[4].startswith("reference_to_conflict: C2 of people")
    assert all(read == acc + q for _s, read, acc, q in got["acc"])


@pytest.mark.parametrize(("content", "fmt", "says"), [
    (b"", "csv", "file is empty"),
    (b"\xff\xfe", "csv", "file is empty"),
    (bytes(range(256)) * 20, "csv", "does not look like delimited text"),
    (b"PERSON_ID,FORENAME\nC1,A\n", "xlsx", "not a readable workbook"),
    (b"PAR1 not really", "parquet", "not a readable Parquet file"),
])
def test_unreadable_files_say_why(tmp_path: Path, content: bytes, fmt: str, says: str) -> None:
    (tmp_path / "p.bin").write_bytes(content)
    got = _ingest(tmp_path, [_src("p.bin", format=fmt), _src("ok.csv", name="other")])
    reasons = {q[0]: q[3] for q in got["quarantine"]}
    assert reasons["people"].startswith("unreadable_file: ") and says in reasons["people"]
    assert reasons["other"] == "unreadable_file: file not found"
    assert ("people", 0, 0, 0) in got["acc"]


def test_header_only_file_is_zero_rows_not_an_error(tmp_path: Path) -> None:
    _write_csv(tmp_path / "p.csv", HEADER, [])
    got = _ingest(tmp_path, [_src("p.csv")])
    assert got["acc"] == [("people", 0, 0, 0)] and got["quarantine"] == []


def test_xlsx_values_under_a_blank_last_header_cell_are_a_column_not_ragged_rows(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER)
    for i, r in enumerate(ROWS):
        ws.append(r + [f"note {i}"])
    wb.save(tmp_path / "p.xlsx")
    got = _ingest(tmp_path, [_src("p.xlsx", format="xlsx")])
    _good(got)
    assert [i[3:] for i in got["issues"]] == [("column_6", "blank header (column 6); renamed 'column_6'")]


def test_source_outside_the_project_folder_is_an_unreadable_entry(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    _write_csv(tmp_path / "p.csv", HEADER, ROWS)  # beside, not inside, the project folder
    _write_csv(project / "q.csv", HEADER, ROWS)
    got = _ingest(project, [_src("../p.csv"), _src("q.csv", name="other")])
    (q,) = got["quarantine"]
    assert q[0] == "people" and q[3].startswith("unreadable_file: ") and "outside the project folder" in q[3]
    assert [r[0] for r in got["people"]] == ["C1", "C2", "C3"]
