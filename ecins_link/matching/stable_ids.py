"""Stable person IDs across batches.

A clustering run produces arbitrary ``cluster_id`` values; panels, overrides and earlier packs refer to people
by ``person_id``.  :func:`assign_stable_ids` turns this run's clusters into person IDs that stay the same when
the people are the same, using ``person_id_registry`` (the person ID each record last held) and records every
change of identity in ``person_lineage``:

* a cluster inherits the ID held by the majority of its previously-seen records (ties: the oldest ID);
* two old persons in one cluster -> the ID with most records there survives (then the oldest); the other
  gets a ``merge`` lineage row (old -> survivor);
* one old person over several clusters -> the part with most of its records keeps the ID (then the larger
  cluster); the other parts take another old ID they hold, else a new ID, with a ``split`` lineage row;
* an old person none of whose records is in this run -> ``retired`` (new_person_id NULL);
* a retired ID claimed again by its returning records -> ``reinstated``.

All of it is set-based DuckDB SQL; Python only repeats the claim round until no cluster can claim an old ID
(typically 1-3 rounds, independent of the number of records).

``person_id_registry(unique_id, person_id, first_run_id, last_run_id, active, updated_at)`` keeps every
record ever seen: ``active`` = present in the latest run.  New IDs are ``P`` + a zero-padded sequence number
one above the highest ever issued (registry and lineage), so an ID is never reused for someone else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from ecins_link.store import Store

ID_PREFIX = "P"
ID_DIGITS = 6
_MAX_ROUNDS = 1_000

_REGISTRY_DDL = """CREATE TABLE IF NOT EXISTS person_id_registry (
    unique_id VARCHAR, person_id VARCHAR, first_run_id VARCHAR, last_run_id VARCHAR, active BOOLEAN,
    updated_at TIMESTAMP)"""
_LINEAGE_DDL = """CREATE TABLE IF NOT EXISTS person_lineage (
    run_id VARCHAR, old_person_id VARCHAR, new_person_id VARCHAR, reason VARCHAR, recorded_at TIMESTAMP)"""
_TEMP = ("_sid_in", "_sid_votes", "_sid_size", "_sid_assigned", "_sid_map", "_sid_flow", "_sid_prev_active")


def _id_num(expr: str) -> str:
    """SQL: the sequence number of a person ID (NULL for anything not shaped like one)."""
    return f"TRY_CAST(regexp_extract({expr}, '^{ID_PREFIX}([0-9]+)$', 1) AS BIGINT)"


def in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` is inside an explicit transaction (two statements share one transaction id)."""
    first = con.execute("SELECT txid_current()").fetchone()[0]
    return first == con.execute("SELECT txid_current()").fetchone()[0]


