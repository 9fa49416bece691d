"""Governance against a careless or hostile user (issue 18): every attack from the issue, and what now happens.

Each test names the attack it replays.  See docs/governance.md for what is guaranteed and what is not.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from ecins_link import audit_chain
from ecins_link.config import ConfigError, load_config, parse_config
from ecins_link.guards import DiskFullError, check_memory_limit
from ecins_link.store import Store, StoreError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ecins_link"
INJECTION = "4GB'; DELETE FROM audit_log; --"


def _py(code: str, timeout: int = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _store_with_rows(path: Path, n: int = 5) -> None:
    with Store(path, user="analyst") as store:
        for i in range(n):
            store.audit("collection", "ingest", {"i": i}, {"rows": i})


def _tamper(path: Path, *sql: str) -> None:
    """What an adversary with the store file does: open it with DuckDB directly, outside the application."""
    con = duckdb.connect(str(path))
    try:
        for statement in sql:
            con.execute(statement)
    finally:
        con.close()


def _verify(path: Path) -> audit_chain.Verdict:
    with Store(path, read_only=True) as store:
        return store.audit_verdict()


# ------------------------------------------------------------------------------ 1. settings never become SQL
def test_memory_limit_injection_is_refused_before_any_sql(tmp_path: Path) -> None:
    """Attack 1: ``memory_limit = "4GB'; DELETE FROM audit_log; --"`` emptied the audit log."""
    _store_with_rows(tmp_path / "store.duckdb")
    (tmp_path / "p.csv").write_text("ID,NAME\n1,A B\n", encoding="utf-8")
    project = tmp_path / "project.toml"
    project.write_text(textwrap.dedent(f"""
        [project]
        name = "t"
        memory_limit = "{INJECTION}"
        [[sources]]
        name = "p"
        agency = "police"
        path = "p.csv"
        key = "ID"
        [sources.person]
        full_name = "NAME"
        """), encoding="utf-8")
    with pytest.raises(ConfigError, match="memory_limit"):
        load_config(project)
    with pytest.raises(StoreError, match="memory_limit"):
        Store(tmp_path / "store.duckdb", memory_limit=INJECTION)
    with Store(tmp_path / "store.duckdb", read_only=True) as store:
        assert store.count("audit_log") == 5 and store.verify_audit() == []
    for bad in ("80%", "4GB; x", "4 G B", "", "1e9GB", "-1GB"):
        with pytest.raises(ValueError):
            check_memory_limit(bad)
    with Store(tmp_path / "s2.duckdb", memory_limit="512 MiB") as store:  # good values are bound, and applied
        assert store.con.execute("SELECT current_setting('memory_limit')").fetchone()[0].startswith("512")


_SQL_CALLS = {"execute", "sql", "query", "write_table", "df", "executemany"}
_STATEMENT_KEYWORDS = ("SET ", "PRAGMA ", "ATTACH ", "COPY ", "EXPORT ", "IMPORT ", "INSTALL ", "LOAD ")


def _pastes_text(fstring: ast.JoinedStr) -> bool:
    """Whether an f-string pastes a value between quotes (a text setting such as ``'{memory_limit}'``) without
    escaping it: the class of the original bug.  Unquoted numbers (``SET threads = {n}``) are not flagged."""
    parts = fstring.values
    for i, part in enumerate(parts):
        if not isinstance(part, ast.FormattedValue):
            continue
        before = parts[i - 1].value if i and isinstance(parts[i - 1], ast.Constant) else ""
        if not str(before).endswith(("'", '"')):
            continue
        expr = part.value
        escaped = (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "replace"
                   and "chr(39) * 2" in ast.unparse(expr) or "chr(34) * 2" in ast.unparse(expr))
        if not escaped:
            return True
    return False


def _interpolated_sql(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of each f-string / .format() / % SQL statement whose interpolated part is not a quoting call."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _SQL_CALLS
                and node.args):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.JoinedStr):
            head = "".join(v.value for v in arg.values if isinstance(v, ast.Constant)).lstrip().upper()
            if head.startswith(_STATEMENT_KEYWORDS) and _pastes_text(arg):
                found.append((node.lineno, ast.unparse(arg)[:80]))
        elif isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "format":
            found.append((node.lineno, ast.unparse(arg)[:80]))
        elif isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod) and isinstance(arg.left, ast.Constant):
            found.append((node.lineno, ast.unparse(arg)[:80]))
    return found


def test_no_setting_statement_is_built_by_interpolation() -> None:
    """SET / PRAGMA / ATTACH / COPY ... statements (where a setting would go) never paste text between quotes
    unescaped, and no SQL anywhere is built with str.format or %: text settings are bound
    (``SET memory_limit = ?``).  (Project-file, rules-file and extract values reaching every other statement
    are covered by the hostile-project run below.)"""
    allowed = {("scratch_steps.py", "ATTACH ':memory:' AS")}  # a name the code makes: prefix + counter
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, text in _interpolated_sql(ast.parse(path.read_text(encoding="utf-8"))):
            if not any(path.name == f and t in text for f, t in allowed):
                offenders.append(f"{path.relative_to(REPO)}:{line}: {text}")
    assert offenders == []
    planted = ast.parse('con.execute(f"SET memory_limit = \'{config.project.memory_limit}\'")')
    assert _interpolated_sql(planted), "the scan must catch the original memory_limit bug"


# ------------------------------------------------------------------------------ 2. tamper evidence outside the store
@pytest.mark.parametrize("attack", ["delete_last_rows", "delete_all_rows", "rehash_same_scheme", "rehash_hmac_wrong_key",
                                    "drop_table", "edit_middle_row", "delete_middle_row"])
def test_audit_verify_detects_tampering(tmp_path: Path, attack: str) -> None:
    """Attack 2: deleting the last rows / every row, re-hashing with the same scheme and dropping the table all
    passed ``audit --verify``."""
    path = tmp_path / "store.duckdb"
    _store_with_rows(path, 6)
    assert _verify(path).ok
    if attack == "delete_last_rows":
        _tamper(path, "DELETE FROM audit_log WHERE seq > 4")
    elif attack == "delete_all_rows":
        _tamper(path, "DELETE FROM audit_log")
    elif attack == "edit_middle_row":
        _tamper(path, "UPDATE audit_log SET row_counts = '{}' WHERE seq = 3")
    elif attack == "delete_middle_row":
        _tamper(path, "DELETE FROM audit_log WHERE seq = 3")
    elif attack == "drop_table":
        _tamper(path, "DROP TABLE audit_log")
        with Store(path, user="next") as store:  # the next command recreates the table and writes to it
            store.audit("consultation", "report")
            assert store.count("audit_log") == 1
    else:  # rebuild the whole chain after editing a row, with the legacy scheme or an HMAC under a guessed key
        con = duckdb.connect(str(path))
        con.execute("UPDATE audit_log SET details = '{\"i\": 99}' WHERE seq = 2")
        rows = con.execute(f"SELECT {audit_chain.ROW_COLUMNS} FROM audit_log ORDER BY seq").fetchall()
        prev = ""
        for row in rows:
            digest = (audit_chain.legacy_hash(prev, list(row)) if attack == "rehash_same_scheme"
                      else audit_chain.keyed_hash(b"x" * 32, prev, list(row)))
            con.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", [prev, digest, row[0]])
            prev = digest
        con.close()
    verdict = _verify(path)
    assert not verdict.ok and verdict.bad_seqs, verdict
    with Store(path, read_only=True) as store:
        assert store.verify_audit() != []


def test_audit_cli_verify_fails_and_explains(tmp_path: Path) -> None:
    """``ecins-link audit --verify`` exits 1 and says what is wrong (here: the last rows are gone)."""
    from typer.testing import CliRunner

    from ecins_link.cli import app

    (tmp_path / "p.csv").write_text("ID,NAME\n1,A B\n", encoding="utf-8")
    (tmp_path / "project.toml").write_text(
        '[project]\nname = "t"\n[[sources]]\nname = "p"\nagency = "police"\npath = "p.csv"\nkey = "ID"\n'
        '[sources.person]\nfull_name = "NAME"\n', encoding="utf-8")
    _store_with_rows(tmp_path / "store.duckdb", 4)
    ok = CliRunner().invoke(app, ["audit", str(tmp_path / "project.toml"), "--verify"])
    assert ok.exit_code == 0 and "verified" in ok.output
    _tamper(tmp_path / "store.duckdb", "DELETE FROM audit_log WHERE seq >= 3")
    bad = CliRunner().invoke(app, ["audit", str(tmp_path / "project.toml"), "--verify"])
    assert bad.exit_code == 1 and "is gone" in bad.output


def test_audit_key_and_heads_live_outside_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key is a 0600 file beside the store (or $ECINS_AUDIT_KEY); no byte of it is in the store; without
    it nothing verifies, and a missing head file is itself reported."""
    path = tmp_path / "store.duckdb"
    _store_with_rows(path, 3)
    key_file = audit_chain.key_path(path)
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert key_file.read_bytes().strip() not in path.read_bytes()
    heads = audit_chain.head_path(path).read_text().splitlines()
    assert len(heads) == 3 and json.loads(heads[-1])["seq"] == 3
    key_file.rename(tmp_path / "elsewhere.key")
    assert not _verify(path).ok  # keyed rows cannot be checked without the key
    monkeypatch.setenv(audit_chain.ENV_KEY_FILE, str(tmp_path / "elsewhere.key"))
    assert _verify(path).ok
    audit_chain.head_path(path).unlink()
    verdict = _verify(path)
    assert not verdict.ok and any("head file" in p for p in verdict.problems)


