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
