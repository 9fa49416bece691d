"""A source's own person reference (``[sources.person] source_person_id``; matching/person_source_ids.py)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from ecins_link.matching.person_source_ids import same_source_person_id

ON = {"source_ids": {"enabled": True, "max_contradicting_share": 0.05}}


def _records(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str | None, str | None]],
             pairs: list[tuple[str, str, float]]) -> None:
    """``rows``: (unique_id, source_person_id, dob); ``pairs``: (l, r, probability)."""
    con.execute("CREATE TABLE nodes (unique_id VARCHAR, source_person_id VARCHAR, dob DATE)")
    con.executemany("INSERT INTO nodes VALUES (?, ?, ?)", rows)
    con.execute("CREATE TABLE pairs (unique_id_l VARCHAR, unique_id_r VARCHAR, match_weight DOUBLE, "
                "match_probability DOUBLE, link_rule VARCHAR)")
    con.executemany("INSERT INTO pairs VALUES (?, ?, log2(? / (1 - ?)), ?, NULL)",
                    [(a, b, p, p, p) for a, b, p in pairs])


def _probability(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], float]:
    return {(a, b): p for a, b, p in con.execute(
        "SELECT unique_id_l, unique_id_r, match_probability FROM pairs").fetchall()}


def test_records_sharing_their_source_s_person_reference_are_accepted_unless_their_dates_contradict() -> None:
    con = duckdb.connect()
    people = [(f"h:{i}a", f"H:P{i}", "1980-01-01") for i in range(40)] + \
             [(f"h:{i}b", f"H:P{i}", "1980-01-01") for i in range(40)]
    _records(con, [
        *people,
        ("h:maiden", "H:P100", "1984-05-04"), ("h:married", "H:P100", "1984-05-04"),  # a maiden name, another address
        ("h:swap", "H:P101", "1990-03-07"), ("h:swap2", "H:P101", "1990-07-03"),    # day and month swapped
        ("h:typo", "H:P102", "1975-11-21"), ("h:typo2", "H:P102", "1975-11-27"),    # one keystroke
        ("h:undated", "H:P103", None), ("h:dated", "H:P103", "1966-02-02"),
        ("h:dad", "H:P104", "1950-06-01"), ("h:son", "H:P104", "1979-09-30"),       # contradicting dates
        ("c:other", "C:P100", "1984-05-04"),                                          # another source's P100
    ], [("h:maiden", "h:married", 0.001), ("h:swap", "h:swap2", 0.2), ("h:typo", "h:typo2", 0.3),
        ("h:undated", "h:dated", 0.01), ("h:dad", "h:son", 0.4), ("c:other", "h:maiden", 0.5),
        ("h:0a", "h:0b", 0.99)])
    done = same_source_person_id(con, "nodes", "pairs", 0.95, ON)
    got = _probability(con)
    assert done["reweighted"] == 4 and done["references_contradicting"] == 1  # P104 of 45 all-dated references
    for pair in [("h:maiden", "h:married"), ("h:swap", "h:swap2"), ("h:typo", "h:typo2"), ("h:undated", "h:dated")]:
        assert got[pair] == pytest.approx(0.95), pair
    assert got[("h:dad", "h:son")] == pytest.approx(0.4)
    assert got[("c:other", "h:maiden")] == pytest.approx(0.5)  # the same text in two sources is no link
    assert got[("h:0a", "h:0b")] == pytest.approx(0.99)        # never lowered
    rules = dict(((a, b), r) for a, b, r in con.execute("SELECT unique_id_l, unique_id_r, link_rule FROM pairs").fetchall())
    assert rules[("h:maiden", "h:married")] == "same_source_person_id" and rules[("h:0a", "h:0b")] is None


def test_a_household_reference_named_as_a_person_s_is_not_used() -> None:
    """Every family shares one reference: parents and children disagree on the date of birth, so the column is
    no person's reference and nothing is accepted; the run summary says why."""
    con = duckdb.connect()
    rows, pairs = [], []
    for i in range(20):
        rows += [(f"h:{i}mum", f"H:F{i}", "1970-01-01"), (f"h:{i}kid", f"H:F{i}", "2005-05-05")]
        pairs.append((f"h:{i}mum", f"h:{i}kid", 0.3))
    _records(con, rows, pairs)
    done = same_source_person_id(con, "nodes", "pairs", 0.95, ON)
    assert done["reweighted"] == 0 and done["references_contradicting"] == 20 and "household" in done["note"]
    assert max(_probability(con).values()) == pytest.approx(0.3)
    assert same_source_person_id(con, "nodes", "pairs", 0.95, {"source_ids": {"enabled": False}})["enabled"] is False


def test_a_reference_no_date_of_birth_can_check_is_not_used() -> None:
    """A source that records no date of birth: nothing shows the column is a person's, so nothing is accepted."""
    con = duckdb.connect()
    _records(con, [("h:a", "H:P1", None), ("h:b", "H:P1", None)], [("h:a", "h:b", 0.3)])
    done = same_source_person_id(con, "nodes", "pairs", 0.95, ON)
    assert done["reweighted"] == 0 and done["references_checked"] == 0 and "household" in done["note"]
    assert _probability(con)[("h:a", "h:b")] == pytest.approx(0.3)


@pytest.mark.slow
def test_a_housing_person_reference_declared_in_the_project_file_links_its_records(tmp_path: Path) -> None:
    """A 3,000-person town (seed 5), whose project file names the housing extract's PERSON_REF as the source's
    person reference (as the generator writes it): every two tenancy rows sharing one end in one cluster (without
    the step, 3 of 67 such pairs did not), the model compares no such column, and the run summary reports it."""
    from ecins_link.api import Project
    from ecins_link.synth import generate_town

    town = tmp_path / "town"
    generate_town(town, persons=3000, seed=5)
    project = town / "project.toml"
    from ecins_link.config import load_config

    housing = next(s for s in load_config(project).sources if s.name == "housing_tenancies")
    assert housing.person is not None and housing.person.source_person_id == "PERSON_REF"
    p = Project.open(project)
    p.run()
    summary = json.loads((town / "output" / "run_summary.json").read_text(encoding="utf-8"))
    step = summary["linkage_passes"]["same_source_person_id"]
    assert step["references_checked"] > 50 and step["references_contradicting"] == 0
    con = duckdb.connect(str(town / "store.duckdb"), read_only=True)
    try:
        apart = con.execute("""
            WITH h AS (SELECT s.unique_id, s.source_person_id, c.person_id FROM person_std s
                       JOIN person_clusters c USING (unique_id) WHERE s.source_person_id IS NOT NULL)
            SELECT count(*) FILTER (WHERE l.person_id <> r.person_id), count(*)
            FROM h l JOIN h r ON l.source_person_id = r.source_person_id AND l.unique_id < r.unique_id""").fetchone()
        model = json.loads(con.execute("SELECT settings_json FROM linkage_models").fetchone()[0])
    finally:
        con.close()
    assert apart[1] >= 30 and apart[0] == 0, apart
    assert step["reweighted"] >= 1, step  # some of them only this step joined (a maiden name at an old address)
    assert not any("source_person_id" in json.dumps(c) for c in model["comparisons"])
