"""Erasure removes a source's rows everywhere (to the last byte of the store file), is audited with counts only,
and a later run refuses the purged source until the project file drops it or re-admits it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecins_link.config import load_config
from ecins_link.pipeline import run_project
from ecins_link.purge import DERIVED_TABLES, PurgedSourceError, purge_source
from ecins_link.store import Store, StoreError

PURGED = "fire_safe_well"


def _strings_only_in(store: Store, source: str) -> list[str]:
    """Record keys, full names and surnames of ``source`` that occur in no other source's data (so finding one
    in the store file after the purge can only mean a purged byte survived)."""
    rows = store.con.execute("SELECT record_key, full_name, surname FROM person_records WHERE source = ?",
                             [source]).fetchall()
    others = "\n".join(str(r) for t, where in (("person_records", "source <> ?"), ("event_records", "source <> ?"),
                                               ("address_records", "source <> ?"), ("gazetteer", "? IS NOT NULL"))
                       for r in store.con.execute(f"SELECT * FROM {t} WHERE {where}", [source]).fetchall())
    found = {v for row in rows for v in row if v and len(v) >= 5 and v not in others}
    return sorted(found)


def test_purge_erases_every_byte_of_the_source_and_audits(sample_run, tmp_path: Path) -> None:
    run = sample_run.copy(tmp_path / "town")
    with Store(run.store_path, user="dpo") as store:
        before = store.count("person_records")
        fire = store.con.execute("SELECT count(*) FROM person_records WHERE source = ?", [PURGED]).fetchone()[0]
        uids = [r[0] for r in store.con.execute(
            "SELECT unique_id FROM person_clusters WHERE source = ?", [PURGED]).fetchall()]
        secrets = _strings_only_in(store, PURGED)
        assert fire > 0 and len(secrets) >= 20
    raw = run.store_path.read_bytes()
    assert sum(s.encode() in raw for s in secrets) >= len(secrets) // 2  # the bytes are there before

    with Store(run.store_path, user="dpo") as store:
        counts = purge_source(store, PURGED, reason="retention period ended")
        assert counts["person_records"] == fire
        assert store.count("person_records") == before - fire
        for table in ("person_records", "person_std", "person_clusters", "event_records", "address_records"):
            assert store.con.execute(f"SELECT count(*) FROM {table} WHERE source = ?", [PURGED]).fetchone()[0] == 0
        # the id registry, link state, pairs carry no record of the source; derived tables are gone
        for table, col in (("person_id_registry", "unique_id"), ("person_link_state", "unique_id"),
                           ("person_pairs", "unique_id_l"), ("person_pairs", "unique_id_r")):
            assert store.con.execute(f"SELECT count(*) FROM {table} WHERE starts_with({col}, ?)",
                                     [PURGED + ":"]).fetchone()[0] == 0
        assert counts["person_id_registry"] == len(uids)
        for table in DERIVED_TABLES:
            assert not store.has_table(table), table
        audit = store.audit_rows()
        erasure = audit[audit.category == "erasure"]
        assert erasure.action.tolist() == ["purge_source", "store_file_rewritten"]
        assert all("retention" not in d for d in erasure.details)
        assert store.verify_audit() == []
        assert store.con.execute("SELECT source FROM purged_sources").fetchall() == [(PURGED,)]
        with pytest.raises(StoreError):
            purge_source(store, PURGED, reason="again")
    raw = run.store_path.read_bytes()
    left = [s for s in secrets if s.encode() in raw]
    assert left == [], f"purged strings still in the store file: {left[:5]}"
    assert not Path(str(run.store_path) + ".wal").exists() or b"Dabrowski" not in Path(
        str(run.store_path) + ".wal").read_bytes()

    # a later run refuses the purged source while the project file still names it
    with pytest.raises(PurgedSourceError, match="readmit_purged"):
        run_project(run.project, run.out_dir, user="analyst", stages=["ingest"])
    # ... and takes it back (audited) once the project file re-admits it explicitly
    text = run.project.read_text(encoding="utf-8")
    run.project.write_text(re.sub(r"(\[project\]\n)", rf'\1readmit_purged = ["{PURGED}"]\n', text, count=1),
                           encoding="utf-8")
    assert load_config(run.project).project.readmit_purged == [PURGED]
    run_project(run.project, run.out_dir, user="analyst", stages=["ingest"])
    with Store(run.store_path, read_only=True) as store:
        assert store.con.execute("SELECT count(*) FROM person_records WHERE source = ?", [PURGED]).fetchone()[0] == fire
        actions = store.audit_rows().action.tolist()
        assert "source_readmitted" in actions and actions.index("source_readmitted") > actions.index("purge_source")
        assert store.verify_audit() == []


def test_purge_needs_a_reason_and_a_known_source(sample_run, tmp_path: Path) -> None:
    run = sample_run.copy(tmp_path / "town")
    with Store(run.store_path, user="dpo") as store:
        with pytest.raises(ValueError, match="reason"):
            purge_source(store, PURGED, reason="  ")
        with pytest.raises(StoreError, match="no rows"):
            purge_source(store, "no_such_source", reason="x")
        assert store.has_table("flags")  # nothing was dropped by the refused purges