def test_removing_the_sidecars_as_well_is_still_noticed(tmp_path: Path) -> None:
    """An adversary who deletes the key and head files too, then rewrites the chain in the old unkeyed scheme
    (or empties the log of a store that has runs) is reported; only one who can also forge a key-consistent
    head file elsewhere goes unseen (docs/governance.md)."""
    path = tmp_path / "store.duckdb"
    with Store(path, user="analyst") as store:
        store.start_run()
        store.audit("collection", "ingest")
        store.finish_run()
    audit_chain.key_path(path).unlink()
    audit_chain.head_path(path).unlink()
    con = duckdb.connect(str(path))
    prev = ""
    for row in con.execute(f"SELECT {audit_chain.ROW_COLUMNS} FROM audit_log ORDER BY seq").fetchall():
        digest = audit_chain.legacy_hash(prev, list(row))
        con.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", [prev, digest, row[0]])
        prev = digest
    con.close()
    assert not _verify(path).ok
    _tamper(path, "DELETE FROM audit_log")
    verdict = _verify(path)
    assert not verdict.ok and any("runs are recorded" in p for p in verdict.problems)


def test_a_killed_run_is_closed_as_abandoned_and_audited(tmp_path: Path) -> None:
    """Attack 8: kill -9 during a run left no audit row."""
    path = tmp_path / "store.duckdb"
    proc = _py(f"""
        import os, signal
        from ecins_link.store import Store
        store = Store({str(path)!r}, user="analyst", command="run")
        print(store.start_run(), flush=True)
        with store.stage("report"):
            store.audit("disclosure", "half_done")
            os.kill(os.getpid(), signal.SIGKILL)
        """)
    assert proc.returncode == -signal.SIGKILL
    run_id = proc.stdout.strip()
    with Store(path, user="next") as store:
        assert store.con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()[0] == "abandoned"
        rows = store.audit_rows()
        abandoned = rows[rows.action == "run_abandoned"]
        assert len(abandoned) == 1 and run_id in abandoned.details.iloc[0]
        assert "half_done" not in set(rows.action)  # the killed stage's writes were rolled back
        assert store.verify_audit() == []


