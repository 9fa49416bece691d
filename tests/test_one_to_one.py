"""One-to-one linking between sources declared to hold one record per person (linkage.one_to_one_sources)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
from test_febrl import CONFIG, FEBRL_MODEL

from ecins_link.matching import metrics
from ecins_link.matching.one_to_one import link_one_to_one
from ecins_link.matching.person_febrl import febrl_person_std, febrl_truth
from ecins_link.matching.persons import link_persons
from ecins_link.store import Store


def _tables(con: duckdb.DuckDBPyConnection) -> None:
    ids = ["a:1", "a:2", "a:3", "a:4", "a:5", "a:6", "b:1", "b:2", "b:3", "b:4", "b:5", "b:6", "c:1"]
    clusters = pd.DataFrame({"unique_id": ids, "source": [i[0] for i in ids], "record_key": [i[2:] for i in ids],
                             "cluster_id": ids, "cluster_confidence": 1.0})
    clusters.loc[clusters.unique_id == "a:6", "cluster_id"] = "a:5"  # a:5 + a:6 already one person
    con.register("clusters_df", clusters)
    con.execute("CREATE TABLE raw AS SELECT * FROM clusters_df")
    pairs = pd.DataFrame([
        ("a:1", "b:1", 0.80),  # mutual best: linked
        ("a:1", "b:2", 0.30),
        ("a:2", "b:2", 0.70), ("a:2", "b:3", 0.70),  # a tie: a:2 has no single best
        ("b:3", "c:1", 0.90),  # c is not a one-to-one source
        ("a:3", "b:4", 0.90),  # a clerical cannot-link
        ("a:4", "b:5", 0.40),  # below the floor
        ("a:5", "b:6", 0.90),  # a:5 is not alone in its cluster
    ], columns=["unique_id_l", "unique_id_r", "match_probability"])
    con.register("pairs_df", pairs)
    con.execute("CREATE TABLE pairs AS SELECT * FROM pairs_df")


def test_only_mutual_best_singletons_above_the_floor_are_joined() -> None:
    con = duckdb.connect()
    _tables(con)
    n = link_one_to_one(con, "raw", "pairs", ["a", "b"], 0.5, cannot_link=[("b:4", "a:3")])
    assert n == 1
    got = dict(con.execute("SELECT unique_id, cluster_id FROM raw").fetchall())
    assert got["a:1"] == got["b:1"]
    assert con.execute("SELECT cluster_confidence FROM raw WHERE unique_id = 'b:1'").fetchone()[0] == 0.8
    others = {k: v for k, v in got.items() if k not in ("a:1", "b:1", "a:6")}
    assert all(k == v for k, v in others.items())  # nothing else moved
    assert link_one_to_one(con, "raw", "pairs", ["a"], 0.5, []) == 0  # one source: nothing to pair


def test_one_to_one_lifts_febrl4_recall_without_false_links(tmp_path: Path, febrl4_sample: dict) -> None:
    truth = febrl_truth(febrl4_sample).set_index("unique_id")["true_id"]
    one = CONFIG.model_copy(update={"linkage": CONFIG.linkage.model_copy(update={"one_to_one_sources": ["a", "b"]})})
    results = {}
    for label, config in (("plain", CONFIG), ("one_to_one", one)):
        with Store(tmp_path / f"{label}.duckdb") as store:
            febrl_person_std(store.con, febrl4_sample)
            link_persons(store, config, model_file=FEBRL_MODEL)
            pred = store.df("SELECT unique_id, person_id FROM person_clusters").set_index("unique_id")["person_id"]
            results[label] = metrics.pairwise_metrics(pred, truth)
            n_links = store.con.execute("SELECT json_extract(summary_json, '$.one_to_one_links')::INT "
                                        "FROM linkage_models").fetchone()[0]
    assert n_links > 0
    assert results["one_to_one"]["true_positive_pairs"] > results["plain"]["true_positive_pairs"]
    assert results["one_to_one"]["precision"] >= results["plain"]["precision"] - 0.001
