"""A household link worth no more than chance allows (matching/person_home_chance.py): a maiden-name link through
a common surname at a shared address is weighed down to -log2(chance); one through a rare surname keeps the level's
weight.  Hand-made records on the engine's own clustering; the packaged model's [home] switch."""

from __future__ import annotations

import duckdb

from ecins_link.matching.person_clusters import cluster
from ecins_link.matching.person_febrl import append_person_std, household_surnames
from ecins_link.matching.person_home_chance import household_link_by_chance
from ecins_link.matching.person_model import HOUSEHOLD, load_model_config

# the surname levels the pass reads, as Splink saves them: the household link at +6 bits
SETTINGS = {"comparisons": [{"output_column_name": "surname", "comparison_levels": [
    {"sql_condition": "surname_l IS NULL OR surname_r IS NULL", "label_for_charts": "null", "is_null_level": True},
    {"sql_condition": "surname_l = surname_r", "label_for_charts": "exact", "m_probability": 0.9, "u_probability": 0.01},
    {"sql_condition": f"dob_l = dob_r AND forename_l = forename_r AND {HOUSEHOLD}",
     "label_for_charts": "changed, household link", "m_probability": 0.00064, "u_probability": 0.00001},
    {"sql_condition": "ELSE", "label_for_charts": "else", "m_probability": 0.01, "u_probability": 0.9}]}]}
HOME = {"postcode": "NT1 1AA", "address_norm": "4 MILL LANE NORTHTOWN"}
AWAY = {"postcode": "NT9 9ZZ", "address_norm": "17 ELM ROAD NORTHTOWN"}


def _rec(key: str, forename: str, surname: str, home: dict, dob: str = "1986-03-14") -> dict:
    return {"source": "s", "record_key": key, "forename": forename, "surname": surname, "dob": dob, **home}


def _run(husband: str, cfg: dict | None = None) -> tuple[dict, dict[str, str]]:
    """KAREN recorded under her maiden name THOMPSON at an address where ``husband`` (a surname) was recorded,
    and as KAREN ``husband`` elsewhere; 500 other people, 20 of them JONES (4 % of records)."""
    rows = [_rec("old", "KAREN", "THOMPSON", HOME), _rec("h", "PAUL", husband, HOME, "1984-01-02"),
            _rec("new", "KAREN", husband, AWAY),
            *[_rec(f"j{i}", "ANNA", "JONES", {"postcode": f"NT5 {i}AA", "address_norm": f"{i} OAK ST"}, "1950-01-01")
              for i in range(20)],
            *[_rec(f"x{i}", "ANNA", f"X{i}", {"postcode": f"NT6 {i}AA", "address_norm": f"{i} ASH ST"}, "1950-01-01")
              for i in range(480)]]
    con = duckdb.connect()
    append_person_std(con, rows)
    household_surnames(con)
    con.execute("CREATE TABLE pp (unique_id_l VARCHAR, unique_id_r VARCHAR, match_weight DOUBLE, "
                "match_probability DOUBLE)")
    con.execute("INSERT INTO pp VALUES ('s:new', 's:old', 5.0, 1.0 / (1.0 + pow(2.0, -5.0)))")  # 0.97
    home = {**load_model_config()["home"], **(cfg or {})}
    done = household_link_by_chance(con, "person_std", "pp", SETTINGS, home)
    cluster(con, "person_std", "pp", 0.95, [], [], load_model_config()["guard"], "raw")
    cid = {k.split(":", 1)[1]: v for k, v in con.execute("SELECT unique_id, cluster_id FROM raw").fetchall()}
    con.close()
    return done, cid


def test_a_link_through_a_common_surname_is_weighed_by_its_chance() -> None:
    # JONES: 2 surnames at her old address x 21 of 503 records = 8 % -> at most 3.6 bits, not 6
    done, cid = _run("JONES")
    assert done["reweighted"] == 1 and cid["old"] != cid["new"]


def test_a_link_through_a_rare_surname_keeps_the_level_weight() -> None:
    # NOWAK: 2 x 2 / 503 = 0.8 % -> up to 7 bits, above the level's 6: left as it is
    done, cid = _run("NOWAK")
    assert done["reweighted"] == 0 and cid["old"] == cid["new"]


def test_off_unless_the_model_file_asks() -> None:
    done, cid = _run("JONES", {"household_link_chance": False})
    assert done == {"reweighted": 0, "enabled": False} and cid["old"] == cid["new"]
    assert load_model_config()["home"]["household_link_chance"] is True
