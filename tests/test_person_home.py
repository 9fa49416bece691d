"""Same-home evidence (matching/person_home.py): a misspelt forename at one home, and the only namesake at home.

Hand-made records check each condition (a rare spelling against an established one, twins with two established
names, a rare spelling that fits two people, another sex; an undated initial beside one or two people of that
initial, a family with two namesakes that moved together, one dwelling written two ways).  Synthetic towns of
three seeds check the pass on data it was not written against: recall rises, precision does not fall, and
twins and fathers and sons with one name stay apart.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ecins_link.matching.person_clusters import cluster
from ecins_link.matching.person_febrl import append_person_std
from ecins_link.matching.person_home import same_home_evidence
from ecins_link.matching.person_model import load_model_config

HOME = {"postcode": "NT7 8BB", "address_norm": "127A MARLBOROUGH ROAD HIGHCLIFFE NORTHTOWN", "address_number": "127A"}
SAME_HOME_OTHER_FORM = {"postcode": "NT7 8BB", "address_norm": "FLAT A 127 MARLBOROUGH ROAD NORTHTOWN",
                        "address_number": "127", "address_flat": "FLAT A"}
NEXT_DOOR = {"postcode": "NT7 8BB", "address_norm": "129 MARLBOROUGH ROAD NORTHTOWN", "address_number": "129"}
# a settings JSON as Splink saves it: the forename levels the pass reads (weights 4, -20, -6 bits)
SETTINGS = {"comparisons": [{"output_column_name": "forename", "comparison_levels": [
    {"sql_condition": "forename_l IS NULL OR forename_r IS NULL", "label_for_charts": "null", "is_null_level": True},
    {"sql_condition": '"forename_l" = "forename_r"', "label_for_charts": "exact", "m_probability": 0.8,
     "u_probability": 0.01},
    {"sql_condition": "damerau_levenshtein(forename_l, forename_r) <= 1", "label_for_charts": "one typo",
     "m_probability": 0.016, "u_probability": 0.001},
    {"sql_condition": "dob_l = dob_r AND surname_dm_l = surname_dm_r", "label_for_charts": "different, same surname and dob",
     "m_probability": 2.0**-20 * 0.01, "u_probability": 0.01},
    {"sql_condition": "ELSE", "label_for_charts": "else", "m_probability": 0.01, "u_probability": 0.64}]}]}


def _person(key: str, forename: str, surname: str, dob: str | None, home: dict, sex: str | None = None) -> dict:
    return {"source": "s", "record_key": key, "forename": forename, "surname": surname, "dob": dob, "sex": sex,
            **home}


# these hand-made extracts are tiny: judge spellings on them as if they were large (3 records = established)
SMALL = {"typo_min_records": 0, "typo_min_common_count": 3}


def _run(rows: list[dict], pairs: list[tuple[str, str, float]], home: dict | None = None) -> tuple[dict, dict[str, str]]:
    """Cluster, run the pass, cluster again; returns (what the pass did, record -> cluster)."""
    con = duckdb.connect()
    append_person_std(con, [{"forename_canonical": r["forename"], **r} for r in rows])
    con.execute("CREATE TABLE pp (unique_id_l VARCHAR, unique_id_r VARCHAR, match_weight DOUBLE, "
                "match_probability DOUBLE)")
    con.executemany("INSERT INTO pp VALUES (?, ?, ?, 1.0 / (1.0 + pow(2.0, -?)))",
                    [(f"s:{a}", f"s:{b}", w, w) for a, b, w in pairs])
    mc = load_model_config()
    mc["home"] = {**mc["home"], **(SMALL if home is None else home)}
    guard = mc["guard"]
    cluster(con, "person_std", "pp", 0.95, [], [], guard, "raw")
    done = same_home_evidence(con, "person_std", "pp", "raw", 0.95, 0.5, SETTINGS, mc)
    cluster(con, "person_std", "pp", 0.95, [], [], guard, "raw")
    cid = {k.split(":", 1)[1]: v for k, v in con.execute("SELECT unique_id, cluster_id FROM raw").fetchall()}
    con.close()
    return done, cid


def _keiths(n: int = 3) -> list[dict]:
    return [_person(f"keith{i}", "KEITH", "BROWN", "1954-04-10", HOME, "M") for i in range(n)]


def test_a_rare_misspelling_at_the_same_home_with_the_same_dob_weighs_as_one_typo() -> None:
    rows = [*_keiths(), _person("keef", "KEEF", "BROWN", "1954-04-10", SAME_HOME_OTHER_FORM)]
    pairs = [("keith0", "keith1", 20.0), ("keith0", "keith2", 20.0), ("keef", "keith0", -14.0)]
    done, cid = _run(rows, pairs)
    assert done["misspelt_forename"]["reweighted"] == 1
    assert cid["keef"] == cid["keith0"]


def test_spellings_are_not_judged_rare_on_a_small_extract_or_when_listed_as_a_short_form() -> None:
    rows = [*_keiths(), _person("keef", "KEEF", "BROWN", "1954-04-10", HOME)]
    pairs = [("keith0", "keith1", 20.0), ("keef", "keith0", -14.0)]
    done, cid = _run(rows, pairs, home={})  # the packaged settings: 4 records are too few to judge
    assert done["misspelt_forename"]["reweighted"] == 0 and cid["keef"] != cid["keith0"]
    # JENNY is JENNIFER's short form, not a misspelling of her twin brother JOHN's name
    rows = [*[_person(f"j{i}", "JOHN", "HALL", "2016-09-28", HOME, "M") for i in range(3)],
            {**_person("jenny", "JENNY", "HALL", "2016-09-28", HOME), "forename_canonical": "JENNIFER"}]
    done, cid = _run(rows, [("j0", "j1", 20.0), ("jenny", "j0", -14.0)])
    assert done["misspelt_forename"]["reweighted"] == 0 and cid["jenny"] != cid["j0"]


def test_an_established_name_counts_all_its_spellings() -> None:
    """KHALID is written KHALID on two records and KHALED on two more (one canonical form): together established
    (3 or more records, SMALL), though neither spelling alone is.  A rare KHAFED at the same home, with the same date of
    birth, is KHALID mistyped -- as KEEF is KEITH beside three KEITHs.  With the spellings counted apart it was not."""
    home = {"postcode": "NT5 2UT", "address_norm": "4A CLOVER ROAD EASTFIELD NORTHTOWN", "address_number": "4A"}
    rows = [{**_person(f"k{i}", name, "AL-SAYED", "2012-02-20", home, "M"), "forename_canonical": "KHALED"}
            for i, name in enumerate(["KHALID", "KHALID", "KHALED", "KHALED"])]
    rows.append(_person("typo", "KHAFED", "AL-SAYED", "2012-02-20", home, "M"))
    pairs = [("k0", "k1", 20.0), ("k0", "k2", 20.0), ("k0", "k3", 20.0), ("k0", "typo", -14.0)]
    done, cid = _run(rows, pairs)
    assert done["misspelt_forename"]["reweighted"] == 1 and cid["typo"] == cid["k0"]
    # when the other two records carry another name (KHALIL, its own canonical form) KHALID is not established
    rows[2:4] = [{**r, "forename": "KHALIL", "forename_canonical": "KHALIL"} for r in rows[2:4]]
    done, cid = _run(rows, [("k0", "k1", 20.0), ("k2", "k3", 20.0), ("k0", "typo", -14.0)])
    assert done["misspelt_forename"]["reweighted"] == 0 and cid["typo"] != cid["k0"]


def test_a_mistyped_short_form_weighs_as_one_typo_of_its_full_name() -> None:
    """ANNDY is four edits from ANDREW but one from ANDY, a spelling of ANDREW the extract holds (typo_spelling_edits):
    the rare spelling at the same home and date of birth is ANDREW's.  Without ANDY in the extract nothing says so."""
    rows = [{**_person(f"a{i}", name, "HALL", "2003-08-18", HOME, "M"), "forename_canonical": "ANDREW"}
            for i, name in enumerate(["ANDREW", "ANDREW", "ANDY"])]
    rows.append(_person("typo", "ANNDY", "HALL", "2003-08-18", HOME))
    pairs = [("a0", "a1", 20.0), ("a0", "a2", 20.0), ("a0", "typo", -14.0)]
    done, cid = _run(rows, pairs)
    assert done["misspelt_forename"]["reweighted"] >= 1 and cid["typo"] == cid["a0"]
    rows[2] = {**rows[2], "forename": "ANDREW"}
    done, cid = _run(rows, pairs)
    assert done["misspelt_forename"]["reweighted"] == 0 and cid["typo"] != cid["a0"]
    done, cid = _run(rows[:2] + [{**rows[2], "forename": "ANDY"}, rows[3]], pairs,
                     home={**SMALL, "typo_spelling_edits": 0})
    assert done["misspelt_forename"]["reweighted"] == 0 and cid["typo"] != cid["a0"]


