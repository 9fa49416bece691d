"""Tamper evidence for the audit log, anchored outside the store (see docs/governance.md).

Every audit row carries ``hash = "h1:" + HMAC-SHA256(key, [prev_hash, fields...])``.  The key is *not* in the
store: it is ``$ECINS_AUDIT_KEY`` (text, at least 32 characters) if set, else the file ``$ECINS_AUDIT_KEY_FILE``,
else ``<store>.audit-key`` beside the store, created on first use with 32 random bytes and mode 0600.  Without
the key nobody can write a row (or re-hash the chain) that verifies.

After every committed command the chain head (last seq and its hash, itself MACed) is appended to a sidecar
file outside the store: ``$ECINS_AUDIT_HEAD_FILE`` or ``<store>.audit-heads`` (one JSON line per head).  Each
recorded head must still be in the table with the same hash, so deleting the last rows, deleting every row,
dropping the table (the next command recreates it empty) and re-hashing are all reported by :func:`verify`.

Rows written before this scheme (plain SHA-256, no prefix) still verify, but only *before* the first keyed
row: a legacy-style row after a keyed one is a forgery.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

KEYED_PREFIX = "h1:"
ENV_KEY = "ECINS_AUDIT_KEY"
ENV_KEY_FILE = "ECINS_AUDIT_KEY_FILE"
ENV_HEAD_FILE = "ECINS_AUDIT_HEAD_FILE"
ROW_COLUMNS = ("seq, strftime(logged_at, '%Y-%m-%dT%H:%M:%S.%f'), user_name, run_id, command, category, purpose, "
               "action, details, row_counts")


class AuditKeyError(RuntimeError):
    """The audit key is missing, unreadable or too short."""


def _payload(prev_hash: str, fields: list[Any]) -> bytes:
    return json.dumps([prev_hash, *[str(f) for f in fields]], ensure_ascii=False).encode("utf-8")


def legacy_hash(prev_hash: str, fields: list[Any]) -> str:
    """The pre-HMAC scheme (plain SHA-256): verifiable by anyone, so forgeable by anyone."""
    return hashlib.sha256(_payload(prev_hash, fields)).hexdigest()


def keyed_hash(key: bytes, prev_hash: str, fields: list[Any]) -> str:
    """The row hash: ``h1:`` + HMAC-SHA256 under the audit key."""
    return KEYED_PREFIX + hmac.new(key, _payload(prev_hash, fields), hashlib.sha256).hexdigest()


def key_path(store_path: Path) -> Path:
    """Where the audit key lives: ``$ECINS_AUDIT_KEY_FILE`` or ``<store>.audit-key``."""
    env = os.environ.get(ENV_KEY_FILE, "").strip()
    return Path(env) if env else Path(str(store_path) + ".audit-key")


def head_path(store_path: Path) -> Path:
    """Where chain heads are appended: ``$ECINS_AUDIT_HEAD_FILE`` or ``<store>.audit-heads``."""
    env = os.environ.get(ENV_HEAD_FILE, "").strip()
    return Path(env) if env else Path(str(store_path) + ".audit-heads")


def load_key(store_path: Path, create: bool) -> bytes | None:
    """The audit key (``None`` if absent and ``create`` is false); created 0600 on first use when ``create``."""
    env = os.environ.get(ENV_KEY)
    if env:
        if len(env.strip()) < 32:
            raise AuditKeyError(f"${ENV_KEY} must hold at least 32 characters")
        return env.strip().encode("utf-8")
    path = key_path(store_path)
    if path.exists():
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise AuditKeyError(f"audit key file {path} holds fewer than 32 bytes")
        return key
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return load_key(store_path, create=False)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def head_mac(key: bytes, seq: int, digest: str) -> str:
    """MAC of one recorded head, so the sidecar cannot be rewritten without the key either."""
    return hmac.new(key, f"head|{seq}|{digest}".encode(), hashlib.sha256).hexdigest()


def append_head(store_path: Path, key: bytes, seq: int, digest: str, run_id: str) -> None:
    """Append the chain head ``(seq, digest)`` to the sidecar file (flushed and fsynced)."""
    path = head_path(store_path)
    line = json.dumps({"seq": int(seq), "hash": digest, "run_id": run_id,
                       "at": dt.datetime.now().isoformat(timespec="seconds"), "mac": head_mac(key, seq, digest)})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def last_head(store_path: Path) -> dict | None:
    """The most recent recorded head, or ``None``."""
    path = head_path(store_path)
    if not path.exists():
        return None
    lines = [x for x in path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    try:
        return json.loads(lines[-1]) if lines else None
    except ValueError:
        return None


@dataclass
class Verdict:
    """What :func:`verify` found: ``ok`` only when the chain and every recorded head check out."""

    rows: int = 0
    anchored_seq: int = 0
    bad_seqs: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad_seqs and not self.problems


def _table_rows(con: duckdb.DuckDBPyConnection) -> list[tuple] | None:
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' "
                         "AND table_name = 'audit_log'").fetchone()[0]
    if not exists:
        return None
    return con.execute(f"SELECT {ROW_COLUMNS}, prev_hash, hash FROM audit_log ORDER BY seq").fetchall()


def verify(con: duckdb.DuckDBPyConnection, store_path: Path) -> Verdict:
    """Check the audit chain of the store on ``con`` against its key and the recorded heads."""
    verdict = Verdict()
    rows = _table_rows(con)
    if rows is None:
        verdict.problems.append("the audit_log table is missing (dropped?)")
        rows = []
    verdict.rows = len(rows)
    try:
        key = load_key(store_path, create=False)
    except AuditKeyError as err:
        key, _ = None, verdict.problems.append(str(err))
    digests: dict[int, str] = {}
    prev, keyed_seen, expected_seq = "", False, 1
    for row in rows:
        fields, prev_hash, digest = list(row[:10]), row[10], row[11] or ""
        seq = int(row[0])
        if seq != expected_seq:
            verdict.problems.append(f"audit rows {expected_seq}..{seq - 1} are missing (deleted?)")
            verdict.bad_seqs.append(seq)
        expected_seq = seq + 1
        if digest.startswith(KEYED_PREFIX):
            keyed_seen = True
            good = key is not None and hmac.compare_digest(keyed_hash(key, prev, fields), digest)
        else:
            good = not keyed_seen and legacy_hash(prev, fields) == digest
        if prev_hash != prev or not good:
            verdict.bad_seqs.append(seq)
        digests[seq] = digest
        prev = digest
    if rows and key is None:
        verdict.problems.append("the audit key is not available, so the chain cannot be checked "
                                f"(expected ${ENV_KEY}, ${ENV_KEY_FILE} or {key_path(store_path)})")
    if not rows and _runs_recorded(con):
        verdict.problems.append("runs are recorded in this store but the audit log is empty (rows deleted?)")
    _check_heads(verdict, store_path, key, digests, bool(rows))
    verdict.bad_seqs = sorted(set(verdict.bad_seqs))
    return verdict


def _runs_recorded(con: duckdb.DuckDBPyConnection) -> bool:
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' "
                         "AND table_name = 'runs'").fetchone()[0]
    return bool(exists) and bool(con.execute("SELECT count(*) FROM runs").fetchone()[0])


def _check_heads(verdict: Verdict, store_path: Path, key: bytes | None, digests: dict[int, str],
                 has_rows: bool) -> None:
    path = head_path(store_path)
    if not path.exists():
        if has_rows:
            verdict.problems.append(f"the chain-head file {path} is missing: truncation cannot be ruled out")
        return
    top = 0
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            head = json.loads(line)
            seq, digest, mac = int(head["seq"]), str(head["hash"]), str(head["mac"])
        except (ValueError, KeyError, TypeError):
            verdict.problems.append(f"chain-head file line {n} is unreadable")
            continue
        if key is not None and not hmac.compare_digest(head_mac(key, seq, digest), mac):
            verdict.problems.append(f"chain-head file line {n} does not carry a valid MAC (edited?)")
            continue
        if seq < top:
            verdict.problems.append(f"chain-head file line {n} goes back from seq {top} to {seq}")
        top = max(top, seq)
        if seq == 0:
            continue
        if seq not in digests:
            verdict.problems.append(f"audit row {seq} was recorded as the chain head but is gone "
                                    f"(table holds {len(digests)} rows): rows deleted, truncated or table dropped")
            verdict.bad_seqs.append(seq)
        elif digests[seq] != digest:
            verdict.problems.append(f"audit row {seq} no longer has the hash recorded for it: the chain was rewritten")
            verdict.bad_seqs.append(seq)
    verdict.anchored_seq = top
