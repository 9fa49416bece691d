"""uk_address_matcher's prepared gazetteer kept between runs (ecins_link.locations.uam_prepared).

A run that loads the kept preparation must write exactly the ``address_matches`` of a run that prepares the gazetteer
itself; another gazetteer, another ``cleaning_chunks`` or another library version never reuses it; ``purge`` and
``gazetteer_cache = false`` leave none behind.
"""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest

from ecins_link.config import load_config
from ecins_link.locations import uam, uam_prepared
from ecins_link.locations.stage import RULES_FILE, link_locations, load_location_rules
from ecins_link.store import Store

QUERY = "SELECT * FROM address_matches ORDER BY source, record_key"


def _rules(tmp_path, **changes: str):  # noqa: ANN001, ANN202
    """location_rules.toml with ``answer_cache = false`` (so the matcher always runs) and other replacements."""
    text = RULES_FILE.read_text(encoding="utf-8").replace("answer_cache = true", "answer_cache = false")
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / f"rules{len(list(tmp_path.glob('rules*')))}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _steps(store: Store) -> dict:
    return json.loads(store.con.execute("SELECT details FROM audit_log WHERE action = 'link_locations' "
                                        "ORDER BY seq DESC LIMIT 1").fetchone()[0])["steps"]


@pytest.mark.slow
def test_kept_preparation_gives_byte_identical_answers_and_is_invalidated(sample_run, tmp_path, monkeypatch):
    run = sample_run.copy(tmp_path / "town")
    config = load_config(run.project)
    folder = uam_prepared.folder_for(run.store_path, {})
    shutil.rmtree(folder, ignore_errors=True)
    rules = _rules(tmp_path)
    with Store(run.store_path) as store:
        # cold: nothing kept; the matcher prepares the gazetteer and keeps it
        link_locations(store, config, rules_path=rules)
        cold = store.con.execute(QUERY).to_arrow_table()
        assert _steps(store)["uk_address_matcher_gazetteer_cached"] is False
        assert _steps(store)["uk_address_matcher_texts"] > 0
        kept = [p for p in folder.iterdir() if p.is_dir()]
        assert len(kept) == 1 and (kept[0] / uam_prepared.MANIFEST).exists()

        # warm: loaded, never prepared, same answers to the byte
        def no_prepare(*_a, **_k):  # noqa: ANN202
            raise AssertionError("the gazetteer was prepared although a prepared copy was kept")

        with monkeypatch.context() as m:
            m.setattr(uam.MatcherSession, "_add_local_keys", no_prepare)
            link_locations(store, config, rules_path=rules)
        assert _steps(store)["uk_address_matcher_gazetteer_cached"] is True
        assert store.con.execute(QUERY).to_arrow_table().equals(cold)

        # another cleaning_chunks: another fingerprint, prepared again, the old copy replaced
        link_locations(store, config, rules_path=_rules(tmp_path, **{"cleaning_chunks = 1": "cleaning_chunks = 2"}))
        assert _steps(store)["uk_address_matcher_gazetteer_cached"] is False
        again = [p for p in folder.iterdir() if p.is_dir()]
        assert len(again) == 1 and again[0].name != kept[0].name

        # another gazetteer (one postcode changed): prepared again
        link_locations(store, config, rules_path=rules)
        assert _steps(store)["uk_address_matcher_gazetteer_cached"] is False
        assert store.con.execute(QUERY).to_arrow_table().equals(cold)
        with store.stage("test"):
            store.con.execute("UPDATE gazetteer_std SET postcode = 'ZZ9 9ZZ' WHERE uprn = (SELECT min(uprn) FROM "
                              "gazetteer_std WHERE postcode IS NOT NULL)")
        link_locations(store, config, rules_path=rules)
        assert _steps(store)["uk_address_matcher_gazetteer_cached"] is False

        # the cache off: nothing loaded, nothing written
        shutil.rmtree(folder)
        link_locations(store, config, rules_path=_rules(tmp_path, **{"gazetteer_cache = true": "gazetteer_cache = false"}))
        assert _steps(store)["uk_address_matcher_gazetteer_cached"] is None
        assert not folder.exists()

        # purge drops it
        link_locations(store, config, rules_path=rules)
        assert folder.exists()
        from ecins_link.purge import purge_source

        purge_source(store, "fire_incidents", reason="test")
        assert not folder.exists()


