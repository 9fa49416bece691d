"""Erasure removes a source's rows everywhere and is audited with counts only."""

from __future__ import annotations

import pytest

from ecins_link.purge import purge_source
from ecins_link.store import Store, StoreError


def test_purge_source_erases_and_audits(sample_run, tmp_path) -> None:
    run = sample_run.copy(tmp_path / "town")
    with Store(run.store_path, user="dpo") as store:
        before = store.count("person_records")
        fire = store.con.execute("SELECT count(*) FROM person_records WHERE source = 'fire_safe_well'").fetchone()[0]
        assert fire > 0
        counts = purge_source(store, "fire_safe_well", reason="retention period ended")
        assert counts["person_records"] == fire
        assert store.count("person_records") == before - fire
        for table in counts:
            if table != "person_pairs":
                left = store.con.execute(f'SELECT count(*) FROM "{table}" WHERE source = ?', ["fire_safe_well"])
                assert left.fetchone()[0] == 0
        last = store.audit_rows().iloc[-1]
        assert last.category == "erasure" and "retention" not in last.details
        assert store.verify_audit() == []
        with pytest.raises(StoreError):
            purge_source(store, "fire_safe_well", reason="again")