def test_twins_with_two_established_names_stay_apart() -> None:
    rows = [*[_person(f"c{i}", "CHARLOTTE", "EVANS", "2012-05-01", HOME, "F") for i in range(3)],
            *[_person(f"t{i}", "CHANTELLE", "EVANS", "2012-05-01", HOME, "F") for i in range(3)]]
    pairs = [("c0", "c1", 20.0), ("c0", "c2", 20.0), ("t0", "t1", 20.0), ("t0", "t2", 20.0), ("c0", "t0", -14.0)]
    done, cid = _run(rows, pairs)
    assert done["misspelt_forename"]["reweighted"] == 0 and cid["c0"] != cid["t0"]


def test_a_twin_with_a_rare_name_beside_a_common_one_stays_apart() -> None:
    # found on a 3,000-person town (seed 5): one CHANTELLE record beside her twin CHARLOTTE's three.  The rare
    # spelling is alike enough by Jaro-Winkler (0.81) but 5 edits away: a different name, not a misspelling
    rows = [*[_person(f"c{i}", "CHARLOTTE", "LEWIS", "2008-11-19", HOME, "F") for i in range(3)],
            _person("t0", "CHANTELLE", "LEWIS", "2008-11-19", HOME, "F")]
    pairs = [("c0", "c1", 20.0), ("c0", "c2", 20.0), ("c0", "t0", -14.0)]
    done, cid = _run(rows, pairs)
    assert done["misspelt_forename"]["reweighted"] == 0 and cid["c0"] != cid["t0"]
    # with the edit cap raised to 5 the pass takes CHANTELLE as a misspelling: the cap is what keeps them apart
    done, cid = _run(rows, pairs, home={**SMALL, "typo_max_edits": 5})
    assert done["misspelt_forename"]["reweighted"] == 1 and cid["c0"] == cid["t0"]


