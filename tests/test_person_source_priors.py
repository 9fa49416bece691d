"""A source's own duplicate rate as the prior of a pair of its records (matching/person_source_priors.py)."""

from __future__ import annotations

import json
import math

import duckdb
import pytest

from ecins_link.matching.person_source_priors import (
    explanation_row,
    withhold_within_source,
    within_source_priors,
)

ON = {"source_priors": {"enabled": True, "min_records": 1000, "max_penalty_bits": 4.0, "hold_passes_below_bits": 0.5}}


def _extract(con: duckdb.DuckDBPyConnection) -> None:
    """A register (REG, 2,000 records, 10 own pairs), a tenancy file (TEN, 2,000 records, 400 own pairs: it holds
    people twice), 1,000 pairs across them, and a small source (SMALL, 500 records, 5 own pairs); every pair at
    probability 0.99 (6.63 bits)."""
    con.execute("""CREATE TABLE nodes AS
        SELECT 'R' || i AS unique_id, 'REG' AS source FROM range(2000) t(i)
        UNION ALL SELECT 'T' || i, 'TEN' FROM range(2000) t(i)
        UNION ALL SELECT 'S' || i, 'SMALL' FROM range(500) t(i)""")
    w = math.log2(0.99 / 0.01)
    con.execute("""CREATE TABLE pairs AS
        SELECT 'R' || (2 * i) AS unique_id_l, 'R' || (2 * i + 1) AS unique_id_r FROM range(10) t(i)
        UNION ALL SELECT 'T' || (2 * i), 'T' || (2 * i + 1) FROM range(400) t(i)
        UNION ALL SELECT 'R' || (i + 100), 'T' || (i + 1000) FROM range(1000) t(i)
        UNION ALL SELECT 'S' || (2 * i), 'S' || (2 * i + 1) FROM range(5) t(i)""")
    con.execute(f"ALTER TABLE pairs ADD COLUMN match_weight DOUBLE DEFAULT {w}")
    con.execute("ALTER TABLE pairs ADD COLUMN match_probability DOUBLE DEFAULT 0.99")


def _weights(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[float, float]]:
    rows = con.execute("""SELECT left(unique_id_l, 1) || left(unique_id_r, 1), min(match_weight), max(match_weight)
                          FROM pairs GROUP BY 1""").fetchall()
    return {k: (lo, hi) for k, lo, hi in rows}


def test_a_register_s_own_pairs_lose_the_difference_in_prior_and_nothing_is_weighed_up() -> None:
    con = duckdb.connect()
    _extract(con)
    before = _weights(con)
    done = within_source_priors(con, "nodes", "pairs", 0.95, ON)
    after = _weights(con)
    bits = {s["source"]: s["bits"] for s in done["sources"]}
    # REG: (9.9 + 1) expected over 1,999,000 own pairs against 1,410 x 0.99 over 12.5M: about -5 bits, capped at -4
    assert bits == {"REG": -4.0, "TEN": 0.0}  # TEN's own prior is above the extract's: never weighed up
    assert after["RR"][0] == pytest.approx(before["RR"][0] - 4.0)
    assert after["TT"] == before["TT"] and after["RT"] == before["RT"]  # cross-source pairs as scored
    assert after["SS"] == before["SS"]  # under min_records: left alone
    assert done["reweighted"] == 10 and done["moved_below_threshold"] == 10
    p = con.execute("SELECT max(match_probability) FROM pairs WHERE unique_id_l LIKE 'R%' AND unique_id_r LIKE 'R%'")
    assert p.fetchone()[0] == pytest.approx(1 / (1 + 2 ** -(math.log2(99) - 4)))
    assert done["passes_hold_off"] == ["REG"]


