"""Scoring on the synthetic town: planted cross-agency scenarios found, decoys not, invisibility measured.

The first test isolates the scoring stage: events come from the real ingest, persons and addresses are
linked exactly as the truth says, the graph is the real graph stage; so any miss is a scoring miss.
The second runs the whole pipeline (slow) and checks the same targets end to end.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from ecins_link.config import load_config
from ecins_link.scoring import evaluate_scenarios, score
from ecins_link.store import Store

TOWN = Path(__file__).resolve().parents[1] / "data" / "samples" / "town"


def _stage(module: str, name: str):  # noqa: ANN202
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        pytest.skip(f"{module}.{name} not available yet")


@pytest.fixture(scope="module")
def town_config():  # noqa: ANN201
    if not (TOWN / "project.toml").exists():
        pytest.skip("synthetic town sample not generated")
    return load_config(TOWN / "project.toml")


def _truth_linkage(store: Store) -> None:
    """person_clusters and address_matches exactly as the truth files say (isolates scoring)."""
    truth = TOWN / "truth"
    store.con.execute(
        "CREATE OR REPLACE TABLE person_clusters AS SELECT DISTINCT t.source || ':' || t.record_key AS unique_id, "
        "t.source, t.record_key, t.true_person_id AS person_id, 1.0::DOUBLE AS cluster_confidence "
        "FROM read_csv(?, all_varchar = true) t JOIN person_records p USING (source, record_key)",
        [str(truth / "records.csv")])
    store.con.execute(
        "CREATE OR REPLACE TABLE address_matches AS SELECT a.source, a.record_key, t.true_uprn AS uprn, "
        "'U' || t.true_uprn AS location_id, 1.0::DOUBLE AS match_confidence, 'truth' AS match_method "
        "FROM address_records a JOIN read_csv(?, all_varchar = true) t USING (source, record_key) "
        "WHERE t.true_uprn IS NOT NULL", [str(truth / "addresses.csv")])


def _assert_targets(result: dict) -> None:
    assert result["scenarios_planted"] >= 24
    assert result["detection_rate"] >= 0.95, result["missed"] + result["ranked_below_top_n"]
    assert result["decoy_flag_rate"] is None or result["decoy_flag_rate"] <= 0.05, result["flagged_decoy_ids"]
    assert result["invisible_share"] >= 0.80


def test_town_scenarios_with_truth_linkage(tmp_path: Path, town_config) -> None:  # noqa: ANN001
    ingest = _stage("ecins_link.ingest", "ingest")
    build_graph = _stage("ecins_link.graph", "build_graph")
    with Store(tmp_path / "town.duckdb") as store:
        ingest(store, town_config)
        _truth_linkage(store)
        build_graph(store, town_config)
        score(store, town_config)
        result = evaluate_scenarios(store, TOWN / "truth")
        _assert_targets(result)
        # every flag explains itself: the records behind it exist in the ingested events
        missing = store.con.execute("""
            WITH ev AS (SELECT json_extract_string(r.value, '$.source') AS source,
                               json_extract_string(r.value, '$.record_key') AS record_key
                        FROM flags f, json_each(json_extract(f.evidence, '$.records')) r)
            SELECT count(*) FROM ev WHERE NOT EXISTS (
                SELECT 1 FROM event_records e WHERE e.source = ev.source AND e.record_key = ev.record_key)
        """).fetchone()[0]
        assert missing == 0


@pytest.mark.slow
def test_town_scenarios_end_to_end(tmp_path: Path, town_config) -> None:  # noqa: ANN001
    stages = [_stage("ecins_link.ingest", "ingest"), _stage("ecins_link.standardise", "standardise"),
              _stage("ecins_link.matching", "link_persons"), _stage("ecins_link.locations", "link_locations"),
              _stage("ecins_link.graph", "build_graph")]
    with Store(tmp_path / "town.duckdb") as store:
        for stage in stages:
            stage(store, town_config)
        score(store, town_config)
        _assert_targets(evaluate_scenarios(store, TOWN / "truth"))
