"""Overrides: professional judgement raises a case with a reason, is audited, and can never lower one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_scoring import AS_OF, _da_victim, project

from ecins_link.scoring import OverrideError, add_override, score
from ecins_link.scoring.fixtures import World
from ecins_link.store import Store


def _store(tmp_path: Path) -> Store:
    w = World(AS_OF)
    _da_victim(w, "P000101", [10, 20, 30], "U100000001")     # recent: ranks first
    _da_victim(w, "P000102", [250, 280, 300], "U100000002")  # older: ranks second
    w.person("P000103", 40)                                  # known to the partnership, flagged by no rule
    store = Store(tmp_path / "s.duckdb")
    w.write(store)
    score(store, project(tmp_path))
    return store


def _marac(store: Store) -> dict[str, dict]:
    df = store.df("SELECT * FROM flags WHERE rule = 'marac_potential_escalation'")
    return {r["entity_id"]: r for r in df.to_dict("records")}


def test_override_raises_score_reranks_and_is_audited(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        before = _marac(store)
        assert before["P000101"]["rank"] < before["P000102"]["rank"]
        oid = add_override(store, "person", "P000102", 50.0, "Threats to kill disclosed at a home visit",
                           rule="marac_potential_escalation")
        score(store, project(tmp_path))
        after = _marac(store)
        assert after["P000102"]["score"] == pytest.approx(before["P000102"]["score"] + 50.0)
        assert after["P000102"]["rank"] == 1
        ev = json.loads(after["P000102"]["evidence"])
        assert ev["override_raise"] == 50.0 and ev["overrides"][0]["override_id"] == oid
        audit = store.df("SELECT category, action, details FROM audit_log WHERE action = 'override_raise'")
        assert audit.category.tolist() == ["alteration"]
        assert "Threats" not in audit.details[0]  # free text stays out of the audit log


@pytest.mark.parametrize("amount", [-5.0, 0.0, float("nan"), float("-inf")])
def test_override_cannot_lower(tmp_path: Path, amount: float) -> None:
    with _store(tmp_path) as store:
        with pytest.raises(OverrideError, match="can only raise"):
            add_override(store, "person", "P000101", amount, "Victim says things are calmer")
        assert store.count("overrides") == 0
        assert store.df("SELECT * FROM audit_log WHERE action = 'override_raise'").empty


def test_override_needs_reason_and_known_entity_type(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        with pytest.raises(OverrideError, match="reason"):
            add_override(store, "person", "P000101", 1.0, "  ")
        with pytest.raises(OverrideError, match="entity_type"):
            add_override(store, "street", "P000101", 1.0, "x")


def test_override_on_unflagged_entity_becomes_professional_judgement_flag(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        n_before = store.count("flags")
        add_override(store, "person", "P000103", 7.5, "Strangulation reported to the GP")
        score(store, project(tmp_path))
        df = store.df("SELECT * FROM flags WHERE entity_id = 'P000103'")
        assert df.rule.tolist() == ["professional_judgement"]
        assert df.score.tolist() == [7.5]
        assert store.count("flags") == n_before + 1