def test_a_failed_run_is_audited(tmp_path: Path) -> None:
    """A run that fails records 'failed' in runs and a ``run_failed`` audit row (the error itself is kept)."""
    from ecins_link.pipeline import run_project

    project = _project(tmp_path, "p.csv")
    (tmp_path / "proj" / "p.csv").write_text("ID,NAME\n1,A B\n", encoding="utf-8")
    with pytest.raises(StoreError, match="run the earlier stages first"):
        run_project(project, tmp_path / "proj" / "out", stages=["graph"])
    with Store(tmp_path / "proj" / "store.duckdb", read_only=True) as store:
        assert store.con.execute("SELECT status FROM runs").fetchall() == [("failed",)]
        assert store.audit_rows().action.tolist() == ["run_failed"] and store.verify_audit() == []


# ------------------------------------------------------------------------------ 3. overrides validated at use
def test_overrides_written_behind_the_applications_back_are_refused(tmp_path: Path) -> None:
    """Attacks 1 and 3: a negative raise inserted directly lowered a score; two raises of 1e308 gave inf."""
    from test_scoring import AS_OF, _da_victim, project

    from ecins_link.scoring import add_override, score
    from ecins_link.scoring.fixtures import World

    w = World(AS_OF)
    _da_victim(w, "P000101", [10, 20, 30], "U100000001")
    _da_victim(w, "P000102", [250, 280, 300], "U100000002")
    with Store(tmp_path / "s.duckdb", user="analyst") as store:
        w.write(store)
        score(store, project(tmp_path))
        before = dict(store.con.execute("SELECT entity_id, score FROM flags WHERE entity_type = 'person'").fetchall())
        good = add_override(store, "person", "P000102", 2.0, "Disclosed threats at a home visit")
        insert = "INSERT INTO overrides VALUES (?, 'person', ?, NULL, ?, ?, 'mallory', now())"
        for oid, pid, amount, reason in (("X1", "P000101", -50.0, "lower it"), ("X2", "P000102", 1e308, "inf"),
                                         ("X3", "P000102", 1e308, "inf"), ("X4", "P000101", float("nan"), "nan"),
                                         ("X5", "P000101", 5.0, ""), ("X6", "P404", 5.0, "no such person"),
                                         ("X7", "P000101", 101.0, "above the cap")):
            _tamper_con(store, insert, [oid, pid, amount, reason])
        score(store, project(tmp_path))
        after = dict(store.con.execute("SELECT entity_id, score FROM flags WHERE entity_type = 'person'").fetchall())
        refused = dict(store.con.execute("SELECT override_id, refused_because FROM overrides_refused").fetchall())
        audit = store.audit_rows()
        applied = audit[audit.action == "override_applied"].details.map(json.loads)
        refusals = audit[audit.action == "override_refused"].details.map(json.loads)
    assert set(refused) == {"X1", "X2", "X3", "X4", "X5", "X6", "X7"}
    assert "positive" in refused["X1"] and "cap" in refused["X7"] and "no person" in refused["X6"]
    assert "reason" in refused["X5"]
    assert after["P000101"] == pytest.approx(before["P000101"])  # not lowered
    assert after["P000102"] == pytest.approx(before["P000102"] + 2.0)  # the valid override, and only it
    assert all(v < 1e6 for v in after.values())
    assert [d["override_id"] for d in applied] == [good]
    assert sorted(d["override_id"] for d in refusals) == sorted(refused)


