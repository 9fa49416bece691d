"""Namesakes the model must keep apart (matching/person_comparisons.py ``dob.different, same name``): the same forename
and surname with two full dates of birth that no typo, swap or single wrong part reconciles.

Hand-made pairs check which dob level each pattern falls to (the packaged model's own SQL, run in DuckDB); a
synthetic town run through the engine checks that no pair with that pattern is accepted and that switching the
level on costs no true pairs there.
"""

from __future__ import annotations

import duckdb
import pytest

from ecins_link.matching.person_febrl import append_person_std
from ecins_link.matching.person_home import _level_case
from ecins_link.matching.person_model import load_model_config, settings

HOME = {"postcode": "NT1 1AA", "address_norm": "4 MILL LANE NORTHTOWN", "address_number": "4"}


def _dob_levels(pairs: list[tuple[tuple, tuple]], mc: dict | None = None) -> list[str]:
    """The dob level label of each hand-made pair ((forename, surname, dob), (forename, surname, dob))."""
    mc = mc or load_model_config()
    comp = next(c for c in settings(mc).get_settings("duckdb").as_dict()["comparisons"]
                if c["output_column_name"] == "dob")
    rows = []
    for i, (a, b) in enumerate(pairs):
        for side, (f, s, d) in (("l", a), ("r", b)):
            rows.append({"source": side, "record_key": str(i), "forename": f, "forename_canonical": f, "surname": s,
                         "dob": d, **HOME})
    con = duckdb.connect()
    append_person_std(con, rows)
    cols = [r[0] for r in con.execute("DESCRIBE person_std").fetchall()]
    sides = ", ".join(f'l."{c}" AS "{c}_l", r."{c}" AS "{c}_r"' for c in cols)
    got = con.execute(f"""SELECT k, {_level_case(comp)} FROM (SELECT l.record_key AS k, {sides} FROM person_std l
                          JOIN person_std r ON r.record_key = l.record_key AND l.source = 'l' AND r.source = 'r')
                          ORDER BY k::INT""").fetchall()
    con.close()
    return [label for _, label in got]


def test_same_name_with_irreconcilable_dates_is_the_namesake_level() -> None:
    brothers = (("MOHAMMED", "KHAN", "2010-03-04"), ("MOHAMMED", "KHAN", "2013-11-20"))
    strangers = (("JAMES", "JONES", "1984-02-11"), ("JAMES", "JONES", "1991-09-27"))
    typo = (("JAMES", "JONES", "1984-02-11"), ("JAMES", "JONES", "1984-02-12"))
    swapped = (("JAMES", "JONES", "1984-02-11"), ("JAMES", "JONES", "1984-11-02"))
    one_part = (("JAMES", "JONES", "1984-02-11"), ("JAMES", "JONES", "1978-02-11"))
    father_son = (("DAVID", "JONES", "1960-02-02"), ("DAVID", "JONES", "1986-09-09"))
    other_names = (("JAMES", "JONES", "1984-02-11"), ("PETER", "JONES", "1991-09-27"))
    got = _dob_levels([brothers, strangers, typo, swapped, one_part, father_son, other_names])
    assert got == ["different, same name", "different, same name", "one character", "day-month swapped",
                   "two of three parts", "generation apart, same name", "else"]


def test_same_day_of_the_year_a_generation_apart_is_parent_and_child_not_a_mistyped_year() -> None:
    """generation_first: HELEN HUGHES 03/08/1955 and 03/08/2017 (only the year differs, by 62 years, not one
    mistyped digit) is the father/son level, tested before "two of three parts"; a year off by whole centuries
    (a two-digit year read in the wrong century) and a nearby year stay "two of three parts"; off, as before."""
    mother_daughter = (("HELEN", "HUGHES", "1955-08-03"), ("HELEN", "HUGHES", "2017-08-03"))
    century = (("JAMES", "JONES", "1905-02-11"), ("JAMES", "JONES", "2005-02-11"))
    near = (("JAMES", "JONES", "1984-02-11"), ("JAMES", "JONES", "1978-02-11"))
    one_digit = (("JAMES", "JONES", "1955-02-11"), ("JAMES", "JONES", "1995-02-11"))
    mc = load_model_config()
    assert mc["thresholds"]["generation_first"] is True
    assert _dob_levels([mother_daughter, century, near, one_digit], mc) == [
        "generation apart, same name", "two of three parts", "two of three parts", "one character"]
    mc["thresholds"] = {k: v for k, v in mc["thresholds"].items() if k != "generation_first"}
    assert _dob_levels([mother_daughter], mc) == ["two of three parts"]


def test_level_is_off_where_the_model_file_does_not_ask_for_it() -> None:
    mc = load_model_config()
    mc["thresholds"] = {k: v for k, v in mc["thresholds"].items() if k != "namesake_dob_level"}
    brothers = (("MOHAMMED", "KHAN", "2010-03-04"), ("MOHAMMED", "KHAN", "2013-11-20"))
    assert _dob_levels([brothers], mc) == ["else"]
    assert load_model_config()["weight_bounds"]["dob.different, same name"]["max"] <= -16


@pytest.mark.slow
def test_on_a_synthetic_town_no_namesakes_with_different_dates_are_linked(standardised_town,  # noqa: ANN001
                                                                          packaged_model_with) -> None:  # noqa: ANN001
    from ecins_link.matching.metrics import evaluate_persons
    from ecins_link.matching.persons import link_persons

    cfg, store, truth = standardised_town(3000, 5)
    off = packaged_model_with("\nnamesake_dob_level = true\n", "\nnamesake_dob_level = false\n")
    irreconcilable = """SELECT count(*) FROM person_pairs p JOIN person_std l ON l.unique_id = p.unique_id_l
        JOIN person_std r ON r.unique_id = p.unique_id_r
        WHERE p.match_probability >= 0.95 AND l.forename = r.forename AND l.surname = r.surname
          AND l.dob <> r.dob AND damerau_levenshtein(strftime(l.dob, '%Y%m%d'), strftime(r.dob, '%Y%m%d')) > 1
          AND NOT (year(l.dob) = year(r.dob) AND month(l.dob) = day(r.dob) AND day(l.dob) = month(r.dob))
          AND (CAST(year(l.dob) = year(r.dob) AS INT) + CAST(month(l.dob) = month(r.dob) AS INT)
               + CAST(day(l.dob) = day(r.dob) AS INT)) < 2"""
    link_persons(store, cfg, model_file=off)
    before = evaluate_persons(store, *truth)
    link_persons(store, cfg)
    after = evaluate_persons(store, *truth)
    accepted = store.con.execute(irreconcilable).fetchone()[0]
    assert accepted == 0
    assert after["pairwise"]["true_positive_pairs"] >= before["pairwise"]["true_positive_pairs"] - 2
    wrong = lambda e: e["pairwise"]["predicted_pairs"] - e["pairwise"]["true_positive_pairs"]  # noqa: E731
    assert wrong(after) <= wrong(before)
