"""Clerical labels feed back into the person model (issue 15): m probabilities from the pairs labelled match
and a calibration of match probability.  FEBRL4 (public labelled data): the labels are decided from its
truth and imported through ``review import``'s own function."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ecins_link.config import parse_config
from ecins_link.matching import metrics
from ecins_link.matching.person_febrl import febrl_person_std, febrl_truth
from ecins_link.matching.persons import link_persons
from ecins_link.matching.review import import_review
from ecins_link.store import Store

CONFIG = parse_config({"project": {"name": "t"}, "sources": [
    {"name": "s", "agency": "a", "path": "x.csv", "key": "id", "person": {"surname": "s", "postcode": "p"}}]})


def test_labels_train_m_and_calibrate_without_changing_the_model_shape(tmp_path: Path, febrl4_sample: dict,
                                                                       packaged_model_with) -> None:  # noqa: ANN001
    with Store(tmp_path / "f.duckdb") as store:
        febrl_person_std(store.con, febrl4_sample)
        link_persons(store, CONFIG)
        first = json.loads(store.con.execute("SELECT settings_json FROM linkage_models").fetchone()[0])
        truth = febrl_truth(febrl4_sample).set_index("unique_id")["true_id"]
        # 60 pairs of each kind that blocking scores, decided from the truth: the least certain matches kept in
        # person_pairs, and non-matches sharing a postcode and an initial or a date of birth and an initial
        # (prediction blocking rules)
        pairs = store.df("SELECT unique_id_l, unique_id_r FROM person_pairs ORDER BY abs(match_weight)")
        same_dob = store.df("""SELECT l.unique_id AS unique_id_l, r.unique_id AS unique_id_r FROM person_std l
            JOIN person_std r ON (l.postcode = r.postcode OR l.dob = r.dob) AND l.initial = r.initial
                AND l.unique_id < r.unique_id
            ORDER BY 1, 2""")
        both = pd.concat([pairs, same_dob]).drop_duplicates(["unique_id_l", "unique_id_r"])
        both["decision"] = ["match" if truth[a] == truth[b] else "non_match"
                            for a, b in zip(both.unique_id_l, both.unique_id_r, strict=True)]
        chosen = pd.concat([g.head(60) for _, g in both.groupby("decision")])
        assert (chosen.decision == "non_match").sum() == 60
        chosen[["unique_id_l", "unique_id_r", "decision"]].to_csv(tmp_path / "review.csv", index=False)
        import_review(store, tmp_path / "review.csv", reviewer="tester")
        # calibration is off in the packaged model (benchmarks/bench_labels.py): switched on in a model file
        model = packaged_model_with("calibrate = false", "calibrate = true")
        link_persons(store, CONFIG, model_file=model)
        settings, summary = (json.loads(v) for v in store.con.execute(
            "SELECT settings_json, summary_json FROM linkage_models ORDER BY created_at DESC LIMIT 1").fetchone())
        assert summary["labels"]["match"] == 60 and summary["labels"]["m_from_labels"]["used"]
        cal = summary["calibration"]
        assert cal["labels"]["match"] >= 20 and cal["labels"]["non_match"] >= 20
        if cal["used"]:  # the calibrated probabilities explain the labels at least as well as the model's
            assert cal["log_loss_after"] <= cal["log_loss_before"]
        else:
            assert "slope" in cal["reason"] and any("calibration" in w for w in summary["warnings"])
        # the model keeps its shape: same comparisons and levels, same prior; some m moved
        shape = [(c["output_column_name"], [lv["label_for_charts"] for lv in c["comparison_levels"]])
                 for c in settings["comparisons"]]
        assert shape == [(c["output_column_name"], [lv["label_for_charts"] for lv in c["comparison_levels"]])
                         for c in first["comparisons"]]
        m = lambda s: [lv.get("m_probability") for c in s["comparisons"] for lv in c["comparison_levels"]]  # noqa: E731
        assert m(settings) != m(first)
        pred = store.df("SELECT unique_id, person_id FROM person_clusters").set_index("unique_id")["person_id"]
        pw = metrics.pairwise_metrics(pred, truth)
        assert pw["precision"] >= 0.99 and pw["recall"] >= 0.9
