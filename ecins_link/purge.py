"""Erasure: remove one source's records from the store, byte for byte (DPA 2018 s62 'erasure', audited).

:func:`purge_source` deletes the source's rows from every table that names a source (``source`` column) or a
record (``unique_id``, ``unique_id_l``/``_r``: the id registry, link state, pairs, clerical decisions), clears
references to its records from other sources' events, drops every derived table whose rows mix sources (the
graph, the scores, the linkage model: person labels, dates of birth and term frequencies there may come from
the purged records; the next run rebuilds them), records the source in ``purged_sources``, and then rewrites
the store file (:meth:`Store.rewrite_file`) so that no byte of the purged rows is left in freed blocks.

A later run refuses a purged source that is still in the project file (:func:`check_purged`) until the
project file drops it or lists it in ``project.readmit_purged``; the re-admission is recorded and audited.
"""

from __future__ import annotations

import datetime as dt

from ecins_link.config import ConfigError, ProjectConfig
from ecins_link.store import Store, StoreError

PURGED_DDL = """CREATE TABLE IF NOT EXISTS purged_sources (
    source VARCHAR, purged_at TIMESTAMP, user_name VARCHAR, run_id VARCHAR, readmitted_at TIMESTAMP,
    readmitted_by VARCHAR)"""
# tables rebuilt by every run whose rows combine several sources' records (names, DOBs, addresses, counts)
DERIVED_TABLES = ("person_attributes", "graph_nodes", "graph_edges", "residences", "households", "person_components",
                  "location_churn", "signals", "flags", "flag_history", "linkage_models", "cluster_splits",
                  "person_lineage", "address_matcher_answers")
_KEEP = ("audit_log", "purged_sources", "runs", "stage_runs", "store_meta")
_ID_COLUMNS = ("unique_id", "unique_id_l", "unique_id_r")


class PurgedSourceError(ConfigError):
    """The project file names a source that was purged and has not been re-admitted."""


def _tables_with(store: Store, column: str) -> list[str]:
    rows = store.con.execute(
        "SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema = 'main' "
        "AND column_name = ? ORDER BY 1", [column]).fetchall()
    return [r[0] for r in rows if r[0] not in _KEEP and r[0] not in DERIVED_TABLES]


def purge_source(store: Store, source: str, reason: str) -> dict[str, int]:
    """Erase every row of ``source`` from the store and rewrite the store file; returns rows removed per table
    (dropped derived tables count all their rows).  The audit rows record counts and table names only."""
    if not reason.strip():
        raise ValueError("a purge needs a reason (it is audited)")
    counts: dict[str, int] = {}
    prefix = source + ":"
    with store.stage("purge"):
        for table in _tables_with(store, "source"):
            n = store.con.execute(f'SELECT count(*) FROM "{table}" WHERE source = ?', [source]).fetchone()[0]
            if n:
                store.con.execute(f'DELETE FROM "{table}" WHERE source = ?', [source])
                counts[table] = int(n)
        if not counts:
            raise StoreError(f"no rows of source {source!r} in the store")
        for column in _ID_COLUMNS:
            for table in _tables_with(store, column):
                n = store.con.execute(f'SELECT count(*) FROM "{table}" WHERE starts_with("{column}", ?)',
                                      [prefix]).fetchone()[0]
                if n:
                    store.con.execute(f'DELETE FROM "{table}" WHERE starts_with("{column}", ?)', [prefix])
                    counts[table] = counts.get(table, 0) + int(n)
        for table in _tables_with(store, "person_source"):
            n = store.con.execute(f'SELECT count(*) FROM "{table}" WHERE person_source = ?', [source]).fetchone()[0]
            if n:
                store.con.execute(f'UPDATE "{table}" SET person_source = NULL, person_record_key = NULL '
                                  "WHERE person_source = ?", [source])
                counts[f"{table}.person_ref_cleared"] = int(n)
        dropped = [t for t in DERIVED_TABLES if store.has_table(t)]
        for table in dropped:
            counts[f"{table}.dropped"] = store.count(table)
            store.con.execute(f'DROP TABLE "{table}"')
        # uk_address_matcher's prepared gazetteer kept next to the store (ecins_link.locations.uam_prepared)
        prepared_dropped = _drop_prepared_gazetteer(store)
        store.con.execute(PURGED_DDL)
        store.con.execute("INSERT INTO purged_sources VALUES (?, ?, ?, ?, NULL, NULL)",
                          [source, dt.datetime.now(), store.user, store.run_id])
        store.audit("erasure", "purge_source",
                    {"source": source, "reason_given": True, "derived_tables_dropped": dropped,
                     "prepared_gazetteer_dropped": prepared_dropped,
                     "next": "re-run the pipeline to rebuild the derived tables without this source"}, counts)
    before = store.path.stat().st_size
    store.rewrite_file()
    store.audit("erasure", "store_file_rewritten",
                {"source": source, "why": "no byte of the purged rows may remain in freed blocks"},
                {"bytes_before": before, "bytes_after": store.path.stat().st_size})
    return counts


def _drop_prepared_gazetteer(store: Store) -> bool:
    from ecins_link.locations.uam_prepared import drop

    return drop(store.path)


def purged_sources(store: Store) -> list[str]:
    """Sources purged and not re-admitted."""
    if not store.has_table("purged_sources"):
        return []
    return [r[0] for r in store.con.execute(
        "SELECT DISTINCT source FROM purged_sources WHERE readmitted_at IS NULL ORDER BY 1").fetchall()]


def check_purged(store: Store, config: ProjectConfig) -> None:
    """Before ingest: refuse a purged source the project file still names, unless ``project.readmit_purged``
    lists it (then record and audit the re-admission)."""
    names = {s.name for s in config.sources}
    blocked = [s for s in purged_sources(store) if s in names]
    readmit = [s for s in blocked if s in set(config.project.readmit_purged)]
    refused = sorted(set(blocked) - set(readmit))
    if refused:
        raise PurgedSourceError(
            f"source(s) {refused} were purged from this store; remove them from the project file, or list them "
            "in project.readmit_purged to admit them again (the re-admission is audited)")
    for source in readmit:
        with store.stage("readmit"):
            store.con.execute("UPDATE purged_sources SET readmitted_at = ?, readmitted_by = ? "
                              "WHERE source = ? AND readmitted_at IS NULL", [dt.datetime.now(), store.user, source])
            store.audit("collection", "source_readmitted", {"source": source, "setting": "project.readmit_purged"})
