"""Evidence the standardise stage prepares for the person model: short forms resolved on records without a
sex, and the household link (the surnames recorded at each address) behind the changed-surname level; then
the changed-surname level on synthetic towns, where maiden names sit on old records at the family's address."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ecins_link.config import load_config, parse_config
from ecins_link.ingest import ingest
from ecins_link.matching import link_persons
from ecins_link.standardise import standardise
from ecins_link.store import Store

HOSTEL = "Riverside Hostel, 1 Quay Street, Northtown"
PEOPLE = "\n".join([
    "ID,FORENAMES,SURNAME,DOB,SEX,ADDRESS,POSTCODE",
    "H1,Kaz,Thompson,16/10/2005,,\"3 Park Road, Northtown\",NT5 3GU",
    "H2,Bobby,Green,17/03/1968,,\"9 Mill Lane, Northtown\",NT5 9XQ",
    "H3,Charlie,Cooper,10/09/1995,,\"9 Mill Lane, Northtown\",NT5 9XQ",
    "H4,Charlie,Cooper,10/09/1995,F,\"9 Mill Lane, Northtown\",NT5 9XQ",
    "H5,Omar,Haddad,01/01/1970,M,\"4 Bridge Street, Northtown\",NT2 1WR",
    "H6,Hana,Hassan,09/11/1972,F,\"4 Bridge Street, Northtown\",NT2 1WR",
    *[f"R{n},John,Surname{chr(65 + n)},01/01/1980,M,\"{HOSTEL}\",NT1 1AA" for n in range(7)],
]) + "\n"


@pytest.fixture(scope="module")
def std(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("household")
    (tmp / "people.csv").write_text(PEOPLE, encoding="utf-8")
    cfg = parse_config({"project": {"name": "t"}, "sources": [
        {"name": "people", "agency": "council", "path": "people.csv", "key": "ID", "date_formats": ["%d/%m/%Y"],
         "person": {"forenames": "FORENAMES", "surname": "SURNAME", "dob": "DOB", "sex": "SEX", "address": "ADDRESS",
                    "postcode": "POSTCODE"}}]}, root=tmp)
    store = Store(tmp / "s.duckdb")
    ingest(store, cfg)
    standardise(store, cfg)
    yield store
    store.close()


def _col(store: Store, column: str) -> dict:
    return dict(store.con.execute(f"SELECT record_key, {column} FROM person_std").fetchall())


def test_short_form_listed_for_one_sex_resolves_on_a_record_without_sex(std: Store) -> None:
    canonical = _col(std, "forename_canonical")
    assert canonical["H1"] == "KAREN" and canonical["H2"] == "ROBERT"
    # CHARLIE is CHARLES (M) or CHARLOTTE (F): without a sex it stays as written, with one it resolves
    assert canonical["H3"] == "CHARLIE" and canonical["H4"] == "CHARLOTTE"


def test_surnames_recorded_at_an_address_and_none_for_a_communal_one(std: Store) -> None:
    surnames = _col(std, "address_surnames")
    assert surnames["H5"] == surnames["H6"] == "|HADDAD|HASSAN|"
    assert surnames["H3"] == "|COOPER|GREEN|"
    assert {surnames[f"R{n}"] for n in range(7)} == {None}  # seven surnames at one address: a hostel


def _truth_pairs(town: Path, store: Store) -> pd.DataFrame:
    """Record pairs of one true person whose surnames differ but forename and DOB agree, with whether the
    household link holds, whether they were linked, and the true persons' hard case."""
    truth = pd.read_csv(town / "truth" / "records.csv", dtype=str)
    persons = pd.read_csv(town / "truth" / "persons.csv", dtype=str)
    store.con.register("_t", truth.merge(persons[["true_person_id", "hard_case"]], on="true_person_id"))
    try:
        return store.df("""
            WITH r AS (SELECT s.*, t.true_person_id AS tid, pc.person_id FROM person_std s
                       JOIN _t t USING (source, record_key) JOIN person_clusters pc USING (unique_id))
            SELECT l.unique_id AS a, r.unique_id AS b, l.person_id = r.person_id AS linked,
                   (contains(l.address_surnames, '|' || r.surname || '|')
                    OR contains(r.address_surnames, '|' || l.surname || '|')) AS household
            FROM r l JOIN r ON l.tid = r.tid AND l.unique_id < r.unique_id
            WHERE l.surname <> r.surname AND l.dob = r.dob AND l.forename = r.forename""")
    finally:
        store.con.unregister("_t")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5, 13])
def test_changed_surname_with_a_household_link_links_and_twins_stay_apart(tmp_path: Path, seed: int) -> None:
    from ecins_link.matching.metrics import evaluate_persons
    from ecins_link.synth import generate_town

    town = tmp_path / "town"
    generate_town(town, persons=3000, seed=seed)
    cfg = load_config(town / "project.toml")
    store = Store(tmp_path / "s.duckdb")
    try:
        ingest(store, cfg)
        standardise(store, cfg)
        link_persons(store, cfg)
        pairs = _truth_pairs(town, store)
        linked = pairs[pairs.household]
        assert len(linked) >= 5, "the town should hold maiden names on records at the family's address"
        assert linked.linked.mean() >= 0.9
        hard = evaluate_persons(store, town / "truth" / "records.csv", town / "truth" / "persons.csv")["hard_cases"]
        assert all(hard[k]["wrongly_merged_pairs"] == 0 for k in ("twin", "father_son") if k in hard)
    finally:
        store.close()
