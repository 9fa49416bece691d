"""Erasure: remove one source's records from the store (DPA 2018 s62 'erasure', audited)."""

from __future__ import annotations

from ecins_link.store import Store, StoreError


def purge_source(store: Store, source: str, reason: str) -> dict[str, int]:
    """Delete every row of ``source`` from every store table that carries a ``source`` column.

    Person pairs naming the source's records go too. Re-run the pipeline afterwards to rebuild the graph,
    scores and outputs without it. Returns rows deleted per table; the audit row records counts only.
    """
    if not reason.strip():
        raise ValueError("a purge needs a reason (it is audited)")
    tables = [r[0] for r in store.con.execute(
        "SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema = 'main' "
        "AND column_name = 'source' AND table_name NOT IN ('audit_log')").fetchall()]
    counts: dict[str, int] = {}
    with store.stage("purge"):
        for table in sorted(tables):
            n = store.con.execute(f'SELECT count(*) FROM "{table}" WHERE source = ?', [source]).fetchone()[0]
            if n:
                store.con.execute(f'DELETE FROM "{table}" WHERE source = ?', [source])
                counts[table] = int(n)
        if store.has_table("person_pairs"):
            prefix = source + ":"
            n = store.con.execute(
                "SELECT count(*) FROM person_pairs WHERE starts_with(unique_id_l, ?) OR starts_with(unique_id_r, ?)",
                [prefix, prefix]).fetchone()[0]
            if n:
                store.con.execute(
                    "DELETE FROM person_pairs WHERE starts_with(unique_id_l, ?) OR starts_with(unique_id_r, ?)",
                    [prefix, prefix])
                counts["person_pairs"] = int(n)
        if not counts:
            raise StoreError(f"no rows of source {source!r} in the store")
        store.audit("erasure", "purge_source", {"source": source, "reason_given": True}, counts)
    return counts
