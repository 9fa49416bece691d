"""The over-merge guard between two household namesakes (matching/person_clusters.py): a father and son with one
name at one address are two people (their dates of birth differ), and an undated record that fits both names
is placed by the one piece of evidence that separates them -- its source rarely holds two records of one person,
and only one of them already has a record there -- or else left on its own (``[guard] source_duplicate_max_share``).
Hand-made records, the packaged model's guard settings, the engine's own clustering."""

from __future__ import annotations

import duckdb
import pytest

from ecins_link.matching.person_clusters import cluster
from ecins_link.matching.person_febrl import append_person_std
from ecins_link.matching.person_model import load_model_config

HOME = {"postcode": "NT8 1AB", "address_norm": "1 DALTON STREET NORTHTOWN"}


def _rec(source: str, key: str, dob: str | None, forename: str = "MOHAMMED") -> dict:
    return {"source": source, "record_key": key, "forename": forename, "surname": "KHAN", "dob": dob, "sex": "M",
            **HOME}


def _run(rows: list[dict], pairs: list[tuple[str, str, float]], **guard: object) -> dict[str, str]:
    con = duckdb.connect()
    append_person_std(con, rows)
    con.execute("CREATE TABLE pp (unique_id_l VARCHAR, unique_id_r VARCHAR, match_weight DOUBLE, "
                "match_probability DOUBLE)")
    con.executemany("INSERT INTO pp VALUES (least(?, ?), greatest(?, ?), ?, 1.0 / (1.0 + pow(2.0, -?)))",
                    [(a, b, a, b, w, w) for a, b, w in pairs])
    g = {**load_model_config()["guard"], "source_min_clusters": 10, **guard}
    g = {k: v for k, v in g.items() if v is not None}
    cluster(con, "person_std", "pp", 0.95, [], [], g, "raw")
    cid = dict(con.execute("SELECT unique_id, cluster_id FROM raw").fetchall())
    con.close()
    return cid


def _household(undated_source: str = "police", son_has_police: bool = False) -> tuple[list[dict], list]:
    """Father (police + council, 1970), son (council, 2001; police too if asked), one undated record that fits
    both names equally, and 30 other people with one police record each."""
    rows = [_rec("police", "dad", "1970-02-11"), _rec("council", "dad", "1970-02-11"),
            _rec("council", "son", "2001-09-30"), _rec(undated_source, "x", None)]
    pairs = [("police:dad", "council:dad", 20.0), ("police:dad", "council:son", -12.0),
             ("council:dad", "council:son", -12.0)]
    if son_has_police:
        rows.append(_rec("police", "son", "2001-09-30"))
        pairs += [("police:son", "council:son", 20.0), ("police:son", "police:dad", -12.0)]
    x = f"{undated_source}:x"
    pairs += [(x, "police:dad", 9.0), (x, "council:dad", 9.0), (x, "council:son", 9.0)]
    rows += [_rec("police", f"o{i}", f"{1950 + 2 * i}-03-0{1 + i % 9}", f"OTHER{i}") for i in range(30)]  # to 2008
    return rows, pairs


def test_undated_record_joins_the_namesake_without_a_record_of_its_source() -> None:
    rows, pairs = _household()
    cid = _run(rows, pairs)
    assert cid["police:dad"] == cid["council:dad"] != cid["council:son"]  # the guard keeps two people apart
    assert cid["police:x"] == cid["council:son"]  # the father is on the police extract already: it is the son's
    off = _run(rows, pairs, source_duplicate_max_share=None, source_age_quantile=None)  # absent = off: as before
    assert off["police:x"] not in (off["council:dad"], off["council:son"])


@pytest.mark.parametrize("case", ["both_on_the_source", "source_with_many_records_per_person", "clear_winner"])
def test_when_the_source_cannot_tell(case: str) -> None:
    if case == "both_on_the_source":  # each namesake already has a police record: no evidence either way
        rows, pairs = _household(son_has_police=True)
        assert _run(rows, pairs)["police:x"] not in {_run(rows, pairs)[k] for k in ("police:dad", "police:son")}
    elif case == "source_with_many_records_per_person":  # tenancies: one tenant, several tenancies
        rows, pairs = _household(undated_source="housing")
        rows += [_rec("housing", "dad2", "1970-02-11"), _rec("housing", "dad3", "1970-02-11")]
        pairs += [("housing:dad2", "police:dad", 20.0), ("housing:dad3", "police:dad", 20.0),
                  ("housing:dad2", "housing:dad3", 20.0)]
        rows += [_rec("housing", f"h{i}", None, f"LONE{i}") for i in range(9)]  # 1 of 10 housing clusters has 3
        cid = _run(rows, pairs, source_duplicate_max_share=0.05)
        assert cid["housing:x"] not in (cid["council:dad"], cid["council:son"])
    else:  # the link itself decides when one namesake fits far better (>= ambiguity_margin bits)
        rows, pairs = _household()
        pairs = [(a, b, 14.0 if (a, b) == ("police:x", "police:dad") else w) for a, b, w in pairs]
        cid = _run(rows, pairs)
        assert cid["police:x"] == cid["police:dad"]


@pytest.mark.parametrize("dated", [False, True])
def test_isolated_undated_record_claimed_by_one_piece_rejoins_it(dated: bool) -> None:
    """One member's record contradicts the undated record (a strongly negative pair), the guard cuts it off, and
    nobody else claims it: it rejoins (``rejoin_isolated_undated``).  A dated record so cut stays apart -- its
    date could be a namesake relative's."""
    dob = "1980-08-10" if dated else None
    rows = [_rec("police", "a1", "1980-08-10", "ELIZABETH"), _rec("housing", "a2", "1980-08-10", "ELIZABETH"),
            _rec("council", "u", dob, "ELIZABETH")]
    pairs = [("police:a1", "housing:a2", 20.0), ("council:u", "police:a1", 9.0), ("council:u", "housing:a2", -12.0)]
    on = _run(rows, pairs)
    off = _run(rows, pairs, rejoin_isolated_undated=None)
    assert off["council:u"] != off["police:a1"]  # the guard's cut, as before
    assert (on["council:u"] == on["police:a1"]) is (not dated)


def test_undated_record_is_not_given_to_a_namesake_too_young_for_its_source() -> None:
    """A fire safety visit's occupant is an adult on every dated visit record: an undated visit record for
    KEVIN LIU at a home with a father KEVIN LIU (1990) and a baby KEVIN LIU (2025) is the father's."""
    rows = [_rec("police", "dad", "1990-12-14", "KEVIN"), _rec("council", "baby", "2025-04-14", "KEVIN"),
            _rec("fire", "x", None, "KEVIN")]
    pairs = [("police:dad", "council:baby", -12.0), ("fire:x", "police:dad", 9.0), ("fire:x", "council:baby", 9.0)]
    rows += [_rec("fire", f"v{i}", f"{1940 + 2 * i}-05-1{i % 9}", f"VISITED{i}") for i in range(30)]  # born to 1998
    cid = _run(rows, pairs)
    assert cid["fire:x"] == cid["police:dad"] != cid["council:baby"]
    off = _run(rows, pairs, source_age_quantile=None)
    assert off["fire:x"] not in (off["police:dad"], off["council:baby"])
