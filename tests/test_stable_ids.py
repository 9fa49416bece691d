"""Stable person IDs across batches: inherit, merge, split, retire, reinstate."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from ecins_link.matching.stable_ids import assign_stable_ids, lineage_counts
from ecins_link.store import Store, StoreError


def _write_clusters(store: Store, groups: dict[str, list[str]], table: str = "run_clusters") -> None:
    """groups: arbitrary cluster label -> list of 'source:key' unique ids."""
    rows = []
    for label, uids in groups.items():
        for uid in uids:
            source, key = uid.split(":", 1)
            rows.append(
                {
                    "unique_id": uid,
                    "source": source,
                    "record_key": key,
                    "cluster_id": label,
                    "cluster_confidence": 0.97,
                }
            )
    store.write_table(table, pd.DataFrame(rows))


def _ids(store: Store) -> dict[str, str]:
    return dict(store.con.execute("SELECT unique_id, person_id FROM person_clusters").fetchall())


def _lineage(store: Store) -> set[tuple]:
    rows = store.con.execute(
        "SELECT old_person_id, new_person_id, reason FROM person_lineage WHERE run_id = ?", [store.run_id]
    ).fetchall()
    return set(rows)


def _run(path, groups: dict[str, list[str]]) -> tuple[dict[str, str], set[tuple], str]:
    with Store(path) as store:
        _write_clusters(store, groups)
        with store.stage("persons"):
            assign_stable_ids(store, "run_clusters")
        return _ids(store), _lineage(store), store.run_id


RUN1 = {
    "k1": ["police:A1", "housing:A2", "fire:A3"],
    "k2": ["police:B1", "housing:B2"],
    "k3": ["police:C1", "council:C2", "housing:C3"],
    "k4": ["police:D1"],
    "k5": ["police:E1", "housing:E2", "council:E3"],
    "k6": ["police:H1", "fire:H2"],
    "k7": ["police:I1", "fire:I2"],
}


@pytest.fixture()
def after_run1(tmp_path):
    path = tmp_path / "store.duckdb"
    ids1, lineage1, _ = _run(path, RUN1)
    return path, ids1, lineage1


def test_fresh_store_gives_one_new_id_per_cluster(after_run1):
    _, ids1, lineage1 = after_run1
    assert len(ids1) == sum(len(v) for v in RUN1.values())
    assert all(re.fullmatch(r"P\d{6}", pid) for pid in ids1.values())
    per_cluster = {label: {ids1[u] for u in uids} for label, uids in RUN1.items()}
    assert all(len(s) == 1 for s in per_cluster.values())
    assert len({next(iter(s)) for s in per_cluster.values()}) == len(RUN1)
    assert lineage1 == set()  # nothing changed identity on the first run


def test_second_batch_keeps_merges_splits_and_retires(after_run1):
    path, ids1, _ = after_run1
    old = {label: ids1[uids[0]] for label, uids in RUN1.items()}
    run2 = {  # labels are arbitrary and unrelated to run 1's
        "x9": ["police:A1", "housing:A2", "fire:A3", "council:A4"],  # same person + a new record
        "x8": ["police:B1", "housing:B2", "police:C1", "council:C2", "housing:C3"],  # B (2) + C (3) merge
        # D vanished entirely
        "x7": ["police:E1", "housing:E2"],  # E splits: larger part keeps the id
        "x6": ["council:E3", "council:F1"],  # smaller part of E + a new record
        "x5": ["police:G1"],  # a new person
        "x4": ["police:H1", "fire:H2", "police:I1", "fire:I2"],  # tie 2-2: the older id survives
    }
    ids2, lineage2, run_id = _run(path, run2)
    with Store(path) as store:
        assert lineage_counts(store, run_id) == {"merge": 2, "retired": 1, "split": 1}

    assert {ids2[u] for u in run2["x9"]} == {old["k1"]}
    assert {ids2[u] for u in run2["x8"]} == {old["k3"]}
    assert {ids2[u] for u in run2["x7"]} == {old["k5"]}
    older_hi = min(old["k6"], old["k7"])
    assert {ids2[u] for u in run2["x4"]} == {older_hi}
    split_id = ids2["council:E3"]
    new_g = ids2["police:G1"]
    assert split_id not in ids1.values() and new_g not in ids1.values() and split_id != new_g
    assert ids2["council:F1"] == split_id
    # new ids are issued above every earlier one
    assert min(int(split_id[1:]), int(new_g[1:])) > max(int(p[1:]) for p in ids1.values())
    younger_hi = max(old["k6"], old["k7"])
    assert lineage2 == {
        (old["k2"], old["k3"], "merge"),
        (younger_hi, older_hi, "merge"),
        (old["k5"], split_id, "split"),
        (old["k4"], None, "retired"),
    }


def test_rerun_with_same_people_is_stable_and_vanished_person_is_reinstated(after_run1):
    path, ids1, _ = after_run1
    run2 = {label: uids for label, uids in RUN1.items() if label != "k4"}
    ids2, lineage2, _ = _run(path, run2)
    assert lineage2 == {(ids1["police:D1"], None, "retired")}
    assert all(ids2[u] == ids1[u] for u in ids2)
    # the same clusters again under other labels: no identity change at all
    relabelled = {f"other-{i}": uids for i, uids in enumerate(run2.values())}
    ids3, lineage3, _ = _run(path, relabelled)
    assert ids3 == ids2 and lineage3 == set()
    # D's record comes back: it gets its old id again, recorded as reinstated
    ids4, lineage4, _ = _run(path, {**relabelled, "back": ["police:D1"]})
    assert ids4["police:D1"] == ids1["police:D1"]
    assert lineage4 == {(ids1["police:D1"], ids1["police:D1"], "reinstated")}


def test_split_part_reclaims_another_old_id_it_holds(tmp_path):
    path = tmp_path / "s.duckdb"
    ids1, _, _ = _run(path, {"a": ["p:1", "p:2", "p:3"], "b": ["p:4"]})
    # {1,2} keep a's id; {3,4} tie between a's id and b's -> a's is taken, so it falls back to b's id
    ids2, lineage2, _ = _run(path, {"x": ["p:1", "p:2"], "y": ["p:3", "p:4"]})
    assert ids2["p:1"] == ids1["p:1"] and ids2["p:3"] == ids1["p:4"]
    assert lineage2 == {(ids1["p:3"], ids1["p:4"], "split")}


def test_registry_tracks_every_record_ever_seen(after_run1):
    path, ids1, _ = after_run1
    _run(path, {"only": ["police:A1", "housing:A2", "fire:A3", "police:B1", "housing:B2"]})
    with Store(path) as store:
        reg = store.df("SELECT * FROM person_id_registry")
        assert set(reg["unique_id"]) == set(ids1)
        active = set(reg.loc[reg["active"], "unique_id"])
        assert active == {"police:A1", "housing:A2", "fire:A3", "police:B1", "housing:B2"}
        assert reg["unique_id"].is_unique


def test_bad_input_is_a_clear_error_and_leaves_store_unchanged(tmp_path):
    with Store(tmp_path / "bad.duckdb") as store:
        with pytest.raises(StoreError, match="nope"):
            assign_stable_ids(store, "nope")
        _write_clusters(store, {"a": ["p:1", "p:2"], "b": ["p:2"]})
        with pytest.raises(ValueError, match="1 duplicated unique_id"):
            assign_stable_ids(store, "run_clusters")
        assert not store.has_table("person_clusters")
        store.write_table("run_clusters", "SELECT 'p:1' AS unique_id, 'p' AS source")
        with pytest.raises(ValueError, match="lacks column"):
            assign_stable_ids(store, "run_clusters")


def test_failure_inside_stage_rolls_back_registry(after_run1):
    path, ids1, _ = after_run1
    with Store(path) as store:
        _write_clusters(store, {"z": ["police:Z1"]})
        with pytest.raises(RuntimeError), store.stage("persons"):
            assign_stable_ids(store, "run_clusters")
            raise RuntimeError("later step of the persons stage failed")
        assert dict(store.con.execute("SELECT unique_id, person_id FROM person_clusters").fetchall()) == ids1
        assert store.count("person_lineage") == 0


def test_every_standardised_record_must_be_clustered(tmp_path):
    with Store(tmp_path / "cover.duckdb") as store:
        store.write_table("person_std", "SELECT * FROM (VALUES ('p:1'), ('p:2'), ('h:9')) t(unique_id)")
        _write_clusters(store, {"a": ["p:1", "p:2"]})
        with pytest.raises(ValueError, match="misses 1 person_std record"):
            assign_stable_ids(store, "run_clusters")
        _write_clusters(store, {"a": ["p:1", "p:2"], "b": ["h:9"]})
        assign_stable_ids(store, "run_clusters")
        assert store.count("person_clusters") == 3