def test_a_misspelling_that_fits_two_people_at_home_or_another_sex_stays_apart() -> None:
    # KZA beside twins KAREN and KATIE: alike to both, so whose it is cannot be said
    rows = [*[_person(f"k{i}", "KAREN", "ROBERTS", "2018-02-07", HOME, "F") for i in range(2)],
            *[_person(f"t{i}", "KATIE", "ROBERTS", "2018-02-07", HOME, "F") for i in range(2)],
            _person("kza", "KZA", "ROBERTS", "2018-02-07", HOME, "F")]
    pairs = [("k0", "k1", 20.0), ("t0", "t1", 20.0), ("kza", "k0", -14.0), ("kza", "t0", -14.0)]
    done, cid = _run(rows, pairs)
    assert done["misspelt_forename"]["reweighted"] == 0 and cid["kza"] not in (cid["k0"], cid["t0"])
    # a rare spelling recorded with the other sex
    rows = [*_keiths(), _person("keef", "KEEF", "BROWN", "1954-04-10", HOME, "F")]
    done, cid = _run(rows, [("keith0", "keith1", 20.0), ("keef", "keith0", -14.0)])
    assert done["misspelt_forename"]["reweighted"] == 0 and cid["keef"] != cid["keith0"]
    # ... or next door
    rows = [*_keiths(), _person("keef", "KEEF", "BROWN", "1954-04-10", NEXT_DOOR)]
    done, cid = _run(rows, [("keith0", "keith1", 20.0), ("keef", "keith0", -14.0)])
    assert done["misspelt_forename"]["reweighted"] == 0 and cid["keef"] != cid["keith0"]