@contextmanager
def atomic(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in a transaction: joins the caller's (e.g. a ``store.stage``) or opens its own."""
    if in_transaction(con):
        yield
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _validate_input(con: duckdb.DuckDBPyConnection, clusters_table: str) -> None:
    cols = {r[0] for r in con.execute(f'DESCRIBE "{clusters_table}"').fetchall()}
    needed = {"unique_id", "source", "record_key", "cluster_id", "cluster_confidence"}
    if missing := sorted(needed - cols):
        raise ValueError(f"clusters table '{clusters_table}' lacks column(s) {missing}")
    nulls, dupes = con.execute(
        f"""SELECT count(*) FILTER (WHERE unique_id IS NULL OR cluster_id IS NULL),
                   count(*) - count(DISTINCT unique_id)
            FROM "{clusters_table}" """
    ).fetchone()
    if nulls or dupes:
        raise ValueError(
            f"clusters table '{clusters_table}': {nulls} row(s) with NULL unique_id/cluster_id and "
            f"{dupes} duplicated unique_id(s); each record must be in exactly one cluster"
        )
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "person_std" in tables:
        missing = con.execute(
            f'SELECT count(*) FROM person_std WHERE unique_id NOT IN (SELECT unique_id FROM "{clusters_table}")'
        ).fetchone()[0]
        if missing:
            raise ValueError(
                f"clusters table '{clusters_table}' misses {missing} person_std record(s); "
                "person_clusters must cover every person_std row (give unlinked records their own cluster)"
            )


def _next_sequence(store: Store) -> int:
    """One above the highest person ID ever issued (registry and lineage)."""
    parts = [f"SELECT max({_id_num('person_id')}) AS n FROM person_id_registry"]
    if store.has_table("person_lineage"):
        parts.append(f"SELECT max({_id_num('old_person_id')}) FROM person_lineage")
        parts.append(f"SELECT max({_id_num('new_person_id')}) FROM person_lineage")
    row = store.con.execute(f"SELECT coalesce(max(n), 0) FROM ({' UNION ALL '.join(parts)})").fetchone()
    return int(row[0]) + 1


def _claim_rounds(con: duckdb.DuckDBPyConnection) -> int:
    """Give old IDs to clusters, round by round, until no unassigned cluster can claim a free old ID."""
    rounds = 0
    while rounds < _MAX_ROUNDS:
        rounds += 1
        before = con.execute("SELECT count(*) FROM _sid_assigned").fetchone()[0]
        con.execute(
            f"""
            INSERT INTO _sid_assigned
            WITH open_votes AS (
                SELECT v.* FROM _sid_votes v
                WHERE v.cluster_id NOT IN (SELECT cluster_id FROM _sid_assigned)
                  AND v.old_id NOT IN (SELECT person_id FROM _sid_assigned)
            ), claims AS (  -- each cluster claims the ID most of its known records hold (ties: oldest)
                SELECT * FROM open_votes
                QUALIFY row_number() OVER (PARTITION BY cluster_id ORDER BY n DESC, {_id_num("old_id")}, old_id) = 1
            )  -- each claimed ID goes to the claimant holding most of its records (then larger, then stable)
            SELECT c.cluster_id, c.old_id FROM claims c JOIN _sid_size s USING (cluster_id)
            QUALIFY row_number() OVER (PARTITION BY c.old_id ORDER BY c.n DESC, s.size DESC, s.anchor) = 1
            """
        )
        if con.execute("SELECT count(*) FROM _sid_assigned").fetchone()[0] == before:
            break
    return rounds


def assign_stable_ids(store: Store, clusters_table: str) -> None:
    """Map this run's clusters to stable person IDs.

    Reads ``clusters_table(unique_id, source, record_key, cluster_id, cluster_confidence)``; writes
    ``person_clusters(unique_id, source, record_key, person_id, cluster_confidence)``, updates
    ``person_id_registry`` and appends this run's identity changes to ``person_lineage``.  Runs in the
    caller's transaction (e.g. the persons stage) or in its own.  Raises ``StoreError`` if the clusters
    table is missing, ``ValueError`` if a record is in no cluster or in two.
    """
    con = store.con
    store.require(clusters_table, stage="assign_stable_ids")
    _validate_input(con, clusters_table)
    run_id = store.run_id
    now = dt.datetime.now()
    with atomic(con):
        con.execute(_REGISTRY_DDL)
        con.execute(_LINEAGE_DDL)
        for t in _TEMP:
            con.execute(f"DROP TABLE IF EXISTS {t}")
        con.execute(
            f"""CREATE TEMP TABLE _sid_in AS
                SELECT CAST(unique_id AS VARCHAR) AS unique_id, CAST(source AS VARCHAR) AS source,
                       CAST(record_key AS VARCHAR) AS record_key, CAST(cluster_id AS VARCHAR) AS cluster_id,
                       CAST(cluster_confidence AS DOUBLE) AS cluster_confidence
                FROM "{clusters_table}" """
        )
        con.execute(
            """CREATE TEMP TABLE _sid_size AS
               SELECT cluster_id, count(*) AS size, min(unique_id) AS anchor FROM _sid_in GROUP BY cluster_id"""
        )
        con.execute(
            """CREATE TEMP TABLE _sid_votes AS
               SELECT c.cluster_id, r.person_id AS old_id, count(*) AS n
               FROM _sid_in c JOIN person_id_registry r USING (unique_id)
               WHERE r.person_id IS NOT NULL GROUP BY ALL"""
        )
        con.execute("CREATE TEMP TABLE _sid_assigned (cluster_id VARCHAR, person_id VARCHAR)")
        _claim_rounds(con)
        first_new = _next_sequence(store)
        con.execute(
            f"""CREATE TEMP TABLE _sid_map AS
                SELECT cluster_id, person_id, FALSE AS is_new FROM _sid_assigned
                UNION ALL
                SELECT s.cluster_id,
                       printf('{ID_PREFIX}%0{ID_DIGITS}d', {first_new - 1} + row_number() OVER (ORDER BY s.anchor)),
                       TRUE
                FROM _sid_size s ANTI JOIN _sid_assigned a USING (cluster_id)"""
        )
        store.write_table(
            "person_clusters",
            """SELECT i.unique_id, i.source, i.record_key, m.person_id, i.cluster_confidence
               FROM _sid_in i JOIN _sid_map m USING (cluster_id) ORDER BY m.person_id, i.unique_id""",
        )
        # identity flows of previously-seen records: old id -> new id
        con.execute(
            """CREATE TEMP TABLE _sid_flow AS
               SELECT r.person_id AS old_id, pc.person_id AS new_id, count(*) AS n
               FROM person_clusters pc JOIN person_id_registry r USING (unique_id)
               WHERE r.person_id IS NOT NULL AND r.person_id <> pc.person_id GROUP BY ALL"""
        )
        con.execute(
            """CREATE TEMP TABLE _sid_prev_active AS
               SELECT DISTINCT person_id FROM person_id_registry WHERE active AND person_id IS NOT NULL"""
        )
        con.execute(
            """INSERT INTO person_lineage
               SELECT ?, f.old_id, f.new_id,
                      CASE WHEN f.old_id IN (SELECT person_id FROM _sid_map) THEN 'split' ELSE 'merge' END, ?
               FROM _sid_flow f ORDER BY f.old_id, f.new_id""",
            [run_id, now],
        )
        con.execute(
            """INSERT INTO person_lineage
               SELECT ?, a.person_id, NULL, 'retired', ? FROM _sid_prev_active a
               WHERE a.person_id NOT IN (SELECT person_id FROM _sid_map)
                 AND a.person_id NOT IN (SELECT old_id FROM _sid_flow)
               ORDER BY a.person_id""",
            [run_id, now],
        )
        con.execute(
            """INSERT INTO person_lineage
               SELECT ?, m.person_id, m.person_id, 'reinstated', ? FROM _sid_map m
               WHERE NOT m.is_new AND m.person_id NOT IN (SELECT person_id FROM _sid_prev_active)
               ORDER BY m.person_id""",
            [run_id, now],
        )
        _update_registry(store, now)
        for t in _TEMP:
            con.execute(f"DROP TABLE IF EXISTS {t}")


def _update_registry(store: Store, now: dt.datetime) -> None:
    """Registry := every record ever seen with its latest person ID; absent records follow merges."""
    store.write_table(
        "person_id_registry",
        f"""
        WITH merged_into AS (  -- an ID that no longer exists -> the ID that took most of its records
            SELECT old_id, new_id FROM _sid_flow
            WHERE old_id NOT IN (SELECT person_id FROM _sid_map)
            QUALIFY row_number() OVER (PARTITION BY old_id ORDER BY n DESC, {_id_num("new_id")}, new_id) = 1
        )
        SELECT coalesce(pc.unique_id, r.unique_id) AS unique_id,
               coalesce(pc.person_id, mi.new_id, r.person_id) AS person_id,
               coalesce(r.first_run_id, '{store.run_id}') AS first_run_id,
               CASE WHEN pc.unique_id IS NOT NULL THEN '{store.run_id}' ELSE r.last_run_id END AS last_run_id,
               pc.unique_id IS NOT NULL AS active,
               CASE WHEN pc.unique_id IS NOT NULL OR mi.new_id IS NOT NULL OR r.active
                    THEN TIMESTAMP '{now.isoformat(sep=" ")}' ELSE r.updated_at END AS updated_at
        FROM person_clusters pc
        FULL OUTER JOIN person_id_registry r ON pc.unique_id = r.unique_id
        LEFT JOIN merged_into mi ON pc.unique_id IS NULL AND mi.old_id = r.person_id
        ORDER BY unique_id
        """,
    )


def lineage_counts(store: Store, run_id: str | None = None) -> dict[str, int]:
    """Identity changes recorded by a run (default: this store's run), e.g. ``{'merge': 3, 'split': 1}``
    -- counts only, for the persons stage's audit row."""
    if not store.has_table("person_lineage"):
        return {}
    rows = store.con.execute(
        "SELECT reason, count(*) FROM person_lineage WHERE run_id = ? GROUP BY reason ORDER BY reason",
        [run_id or store.run_id],
    ).fetchall()
    return {reason: int(n) for reason, n in rows}
