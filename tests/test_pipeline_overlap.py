"""Persons' scoring alongside the locations stage (``project.overlap_stages``): same results as one stage after
another, and a failing stage leaves nothing half-written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import TOWN

from ecins_link import pipeline
from ecins_link.config import load_config
from ecins_link.pipeline import open_store, run_stages


def _partition(store, sql: str) -> set[frozenset]:  # noqa: ANN001
    groups: dict = {}
    for key, member in store.con.execute(sql).fetchall():
        groups.setdefault(key, set()).add(member)
    return {frozenset(g) for g in groups.values()}


@pytest.fixture(scope="module")
def standardised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample town through ingest and standardise (a store to copy)."""
    town = tmp_path_factory.mktemp("overlap") / "town"
    shutil.copytree(TOWN, town, ignore=shutil.ignore_patterns("store.duckdb*", "output"))
    config = load_config(town / "project.toml")
    with open_store(config, command="test") as store:
        run_stages(store, config, ["ingest", "standardise"], progress=False)
    return town


def _copy(town: Path, dest: Path) -> Path:
    shutil.copytree(town, dest)
    return dest


def test_overlapped_stages_give_what_one_after_another_gives(standardised: Path, tmp_path: Path) -> None:
    results = {}
    for overlap in (True, False):
        town = _copy(standardised, tmp_path / str(overlap))
        config = load_config(town / "project.toml")
        config = config.model_copy(update={"project": config.project.model_copy(update={"overlap_stages": overlap})})
        with open_store(config, command="test") as store:
            result = run_stages(store, config, ["persons", "locations"], progress=False)
            assert set(result.stage_seconds) == {"persons", "locations"}
            order = [r[0] for r in store.con.execute("SELECT stage FROM stage_runs WHERE stage IN "
                                                      "('persons', 'locations') ORDER BY started_at").fetchall()]
            results[overlap] = {
                "order": order,
                "persons": _partition(store, "SELECT person_id, unique_id FROM person_clusters"),
                "pairs": store.con.execute("SELECT count(*), sum(match_weight) FROM person_pairs").fetchone(),
                "locations": set(store.con.execute("SELECT source, record_key, uprn, match_method "
                                                   "FROM address_matches").fetchall()),
                "audit": [r[0] for r in store.con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]}
            assert store.verify_audit() == []  # no broken links in the hash chain
    on, off = results[True], results[False]
    assert on["order"] == ["locations", "persons"] and off["order"] == ["persons", "locations"]
    assert len(on["persons"]) > 100 and on["persons"] == off["persons"]
    assert on["pairs"][0] == off["pairs"][0] and on["pairs"][1] == pytest.approx(off["pairs"][1])
    assert len(on["locations"]) > 100 and on["locations"] == off["locations"]
    assert sorted(on["audit"]) == sorted(off["audit"])


def test_a_failing_stage_alongside_scoring_writes_no_person_tables(standardised: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    town = _copy(standardised, tmp_path / "town")
    config = load_config(town / "project.toml")
    real = pipeline.stage_function

    def broken(name: str):  # noqa: ANN202
        if name != "locations":
            return real(name)

        def fail(store, config) -> None:  # noqa: ANN001
            with store.stage("locations"):
                store.write_table("address_matches", "SELECT 1 AS half_written")
                raise RuntimeError("gazetteer unreadable")
        return fail

    monkeypatch.setattr(pipeline, "stage_function", broken)
    with open_store(config, command="test") as store:
        with pytest.raises(RuntimeError, match="gazetteer unreadable"):
            run_stages(store, config, ["persons", "locations", "graph"], progress=False)
        assert not store.has_table("person_clusters") and not store.has_table("address_matches")
        assert store.con.execute("SELECT count(*) FROM stage_runs WHERE stage IN ('persons', 'locations')"
                                 ).fetchone()[0] == 0


def _locations_audit(store) -> dict:  # noqa: ANN001
    import json

    row = store.con.execute("SELECT details FROM audit_log WHERE action = 'link_locations' ORDER BY seq DESC LIMIT 1")
    return json.loads(row.fetchone()[0])["steps"]


def test_gazetteer_prepared_during_standardise_gives_the_same_matches(standardised: Path, tmp_path: Path) -> None:
    """The matcher's gazetteer side prepared from the ingested gazetteer (before standardise) is the one the
    locations stage uses, and its matches are those of a preparation from gazetteer_std."""
    from ecins_link.locations.stage import link_locations, prepare_matcher_early

    found = {}
    for early in (True, False):
        town = _copy(standardised, tmp_path / str(early))
        config = load_config(town / "project.toml")
        with open_store(config, command="test") as store:
            matcher = prepare_matcher_early(store, config) if early else None
            assert (matcher is not None) == early
            link_locations(store, config, early_matcher=matcher)
            steps = _locations_audit(store)
            assert steps["uk_address_matcher_started_early"] is early
            assert steps["uk_address_matcher_sent"] > 0
            found[early] = set(store.con.execute("SELECT source, record_key, uprn, match_method FROM address_matches"
                                                 ).fetchall())
        if matcher is not None:
            assert not matcher._thread.is_alive()  # noqa: SLF001 - closed by the stage
    assert len(found[True]) > 100 and found[True] == found[False]


def test_early_preparation_of_another_gazetteer_is_not_used(standardised: Path, tmp_path: Path) -> None:
    """A gazetteer changed after the early start (here: one property's postcode) makes the stage prepare it again
    rather than match against stale rows."""
    from ecins_link.locations.stage import link_locations, prepare_matcher_early

    town = _copy(standardised, tmp_path / "town")
    config = load_config(town / "project.toml")
    with open_store(config, command="test") as store:
        matcher = prepare_matcher_early(store, config)
        store.con.execute("UPDATE gazetteer_std SET postcode = 'ZZ9 9ZZ' WHERE uprn = (SELECT min(uprn) FROM gazetteer_std)")
        link_locations(store, config, early_matcher=matcher)
        assert _locations_audit(store)["uk_address_matcher_started_early"] is False
    assert not matcher._thread.is_alive()  # noqa: SLF001


def test_pipeline_starts_the_gazetteer_early_and_closes_it_if_standardise_fails(
        standardised: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecins_link.locations import stage as locations

    started = []
    real_prepare = locations.prepare_matcher_early

    def spy(store, config):  # noqa: ANN001, ANN202
        started.append(real_prepare(store, config))
        return started[-1]

    monkeypatch.setattr(locations, "prepare_matcher_early", spy)
    real = pipeline.stage_function

    def broken(name: str):  # noqa: ANN202
        if name != "standardise":
            return real(name)

        def fail(store, config) -> None:  # noqa: ANN001
            raise RuntimeError("standardise failed")
        return fail

    monkeypatch.setattr(pipeline, "stage_function", broken)
    town = _copy(standardised, tmp_path / "town")
    config = load_config(town / "project.toml")
    with open_store(config, command="test") as store:
        with pytest.raises(RuntimeError, match="standardise failed"):
            run_stages(store, config, ["ingest", "standardise", "persons", "locations"], progress=False)
    assert len(started) == 1 and started[0] is not None
    assert started[0]._closed and not started[0]._thread.is_alive()  # noqa: SLF001