def test_the_only_namesake_at_home_takes_an_undated_initial_from_the_review_band() -> None:
    mo = [_person(f"mo{i}", "MOHAMMED", "KHAN", "1981-10-03", HOME, "M") for i in range(2)]
    initial = _person("mk", "M", "KHAN", None, SAME_HOME_OTHER_FORM)
    done, cid = _run([*mo, initial], [("mo0", "mo1", 20.0), ("mk", "mo0", 1.0)])
    assert done["only_namesake_at_home"]["accepted"] == 1 and cid["mk"] == cid["mo0"]
    # below the review band it stays apart
    done, cid = _run([*mo, initial], [("mo0", "mo1", 20.0), ("mk", "mo0", -1.0)])
    assert done["only_namesake_at_home"]["accepted"] == 0 and cid["mk"] != cid["mo0"]


def test_a_name_that_only_sounds_like_the_namesake_at_home_stays_apart() -> None:
    # EMILIA and AMELIA share a sound key but are two names (sisters); EMILIA MOHAMED / MOHAMMED fit by spelling
    amelia = [_person(f"a{i}", "AMELIA", "KING", "2012-05-20", HOME, "F") for i in range(2)]
    emilia = _person("e", "EMILIA", "KING", None, HOME)
    done, cid = _run([*amelia, emilia], [("a0", "a1", 20.0), ("e", "a0", 1.0)])
    assert done["only_namesake_at_home"]["accepted"] == 0 and cid["e"] != cid["a0"]
    mohammed = [_person(f"m{i}", "MOHAMMED", "KHAN", "1981-10-03", HOME, "M") for i in range(2)]
    done, cid = _run([*mohammed, _person("u", "MOHAMED", "KHAN", None, HOME)], [("m0", "m1", 20.0), ("u", "m0", 1.0)])
    assert done["only_namesake_at_home"]["accepted"] == 1 and cid["u"] == cid["m0"]


def test_an_undated_initial_beside_two_people_of_that_initial_stays_on_its_own() -> None:
    rows = [*[_person(f"mo{i}", "MOHAMMED", "KHAN", "1981-10-03", HOME, "M") for i in range(2)],
            _person("ma", "MARYAM", "KHAN", "1987-04-07", HOME, "F"), _person("mk", "M", "KHAN", None, HOME)]
    done, cid = _run(rows, [("mo0", "mo1", 20.0), ("mk", "mo0", 1.0), ("mk", "ma", 1.0)])
    assert done["only_namesake_at_home"]["accepted"] == 0
    assert cid["mk"] not in (cid["mo0"], cid["ma"])


def test_a_family_with_two_namesakes_that_moved_together_leaves_the_old_record_alone() -> None:
    # two MARK JONESes lived at 127A; at their old flat only the younger left a dated record, the undated
    # record there is the elder's
    old = {"postcode": "NT10 1RS", "address_norm": "FLAT 27 QUEENS TOWER 7 VICTORIA GARDENS", "address_number": "7",
           "address_flat": "FLAT 27"}
    rows = [_person("elder", "MARK", "JONES", "2012-12-25", HOME), _person("younger", "MARK", "JONES", "2013-10-14", HOME),
            _person("younger_old", "MARK", "JONES", "2013-10-14", old), _person("undated_old", "MARK", "JONES", None, old)]
    pairs = [("younger", "younger_old", 12.0), ("undated_old", "younger_old", 3.0), ("elder", "undated_old", -2.0),
             ("elder", "younger", -8.0)]
    done, cid = _run(rows, pairs)
    assert done["only_namesake_at_home"]["accepted"] == 0 and cid["undated_old"] != cid["younger_old"]
    # without the elder at the family's home, the younger is the only MARK JONES: the record joins
    done, cid = _run([r for r in rows if r["record_key"] != "elder"], pairs[:2])
    assert done["only_namesake_at_home"]["accepted"] == 1 and cid["undated_old"] == cid["younger_old"]


