"""Ingest on realistic messy extracts written to a temp folder: every row accounted for, every defect
quarantined with its reason and exact data-row number, optional-field problems recorded, formats read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow as pa
import pytest

from ecins_link.config import parse_config
from ecins_link.ingest import ingest
from ecins_link.store import Store

PEOPLE_HEADER = "PERSON_ID,FORENAME,SURNAME,DOB,GENDER,ADDRESS,POSTCODE,PHONE,EMAIL"
PEOPLE_ROWS = [
    'C1,John,Smith,01-Feb-1980,Male,"12 High St, Oakwood",NT1 2AB,07700 900123,john@example.com',  # 1 good
    'C2,Mary,Jones,31-Feb-1990,Female,3 Mill Lane,NT1 2AB,,',  # 2 impossible date
    'C3,Ann,"Lee\nSmith",05-Mar-1970,Female,4 Mill Lane,NT1 2AB,,',  # 3 quoted embedded newline (valid)
    ',No,Key,05-Mar-1970,Female,4 Mill Lane,NT1 2AB,,',  # 4 missing key
    'C5,Too,Many,05-Mar-1970,Female,4 Mill Lane,NT1 2AB,,,EXTRA',  # 5 ragged (too many)
    'C6,Too,Few',  # 6 ragged (too few)
    'C7,Baby,Future,12-Mar-2031,Male,4 Mill Lane,NT1 2AB,,',  # 7 future DOB
    'C8,=HYPERLINK("x"),Formula,05-Mar-1970,Male,4 Mill Lane,NT1 2AB,,',  # 8 unsafe, accepted
    'C9,Bob,<script>,05-Mar-1970,Male,4 Mill Lane,NT1 2AB,+44 7700 900999,',  # 9 unsafe, accepted
    'C10,Bad,Fields,05-Mar-1970,Male,4 Mill Lane,NOTAPC,12345,not-an-email',  # 10 three field issues
    'C11,Dup,Same,05-Mar-1970,Male,4 Mill Lane,NT1 2AB,,',  # 11
    'C11,Dup,Same,05-Mar-1970,Male,4 Mill Lane,NT1 2AB,,',  # 12 identical duplicate -> collapsed
    'C12,Dup,One,05-Mar-1970,Male,4 Mill Lane,NT1 2AB,,',  # 13 conflicting duplicate
    'C12,Dup,Two,05-Mar-1970,Male,4 Mill Lane,NT1 2AB,,',  # 14 conflicting duplicate
    'C13,Long,Field,05-Mar-1970,Male,' + "X" * 20_000 + ',NT1 2AB,,',  # 15 too long
    'C14,"Broken,Quote,05-Mar-1970,Male,4 Mill Lane,NT1 2AB,,',  # 16 broken quoting
    'C15,After,Broken,05-Mar-1970,Female,5 Mill Lane,NT1 2AB,,',  # 17 good: a broken quote costs one row
]

CONTACTS = """CONTACT_ID,PERSON_ID,CONTACT_TYPE,ROLE,CONTACT_DATE,SUBJECT_ADDRESS,SUBJECT_POSTCODE
CT1,C1,DA,V,03-Oct-2022,"12 High St, Oakwood",NT1 2AB
CT2,C1,DA,S,04-Oct-2022,,
CT3,C999,ASB,,05-Oct-2022,,
CT4,C1,UNKNOWN,,06-Oct-2022,,
CT5,C1,ASB,,not known,,
CT6,C1,MULTI,,07-Oct-2022,,BADPC
"""


def _project(tmp: Path, sources: list[dict]) -> object:
    return parse_config({"project": {"name": "t", "as_of": "2026-09-30"}, "sources": sources}, root=tmp)


PEOPLE_SRC = {"name": "people", "agency": "council", "path": "people.csv", "key": "PERSON_ID",
              "date_formats": ["%d-%b-%Y"], "max_field_chars": 10_000,
              "person": {"forenames": "FORENAME", "surname": "SURNAME", "dob": "DOB", "sex": "GENDER",
                         "address": "ADDRESS", "postcode": "POSTCODE", "phone": "PHONE", "email": "EMAIL"}}
CONTACT_SRC = {"name": "contacts", "agency": "council", "path": "contacts.csv", "key": "CONTACT_ID",
               "date_formats": ["%d-%b-%Y"],
               "event": {"code": "CONTACT_TYPE", "role": "ROLE", "date": "CONTACT_DATE", "location": "SUBJECT_ADDRESS",
                         "location_postcode": "SUBJECT_POSTCODE",
                         "person_ref": {"source": "people", "column": "PERSON_ID"},
                         "codes": [{"code": "DA", "role": "V", "signal": "DA_VICTIM"},
                                   {"code": "DA", "role": "S", "signal": "DA_SUSPECT"},
                                   {"code": "ASB", "signal": "ASB_REPORT"},
                                   {"code": "MULTI", "signal": "MH_CONCERN"},
                                   {"code": "MULTI", "signal": "SUBSTANCE_MISUSE"}]}}


@pytest.fixture
def messy(tmp_path: Path):
    (tmp_path / "people.csv").write_text(PEOPLE_HEADER + "\n" + "\n".join(PEOPLE_ROWS) + "\n", encoding="utf-8")
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    cfg = _project(tmp_path, [PEOPLE_SRC, CONTACT_SRC])
    store = Store(tmp_path / "s.duckdb")
    ingest(store, cfg)
    yield store
    store.close()


def _reasons(store: Store, source: str) -> dict[int, str]:
    rows = store.con.execute("SELECT row_number, reason FROM quarantine WHERE source = ?", [source]).fetchall()
    return {r: reason.split(":")[0] for r, reason in rows}


def test_every_defect_quarantined_with_reason_and_row(messy: Store) -> None:
    assert _reasons(messy, "people") == {
        2: "bad_date", 4: "missing_key", 5: "ragged_row", 6: "ragged_row", 7: "future_date",
        13: "duplicate_key_conflict", 14: "duplicate_key_conflict", 15: "field_too_long", 16: "broken_quoting"}
    keys = {r[0] for r in messy.con.execute("SELECT record_key FROM person_records").fetchall()}
    assert keys == {"C1", "C3", "C8", "C9", "C10", "C11", "C15"}
    raw = messy.con.execute("SELECT raw FROM quarantine WHERE row_number = 15").fetchone()[0]
    assert len(raw) <= 1000


def test_accounting_balances_and_counts_duplicates(messy: Store) -> None:
    acc = messy.df("SELECT * FROM accounting ORDER BY source").set_index("source")
    assert (acc.rows_read == acc.rows_accepted + acc.rows_quarantined).all()
    assert acc.loc["people"].to_dict() | {} == {"agency": "council", "rows_read": 17, "rows_accepted": 8,
                                                "rows_quarantined": 9, "duplicates_collapsed": 1}
    assert messy.count("person_records") == 7  # the identical duplicate is stored once


def test_embedded_newline_kept_and_unsafe_marked(messy: Store) -> None:
    sur = messy.con.execute("SELECT surname FROM person_records WHERE record_key = 'C3'").fetchone()[0]
    assert sur == "Lee\nSmith"
    unsafe = dict(messy.con.execute("SELECT record_key, unsafe FROM person_records").fetchall())
    assert unsafe["C8"] and unsafe["C9"] and not unsafe["C1"]
    assert messy.con.execute("SELECT forenames FROM person_records WHERE record_key='C8'").fetchone()[0].startswith("=")


def test_bad_optional_fields_nulled_and_recorded(messy: Store) -> None:
    issues = messy.df("SELECT source, row_number, record_key, field FROM field_issues ORDER BY field")
    people = issues[issues.source == "people"]
    assert set(people.field) == {"postcode", "phone", "email"} and set(people.record_key) == {"C10"}
    assert set(people.row_number) == {10}
    row = messy.con.execute("SELECT postcode, phone, email FROM person_records WHERE record_key='C10'").fetchone()
    assert row == (None, None, None)
    good = messy.con.execute("SELECT phone FROM person_records WHERE record_key='C9'").fetchone()[0]
    assert good == "+44 7700 900999"  # raw-ish value kept; standardise gives the national form
    assert (issues.source == "contacts").sum() == 1


def test_events_roles_orphans_and_unmapped(messy: Store) -> None:
    assert _reasons(messy, "contacts") == {3: "orphan_reference", 5: "bad_date"}
    ev = messy.df("SELECT record_key, event_seq, signal, raw_code, role, person_source, person_record_key "
                  "FROM event_records ORDER BY record_key, event_seq")
    by = {k: g for k, g in ev.groupby("record_key")}
    assert list(by["CT1"].signal) == ["DA_VICTIM"] and list(by["CT2"].signal) == ["DA_SUSPECT"]
    assert by["CT4"].signal.isna().all() and len(by["CT4"]) == 1
    assert sorted(by["CT6"].signal) == ["MH_CONCERN", "SUBSTANCE_MISUSE"] and list(by["CT6"].event_seq) == [1, 2]
    assert set(ev.person_source) == {"people"} and set(ev.person_record_key) == {"C1"}
    addr = messy.df("SELECT * FROM address_records WHERE source = 'contacts'")
    assert list(addr.record_key) == ["CT1"] and addr.origin.iat[0] == "event"


def test_unmapped_quarantine_option(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(PEOPLE_HEADER + "\n" + PEOPLE_ROWS[0] + "\n", encoding="utf-8")
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    src = {**CONTACT_SRC, "event": {**CONTACT_SRC["event"], "unmapped": "quarantine"}}
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, _project(tmp_path, [PEOPLE_SRC, src]))
        assert _reasons(store, "contacts")[4] == "unmapped_code"


def test_cp1252_file_decoded_and_undecodable_row_quarantined(tmp_path: Path) -> None:
    text = PEOPLE_HEADER + "\nC1,Zoë,Kozłowska,01-Feb-1980,F,1 A St,,,\nC2,Seán,Ó Briain,01-Feb-1980,M,1 A St,,,\n"
    data = text.replace("ł", "l").encode("cp1252") + b"C3,Bad,NOW\x81\x8dK,01-Feb-1980,M,1 A St,,,\n"
    (tmp_path / "people.csv").write_bytes(data)
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, _project(tmp_path, [PEOPLE_SRC]))
        names = dict(store.con.execute("SELECT record_key, forenames FROM person_records").fetchall())
        assert names == {"C1": "Zoë", "C2": "Seán"}
        assert _reasons(store, "people") == {3: "undecodable"}


def test_utf8_bom_and_blank_lines(tmp_path: Path) -> None:
    text = "\ufeff" + PEOPLE_HEADER + "\r\n" + PEOPLE_ROWS[0] + "\r\n\r\nC2,Zoë,Brontë,02-Feb-1981,F,,,,\r\n"
    (tmp_path / "people.csv").write_bytes(text.encode("utf-8"))
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, _project(tmp_path, [PEOPLE_SRC]))
        rows = store.df("SELECT record_key, row_number, surname FROM person_records ORDER BY row_number")
        assert list(rows.record_key) == ["C1", "C2"] and list(rows.row_number) == [1, 2]
        assert rows.surname.iat[1] == "Brontë"


def test_xlsx_person_event_with_flags_and_full_names(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Visits"
    ws.append(["VISIT_ID", "OCCUPANT", "DOB", "VISIT_DATE", "SMOKER", "LIVES_ALONE", "ADDRESS", "POSTCODE"])
    ws.append(["SW1", "Mrs Mary Ann van der Berg", dt.datetime(1940, 5, 6), dt.datetime(2024, 1, 2), "Y", "Y",
               "1 Mill Lane", "NT1 2AB"])
    ws.append(["SW2", "John Smith", "06/05/1950", dt.datetime(2024, 1, 3), "N", "N", None, None])
    ws.append(["SW3", "No Date", None, None, "Y", None, None, None])
    wb.save(tmp_path / "sw.xlsx")
    src = {"name": "sw", "agency": "fire", "path": "sw.xlsx", "format": "xlsx", "sheet": "Visits", "key": "VISIT_ID",
           "date_formats": ["%d/%m/%Y"],
           "person": {"full_name": "OCCUPANT", "name_format": "forenames_surname", "dob": "DOB", "address": "ADDRESS",
                      "postcode": "POSTCODE"},
           "flags": {"date": "VISIT_DATE", "columns": {"SMOKER": "SW_SMOKER", "LIVES_ALONE": "SW_LIVES_ALONE"}}}
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, _project(tmp_path, [src]))
        p = store.df("SELECT * FROM person_records ORDER BY record_key").set_index("record_key")
        assert p.loc["SW1", "surname"] == "van der Berg" and p.loc["SW1", "forenames"] == "Mrs Mary Ann"
        dobs = dict(store.con.execute("SELECT record_key, dob FROM person_records").fetchall())
        assert dobs == {"SW1": dt.date(1940, 5, 6), "SW2": dt.date(1950, 5, 6)}
        ev = store.df("SELECT record_key, signal, event_date, person_source, person_record_key FROM event_records")
        sw1 = ev[ev.record_key == "SW1"]
        assert sorted(sw1.signal) == ["SW_LIVES_ALONE", "SW_SMOKER"]
        assert set(sw1.person_record_key) == {"SW1"} and set(sw1.person_source) == {"sw"}
        assert ev[ev.record_key == "SW2"].signal.isna().all()  # a visit with no risk factor still happened
        assert _reasons(store, "sw") == {3: "bad_date"}  # a flag row needs its visit date


def test_parquet_compound_key_and_typed_dates(tmp_path: Path) -> None:
    df = pd.DataFrame({"TENANCY_REF": ["T1", "T1", "T2"], "PERSON_REF": ["P1", "P2", None],
                       "FIRST_NAME": ["Amy", "Ben", "Cy"], "LAST_NAME": ["Ng", "Ng", "Oh"],
                       "DOB": pd.to_datetime(["1990-01-02", "1991-03-04", "1992-05-06"]).date,
                       "ADDR1": ["Flat 2", "Flat 2", "9 High St"], "ADDR2": ["4 Mill Rd", "4 Mill Rd", None],
                       "START": pd.to_datetime(["2020-01-01", "2020-01-01", "2021-01-01"])})
    df.to_parquet(tmp_path / "t.parquet")
    src = {"name": "ten", "agency": "housing", "path": "t.parquet", "format": "parquet",
           "key": ["TENANCY_REF", "PERSON_REF"],
           "person": {"forenames": "FIRST_NAME", "surname": "LAST_NAME", "dob": "DOB",
                      "address_lines": ["ADDR1", "ADDR2"], "resident_from": "START"}}
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, _project(tmp_path, [src]))
        p = store.con.execute("SELECT record_key, dob, address_text, resident_from FROM person_records "
                              "ORDER BY record_key").fetchall()
        assert p == [("T1|P1", dt.date(1990, 1, 2), "Flat 2, 4 Mill Rd", dt.date(2020, 1, 1)),
                     ("T1|P2", dt.date(1991, 3, 4), "Flat 2, 4 Mill Rd", dt.date(2020, 1, 1))]
        assert _reasons(store, "ten") == {3: "missing_key"}


def test_missing_file_and_missing_column_are_file_level_entries(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("PERSON_ID,NAME\nC1,Smith\n", encoding="utf-8")
    gone = {**PEOPLE_SRC, "name": "gone", "path": "nowhere.csv"}
    other = {"name": "other", "agency": "police", "path": "people.csv", "key": "PERSON_ID",
             "person": {"full_name": "NAME"}}
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, _project(tmp_path, [PEOPLE_SRC, gone, other]))
        q = store.df("SELECT source, row_number, reason FROM quarantine ORDER BY source")
        assert list(q.source) == ["gone", "people"] and set(q.row_number) == {0}
        assert all(r.startswith("unreadable_file: ") for r in q.reason)
        assert "FORENAME" in q.reason.iat[1]
        assert store.count("person_records") == 1  # the readable source still ingested
        acc = store.df("SELECT * FROM accounting")
        assert (acc.rows_read == acc.rows_accepted + acc.rows_quarantined).all()


def test_audit_row_has_counts_not_names(messy: Store) -> None:
    audit = messy.audit_rows()
    row = audit[audit.action == "ingest"].iloc[-1]
    assert row.category == "collection" and '"people"' in row.details
    for name in ("Smith", "John", "Mill Lane"):
        assert name not in row.details and name not in row.row_counts


def _careful_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from ecins_link.ingest import readers

    monkeypatch.setattr(readers, "_plain_records", lambda *a, **k: None)


def test_csv_fast_path_gives_the_careful_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecins_link.ingest.readers import read_csv
    from ecins_link.ingest.sql import ROW

    rows = PEOPLE_ROWS + [
        'C20,"Quoted ""nick"" name",Doe,01-Feb-1980,M,"1 A St, Town",,,',  # doubled quotes
        'C21,O"Neil,Stray,01-Feb-1980,M,1 A St,,,',  # stray quote mid-field: literal
        'C22,"Multi\r\nline",X,01-Feb-1980,M,"2 A St\n\nTown",,,',  # CRLF and a blank line inside quotes
        '   ',  # whitespace-only line: not a record
        'C23,Tab\tbed,Y,01-Feb-1980,M,,,,',
        'C24,"a"b,c,01-Feb-1980,M,,,,',  # text after a closing quote
        'C25,,,,,,,,',
    ]
    path = tmp_path / "p.csv"
    path.write_bytes(("\ufeff" + PEOPLE_HEADER + "\r\n" + "\r\n".join(rows) + "\r\n").encode("utf-8"))
    fast = read_csv(path)
    _careful_only(monkeypatch)
    careful = read_csv(path)
    assert fast.num_rows == careful.num_rows == len(rows) - 1
    assert fast.to_pylist() == careful.to_pylist()
    assert fast.column(ROW).to_pylist() == list(range(1, len(rows)))


def test_ingest_identical_with_and_without_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "people.csv").write_text(PEOPLE_HEADER + "\n" + "\n".join(PEOPLE_ROWS) + "\n", encoding="utf-8")
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    cfg = _project(tmp_path, [PEOPLE_SRC, CONTACT_SRC])
    tables = ("quarantine", "accounting", "field_issues", "person_records", "event_records", "address_records")

    def run(name: str) -> dict:
        with Store(tmp_path / name) as store:
            ingest(store, cfg)
            return {t: store.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}

    fast = run("fast.duckdb")
    _careful_only(monkeypatch)
    assert run("careful.duckdb") == fast


def test_xlsx_direct_reader_matches_openpyxl(tmp_path: Path) -> None:
    from ecins_link.ingest.xlsx import _fast_rows, _openpyxl_rows

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Visits"
    ws.append(["ID", "WHEN", "N", "F", "B", "T", "NOTE"])
    ws.append(["a", dt.datetime(1940, 5, 6), 3.0, 2.5, True, dt.datetime(2024, 1, 2, 13, 45), None])
    ws.append(["b", "06/05/1950", 12345678901, -1.5e-10, False, dt.date(2020, 1, 1), "=1+2"])
    ws.append([None, None, None])
    ws.append(["c", dt.time(10, 30), "x<y", "Zoë & <b>", None, None, "  padded  "])
    ws["J5"] = "beyond the header"
    ws["C3"].number_format = "0.00%"
    other = wb.create_sheet("Other")
    other.append(["K"])
    other.append([1])
    wb.save(tmp_path / "w.xlsx")

    def trimmed(rows: list) -> list:
        out = [list(r) for r in rows if any(v is not None for v in r)]
        return [r[:max(i + 1 for i, v in enumerate(r) if v is not None)] for r in out]

    for sheet in (None, "Visits", "Other"):
        assert trimmed(_fast_rows(tmp_path / "w.xlsx", sheet)) == trimmed(_openpyxl_rows(tmp_path / "w.xlsx", sheet))
    src = {"name": "v", "agency": "fire", "path": "w.xlsx", "format": "xlsx", "sheet": "Nope", "key": "ID",
           "person": {"full_name": "ID"}}
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, _project(tmp_path, [src]))
        reason = store.con.execute("SELECT reason FROM quarantine").fetchone()[0]
        assert reason == "unreadable_file: sheet 'Nope' not in workbook"


def test_csv_arrow_failure_falls_back_to_careful_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecins_link.ingest import readers

    path = tmp_path / "p.csv"
    path.write_text(PEOPLE_HEADER + "\n" + "\n".join(PEOPLE_ROWS) + "\n", encoding="utf-8")
    fast = readers.read_csv(path)

    def boom(*_a: object, **_k: object) -> None:
        raise pa.ArrowInvalid("straddling object")

    monkeypatch.setattr(readers, "_arrow_parse", boom)
    assert readers.read_csv(path).to_pylist() == fast.to_pylist()


def test_sources_side_by_side_give_the_same_tables_as_one_at_a_time(tmp_path: Path) -> None:
    """Ingest with two sources in flight and with one: identical tables, row for row, in the same order; the
    event source listed before the person source it refers to still finds that source's accepted people."""
    (tmp_path / "people.csv").write_text(PEOPLE_HEADER + "\n" + "\n".join(PEOPLE_ROWS) + "\n", encoding="utf-8")
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    second = dict(PEOPLE_SRC, name="people2", agency="housing")
    cfg = _project(tmp_path, [CONTACT_SRC, PEOPLE_SRC, second])
    tables = ["accounting", "quarantine", "field_issues", "person_records", "event_records", "address_records"]
    got = {}
    for workers in (1, 2):
        with Store(tmp_path / f"s{workers}.duckdb") as store:
            ingest(store, cfg, workers=workers)
            got[workers] = {t: store.df(f"SELECT * FROM {t}") for t in tables}
    for t in tables:
        pd.testing.assert_frame_equal(got[1][t], got[2][t])
    orphans = got[2]["quarantine"][got[2]["quarantine"].reason.str.startswith("orphan_reference")]
    assert orphans.record_key.tolist() == ["CT3"]  # C999 only: C1 is an accepted person of `people`
    assert set(got[2]["person_records"].source) == {"people", "people2"}


