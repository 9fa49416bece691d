"""Project-file reach for person linkage (issue 15): generic identifiers and extra attributes become person_std
columns and comparisons, non-UK postcodes and phones are kept when the source says "any", the DOB plausibility
floor is configurable, and an invalid DOB can be kept as missing.  Through ingest + standardise on a small
project (extract files and a project file), then the model fitted to that data."""

from __future__ import annotations

from pathlib import Path

from ecins_link.config import load_config
from ecins_link.ingest import ingest
from ecins_link.matching.person_fields import column_stats, fit_to_data
from ecins_link.matching.person_model import load_model_config, make_linker
from ecins_link.standardise import standardise
from ecins_link.store import Store

REGISTER = """ID,FORENAME,SURNAME,DOB,NHS,POB,POSTCODE,PHONE
1,Ada,Lovelace,1915-12-10,943 476 5919,London,sw1a 1aa,020 7946 0018
2,William,Shakespeare,1564-04-23,943-476-5870,Stratford,2470,+61 2 9876 5432
3,Mary,Seacole,1805-13-45,,Kingston,75008,
"""
CLINIC = """REF,NAME,BORN,NHS_NUMBER,NINO
A,Ada Lovelace,1915-12-10,9434765919,AB123456C
B,Will Shakespeare,1564-04-23,9434765870,
"""


def _project(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "register.csv").write_text(REGISTER, encoding="utf-8")
    (tmp_path / "clinic.csv").write_text(CLINIC, encoding="utf-8")
    project = tmp_path / "project.toml"
    project.write_text(f"""[project]
name = "t"
store = "store.duckdb"

[[sources]]
name = "register"
agency = "archive"
path = "register.csv"
key = "ID"
date_formats = ["%Y-%m-%d"]
[sources.person]
forenames = "FORENAME"
surname = "SURNAME"
dob = "DOB"
postcode = "POSTCODE"
phone = "PHONE"
identifiers = {{ nhs_number = "NHS" }}
attributes = {{ birth_place = "POB" }}
{extra}

[[sources]]
name = "clinic"
agency = "health"
path = "clinic.csv"
key = "REF"
date_formats = ["%Y-%m-%d"]
[sources.person]
full_name = "NAME"
dob = "BORN"
identifiers = {{ nhs_number = "NHS_NUMBER", ni_number = "NINO" }}
dob_earliest = 1500-01-01
""", encoding="utf-8")
    return project


def _run(project: Path) -> Store:
    config = load_config(project)
    store = Store(config.store_path)
    ingest(store, config)
    standardise(store, config)
    return store


def test_defaults_quarantine_old_and_invalid_dobs(tmp_path: Path) -> None:
    with _run(_project(tmp_path)) as store:
        reasons = dict(store.con.execute("SELECT record_key, reason FROM quarantine WHERE source = 'register'").fetchall())
        assert set(reasons) == {"2", "3"}  # 1564: before 1880; 1805-13-45: not a date
        assert "before 1880" in reasons["2"] and "not a valid date" in reasons["3"]


def test_identifiers_attributes_and_any_formats_reach_person_std(tmp_path: Path) -> None:
    extra = 'postcode_format = "any"\nphone_format = "any"\ndob_earliest = 1500-01-01\ninvalid_dob = "null"'
    with _run(_project(tmp_path, extra)) as store:
        assert store.count("quarantine") == 0
        rows = {r[0]: r[1:] for r in store.con.execute("""SELECT unique_id, id_nhs_number, id_ni_number,
            attr_birth_place, postcode, phone, dob, dob_year FROM person_std""").fetchall()}
        assert rows["register:1"][:3] == ("9434765919", None, "LONDON")
        assert rows["clinic:A"][:3] == ("9434765919", "AB123456C", None)  # same identifier, written differently
        assert rows["register:1"][3:5] == ("SW1A 1AA", "02079460018")  # UK values normalised as before
        assert rows["register:2"][3:5] == ("2470", "61298765432")  # kept as written, not nulled
        assert rows["register:2"][5].year == 1564
        assert rows["register:3"][3] == "75008" and rows["register:3"][5] is None and rows["register:3"][6] == 1805
        issues = store.con.execute("SELECT record_key, field FROM field_issues WHERE source = 'register'").fetchall()
        assert ("3", "dob") in issues and not any(f in ("postcode", "phone") for _k, f in issues)
        # the model: one comparison per identifier / attribute, identifier blocking rules; e-mail dropped
        mc = fit_to_data(load_model_config(), column_stats(store.con, "person_std"), load_config(tmp_path / "project.toml"))
        assert {"id_nhs_number", "attr_birth_place"} <= set(mc["comparisons"])
        assert "l.id_nhs_number = r.id_nhs_number" in mc["blocking"]["predict"]
        dropped = {d["field"]: d["reason"] for d in mc["dropped_fields"]}
        assert dropped["email"] == "not mapped by any source"
        # ni_number: one record has one -> it cannot tell records apart: dropped, with the reason
        assert "same value" in dropped["id_ni_number"] and "id_ni_number" not in mc["comparisons"]
        linker = make_linker(store.con, "person_std", mc)
        levels = {c.output_column_name: [lv.label_for_charts for lv in c.comparison_levels]
                  for c in linker._settings_obj.comparisons}
        assert "id_ni_number" not in levels and levels["id_nhs_number"][1:] == ["exact", "one character", "else"]
        assert levels["attr_birth_place"][1:] == ["exact", "similar", "else"]