def test_off_unless_the_model_file_enables_it() -> None:
    con = duckdb.connect()
    mc = {k: v for k, v in load_model_config().items() if k != "home"}
    assert same_home_evidence(con, "person_std", "pp", "raw", 0.95, 0.5, SETTINGS, mc) == {"enabled": False}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 7, 11])
def test_on_synthetic_towns_recall_rises_and_precision_holds(tmp_path: Path, seed: int,
                                                             packaged_model_with) -> None:  # noqa: ANN001
    from ecins_link.config import load_config
    from ecins_link.ingest import ingest
    from ecins_link.matching.metrics import evaluate_persons
    from ecins_link.matching.persons import link_persons
    from ecins_link.standardise import standardise
    from ecins_link.store import Store
    from ecins_link.synth import generate_town

    town = tmp_path / "town"
    generate_town(town, persons=3000, seed=seed)
    cfg = load_config(town / "project.toml")
    off = packaged_model_with("[home]\nenabled = true", "[home]\nenabled = false")
    store = Store(tmp_path / "s.duckdb")
    truth = (town / "truth" / "records.csv", town / "truth" / "persons.csv")
    try:
        ingest(store, cfg)
        standardise(store, cfg)
        link_persons(store, cfg, model_file=off)
        before = evaluate_persons(store, *truth)
        link_persons(store, cfg)
        after = evaluate_persons(store, *truth)
        summary = store.con.execute("SELECT summary_json FROM linkage_models ORDER BY created_at DESC LIMIT 1").fetchone()
    finally:
        store.close()
    assert '"same_home"' in summary[0]
    found = after["pairwise"]["true_positive_pairs"] - before["pairwise"]["true_positive_pairs"]
    wrong = (after["pairwise"]["predicted_pairs"] - after["pairwise"]["true_positive_pairs"]) - (
        before["pairwise"]["predicted_pairs"] - before["pairwise"]["true_positive_pairs"])
    # the model itself now links some pairs the pass used to (one dwelling written two ways: the address level
    # "same address, locality omitted"): on seed 3 the pass adds 2 true pairs to 1,229 the model finds (before that
    # level: 7 to 1,220)
    assert found >= 2, f"seed {seed}: the pass found only {found} true pairs"
    assert wrong <= 0, f"seed {seed}: the pass added {wrong} wrong pairs"
    assert after["bcubed"]["recall"] > before["bcubed"]["recall"]
    assert after["bcubed"]["precision"] >= before["bcubed"]["precision"] - 1e-9
    hard = after["hard_cases"]
    assert all(hard[k]["wrongly_merged_pairs"] <= before["hard_cases"][k]["wrongly_merged_pairs"]
               for k in ("twin", "father_son", "same_name") if k in hard)


def _run_sources(rows: list[dict], pairs: list[tuple[str, str, float]]) -> tuple[dict, dict[str, str]]:
    """As _run, but records name their source (unique id ``source:key``) and pairs are given by those ids."""
    con = duckdb.connect()
    append_person_std(con, [{"forename_canonical": r["forename"], **r} for r in rows])
    con.execute("CREATE TABLE pp (unique_id_l VARCHAR, unique_id_r VARCHAR, match_weight DOUBLE, "
                "match_probability DOUBLE)")
    con.executemany("INSERT INTO pp VALUES (?, ?, ?, 1.0 / (1.0 + pow(2.0, -?)))", [(a, b, w, w) for a, b, w in pairs])
    mc = load_model_config()
    mc["home"] = {**mc["home"], **SMALL}
    cluster(con, "person_std", "pp", 0.95, [], [], mc["guard"], "raw")
    done = same_home_evidence(con, "person_std", "pp", "raw", 0.95, 0.5, SETTINGS, mc)
    cluster(con, "person_std", "pp", 0.95, [], [], mc["guard"], "raw")
    cid = dict(con.execute("SELECT unique_id, cluster_id FROM raw").fetchall())
    con.close()
    return done, cid