def test_sources_referring_to_each_other_do_not_hang(tmp_path: Path) -> None:
    """Two event sources naming each other as the person source: both are ingested (their references are
    orphans, since neither holds persons) instead of each waiting for the other."""
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    a = dict(CONTACT_SRC, name="a", event=dict(CONTACT_SRC["event"], person_ref={"source": "b", "column": "PERSON_ID"}))
    b = dict(CONTACT_SRC, name="b", event=dict(CONTACT_SRC["event"], person_ref={"source": "a", "column": "PERSON_ID"}))
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, _project(tmp_path, [a, b]))
        acc = store.df("SELECT * FROM accounting ORDER BY source")
        assert acc.source.tolist() == ["a", "b"] and (acc.rows_read == 6).all()
        assert (acc.rows_read == acc.rows_accepted + acc.rows_quarantined).all()


def test_event_source_without_code_mappings_keeps_its_events(tmp_path: Path) -> None:
    """An event section with no code mappings (yet) is no crash: each contact is kept with no signal."""
    (tmp_path / "people.csv").write_text(PEOPLE_HEADER + "\n" + "\n".join(PEOPLE_ROWS) + "\n", encoding="utf-8")
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    bare = dict(CONTACT_SRC, event=dict(CONTACT_SRC["event"], codes=[]))
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, _project(tmp_path, [PEOPLE_SRC, bare]))
        events = store.df("SELECT record_key, signal FROM event_records ORDER BY record_key")
    assert events.record_key.tolist() == ["CT1", "CT2", "CT4", "CT6"]  # CT3 orphan, CT5 bad date
    assert events.signal.isna().all()
