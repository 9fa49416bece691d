"""The store: stage atomicity (incl. kill -9), lock errors, append-only hash-chained audit log."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ecins_link.store import Store, StoreLockedError

PACKAGE = Path(__file__).resolve().parents[1] / "ecins_link"


def _py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_stage_rolls_back_on_error(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        with store.stage("one"):
            store.write_table("t", "SELECT 1 AS x")
        with pytest.raises(RuntimeError), store.stage("two"):
            store.write_table("t", "SELECT 2 AS x UNION ALL SELECT 3")
            store.write_table("u", "SELECT 1 AS y")
            raise RuntimeError("boom")
        assert store.df("SELECT x FROM t").x.tolist() == [1]
        assert not store.has_table("u")
        assert store.df("SELECT stage FROM stage_runs").stage.tolist() == ["one"]


def test_kill_9_mid_stage_leaves_store_as_before_and_rerun_finishes(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path) as store, store.stage("first"):
        store.write_table("t", "SELECT range AS x FROM range(10)")
    killed = _py(f"""
        import os, signal
        from ecins_link.store import Store
        s = Store({str(path)!r})
        with s.stage("second"):
            s.write_table("t", "SELECT range AS x FROM range(1000000)")
            s.write_table("half_done", "SELECT 1 AS y")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert killed.returncode == -9
    with Store(path) as store:
        assert store.count("t") == 10
        assert not store.has_table("half_done")
        with store.stage("second"):
            store.write_table("t", "SELECT range AS x FROM range(100)")
        assert store.count("t") == 100


def test_second_writer_gets_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path):
        other = _py(f"""
            from ecins_link.store import Store, StoreLockedError
            try:
                Store({str(path)!r})
            except StoreLockedError as err:
                print("LOCKED", err)
        """)
    assert "LOCKED store is locked by another run" in other.stdout, other.stderr
    assert StoreLockedError.__mro__[1].__name__ == "StoreError"


def test_audit_chain_detects_tampering(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb", user="analyst1", purpose="marac") as store:
        store.audit("collection", "ingest", {"sources": 3}, {"rows": 120})
        store.audit("combination", "link_persons", row_counts={"pairs": 40})
        rows = store.audit_rows()
        assert rows.user_name.tolist() == ["analyst1", "analyst1"]
        assert rows.purpose.tolist() == ["marac", "marac"]
        assert store.verify_audit() == []
        store.con.execute("UPDATE audit_log SET row_counts = '{}' WHERE seq = 1")
        assert store.verify_audit() == [1]


def test_audit_rejects_unknown_category(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(ValueError, match="s62|category"):
        store.audit("snooping", "x")


def test_application_never_updates_or_deletes_audit_rows() -> None:
    """No code path in the package issues UPDATE/DELETE/DROP/TRUNCATE against audit_log."""
    pattern = re.compile(r"(UPDATE|DELETE\s+FROM|DROP\s+TABLE|TRUNCATE|ALTER\s+TABLE)[^;\"']*audit_log", re.I)
    offenders = [str(p) for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
    public = [name for name in dir(Store) if "audit" in name]
    assert sorted(public) == ["audit", "audit_rows", "audit_verdict", "verify_audit"]  # append, read, check


def test_as_of_prefers_configured_then_latest_event_then_today(tmp_path: Path) -> None:
    import datetime as dt

    with Store(tmp_path / "s.duckdb") as store:
        assert store.as_of() == dt.date.today()
        with store.stage("ingest"):
            store.write_table("event_records", "SELECT DATE '2025-03-01' AS event_date UNION ALL SELECT DATE '2026-01-31'")
        assert store.as_of() == dt.date(2026, 1, 31)
        assert store.as_of(dt.date(2024, 5, 6)) == dt.date(2024, 5, 6)


def test_scratch_copies_tables_in_a_stage_and_never_writes_the_store(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb", memory_limit="1GB") as store:
        with store.stage("setup"):
            store.write_table("people", "SELECT range AS id, 'P' || range AS name FROM range(1000)")
        with store.stage("work"):
            store.con.execute("CREATE TEMP TABLE fresh AS SELECT 7 AS x")  # written inside this transaction
            with store.scratch({"people": "SELECT * FROM people WHERE id % 2 = 0",
                                "fresh": "SELECT * FROM fresh"}) as mem:
                assert mem.execute("SELECT count(*), max(id) FROM people").fetchone() == (500, 998)
                assert mem.execute("SELECT x FROM fresh").fetchone() == (7,)
                assert mem.execute("SELECT current_setting('memory_limit')").fetchone()[0].startswith("953")
                mem.execute("DELETE FROM people")
            with pytest.raises(Exception, match="closed"):
                mem.execute("SELECT 1")
        assert store.count("people") == 1000
