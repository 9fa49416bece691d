"""The project store: one DuckDB file per project, stage transactions and an append-only audit log.

Every stage reads named tables and writes named tables inside :meth:`Store.stage`, one transaction: a run
killed mid-stage leaves the store as it was before that stage.  A second process opening a store in use
gets :class:`StoreLockedError`.  The audit log (DPA 2018 s62 categories) can only be appended to through
:meth:`Store.audit`; each row carries a SHA-256 hash chained to the previous row so that any edit made
outside the application is detectable with :meth:`Store.verify_audit`.
"""

from __future__ import annotations

import copy
import datetime as dt
import getpass
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

SCHEMA_VERSION = 1
AUDIT_CATEGORIES = ("collection", "alteration", "consultation", "disclosure", "combination", "erasure")

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq BIGINT PRIMARY KEY, logged_at TIMESTAMP, user_name VARCHAR, run_id VARCHAR, command VARCHAR,
        category VARCHAR, purpose VARCHAR, action VARCHAR, details VARCHAR, row_counts VARCHAR,
        prev_hash VARCHAR, hash VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, started_at TIMESTAMP, finished_at TIMESTAMP, user_name VARCHAR,
        command VARCHAR, purpose VARCHAR, status VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS stage_runs (
        run_id VARCHAR, stage VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, seconds DOUBLE)""",
]


class StoreError(Exception):
    """A store that cannot be used (locked, newer schema, unreadable)."""


class StoreLockedError(StoreError):
    """Another process holds the store open for writing."""


def current_user(explicit: str | None = None) -> str:
    """The user to record in the audit log: ``--user`` if given, else the OS user."""
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - containers without a passwd entry
        return os.environ.get("USER", "unknown")


def _hash_row(prev_hash: str, fields: list[Any]) -> str:
    payload = json.dumps([prev_hash, *[str(f) for f in fields]], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Store:
    """An open project store.

    Parameters
    ----------
    path : path of the DuckDB file (created if missing).
    user : who is acting (recorded in every audit row).
    command : the CLI command or API call that opened the store.
    purpose : the information-sharing purpose in force, if any.
    read_only : open without write access (many readers may share a store).
    memory_limit : DuckDB memory limit, e.g. ``"6GB"``.
    """

    def __init__(
        self,
        path: str | Path,
        user: str | None = None,
        command: str = "api",
        purpose: str | None = None,
        read_only: bool = False,
        memory_limit: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.user = current_user(user)
        self.command = command
        self.purpose = purpose
        self.read_only = read_only
        self.memory_limit = memory_limit
        self.run_id = uuid.uuid4().hex[:12]
        if read_only and not self.path.exists():
            raise StoreError(f"store {self.path} does not exist")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as err:
            if "lock" in str(err).lower():
                raise StoreLockedError(f"store is locked by another run: {self.path}") from None
            raise StoreError(f"cannot open store {self.path}: {err}") from None
        if memory_limit:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        if not read_only:
            self._migrate()

    # ----------------------------------------------------------------------------------- lifecycle
    def _migrate(self) -> None:
        for ddl in _SCHEMA:
            self.con.execute(ddl)
        row = self.con.execute("SELECT value FROM store_meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self.con.execute("INSERT INTO store_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        elif int(row[0]) > SCHEMA_VERSION:
            raise StoreError(f"store {self.path} has schema {row[0]}, newer than this ecins-link ({SCHEMA_VERSION})")

    def close(self) -> None:
        """Close the connection (releases the lock)."""
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------- tables
    def open_scratch(self, tables: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
        """A private in-memory DuckDB connection for a stage's heavy intermediate work, with a copy of each
        ``{name: sql}`` query's result (run on the store) as table ``name``.  The caller closes it; see
        :meth:`scratch` for the context-managed form.

        Inside :meth:`stage`, tables created in the stage's own transaction are read from transaction-local
        storage, about half as fast as committed data (measured on a 3.3M-row table: scan 0.33 vs 0.16 s,
        join 1.1 vs 0.45 s).  Work that builds and re-reads large intermediate tables (Splink's blocking,
        comparisons and EM) belongs here; only the results go back into the store, inside the transaction.
        The store's memory limit applies to the scratch connection too.
        """
        mem = duckdb.connect()
        try:
            if self.memory_limit:
                mem.execute(f"SET memory_limit = '{self.memory_limit}'")
            self.copy_to(mem, tables or {})
        except BaseException:
            mem.close()
            raise
        return mem

    def copy_to(self, con: duckdb.DuckDBPyConnection, tables: dict[str, str]) -> None:
        """Create (or replace) table ``name`` on another connection ``con`` from each ``{name: sql}`` query run
        on the store (via Arrow)."""
        for name, sql in tables.items():
            con.register("__ecins_in", self.con.execute(sql).to_arrow_table())
            try:
                con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM __ecins_in')
            finally:
                con.unregister("__ecins_in")

    @contextmanager
    def scratch(self, tables: dict[str, str] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """:meth:`open_scratch`, closed on exit."""
        mem = self.open_scratch(tables)
        try:
            yield mem
        finally:
            mem.close()

    def reader(self) -> Store:
        """A second handle on this open store for another thread: its own connection (a cursor of the same
        database) and so its own transactions.  For reading committed tables while this handle runs a stage;
        close it when done (closes only the cursor)."""
        view = copy.copy(self)
        view.con = self.con.cursor()
        return view

    def has_table(self, name: str) -> bool:
        """Whether a table (or view) called ``name`` exists in the main schema."""
        q = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?"
        return bool(self.con.execute(q, [name]).fetchone()[0])

    def require(self, *names: str, stage: str = "this stage") -> None:
        """Raise a clear error if an input table is missing (an earlier stage has not run)."""
        missing = [n for n in names if not self.has_table(n)]
        if missing:
            raise StoreError(f"{stage} needs table(s) {missing}; run the earlier stages first")

    def write_table(self, name: str, data: Any) -> int:
        """Create or replace table ``name`` from a SQL query string, DataFrame, Arrow table or relation.

        Returns the number of rows written.  Call inside :meth:`stage` so the write is atomic.
        """
        if isinstance(data, str):
            self.con.execute(f'CREATE OR REPLACE TABLE "{name}" AS {data}')
        else:
            self.con.register("__ecins_tmp", data)
            try:
                self.con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM __ecins_tmp')
            finally:
                self.con.unregister("__ecins_tmp")
        return self.count(name)

    def count(self, name: str) -> int:
        """Row count of a table."""
        return int(self.con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])

    def as_of(self, configured: dt.date | None = None) -> dt.date:
        """"Today" for windows, ages and decay: ``configured`` (the project's ``as_of``), else the latest
        ``event_date`` in ``event_records`` (so re-running old data is deterministic), else today."""
        if configured:
            return configured
        if self.has_table("event_records"):
            latest = self.con.execute("SELECT max(event_date) FROM event_records").fetchone()[0]
            if latest is not None:
                return latest
        return dt.date.today()

    def df(self, sql: str, params: list | None = None):  # noqa: ANN201 - pandas is optional here
        """Run a query and return a pandas DataFrame."""
        return self.con.execute(sql, params or []).df()

    # ----------------------------------------------------------------------------------- stages
    @contextmanager
    def stage(self, name: str) -> Iterator[Store]:
        """One stage = one transaction: everything written inside commits together or not at all."""
        started = dt.datetime.now()
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self
            finished = dt.datetime.now()
            self.con.execute(
                "INSERT INTO stage_runs VALUES (?, ?, ?, ?, ?)",
                [self.run_id, name, started, finished, (finished - started).total_seconds()],
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def start_run(self) -> str:
        """Record the start of a run; returns its id."""
        self.con.execute(
            "INSERT INTO runs VALUES (?, ?, NULL, ?, ?, ?, 'running')",
            [self.run_id, dt.datetime.now(), self.user, self.command, self.purpose],
        )
        return self.run_id

    def finish_run(self, status: str = "ok") -> None:
        """Record the end of a run."""
        self.con.execute(
            "UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?", [dt.datetime.now(), status, self.run_id]
        )

    # ----------------------------------------------------------------------------------- audit
    def audit(
        self,
        category: str,
        action: str,
        details: dict | None = None,
        row_counts: dict | None = None,
        purpose: str | None = None,
    ) -> int:
        """Append one audit row (the only way the application writes ``audit_log``); returns its seq.

        ``category`` is one of the DPA 2018 s62 categories: collection, alteration, consultation,
        disclosure, combination, erasure.  ``details`` must not contain personal data beyond what the
        purpose's panel may see: record ids and counts, not names.
        """
        if category not in AUDIT_CATEGORIES:
            raise ValueError(f"audit category must be one of {AUDIT_CATEGORIES}, not {category!r}")
        last = self.con.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, "")
        fields = [
            seq,
            dt.datetime.now().isoformat(timespec="microseconds"),
            self.user,
            self.run_id,
            self.command,
            category,
            purpose if purpose is not None else (self.purpose or ""),
            action,
            json.dumps(details or {}, default=str, sort_keys=True),
            json.dumps(row_counts or {}, default=str, sort_keys=True),
        ]
        digest = _hash_row(prev, fields)
        self.con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [*fields, prev, digest])
        return seq

    def audit_rows(self):  # noqa: ANN201
        """All audit rows, oldest first, as a DataFrame."""
        return self.df("SELECT * FROM audit_log ORDER BY seq")

    def verify_audit(self) -> list[int]:
        """Sequence numbers whose hash chain does not verify (empty list = untampered)."""
        bad: list[int] = []
        prev = ""
        cols = "seq, strftime(logged_at, '%Y-%m-%dT%H:%M:%S.%f'), user_name, run_id, command, category, purpose, action, details, row_counts"
        for row in self.con.execute(f"SELECT {cols}, prev_hash, hash FROM audit_log ORDER BY seq").fetchall():
            fields, prev_hash, digest = list(row[:10]), row[10], row[11]
            if prev_hash != prev or _hash_row(prev, fields) != digest:
                bad.append(int(row[0]))
            prev = digest
        return bad
