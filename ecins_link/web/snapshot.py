"""The published, read-only snapshot of the latest completed run that the web app serves.

DuckDB allows one writer per store file, and a weekly batch holds it for its whole run.  The app therefore
never reads the project store while serving: :func:`publish_snapshot` copies the tables a panel needs, in
the shape the pages query (sorted by the id they are looked up by, so DuckDB's zone maps skip most row
groups), into ``<web_dir>/snapshots/<run_id>.duckdb`` and switches ``current.json`` to it atomically.  It
publishes only a run whose ``runs`` row says it finished ``ok``; while a batch holds the store (or the last
run failed) the previous snapshot stays in service.  :class:`Snapshot` opens one read-only.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

POINTER = "current.json"
FORMAT = 2  # bump when the snapshot's tables change: an older snapshot is rebuilt, not served
EDGE_TYPES = ("resides_at", "same_household", "co_involved", "victim_suspect")


class SnapshotUnavailable(RuntimeError):
    """No snapshot has been published yet and the store cannot be read now."""


def _literal(path: Path | str) -> str:
    """A file path as a quoted SQL string literal (ATTACH takes no bound parameters): quotes doubled,
    control characters refused."""
    text = str(path)
    if any(ord(ch) < 32 for ch in text):
        raise ValueError(f"unusable path for a database file: {text!r}")
    return "'" + text.replace("'", "''") + "'"


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'src' AND table_name = ?",
                            [table]).fetchone()[0])


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = 'src' "
                                      "AND table_name = ?", [table]).fetchall()}


# (snapshot table, required store tables, SQL over src.*): every statement is fixed text (no interpolation of
# anything read from a file); optional inputs are handled by the fallbacks below.
_COPIES: list[tuple[str, tuple[str, ...], str]] = [
    ("flags", ("flags",), "SELECT * FROM src.flags ORDER BY rank, flag_id"),
    ("signals", ("signals",), "SELECT * FROM src.signals ORDER BY person_id, event_date"),
    ("signals_at", ("signals",), "SELECT * FROM src.signals WHERE location_id IS NOT NULL "
                                 "ORDER BY location_id, event_date"),
    ("persons", ("person_attributes",), "SELECT * FROM src.person_attributes ORDER BY person_id"),
    ("records", ("person_clusters", "person_records"),
     """SELECT c.person_id, c.unique_id, c.source, r.agency, c.record_key, c.cluster_confidence, r.title,
               r.forenames, r.surname, r.dob, r.sex, r.address_text, r.postcode,
               upper(strip_accents(coalesce(r.surname, ''))) AS surname_key,
               upper(strip_accents(coalesce(r.forenames, ''))) AS forename_key
        FROM src.person_clusters c LEFT JOIN src.person_records r USING (source, record_key)
        ORDER BY c.person_id, c.source, c.record_key"""),
    ("edges", ("graph_edges",),
     """WITH e AS (SELECT src, dst, edge_type, role, start_date, end_date, weight, source FROM src.graph_edges
                   WHERE edge_type IN ('resides_at', 'same_household', 'co_involved', 'victim_suspect'))
        SELECT src AS node, dst AS other, * EXCLUDE (src, dst) FROM e
        UNION ALL SELECT dst, src, * EXCLUDE (src, dst) FROM e ORDER BY node"""),
    ("nodes", ("graph_nodes",), "SELECT node_id, node_type FROM src.graph_nodes "
                                "WHERE node_type IN ('person', 'location') ORDER BY node_id"),
    ("households", ("households",), "SELECT household_id, person_id, is_child, first_seen, last_seen "
                                    "FROM src.households ORDER BY household_id"),
    ("overrides", ("overrides",), "SELECT * FROM src.overrides ORDER BY recorded_at"),
    ("accounting", ("accounting",), "SELECT DISTINCT source, agency FROM src.accounting"),
]


def _loc_labels(con: duckdb.DuckDBPyConnection) -> None:
    """snap.loc_labels(location_id, label, agency): the gazetteer address (agency NULL: reference data)
    and each agency's own text for the location (one, alphabetically first, per agency)."""
    parts = []
    if _has(con, "gazetteer_std"):
        parts.append("SELECT 'U' || uprn AS location_id, full_address AS label, NULL::VARCHAR AS agency "
                     "FROM src.gazetteer_std WHERE full_address IS NOT NULL")
    if _has(con, "address_matches") and _has(con, "address_std") and _has(con, "accounting"):
        parts.append("""SELECT m.location_id, min(x.address_text) AS label, a.agency
                        FROM src.address_matches m JOIN src.address_std x USING (source, record_key)
                        JOIN (SELECT DISTINCT source, agency FROM src.accounting) a USING (source)
                        WHERE x.address_text IS NOT NULL GROUP BY m.location_id, a.agency""")
    body = " UNION ALL ".join(parts) or ("SELECT NULL::VARCHAR AS location_id, NULL::VARCHAR AS label, "
                                         "NULL::VARCHAR AS agency WHERE FALSE")
    con.execute(f"CREATE TABLE snap.loc_labels AS SELECT * FROM ({body}) ORDER BY location_id")


