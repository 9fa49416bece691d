"""Standardise: names, dates, contact fields and addresses through the public stage functions, on realistic
agency extracts written to a temp folder, plus the parsers on the variants agencies actually write."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ecins_link.config import parse_config
from ecins_link.ingest import ingest
from ecins_link.standardise import standardise
from ecins_link.standardise.address import parse_address
from ecins_link.standardise.names import dm_key, parse_forenames, parse_surname
from ecins_link.store import Store, StoreError

PEOPLE = """ID,FORENAMES,SURNAME,DOB,SEX,ADDRESS,POSTCODE,PHONE,EMAIL
P1,Mr Bill,Smith - Jones,03/04/1980,Male,"Flat 2, Rose Court, 14 High St, Oakwood, Northtown",nt1 2ab,+44 (0)7700 900123,  Bill.Smith@Example.COM
P2,Dr. Agnieszka Maria,KOZŁOWSKA,04/03/1980,F,"Apt 2 Rose Ct 14 High Street Oakwood Northtown",NT12AB,0044 7700 900123 ext 4,
P3,Muhammad,Smyth Jnr,1980-04-03,m,"22 St Johns Rd, Northtown",,07700900123,
P4,Mohamed,O'Brien,,U,"The Old Rectory, Church Lane, Northtown NT3 1GP",,,
P5,Chris,Ng,01/01/1970,female,,SW1A 1AA,,
"""
LLPG = """UPRN,SAO,PAO_NUMBER,PAO_TEXT,ORG,STREET,LOCALITY,TOWN,POSTCODE
100,FLAT 2,14,ROSE COURT,,HIGH STREET,OAKWOOD,NORTHTOWN,NT1 2AB
101,,22,,,ST JOHNS ROAD,,NORTHTOWN,NT2 1AA
102,,,THE OLD RECTORY,,CHURCH LANE,,NORTHTOWN,NT3 1GP
"""


@pytest.fixture(scope="module")
def std(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("std")
    (tmp / "people.csv").write_text(PEOPLE, encoding="utf-8")
    (tmp / "llpg.csv").write_text(LLPG, encoding="utf-8")
    cfg = parse_config({"project": {"name": "t"}, "sources": [
        {"name": "people", "agency": "council", "path": "people.csv", "key": "ID",
         "person": {"forenames": "FORENAMES", "surname": "SURNAME", "dob": "DOB", "sex": "SEX", "address": "ADDRESS",
                    "postcode": "POSTCODE", "phone": "PHONE", "email": "EMAIL"}},
        {"name": "llpg", "agency": "council", "path": "llpg.csv", "key": "UPRN",
         "gazetteer": {"uprn": "UPRN", "sub_building": "SAO", "number": "PAO_NUMBER", "building_name": "PAO_TEXT",
                       "organisation": "ORG", "street": "STREET", "locality": "LOCALITY", "town": "TOWN",
                       "postcode": "POSTCODE"}}]}, root=tmp)
    store = Store(tmp / "s.duckdb")
    ingest(store, cfg)
    standardise(store, cfg)
    yield store
    store.close()


def _person(store: Store, key: str) -> dict:
    df = store.df("SELECT * FROM person_std WHERE record_key = ?", [key])
    assert len(df) == 1
    return df.iloc[0].to_dict()


def test_every_person_record_standardised_once(std: Store) -> None:
    assert std.count("person_std") == std.count("person_records")
    ids = std.con.execute("SELECT unique_id FROM person_std ORDER BY 1").fetchall()
    assert [i[0] for i in ids] == [f"people:P{i}" for i in range(1, 6)]


def test_names(std: Store) -> None:
    p1, p2, p3, p4, p5 = (_person(std, f"P{i}") for i in range(1, 6))
    assert (p1["title"], p1["forename"], p1["forename_canonical"]) == ("MR", "BILL", "WILLIAM")
    assert (p1["surname"], p1["surname_compact"]) == ("SMITH-JONES", "SMITHJONES")
    assert (p2["title"], p2["forename"], p2["middle_names"], p2["initial"]) == ("DR", "AGNIESZKA", "MARIA", "A")
    assert p2["surname"] == "KOZLOWSKA"
    assert (p3["surname"], p3["suffix"]) == ("SMYTH", "JNR")
    assert p3["forename_canonical"] == p4["forename_canonical"] == "MOHAMMED"
    assert p3["surname_dm"] == dm_key("SMITH") and p1["surname_dm"] == dm_key("SMITHJONES")
    assert p4["surname"] == "OBRIEN"
    assert p5["forename_canonical"] == "CHRISTINE"  # an ambiguous short form resolved by sex only


def test_dates_sex_and_contact_fields(std: Store) -> None:
    p1, p2, p3, p4, p5 = (_person(std, f"P{i}") for i in range(1, 6))
    assert (p1["dob_year"], p1["dob_month"], p1["dob_day"]) == (1980, 4, 3)
    assert (p2["dob_month"], p2["dob_day"]) == (3, 4)  # a day/month swap stays visible to the matcher
    assert p3["dob_year"] == 1980 and pd.isna(p4["dob_year"]) and pd.isna(p4["dob"])
    assert [p["sex"] for p in (p1, p2, p3, p5)] == ["M", "F", "M", "F"] and p4["sex"] is None
    assert (p1["postcode"], p1["postcode_outward"], p1["postcode_sector"]) == ("NT1 2AB", "NT1", "NT1 2")
    assert p2["postcode"] == "NT1 2AB" and p5["postcode"] == "SW1A 1AA"
    assert p4["postcode"] == "NT3 1GP"  # taken from the end of the address text
    assert p1["phone"] == p2["phone"] == p3["phone"] == "07700900123"
    assert p1["email"] == "bill.smith@example.com"


def test_agency_address_variants_share_the_gazetteer_key(std: Store) -> None:
    p1, p2 = _person(std, "P1"), _person(std, "P2")
    assert p1["address_norm"] == p2["address_norm"]
    assert (p1["address_flat"], p1["address_number"]) == ("FLAT 2", "14")
    gaz = std.df("SELECT * FROM gazetteer_std ORDER BY uprn").set_index("uprn")
    assert gaz.loc["100", "address_norm"] == p1["address_norm"]
    addr = std.df("SELECT * FROM address_std").set_index("record_key")
    assert set(addr.index) == {"P1", "P2", "P3", "P4", "P5"}
    assert addr.loc["P3", "street"] == gaz.loc["101", "street"] == "ST JOHNS ROAD"
    assert addr.loc["P4", "building"] == gaz.loc["102", "building"] == "THE OLD RECTORY"
    assert gaz.loc["100", "postcode_sector"] == "NT1 2" and gaz.loc["100", "full_address"].endswith("NT1 2AB")


def test_requires_ingest_tables(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as store, pytest.raises(StoreError):
        standardise(store, parse_config({"project": {"name": "t"}, "sources": []}))


@pytest.mark.parametrize(("text", "flat", "number", "street", "town"), [
    ("22 BEECH RD RIVERSIDE NORTHTOWN", None, "22", "BEECH ROAD", "NORTHTOWN"),
    ("FB 12 High Street, Aldton", "FLAT B", "12", "HIGH STREET", "ALDTON"),
    ("2/14 Mill Ln, Aldton", "FLAT 2", "14", "MILL LANE", "ALDTON"),
    ("Apartment 3, 7 Church Cl., Aldton, AL1 2AB", "FLAT 3", "7", "CHURCH CLOSE", "ALDTON"),
    ("12 St Marys Gdns, Aldton", None, "12", "ST MARYS GARDENS", "ALDTON"),
    ("14A Mill Lane", None, "14A", "MILL LANE", None),
    ("21, 15 Station Street, Eastfield, Aldton", "FLAT 21", "15", "STATION STREET", "ALDTON"),
    ("25a, Station Rd, Aldton", None, "25A", "STATION ROAD", "ALDTON"),
    ("Flat 16, Sovereign Court, Station St, Aldton", "FLAT 16", None, "STATION STREET", "ALDTON"),
])
def test_address_parser_variants(text: str, flat: str | None, number: str, street: str, town: str | None) -> None:
    a = parse_address(text)
    assert (a.flat, a.number, a.street, a.town) == (flat, number, street, town)


def test_name_parsers() -> None:
    assert parse_forenames("Miss Zoë  Anne-Marie") == ("MISS", "ZOE", "ANNE-MARIE", None)
    assert parse_surname("Ó Briain") == ("O BRIAIN", None)
    assert parse_surname("Łukasiewicz") == ("LUKASIEWICZ", None)
    assert dm_key("SMITH") == dm_key("SMYTH")
    assert dm_key("") is None
    assert parse_forenames("Mr") == ("MR", None, None, None)  # only a title: no forename
    assert parse_forenames("Mrs A") == ("MRS", "A", None, None)


@pytest.mark.parametrize(("full", "forenames", "surname"), [
    ("Mr O Wood", "Mr O", "Wood"),                # one-letter particle after a bare title is an initial
    ("Sean O Brien", "Sean", "O Brien"),
    ("Ludwig van Beethoven", "Ludwig", "van Beethoven"),
    ("Mr De Souza", "Mr", "De Souza"),
    ("Mrs A Foster", "Mrs A", "Foster"),
    ("Wood", None, "Wood"),
    ("Mr Michael Wright", "Mr Michael", "Wright"),  # a particle (EL, AL, DE...) only as a word of its own
    ("Daniel Johnson", "Daniel", "Johnson"),
    ("Belal Abdel Patel", "Belal Abdel", "Patel"),
    ("Omar el Haddad", "Omar", "el Haddad"),
])
def test_full_name_split(full: str, forenames: str | None, surname: str) -> None:
    import duckdb

    from ecins_link.ingest.sql import split_full_name

    fore_sql, sur_sql = split_full_name("n", "forenames_surname")
    got = duckdb.connect().execute(f"SELECT {fore_sql}, {sur_sql} FROM (SELECT ? AS n)", [full]).fetchone()
    assert got == (forenames, surname)


@pytest.mark.parametrize(("fn", "raw", "want"), [
    ("postcode_sql", "gir0aa", "GIR 0AA"), ("postcode_sql", "GIR1AB", None), ("postcode_sql", "ec1a1bb", "EC1A 1BB"),
    ("postcode_sql", " NT1  2AB\n", "NT1 2AB"), ("postcode_sql", "X1 1AA", None), ("postcode_sql", "NT1 2CA", None),
    ("postcode_sql", "W1A 0AX", "W1A 0AX"), ("postcode_sql", "", None), ("postcode_sql", None, None),
    ("phone_sql", "0044 20 7946 0018", "02079460018"), ("phone_sql", "+44 (0) 7700 900123", "07700900123"),
    ("phone_sql", "7700900123", "07700900123"), ("phone_sql", "01234 567890 ext 12", "01234567890"),
    ("phone_sql", "12345", None), ("phone_sql", "00000000000", None), ("phone_sql", "447700900123", "07700900123"),
    ("email_sql", "  A.B@Example.COM ", "a.b@example.com"), ("email_sql", "a@b.co\nx", None),
    ("email_sql", "x@y", None), ("email_sql", "a b@c.com", None), ("email_sql", "a@@b.com", None),
])
def test_contact_field_sql(fn: str, raw: str | None, want: str | None) -> None:
    import duckdb

    from ecins_link.standardise import fields

    got = duckdb.connect().execute(f"SELECT {getattr(fields, fn)('v')} FROM (SELECT ?::VARCHAR AS v)", [raw]).fetchone()
    assert got[0] == want