def _tamper_con(store: Store, sql: str, params: list) -> None:
    store.con.execute(sql, params)


# ------------------------------------------------------------------------------ 7. paths confined
def _project(tmp_path: Path, source_path: str, store: str = "store.duckdb", extra: str = "") -> Path:
    project = tmp_path / "proj" / "project.toml"
    project.parent.mkdir(exist_ok=True)
    project.write_text(
        f'[project]\nname = "t"\nstore = "{store}"\n{extra}\n[[sources]]\nname = "p"\nagency = "police"\n'
        f'path = "{source_path}"\nkey = "ID"\n[sources.person]\nfull_name = "NAME"\n', encoding="utf-8")
    return project


def test_paths_outside_the_project_folder_are_refused(tmp_path: Path) -> None:
    """Attack 7: ``path = "../../../etc/group"`` was ingested."""
    with pytest.raises(ConfigError, match="outside the project folder"):
        load_config(_project(tmp_path, "../../../etc/group"))
    with pytest.raises(ConfigError, match="outside the project folder"):
        load_config(_project(tmp_path, "/etc/group"))
    (tmp_path / "proj").mkdir(exist_ok=True)
    (tmp_path / "proj" / "innocent.csv").symlink_to("/etc/group")  # a link inside pointing out counts as out
    with pytest.raises(ConfigError, match="outside the project folder"):
        load_config(_project(tmp_path, "innocent.csv"))
    with pytest.raises(ConfigError, match="elsewhere.duckdb.*outside the project folder"):
        load_config(_project(tmp_path, "p.csv", store="../elsewhere.duckdb"))
    # an explicit setting lets a partnership keep extracts elsewhere
    shared = tmp_path / "shared_extracts"
    shared.mkdir()
    (shared / "p.csv").write_text("ID,NAME\n1,A B\n", encoding="utf-8")
    cfg = load_config(_project(tmp_path, str(shared / "p.csv"), extra=f'allow_paths_outside = ["{shared}"]'))
    assert cfg.path_of(str(shared / "p.csv")) == shared / "p.csv"
    # checked again at use (a path edited in after loading), and for configs built in code: a relative path
    # may not climb out; only a program building its config without a file may name absolute paths of its own
    data = {"project": {"name": "t"}, "sources": [
        {"name": "p", "agency": "a", "path": "../x.csv", "key": "ID", "person": {"full_name": "N"}}]}
    read = parse_config(data, root=tmp_path / "proj", file=tmp_path / "proj" / "project.toml")
    code = parse_config(data, root=tmp_path / "proj")
    for cfg in (read, code):
        with pytest.raises(ConfigError, match="outside"):
            cfg.path_of("../x.csv")
    with pytest.raises(ConfigError, match="outside"):
        read.path_of(str(tmp_path / "x.csv"))
    assert code.path_of(str(tmp_path / "x.csv")) == tmp_path / "x.csv"