def _possible_same(con: duckdb.DuckDBPyConnection, lower: float, upper: float) -> None:
    """snap.possible_same: scored pairs in the review band whose records ended in different persons."""
    if _has(con, "person_pairs") and _has(con, "person_clusters"):
        sql = """WITH p AS (SELECT a.person_id AS pa, b.person_id AS pb, p.unique_id_l, p.unique_id_r,
                                   p.match_probability FROM src.person_pairs p
                            JOIN src.person_clusters a ON a.unique_id = p.unique_id_l
                            JOIN src.person_clusters b ON b.unique_id = p.unique_id_r
                            WHERE a.person_id <> b.person_id AND p.match_probability >= ?
                              AND p.match_probability < ?)
                 SELECT pa AS person_id, pb AS other_person_id, unique_id_l AS unique_id, unique_id_r AS other_unique_id,
                        match_probability FROM p
                 UNION ALL SELECT pb, pa, unique_id_r, unique_id_l, match_probability FROM p ORDER BY person_id"""
        con.execute(f"CREATE TABLE snap.possible_same AS {sql}", [lower, upper])
    else:
        con.execute("CREATE TABLE snap.possible_same (person_id VARCHAR, other_person_id VARCHAR, unique_id VARCHAR,"
                    " other_unique_id VARCHAR, match_probability DOUBLE)")


@dataclass(frozen=True)
class Published:
    """What ``current.json`` points at."""

    run_id: str
    file: Path
    finished_at: str
    format: int = 0


def current_pointer(web_dir: Path) -> Published | None:
    """The snapshot now in service (None before the first publication)."""
    path = Path(web_dir) / "snapshots" / POINTER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    file = Path(web_dir) / "snapshots" / str(data.get("file", ""))
    if not file.is_file():
        return None
    return Published(run_id=str(data["run_id"]), file=file, finished_at=str(data.get("finished_at")),
                     format=int(data.get("format", 0)))


_publish_lock = threading.Lock()
_seen: dict[str, tuple] = {}  # store path -> (mtime, size) of the store and its WAL when last looked at


def _fingerprint(store_path: Path) -> tuple:
    parts = []
    for p in (Path(store_path), Path(str(store_path) + ".wal")):
        try:
            st = p.stat()
            parts.append((st.st_mtime_ns, st.st_size))
        except OSError:
            parts.append(None)
    return tuple(parts)


def publish_snapshot(store_path: Path, web_dir: Path, review_band: tuple[float, float] = (0.5, 0.95)) -> Published | None:
    """Publish the store's latest completed run as a read-only snapshot; returns what is now in service.

    Returns the existing snapshot unchanged when the latest run is already published, when the store is
    locked by a running batch, or when the latest run did not finish ``ok``; None if there is none at all."""
    web_dir = Path(web_dir)
    snaps = web_dir / "snapshots"
    snaps.mkdir(parents=True, exist_ok=True)
    with _publish_lock:
        existing = current_pointer(web_dir)
        if not Path(store_path).is_file():
            return existing
        # an unchanged file holds no newer run: do not even open it (a read-only attach takes a shared lock,
        # and a batch starting at that moment could not open the store for writing)
        fingerprint = _fingerprint(Path(store_path))
        if existing is not None and existing.format == FORMAT and _seen.get(str(store_path)) == fingerprint:
            return existing
        con = duckdb.connect()
        try:
            try:
                con.execute(f"ATTACH {_literal(store_path)} AS src (READ_ONLY)")
            except duckdb.Error:  # locked by a batch (one writer), or unreadable: keep serving what we have
                return existing
            if not (_has(con, "runs") and _has(con, "flags")):
                return existing
            last = con.execute("SELECT run_id, status, CAST(finished_at AS VARCHAR) FROM src.runs "
                               "ORDER BY started_at DESC LIMIT 1").fetchone()
            if last is None or last[1] != "ok":
                if last is not None and last[1] not in ("running", None):
                    _seen[str(store_path)] = fingerprint  # a failed run: nothing to publish until the file changes
                return existing
            run_id, _, finished = last
            if (existing is not None and existing.run_id == run_id and existing.finished_at == str(finished)
                    and existing.format == FORMAT):
                _seen[str(store_path)] = fingerprint
                return existing
            name = f"{run_id}-{int(time.time() * 1000)}.duckdb"
            tmp = snaps / (name + ".tmp")
            tmp.unlink(missing_ok=True)
            con.execute(f"ATTACH {_literal(tmp)} AS snap")
            for table, needs, sql in _COPIES:
                if all(_has(con, t) for t in needs):
                    con.execute(f"CREATE TABLE snap.{table} AS {sql}")
            _loc_labels(con)
            _possible_same(con, float(review_band[0]), float(review_band[1]))
            con.execute("CREATE TABLE snap.meta AS SELECT ? AS run_id, ? AS finished_at, "
                        "? AS flag_columns", [run_id, str(finished), json.dumps(sorted(_columns(con, "flags")))])
            con.execute("DETACH snap")
        finally:
            con.close()
        _seen[str(store_path)] = fingerprint
        os.replace(tmp, snaps / name)
        pointer = snaps / (POINTER + ".tmp")
        pointer.write_text(json.dumps({"run_id": run_id, "file": name, "finished_at": str(finished), "format": FORMAT}),
                           encoding="utf-8")
        os.replace(pointer, snaps / POINTER)
        keep = {name, existing.file.name if existing else None}
        for old in snaps.glob("*.duckdb"):
            if old.name not in keep:  # readers that still hold an older file keep their open handle (POSIX)
                old.unlink(missing_ok=True)
        return current_pointer(web_dir)