def test_the_identity_and_variants_passes_hold_off_a_register_s_own_pairs_only() -> None:
    con = duckdb.connect()
    _extract(con)
    con.execute("CREATE TABLE accept AS SELECT * FROM (VALUES ('R0', 'R1'), ('T0', 'T1'), ('R100', 'T1000')) "
                "v(unique_id_l, unique_id_r)")
    assert withhold_within_source(con, "nodes", "accept", []) == 0  # step not run: nothing held
    held = within_source_priors(con, "nodes", "pairs", 0.95, ON)["passes_hold_off"]
    assert withhold_within_source(con, "nodes", "accept", held) == 1
    assert sorted(con.execute("SELECT unique_id_l FROM accept").fetchall()) == [("R100",), ("T0",)]
    con.execute("INSERT INTO accept VALUES ('R0', 'R1')")
    assert withhold_within_source(con, "nodes", "accept", []) == 0  # none held: the register's pair stays


def test_the_explanation_shows_the_bits_taken_off_a_pair_of_one_source() -> None:
    con = duckdb.connect()
    _extract(con)
    summary = {"source_priors": {"sources": [{"source": "REG", "bits": -1.5}, {"source": "TEN", "bits": 0.0}]}}
    row = explanation_row(con, "nodes", summary, "R0", "R1")
    assert row["comparison"] == "Source prior" and row["log2_weight"] == -1.5 and row["value_l"] == "REG"
    assert row["bayes_factor"] == pytest.approx(2 ** -1.5) and "REG" in row["description"]
    assert explanation_row(con, "nodes", summary, "R0", "T0") is None  # two sources
    assert explanation_row(con, "nodes", summary, "T0", "T1") is None  # nothing taken off TEN
    assert explanation_row(con, "nodes", {}, "R0", "R1") is None  # the step did not run


def test_off_where_the_model_file_has_no_such_section() -> None:
    con = duckdb.connect()
    _extract(con)
    before = _weights(con)
    assert within_source_priors(con, "nodes", "pairs", 0.95, {}) == {"enabled": False}
    assert _weights(con) == before


@pytest.mark.slow
def test_on_a_synthetic_town_fewer_people_are_merged_inside_the_register(standardised_town,  # noqa: ANN001
                                                                       packaged_model_with) -> None:  # noqa: ANN001
    """A 3,000-person town: with the step on, the council register's own prior is below the extract's and fewer
    pairs of different people are linked inside it, at little cost in true pairs."""
    from ecins_link.matching.metrics import evaluate_persons
    from ecins_link.matching.persons import link_persons

    cfg, store, truth = standardised_town(3000, 11)
    off = packaged_model_with("[source_priors]\nenabled = true", "[source_priors]\nenabled = false")
    store.con.execute("CREATE TABLE truth AS SELECT * FROM read_csv(?, all_varchar = true)", [str(truth[0])])
    wrong_inside = """SELECT count(*) FROM person_clusters a JOIN person_clusters b
        ON a.person_id = b.person_id AND a.source = b.source AND a.unique_id < b.unique_id
        JOIN truth ta ON ta.source = a.source AND ta.record_key = a.record_key
        JOIN truth tb ON tb.source = b.source AND tb.record_key = b.record_key
        WHERE ta.true_person_id <> tb.true_person_id"""
    link_persons(store, cfg, model_file=off)
    before, wrong_before = evaluate_persons(store, *truth), store.con.execute(wrong_inside).fetchone()[0]
    link_persons(store, cfg)
    after, wrong_after = evaluate_persons(store, *truth), store.con.execute(wrong_inside).fetchone()[0]
    summary = store.con.execute("SELECT summary_json FROM linkage_models ORDER BY created_at DESC").fetchone()[0]
    # explain: a register pair's waterfall shows the bits taken off, and its final score is the stored weight
    from ecins_link.matching.explain import explain_pair

    pair = store.con.execute("""SELECT p.unique_id_l, p.unique_id_r, p.match_weight FROM person_pairs p
        JOIN person_std a ON a.unique_id = p.unique_id_l JOIN person_std b ON b.unique_id = p.unique_id_r
        WHERE a.source = 'council_people' AND b.source = 'council_people'
          AND p.match_probability BETWEEN 0.2 AND 0.94 ORDER BY p.unique_id_l, p.unique_id_r LIMIT 1""").fetchone()
    assert pair is not None
    wf = explain_pair(store, pair[0], pair[1]).set_index("comparison")
    assert wf.loc["Source prior", "log2_weight"] < 0
    assert wf.loc["Final score", "log2_weight"] == pytest.approx(pair[2], abs=0.01)
    priors = json.loads(summary)["source_priors"]
    bits = {s["source"]: s["bits"] for s in priors["sources"]}
    assert priors["enabled"] and bits["council_people"] < 0 and priors["reweighted"] > 0
    assert wrong_after <= wrong_before
    assert after["bcubed"]["precision"] >= before["bcubed"]["precision"]
    assert after["bcubed"]["recall"] >= before["bcubed"]["recall"] - 0.002