def test_a_store_path_must_be_a_duckdb_file_or_absent(tmp_path: Path) -> None:
    """Attack 7: a store path at an existing non-DuckDB file made the run succeed on an in-memory store."""
    from ecins_link.pipeline import run_project

    project = _project(tmp_path, "p.csv", store="p.csv")  # the store path is the extract itself
    (tmp_path / "proj" / "p.csv").write_text("ID,NAME\n1,A B\n", encoding="utf-8")
    before = (tmp_path / "proj" / "p.csv").read_bytes()
    with pytest.raises(StoreError, match="not a DuckDB database"):
        run_project(project, tmp_path / "proj" / "out")
    assert (tmp_path / "proj" / "p.csv").read_bytes() == before
    (tmp_path / "empty.duckdb").write_bytes(b"")
    with pytest.raises(StoreError, match="empty file"):
        Store(tmp_path / "empty.duckdb")
    (tmp_path / "folder.duckdb").mkdir()
    with pytest.raises(StoreError, match="not a file"):
        Store(tmp_path / "folder.duckdb")


# ------------------------------------------------------------------------------ 8. faults and full disks
def test_a_full_disk_during_a_stage_is_reported_as_a_full_disk(tmp_path: Path) -> None:
    """Attack 8: ENOSPC was masked as "cannot rollback - no transaction is active"."""
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(DiskFullError, match="disk full") as caught:
            with store.stage("graph"):
                store.con.execute("CREATE TABLE t AS SELECT 1 AS x")
                store.con.execute("ROLLBACK")  # DuckDB has already aborted the transaction on the failed write
                raise duckdb.IOException('Could not write file "s.duckdb.wal": No space left on device')
        assert caught.value.errno == errno.ENOSPC
        assert "no transaction is active" not in str(caught.value)
        assert not store.has_table("t")


def test_disk_full_while_writing_the_report_keeps_the_previous_outputs(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack 8: a full disk left 0-byte pages; a failed report must leave the last complete folder as it was."""
    from test_report_fixtures import build_store, config

    from ecins_link.report import outputs, write_outputs

    store = build_store(tmp_path / "s.duckdb")
    try:
        out = tmp_path / "out"
        write_outputs(store, config(), out)
        snapshot = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        real = outputs.PanelBuilder.render

        def full(self, panel_dir: Path) -> dict:  # noqa: ANN001
            real(self, panel_dir)
            (panel_dir / "cases" / "late.html").write_bytes(b"")
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(outputs.PanelBuilder, "render", full)
        with pytest.raises(DiskFullError, match="disk full.*previous outputs are untouched"):
            write_outputs(store, config(), out, purpose="marac")
        after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert after == snapshot  # no 0-byte page, nothing half written, the full view intact
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")] == []
    finally:
        store.close()


def test_concurrent_writers_to_one_output_folder_are_refused(tmp_path: Path) -> None:
    """Attack 8: two runs writing one --out (full view and a purpose view): the last writer won silently."""
    from test_report_fixtures import build_store, config

    from ecins_link.report import write_outputs
    from ecins_link.report.outputs import OutputBusyError

    store = build_store(tmp_path / "s.duckdb")
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(tmp_path / '.out.lock')!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputBusyError, match="another run is writing"):
            write_outputs(store, config(), out, purpose="marac")
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    write_outputs(store, config(), out, purpose="marac")  # free again
    assert json.loads((out / ".ecins-output.json").read_text())["purpose"] == "marac"
    write_outputs(store, config(), out)  # one after the other is fine, and the audit says what was replaced
    exported = store.audit_rows().query("action == 'run_outputs_exported'").details.map(json.loads).tolist()
    assert exported[-2]["replaced"] is None and exported[-1]["replaced"]["purpose"] == "marac"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("not an output")
    with pytest.raises(ValueError, match="not an ecins-link output folder"):
        write_outputs(store, config(), tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.docx").exists()
    store.close()


def test_page_workers_die_with_their_parent(tmp_path: Path) -> None:
    """Attack 8: kill -9 during the report left forked page workers writing."""
    pids = tmp_path / "pids"
    pids.mkdir()
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from ecins_link.report.fanout import forked_map
        def work(share):
            Path({str(pids)!r}, str(os.getpid())).write_text("x")
            time.sleep(60)
        forked_map(work, list(range(3)), 3)
        """)], env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + 30
    while len(list(pids.iterdir())) < 3 and time.time() < deadline:
        time.sleep(0.1)
    children = [int(p.name) for p in pids.iterdir() if int(p.name) != parent.pid]
    assert len(children) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 5
    while any(_alive(c) for c in children) and time.time() < deadline:
        time.sleep(0.05)
    assert [c for c in children if _alive(c)] == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# ------------------------------------------------------------------------------ 1. the whole pipeline, hostile input