def _rec(source: str, key: str, forename: str, home: dict = HOME, dob: str = "2015-06-02") -> dict:
    return {**_person(key, forename, "OKAFOR", dob, home, "M"), "source": source}


def test_twins_with_alike_names_each_established_and_filed_apart_in_one_source_stay_apart() -> None:
    # AIDAN and AIDEN: one typo apart, but each spelling recorded twice at the home, and the council holds both
    rows = [_rec("council", "1", "AIDAN"), _rec("police", "1", "AIDAN"),
            _rec("council", "2", "AIDEN", SAME_HOME_OTHER_FORM), _rec("police", "2", "AIDEN")]
    pairs = [("council:1", "police:1", 20.0), ("council:2", "police:2", 20.0),
             ("council:1", "council:2", 14.0), ("police:1", "police:2", 14.0)]  # the model's one-typo level
    done, cid = _run_sources(rows, pairs)
    assert done["twins_with_alike_names"]["reweighted"] == 2
    assert cid["council:1"] == cid["police:1"] != cid["council:2"] == cid["police:2"]


@pytest.mark.parametrize("case", ["variant_per_agency", "one_typo", "other_date", "next_door"])
def test_alike_names_that_are_one_person_are_left_linked(case: str) -> None:
    rows = [_rec("council", "1", "AIDAN"), _rec("council", "2", "AIDAN"), _rec("police", "1", "AIDEN"),
            _rec("police", "2", "AIDEN")]  # each agency writes the name its own way: no source holds both
    if case == "one_typo":  # a single mistyped record beside three
        rows = [_rec("council", "1", "AIDAN"), _rec("police", "1", "AIDAN"), _rec("police", "2", "AIDEN"),
                _rec("council", "2", "AIDAN")]
    elif case == "other_date":  # both spellings in the council's records, but not one date of birth (no twins)
        rows = [_rec("council", "1", "AIDAN"), _rec("police", "1", "AIDAN"), _rec("council", "2", "AIDEN", dob="2015-06-03"),
                _rec("police", "2", "AIDEN", dob="2015-06-03")]
    elif case == "next_door":
        rows = [_rec("council", "1", "AIDAN"), _rec("police", "1", "AIDAN"), _rec("council", "2", "AIDEN", NEXT_DOOR),
                _rec("police", "2", "AIDEN", NEXT_DOOR)]
    pairs = [("council:1", "council:2", 14.0), ("police:1", "police:2", 14.0), ("council:1", "police:1", 14.0),
             ("council:2", "police:2", 14.0)]
    done, cid = _run_sources(rows, pairs)
    assert done["twins_with_alike_names"]["reweighted"] == 0
    assert len({cid[u] for u in ("council:1", "council:2", "police:1", "police:2")}) == 1


def test_one_spelling_with_two_canonical_forms_is_not_two_names() -> None:
    # CHARLIE is CHARLES on a record with sex M and CHARLOTTE (or itself) on one without: one spelling, one person
    rows = [_rec("council", "1", "CHARLIE"), _rec("police", "1", "CHARLIE"), _rec("council", "2", "CHARLIE"),
            _rec("police", "2", "CHARLIE")]
    rows = [{**r, "forename_canonical": "CHARLES" if r["record_key"] == "1" else "CHARLIE"} for r in rows]
    pairs = [("council:1", "council:2", 14.0), ("police:1", "police:2", 14.0), ("council:1", "police:1", 14.0)]
    done, cid = _run_sources(rows, pairs)
    assert done["twins_with_alike_names"]["reweighted"] == 0
    assert len({cid[u] for u in ("council:1", "council:2", "police:1", "police:2")}) == 1
