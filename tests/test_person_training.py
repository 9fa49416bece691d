"""Training never silently damages the model (issue 15): every EM pass is checked, a failed pass is undone
exactly, untrained comparisons are named, an untrained key comparison fails the run unless accepted, and the
model is fitted to the fields the data populate.  On FEBRL4 (public labelled data), with and without a field
emptied in every record."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ecins_link.config import ConfigError, parse_config
from ecins_link.matching import metrics
from ecins_link.matching.person_febrl import febrl_person_std, febrl_truth
from ecins_link.matching.person_fields import column_stats, fit_to_data, rule_columns
from ecins_link.matching.person_model import load_model_config, make_linker
from ecins_link.matching.person_training import TrainingError, train
from ecins_link.matching.persons import link_persons
from ecins_link.store import Store

CONFIG = parse_config({"project": {"name": "t"}, "sources": [
    {"name": "s", "agency": "a", "path": "x.csv", "key": "id", "person": {"surname": "s", "postcode": "p"}}]})


@pytest.fixture
def febrl_con(tmp_path: Path, febrl4_sample: dict):  # noqa: ANN201
    store = Store(tmp_path / "f.duckdb")
    febrl_person_std(store.con, febrl4_sample)
    yield store
    store.close()


def _model(store: Store, **blocking: object) -> tuple[dict, object]:
    mc = fit_to_data(load_model_config(), column_stats(store.con, "person_std"), CONFIG)
    mc = {**mc, "blocking": {**mc["blocking"], **blocking}}
    return mc, make_linker(store.con, "person_std", mc)


def test_a_failed_pass_leaves_the_model_exactly_as_it_was(febrl_con: Store) -> None:
    """A pass whose rule finds no pairs makes Splink 4.0.x drop comparisons and change the prior before it
    raises; the pass is undone and the model afterwards equals the model before it."""
    nothing = "l.surname = r.surname AND l.forename = 'NO SUCH NAME'"
    mc, linker = _model(febrl_con, train=["l.postcode = r.postcode", nothing, "l.dob = r.dob"], train_fallback=[])
    names = [c.output_column_name for c in linker._settings_obj.comparisons]
    summary = train(linker, mc, n_records=febrl_con.count("person_std"), con=febrl_con.con)
    assert [c.output_column_name for c in linker._settings_obj.comparisons] == names
    assert linker._settings_obj._probability_two_random_records_match == summary["prior"] < 0.01
    failed = [p for p in summary["em_passes"] if not p["ok"]]
    assert [p["rule"] for p in failed] == [nothing] and "no record pairs" in failed[0]["error"]
    assert any(nothing in w and "undone" in w for w in summary["warnings"])
    # the passes around it trained: forename by the postcode pass, dob by both
    assert {"forename", "surname", "dob", "address"} <= set(summary["trained_comparisons"])
    # the same training without the failing pass gives exactly the same model (every m, u and the prior)
    mc_without, twin = _model(febrl_con, train=["l.postcode = r.postcode", "l.dob = r.dob"], train_fallback=[])
    train(twin, mc_without, n_records=febrl_con.count("person_std"), con=febrl_con.con)
    def params(lk: object) -> list[tuple]:  # (comparison, level, m, u) + the prior
        saved = lk.misc.save_model_to_json()
        return [(c["output_column_name"], lv["label_for_charts"], lv.get("m_probability"), lv.get("u_probability"))
                for c in saved["comparisons"] for lv in c["comparison_levels"]] + \
            [("prior", "", saved["probability_two_random_records_match"], None)]

    for got, want in zip(params(linker), params(twin), strict=True):  # equal up to float summation order
        assert got[:2] == want[:2]
        assert all(g == w or (g is not None and w is not None and math.isclose(g, w, rel_tol=1e-9))
                   for g, w in zip(got[2:], want[2:], strict=True)), (got, want)


def test_untrained_key_comparison_fails_unless_accepted(febrl_con: Store) -> None:
    # one pass on dob: it cannot train dob, nor forename (whose twin level reads dob); no fallback allowed
    mc, linker = _model(febrl_con, train=["l.dob = r.dob"], train_fallback=[])
    with pytest.raises(TrainingError) as err:
        train(linker, mc, n_records=febrl_con.count("person_std"), con=febrl_con.con)
    assert "forename" in str(err.value) and "dob" in str(err.value) and "allow_untrained" in str(err.value)
    mc, linker = _model(febrl_con, train=["l.dob = r.dob"], train_fallback=[])
    summary = train(linker, mc, n_records=febrl_con.count("person_std"), con=febrl_con.con,
                    allow_untrained=["forename", "dob"])
    untrained = {u["comparison"]: u["reason"] for u in summary["untrained_comparisons"]}
    assert set(untrained) == {"forename", "dob"} and "blocks on a column" in untrained["dob"]
    assert "surname" in summary["trained_comparisons"]


def test_fallback_pass_trains_what_the_configured_passes_cannot(febrl_con: Store) -> None:
    """Names and dates only: the pass on dob + surname, run on the training copies, trains forename."""
    mc, linker = _model(febrl_con, train=["l.dob = r.dob"])
    summary = train(linker, mc, n_records=febrl_con.count("person_std"), con=febrl_con.con)
    assert summary["fallback_passes"] and not summary["untrained_comparisons"]


def test_field_empty_in_every_record_is_dropped_and_the_run_still_links(febrl_con: Store, febrl4_sample: dict) -> None:
    """FEBRL4 with the postcode emptied in every record: the postcode rules and pass are dropped up front
    (noted), a fallback pass trains what the postcode pass trained, and linkage quality holds."""
    febrl_con.con.execute("UPDATE person_std SET postcode = NULL, postcode_sector = NULL, postcode_outward = NULL")
    link_persons(febrl_con, CONFIG)
    summary = json.loads(febrl_con.con.execute("SELECT summary_json FROM linkage_models").fetchone()[0])
    assert not summary["untrained_comparisons"]
    assert {"forename", "surname", "dob", "address"} <= set(summary["trained_comparisons"])
    assert all(p["ok"] for p in summary["em_passes"])
    assert not any({"postcode", "postcode_sector"} & rule_columns(b["rule"]) for b in summary["blocking"])
    assert {r["rule"] for r in summary["dropped_rules"] if r["kind"] == "train"} >= {"l.postcode = r.postcode"}
    settings = json.loads(febrl_con.con.execute("SELECT settings_json FROM linkage_models").fetchone()[0])
    assert settings["probability_two_random_records_match"] < 0.01
    assert {"forename", "surname", "dob"} <= {c["output_column_name"] for c in settings["comparisons"]}
    assert summary["clusters"] == febrl_con.con.execute("SELECT count(DISTINCT person_id) FROM person_clusters").fetchone()[0]
    truth = febrl_truth(febrl4_sample).set_index("unique_id")["true_id"]
    pred = febrl_con.df("SELECT unique_id, person_id FROM person_clusters").set_index("unique_id")["person_id"]
    pw = metrics.pairwise_metrics(pred, truth)
    assert pw["precision"] >= 0.99 and pw["recall"] >= 0.85


def test_key_field_empty_in_every_record_is_dropped_with_a_warning(febrl_con: Store) -> None:
    """No forename in any record: the forename comparison and every rule needing it are dropped up front, the
    run says so, and the rest of the model still trains and links."""
    febrl_con.con.execute("UPDATE person_std SET forename = NULL, forename_canonical = NULL, forename_dm = NULL, "
                          "initial = NULL")
    link_persons(febrl_con, CONFIG)
    summary = json.loads(febrl_con.con.execute("SELECT summary_json FROM linkage_models").fetchone()[0])
    assert "forename" in {d["field"] for d in summary["dropped_fields"]}
    assert any("'forename' dropped" in w for w in summary["warnings"])
    assert not any({"initial", "forename", "forename_dm"} & rule_columns(b["rule"]) for b in summary["blocking"])
    assert {"surname", "dob"} <= set(summary["trained_comparisons"]) and not summary["untrained_comparisons"]


def test_model_file_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="linkage.model"):
        parse_config({"project": {"name": "t"}, "linkage": {"model": "missing.toml"}, "sources": CONFIG.model_dump(
            include={"sources"})["sources"]}, root=tmp_path)
    bad = tmp_path / "m.toml"
    bad.write_text("[thresholds]\nforename_jaro_winkler = 0.9\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"m.toml: \[thresholds\] lacks .*surname_jaro_winkler"):
        load_model_config(bad)