PAYLOAD = "x'\"); DROP TABLE audit_log; DELETE FROM canary; --"


@pytest.mark.slow
def test_hostile_project_rules_and_extract_values_stay_data(tmp_path: Path) -> None:
    """Attack 1, generalised: SQL payloads (both quote kinds) in the project name, an agency name, a mapped column
    name, extract cells and every rule label of a custom rules file.  The run must treat them all as data: the
    audit log and a canary table survive, the chain verifies, and the payloads come back out verbatim."""
    import csv
    import re

    from ecins_link.pipeline import run_project
    from ecins_link.scoring.rules import DEFAULT_RULES
    from ecins_link.synth import generate_town

    town = tmp_path / "town"
    generate_town(town, persons=150, seed=7)
    agency, column = "police" + PAYLOAD, "NAME" + PAYLOAD
    nominals = town / "police" / "nominals.csv"
    with open(nominals, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[0] = [column if c == "NAME" else c for c in rows[0]]
    for row in rows[1:4]:
        row[rows[0].index(column)] = "SMITH" + PAYLOAD + ", JOHN"
        row[rows[0].index("ADDRESS")] = "1 HIGH ST" + PAYLOAD
    with open(nominals, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    rules = Path(DEFAULT_RULES).read_text(encoding="utf-8")
    (town / "rules.toml").write_text(re.sub(r'^label = "', "label = " + json.dumps(PAYLOAD)[:-1], rules, flags=re.M),
                                     encoding="utf-8")
    text = (town / "project.toml").read_text(encoding="utf-8")
    text = text.replace('agency = "police"', f"agency = {json.dumps(agency)}")
    text = re.sub(r'"police"(?=[,\]])', json.dumps(agency), text)  # purposes' agency lists
    text = text.replace('full_name = "NAME"\nname_format = "surname_comma_forenames"',
                        f'full_name = {json.dumps(column)}\nname_format = "surname_comma_forenames"', 1)
    text = re.sub(r'^name = ".*"$', f"name = {json.dumps('Town' + PAYLOAD)}", text, count=1, flags=re.M)
    text = text.replace("[linkage]", 'rules = "rules.toml"\n\n[linkage]', 1)
    (town / "project.toml").write_text(text, encoding="utf-8")
    config = load_config(town / "project.toml")
    assert config.source("police_nominals").agency == agency and config.project.rules == "rules.toml"
    with Store(town / "store.duckdb") as store:
        store.con.execute("CREATE TABLE canary AS SELECT 42 AS alive")

    run_project(town / "project.toml", town / "output", user="mallory" + PAYLOAD)

    with Store(town / "store.duckdb", read_only=True) as store:
        assert store.con.execute("SELECT alive FROM canary").fetchall() == [(42,)]
        assert store.count("audit_log") > 5 and store.verify_audit() == []
        assert store.con.execute("SELECT count(*) FROM accounting WHERE agency = ?", [agency]).fetchone()[0] == 2
        assert store.con.execute("SELECT count(*) FROM person_records WHERE surname LIKE ?",
                                 ["%" + PAYLOAD + "%"]).fetchone()[0] == 3
        labels = {r[0] for r in store.con.execute("SELECT DISTINCT label FROM flags").fetchall()}
        assert labels and all(label.startswith(PAYLOAD) for label in labels if label != "Raised by professional judgement")
        assert set(store.audit_rows().user_name) == {"mallory" + PAYLOAD}
