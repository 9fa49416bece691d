"""Linkage metrics against brute-force pair enumeration and hand-worked examples."""

from __future__ import annotations

import itertools
import random

import pandas as pd
import pytest

from ecins_link.matching import metrics
from ecins_link.store import Store


def _brute(pred: dict, truth: dict) -> tuple[float, float]:
    keys = sorted(set(pred) & set(truth))
    same_p = {(a, b) for a, b in itertools.combinations(keys, 2) if pred[a] == pred[b]}
    same_t = {(a, b) for a, b in itertools.combinations(keys, 2) if truth[a] == truth[b]}
    tp = len(same_p & same_t)
    return (tp / len(same_p) if same_p else 1.0), (tp / len(same_t) if same_t else 1.0)


def _brute_bcubed(pred: dict, truth: dict) -> tuple[float, float]:
    keys = sorted(set(pred) & set(truth))
    ps, rs = [], []
    for k in keys:
        c = {x for x in keys if pred[x] == pred[k]}
        t = {x for x in keys if truth[x] == truth[k]}
        ps.append(len(c & t) / len(c))
        rs.append(len(c & t) / len(t))
    return sum(ps) / len(ps), sum(rs) / len(rs)


def test_hand_worked_example() -> None:
    truth = pd.Series({"1": "A", "2": "A", "3": "A", "4": "B"})
    pred = pd.Series({"1": "x", "2": "x", "3": "y", "4": "y"})
    pw = metrics.pairwise_metrics(pred, truth)
    assert (pw["true_positive_pairs"], pw["predicted_pairs"], pw["true_pairs"]) == (1, 2, 3)
    assert pw["precision"] == pytest.approx(0.5) and pw["recall"] == pytest.approx(1 / 3)
    bc = metrics.bcubed(pred, truth)
    assert bc["precision"] == pytest.approx(0.75) and bc["recall"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_brute_force_on_random_mappings(seed: int) -> None:
    rng = random.Random(seed)
    truth = {f"r{i}": f"T{rng.randint(0, 25)}" for i in range(120)}
    pred = {k: (v if rng.random() < 0.8 else f"T{rng.randint(0, 25)}") for k, v in truth.items()}
    del pred["r0"]  # records missing from one side are ignored
    p, r = _brute(pred, truth)
    got = metrics.pairwise_metrics(pd.Series(pred), pd.Series(truth))
    assert got["precision"] == pytest.approx(p) and got["recall"] == pytest.approx(r)
    bp, br = _brute_bcubed(pred, truth)
    got = metrics.bcubed(pd.Series(pred), pd.Series(truth))
    assert got["precision"] == pytest.approx(bp) and got["recall"] == pytest.approx(br)


def test_dataframe_mappings_and_perfect_score() -> None:
    truth = pd.DataFrame({"rec": ["a", "b", "c"], "tid": ["1", "1", "2"]})
    pred = pd.DataFrame({"rec": ["a", "b", "c"], "cl": ["x", "x", "y"]})
    assert metrics.pairwise_metrics(pred, truth)["f1"] == 1.0
    assert metrics.bcubed(pred, truth)["f1"] == 1.0
    with pytest.raises(ValueError):
        metrics.pairwise_metrics(pd.Series({"a": "x"}), pd.DataFrame({"a": [1], "b": [2], "c": [3]}))


def test_recall_by_group_and_wrong_merges() -> None:
    truth = pd.Series({"1": "A", "2": "A", "3": "B", "4": "B", "5": "C"})
    pred = pd.Series({"1": "x", "2": "x", "3": "y", "4": "z", "5": "x"})
    by = metrics.recall_by_group(pred, truth, pd.Series({"A": "g1", "B": "g2", "C": "g1"})).set_index("group")
    assert by.loc["g1", "pairwise_recall"] == 1.0 and by.loc["g2", "pairwise_recall"] == 0.0
    assert by.loc["g2", "true_pairs"] == 1 and by.loc["g1", "records"] == 3
    # C was merged with both A records: 2 wrong pairs touch C; none touch B
    assert metrics.wrongly_merged_pairs(pred, truth, {"C"}) == 2
    assert metrics.wrongly_merged_pairs(pred, truth, {"B"}) == 0
    assert metrics.wrongly_merged_pairs(pred, truth, {"A"}) == 2


def test_evaluate_persons_reads_store_and_truth(tmp_path) -> None:
    store = Store(tmp_path / "s.duckdb")
    store.write_table("person_clusters", pd.DataFrame({
        "unique_id": ["p:1", "p:2", "h:1", "h:2"], "source": ["p", "p", "h", "h"],
        "record_key": ["1", "2", "1", "2"], "person_id": ["P1", "P2", "P1", "P1"],
        "cluster_confidence": [1.0, 1.0, 0.99, 0.97]}))
    (tmp_path / "records.csv").write_text(
        "source,record_key,true_person_id\np,1,T1\np,2,T2\nh,1,T1\nh,2,T3\nh,9,T9\nev,1,T1\n", encoding="utf-8")
    (tmp_path / "persons.csv").write_text(
        "true_person_id,forenames,surname,dob,sex,name_origin,household_id,hard_case\n"
        "T1,A,B,2000-01-01,M,english,H1,\nT2,C,D,,F,polish,H2,\nT3,E,B,2000-01-01,M,english,H1,twin\n"
        "T9,F,G,,,english,H3,\n", encoding="utf-8")
    out = metrics.evaluate_persons(store, tmp_path / "records.csv", tmp_path / "persons.csv")
    assert out["records_evaluated"] == 4 and out["truth_person_records_not_in_clusters"] == 1
    assert out["truth_event_rows_not_evaluated"] == 1
    assert out["hard_cases"]["twin"]["wrongly_merged_pairs"] == 2
    assert out["pairwise"]["precision"] == pytest.approx(1 / 3)
    assert set(out["recall_by_name_origin"]) == {"english", "polish"}
    assert out["bcubed_recall_by_source"]["p"] == 1.0
    store.close()
