"""Person references of event rows, resolved against the referenced source's *reference index*.

A ``person_ref`` names columns of this source and the referenced source's columns they hold (``on``; by
default its key).  The referenced source, ingested first, hands over an index of its accepted rows and of
its rows quarantined as ``duplicate_key_conflict``: record key, ``resident_from``/``resident_to`` and the
text of every column some reference names.  Each event row's reference then ends one of four ways:

- one accepted record matches (or, of several, exactly one is in force on the event date): resolved;
- several match and the date does not decide: kept with no person, field issue ``ambiguous_reference``;
- only rows of a duplicate-key conflict match: kept, tied to the conflicting key, field issue
  ``reference_to_conflict`` (the evidence stays until the conflict is fixed in the extract);
- nothing matches: quarantined as ``orphan_reference``.

Nothing is dropped, so rows read = rows accepted + rows quarantined still holds.
"""

from __future__ import annotations

import pyarrow as pa

from ecins_link.config import ProjectConfig, Source
from ecins_link.ingest.sql import DUP, KEY, PKEY, PSRC, REASON, ROW, dcol, lit, q, val
from ecins_link.store import Store

R = "_ingest_rows"
INDEX = "_ingest_ref"  # the referenced source's index, created on the connection by the caller
_ROW, _KEY, _REASON, _DUP, _PSRC, _PKEY = (q(c) for c in (ROW, KEY, REASON, DUP, PSRC, PKEY))


def index_columns(config: ProjectConfig, target: str) -> list[str]:
    """The columns of source ``target`` that other sources' ``person_ref`` name (their ``on``, else its key)."""
    key = config.source(target).key
    cols: list[str] = []
    for s in config.sources:
        ref = s.event.person_ref if s.event else None
        if ref and ref.source == target and s.name != target:
            cols += ref.on_columns or key
    return list(dict.fromkeys(cols))


def _index_ddl(n: int) -> str:
    return ("record_key VARCHAR, valid_from DATE, valid_to DATE, conflict BOOLEAN"
            + "".join(f", c{i} VARCHAR" for i in range(n)))


def reference_index(store: Store, src: Source, columns: list[str]) -> pa.Table:
    """The index of ``src``'s rows others may refer to (call after its rows' fates are set, before they are
    removed): accepted rows (identical duplicates once) and rows of duplicate-key conflicts.  A named column
    missing from the file indexes as NULL (every reference to it is then an orphan, and ``check`` says why)."""
    have = {r[0] for r in store.con.execute(f"DESCRIBE {R}").fetchall()}
    p = src.person
    vf = f"CAST({dcol(p.resident_from)} AS DATE)" if p and p.resident_from else "CAST(NULL AS DATE)"
    vt = f"CAST({dcol(p.resident_to)} AS DATE)" if p and p.resident_to else "CAST(NULL AS DATE)"
    cols = "".join(f", {val(c) if c in have else 'CAST(NULL AS VARCHAR)'} AS c{i}" for i, c in enumerate(columns))
    return store.con.execute(f"""SELECT {_KEY} AS record_key, {vf} AS valid_from, {vt} AS valid_to,
        {_REASON} IS NOT NULL AS conflict {cols} FROM {R}
        WHERE {_KEY} IS NOT NULL AND (({_REASON} IS NULL AND NOT {_DUP})
              OR starts_with({_REASON}, 'duplicate_key_conflict'))""").to_arrow_table()


def _both_present(parts: list[str]) -> str:
    return f"CASE WHEN {' AND '.join(p + ' IS NOT NULL' for p in parts)} THEN concat_ws('|', {', '.join(parts)}) END"


def resolve_references(store: Store, config: ProjectConfig, src: Source) -> None:
    """Give every still-accepted row of ``src`` its referenced person (working columns ``PSRC``/``PKEY``),
    a field issue, or the ``orphan_reference`` quarantine reason (see the module docstring)."""
    ref = src.event.person_ref if src.event else None
    if ref is None or ref.source == src.name:
        return
    con = store.con
    idx_cols = index_columns(config, ref.source)
    on = ref.on_columns or config.source(ref.source).key
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [INDEX]).fetchone()[0]
    if not exists:  # the referenced source holds no persons or could not be read: every reference is an orphan
        con.execute(f"CREATE TEMP TABLE {INDEX} ({_index_ddl(len(idx_cols))})")
    row_ref = _both_present([val(c) for c in ref.columns])
    idx_ref = _both_present([f"c{idx_cols.index(c)}" for c in on])
    target, field = lit(ref.source), lit(", ".join(ref.columns))
    con.execute(f"ALTER TABLE {R} ADD COLUMN {_PSRC} VARCHAR")
    con.execute(f"ALTER TABLE {R} ADD COLUMN {_PKEY} VARCHAR")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _ingest_cand AS
        WITH x AS (SELECT {_ROW} AS r, {row_ref} AS k, CAST({dcol(src.event.date)} AS DATE) AS d FROM {R}
                   WHERE {_REASON} IS NULL),
        i AS (SELECT DISTINCT {idx_ref} AS k, record_key, conflict, valid_from, valid_to FROM {INDEX}),
        c AS (SELECT x.r, i.record_key, i.conflict,
                     coalesce(i.valid_from <= x.d, TRUE) AND coalesce(x.d <= i.valid_to, TRUE) AS in_force
              FROM x JOIN i ON i.k = x.k),
        ranked AS (SELECT *, rank() OVER (PARTITION BY r ORDER BY in_force DESC) AS rk,
                          count(*) OVER (PARTITION BY r) AS n_all FROM c WHERE NOT conflict)
        SELECT r, count(*) AS n_top, min(record_key) AS record_key, FALSE AS conflict, max(n_all) AS n_all
        FROM ranked WHERE rk = 1 GROUP BY r
        UNION ALL
        SELECT r, count(*), min(record_key), TRUE, 0 FROM c
        WHERE conflict AND r NOT IN (SELECT r FROM c WHERE NOT conflict) GROUP BY r""")
    con.execute(f"""UPDATE {R} SET {_PSRC} = {target}, {_PKEY} = c.record_key FROM _ingest_cand c
        WHERE {_ROW} = c.r AND (c.n_top = 1 OR c.conflict)""")
    con.execute(f"""INSERT INTO field_issues SELECT {lit(src.name)}, c.r, x.{_KEY}, {field},
        CASE WHEN c.conflict THEN 'reference_to_conflict: ' || c.record_key || ' of ' || {target}
                  || ' is quarantined as a duplicate_key_conflict; the row is kept and tied to that key'
             ELSE 'ambiguous_reference: ' || c.n_all || ' records of ' || {target}
                  || ' match and the event date does not decide; kept with no person' END
        FROM _ingest_cand c JOIN {R} x ON x.{_ROW} = c.r WHERE c.conflict OR c.n_top > 1""")
    con.execute(f"""UPDATE {R} SET {_REASON} = 'orphan_reference: no accepted ' || {target} || ' record ' || {row_ref}
        WHERE {_REASON} IS NULL AND {row_ref} IS NOT NULL
          AND {_ROW} NOT IN (SELECT r FROM _ingest_cand)""")
    con.execute("DROP TABLE _ingest_cand")