@pytest.mark.slow
def test_gazetteer_digested_once_per_run_and_kept_copy_finished_after_the_match(sample_run, tmp_path, monkeypatch):
    """The answer cache and the prepared-gazetteer cache share one digest of the gazetteer: one digest per run, cold
    (the stage's, given to the session, which fingerprints its copy after preparing) or warm (the session's, used
    by the answer cache).  The copy is written partly while the match runs, and is complete when the stage returns:
    the next run loads it and gives the same answers."""
    from ecins_link.locations import uam_cache

    run = sample_run.copy(tmp_path / "town")
    config = load_config(run.project)
    folder = uam_prepared.folder_for(run.store_path, {})
    shutil.rmtree(folder, ignore_errors=True)
    calls: list[str] = []
    real = uam_cache.gazetteer_digest

    def counted(con, rows_sql):  # noqa: ANN001, ANN202
        calls.append(rows_sql)
        return real(con, rows_sql)

    for module, name in ((uam_cache, "gazetteer_digest"), (uam, "uam_cache_digest"), (uam_prepared, "gazetteer_digest")):
        monkeypatch.setattr(module, name, counted)
    with Store(run.store_path) as store:
        store.con.execute("DROP TABLE IF EXISTS address_matcher_answers")
        link_locations(store, config)
        assert len(calls) == 1
        cold = store.con.execute(QUERY).to_arrow_table()
        kept = [p for p in folder.iterdir() if p.is_dir()]
        assert len(kept) == 1 and (kept[0] / uam_prepared.MANIFEST).exists()
        # the copy's name is the fingerprint computed from the gazetteer directly
        con = duckdb.connect()
        con.register("canon_in", store.con.execute(uam.canonical_sql()).to_arrow_table())
        con.execute("CREATE TABLE canon AS SELECT * FROM canon_in")
        settings = load_location_rules()["uk_address_matcher"]
        assert kept[0].name == uam_prepared.fingerprint(con, "canon", settings)
        calls.clear()
        store.con.execute("DROP TABLE address_matcher_answers")
        link_locations(store, config)
        assert len(calls) == 1
        assert _steps(store)["uk_address_matcher_gazetteer_cached"] is True
        assert store.con.execute(QUERY).to_arrow_table().equals(cold)


def test_fingerprint_follows_gazetteer_settings_and_versions(monkeypatch):
    con = duckdb.connect()
    con.execute("CREATE TABLE canon AS SELECT * FROM (VALUES ('1', '1 HIGH STREET, ALDTON', 'AL1 1AA'), "
                "('2', '2 HIGH STREET, ALDTON', NULL)) t(unique_id, address_concat, postcode)")
    base = uam_prepared.fingerprint(con, "canon", {"cleaning_chunks": 1})
    # settings that only decide which answers to accept do not touch the preparation
    assert base == uam_prepared.fingerprint(con, "canon", {"cleaning_chunks": 1, "min_distinguishability": 5.0})
    assert base != uam_prepared.fingerprint(con, "canon", {"cleaning_chunks": 2})
    real = uam_prepared.library_versions
    monkeypatch.setattr(uam_prepared, "library_versions",
                        lambda packages: {**real(packages), "uk_address_matcher": "0.0"})
    assert base != uam_prepared.fingerprint(con, "canon", {"cleaning_chunks": 1})
    monkeypatch.setattr(uam_prepared, "library_versions", real)
    con.execute("UPDATE canon SET address_concat = '2 HIGH ST, ALDTON' WHERE unique_id = '2'")
    assert base != uam_prepared.fingerprint(con, "canon", {"cleaning_chunks": 1})


def test_save_and_load_round_trip_types_and_refuse_incomplete_copies(tmp_path):
    con = duckdb.connect()
    parts = {
        "addresses": con.sql("SELECT '1' AS unique_id, ['A', 'B'] AS toks, MAP(['x'], [1]) AS m, "
                             "{'a': 1, 'b': 'q'} AS s, 12::HUGEINT AS big, 0.5::DECIMAL(9, 3) AS d"),
        "term_frequencies": con.sql("SELECT 'HIGH' AS token, 0.25 AS rel_freq"),
        "inverted_index": con.sql("SELECT 'K' AS key, ['1'] AS unique_ids, 's' AS index_strategy"),
    }
    folder = tmp_path / "store.duckdb.ukam-gazetteer"
    assert uam_prepared.save(folder, "fp1", parts)
    other = duckdb.connect()
    tables = uam_prepared.load(other, folder, "fp1")
    assert set(tables) == set(parts)
    for part, rel in parts.items():
        got = other.table(tables[part])
        assert [str(t) for t in got.types] == [str(t) for t in rel.types]
        assert got.fetchall() == rel.fetchall()
    assert uam_prepared.load(other, folder, "fp2") is None  # another fingerprint: a miss
    assert uam_prepared.save(folder, "fp2", parts)
    assert [p.name for p in folder.iterdir()] == ["fp2"]  # only the last fingerprint is kept
    (folder / "fp2" / "addresses.parquet").write_bytes(b"not parquet")
    assert uam_prepared.load(other, folder, "fp2") is None  # unreadable: prepared again, not a crash
    (folder / "fp2" / uam_prepared.MANIFEST).unlink()
    assert uam_prepared.load(other, folder, "fp2") is None  # no manifest: an unfinished copy
    assert uam_prepared.folder_for(":memory:", {}) is None
    assert uam_prepared.folder_for(tmp_path / "s.duckdb", {"gazetteer_cache": False}) is None


def test_run_summary_carries_this_runs_location_steps(tmp_path):
    """run_summary.json's ``location_steps``: the per-step seconds of this run's locations audit row, none for a
    run that did not run the stage."""
    from ecins_link.run_summary import location_steps

    with Store(tmp_path / "s.duckdb") as store:
        assert location_steps(store, store.run_id) is None
        store.audit("combination", "link_locations", details={"steps": {
            "seconds": {"prepare": 1.5}, "cpu_seconds": {"prepare": 1.2}, "uk_address_matcher_texts": 7,
            "exact_key": {"resolved": 3}}})
        got = location_steps(store, store.run_id)
        assert got == {"seconds": {"prepare": 1.5}, "cpu_seconds": {"prepare": 1.2}, "uk_address_matcher_texts": 7}
        assert location_steps(store, "another-run") is None