def _namesakes_and_moves(con: duckdb.DuckDBPyConnection) -> None:
    """REG, a register: 20 forenames x 100 SMITHs born over ten years, each at an address of its own, so a pair of
    one name and date is two namesakes.  TEN, a tenancy file: 500 people held twice, at two addresses, with one
    name and date.  Every record is its own cluster (the first clustering linked nothing)."""
    con.execute("""CREATE TABLE nodes AS
        SELECT 'R' || i AS unique_id, 'REG' AS source, 'NAME' || (i % 20) AS forename, 'SMITH' AS surname,
               DATE '1980-01-01' + CAST(hash(i) % 3650 AS INTEGER) AS dob, 'R ' || i AS address_norm,
               CAST(NULL AS VARCHAR) AS uprn
        FROM range(2000) t(i)
        UNION ALL
        SELECT 'T' || i, 'TEN', 'OTHER' || (i // 2), 'JONES', DATE '1950-01-01' + CAST(3 * (i // 2) AS INTEGER),
               'T ' || i, NULL
        FROM range(1000) t(i)""")
    con.execute("CREATE TABLE clusters AS SELECT unique_id, unique_id AS cluster_id FROM nodes")
    con.execute("""CREATE TABLE pairs AS SELECT 'T' || (2 * i) AS unique_id_l, 'T' || (2 * i + 1) AS unique_id_r,
                   0.0 AS match_weight, 0.5 AS match_probability FROM range(500) t(i)""")


def test_placebo_dates_tell_a_register_s_namesakes_from_a_file_that_holds_people_twice() -> None:
    from ecins_link.matching.person_source_priors import identity_pass_accuracy

    con = duckdb.connect()
    _namesakes_and_moves(con)
    est = identity_pass_accuracy(con, "nodes", "clusters", ["REG", "TEN"], [43, 47, 53, 67, 71, 79], 0.001)
    exact = con.execute("""SELECT count(*) FROM nodes l JOIN nodes r ON l.source = 'REG' AND r.source = 'REG'
                           AND l.forename = r.forename AND l.dob = r.dob AND l.unique_id < r.unique_id""").fetchone()[0]
    assert est["REG"]["pairs_apart"] == exact >= 10
    # about as many namesakes expected at one date as there are: nearly none of REG's pairs is one person
    assert est["REG"]["namesakes_expected"] == pytest.approx(exact, rel=0.6)
    assert est["REG"]["accuracy_at_least"] < 0.5
    assert est["TEN"] == {"pairs_apart": 500, "namesakes_expected": 0.0, "accuracy_at_least": 1.0}
    cfg = {"source_priors": {**ON["source_priors"], "hold_passes_below_accuracy": 0.9}}
    done = within_source_priors(con, "nodes", "pairs", 0.95, cfg, "clusters")
    assert done["passes_hold_off"] == ["REG"]
    assert {s["source"]: s["accuracy_at_least"] for s in done["sources"]}["TEN"] == 1.0
    # once the first clustering holds TEN's people together, nothing of theirs is left for a pass to accept
    con.execute("UPDATE clusters SET cluster_id = 'T' || (CAST(substr(unique_id, 2) AS INTEGER) // 2) "
                "WHERE unique_id LIKE 'T%'")
    again = identity_pass_accuracy(con, "nodes", "clusters", ["TEN"], [43, 47], 0.001)
    assert again["TEN"]["pairs_apart"] == 0 and again["TEN"]["accuracy_at_least"] is None
