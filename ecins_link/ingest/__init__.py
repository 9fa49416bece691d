"""Ingest stage: each agency's extract -> accounting, quarantine, field_issues and the record tables.

Entry point :func:`ingest` (contract in ``docs/contracts.md``).  Nothing is dropped silently: every data row
is accepted (possibly with an optional field nulled and a ``field_issues`` row), collapsed as an identical
duplicate (counted), or quarantined with a reason code.  A file that cannot be read at all (missing,
empty, undecodable container, mapped column absent) is one ``unreadable_file`` quarantine entry with
``row_number`` 0 and an accounting row of zeros; the other sources still ingest.  The audit row carries
per-source counts and wall seconds (no personal data).

Sources are ingested side by side: each one is read and checked on its own in-memory DuckDB connection
(most extracts are smaller than one DuckDB row group, so one source's SQL keeps one core busy), and its
finished rows are appended to the store inside the stage's transaction in an order fixed by the files and
the project file (biggest chain of work first), so the tables are the same whichever source finishes first.
A source whose events refer to another source's persons waits for that source and checks its references
against that source's accepted records (``ingest(..., workers=1)`` does one source at a time).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import pyarrow as pa

from ecins_link.config import ProjectConfig, Source
from ecins_link.ingest.refs import INDEX, index_columns
from ecins_link.ingest.source import file_level_problem, ingest_source
from ecins_link.store import Store

_TABLES = {
    "accounting": "source VARCHAR, agency VARCHAR, rows_read BIGINT, rows_accepted BIGINT, rows_quarantined BIGINT, "
                  "duplicates_collapsed BIGINT",
    "quarantine": "source VARCHAR, row_number BIGINT, record_key VARCHAR, reason VARCHAR, raw VARCHAR",
    "field_issues": "source VARCHAR, row_number BIGINT, record_key VARCHAR, field VARCHAR, problem VARCHAR",
    "person_records": "source VARCHAR, agency VARCHAR, record_key VARCHAR, row_number BIGINT, title VARCHAR, "
                      "forenames VARCHAR, surname VARCHAR, full_name VARCHAR, dob DATE, dob_raw VARCHAR, sex VARCHAR, "
                      "address_text VARCHAR, postcode VARCHAR, uprn VARCHAR, phone VARCHAR, email VARCHAR, "
                      "resident_from DATE, resident_to DATE, unsafe BOOLEAN, extras MAP(VARCHAR, VARCHAR)",
    "event_records": "source VARCHAR, agency VARCHAR, record_key VARCHAR, event_seq INT, signal VARCHAR, raw_code VARCHAR, "
                     "role VARCHAR, event_date DATE, event_ts TIMESTAMP, location_text VARCHAR, "
                     "location_postcode VARCHAR, person_source VARCHAR, person_record_key VARCHAR",
    "address_records": "source VARCHAR, agency VARCHAR, record_key VARCHAR, origin VARCHAR, address_text VARCHAR, "
                       "postcode VARCHAR, uprn VARCHAR",
    "gazetteer": "uprn VARCHAR, sub_building VARCHAR, number VARCHAR, building_name VARCHAR, organisation VARCHAR, "
                 "street VARCHAR, locality VARCHAR, town VARCHAR, postcode VARCHAR, parent_uprn VARCHAR, "
                 "classification VARCHAR, x VARCHAR, y VARCHAR",  # ecins_link/ingest/gazetteer.py
}

_ORDER = {"gazetteer": 0, "person": 1, "person_event": 2, "event": 3}
THREADS = 1  # DuckDB threads per source (most extracts are one row group: more would idle)
_UNZIPPED = {"xlsx": 10, "parquet": 4}  # a file's bytes -> about its text's, for scheduling only
WORKERS = 2  # sources in flight at once (each on its own connection; DuckDB and Arrow release the GIL)


def ingest(store: Store, config: ProjectConfig, workers: int = WORKERS) -> None:
    """Read every source of the project into the ingest tables (one transaction, one audit row)."""
    with store.stage("ingest"):
        for name, cols in _TABLES.items():
            store.con.execute(f'CREATE OR REPLACE TABLE "{name}" ({cols})')
        # persons before events, so that person references are checked against accepted persons
        ordered = sorted(config.sources, key=lambda s: _ORDER[s.kind])
        seconds: dict[str, float] = {}
        for src, (tables, secs) in _ingest_side_by_side(store, config, ordered, workers):
            seconds[src.name] = secs
            for name, rows in tables.items():
                _append(store, name, rows)
        acc = store.df("SELECT * FROM accounting ORDER BY source")
        counts = {n: store.count(n) for n in _TABLES}
        per_source = {r.source: {"read": int(r.rows_read), "accepted": int(r.rows_accepted),
                                 "quarantined": int(r.rows_quarantined), "duplicates": int(r.duplicates_collapsed)}
                      for r in acc.itertuples()}
        store.audit("collection", "ingest", {"sources": per_source, "seconds": seconds}, counts)


def _ingest_side_by_side(store: Store, config: ProjectConfig, ordered: list[Source],
                         workers: int) -> Iterator[tuple[Source, tuple[dict[str, pa.Table], float]]]:
    """Yield ``(source, (its rows per table, seconds))`` for every source while up to ``workers`` sources are
    ingested at once.  A source starts once the sources it refers to are done; among those ready, the one
    heading the longest chain of (estimated) text bytes goes first, since the big extracts set the stage's
    length.  Sources are yielded in that priority order, fixed by the files and the project file alone, so
    the stage's tables come out the same on every run."""
    workers = max(1, workers)
    with_persons = {s.name for s in ordered if s.person}  # a reference to any other source finds no one
    deps = {s.name: [d for d in _references(s) if d in with_persons] for s in ordered}
    chain: dict[str, int] = {}
    for src in reversed(ordered):  # dependents come later in `ordered` (events after the persons they name)
        after = [chain.get(o.name, 0) for o in ordered if src.name in deps[o.name]]
        chain[src.name] = _file_bytes(config, src) + max(after, default=0)
    waiting = sorted(ordered, key=lambda s: -chain[s.name])  # stable: ties keep the project file's order
    running: dict = {}
    done: dict[str, tuple[dict[str, pa.Table], float]] = {}  # finished, not yet yielded
    needed = {d for ds in deps.values() for d in ds}
    people: dict[str, pa.Table | None] = {}  # reference index of the sources others refer to (ingest.refs)
    with ThreadPoolExecutor(workers) as pool:
        try:
            for src in list(waiting):  # yielded in this (fixed) order, close to the order they finish
                while True:  # keep the workers busy, also while the caller appends what is done
                    ready = [w for w in waiting if all(d in people for d in deps[w.name])]
                    if not ready and not running and waiting:
                        ready = waiting[:1]  # sources referring to each other: the first goes without the other
                    for nxt in ready[:workers - len(running)]:
                        waiting.remove(nxt)
                        refs = [people[d] for d in deps[nxt.name] if people.get(d) is not None]
                        index = index_columns(config, nxt.name) if nxt.name in needed else None
                        running[pool.submit(_ingest_alone, store, config, nxt, refs, index)] = nxt.name
                    if src.name in done:
                        break
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for job in finished:
                        name = running.pop(job)
                        tables, secs, index = job.result()
                        done[name] = (tables, secs)
                        if name in needed:
                            people[name] = index  # None: unreadable, every reference to it is an orphan
                yield src, done.pop(src.name)
        finally:
            for job in running:
                job.cancel()


def _file_bytes(config: ProjectConfig, src: Source) -> int:
    """Rough size of the source's text: file bytes, times a typical compression ratio for zipped formats."""
    try:
        return config.path_of(src.path).stat().st_size * _UNZIPPED.get(src.format, 1)
    except Exception:  # noqa: BLE001 - missing, unreadable or not allowed: ingest says which
        return 0


def _references(src: Source) -> list[str]:
    """Other sources whose accepted person records this source's events refer to."""
    ref = src.event.person_ref if src.event else None
    return [ref.source] if ref and ref.source != src.name else []


def _ingest_alone(store: Store, config: ProjectConfig, src: Source, referenced: list[pa.Table],
                  index_cols: list[str] | None = None) -> tuple[dict[str, pa.Table], float, pa.Table | None]:
    """Ingest ``src`` on a private in-memory connection; its rows of every ingest table, wall seconds and
    (when ``index_cols``) its reference index for the sources referring to it.

    ``referenced``: the reference index of the source its events refer to (:mod:`ecins_link.ingest.refs`).
    An unexpected failure is no crash: the source's rows are dropped and it becomes one ``unreadable_file``
    entry naming the file and the error (the run then stops unless partial runs are allowed).
    """
    started = time.perf_counter()
    mem = store.open_scratch()
    index = None
    try:
        mem.execute(f"SET threads = {THREADS}")
        for name, cols in _TABLES.items():
            mem.execute(f'CREATE TABLE "{name}" ({cols})')
        for keys in referenced:
            mem.register("_ingest_ref_in", keys)
            mem.execute(f"CREATE TEMP TABLE {INDEX} AS SELECT * FROM _ingest_ref_in")
            mem.unregister("_ingest_ref_in")
        alone = copy.copy(store)
        alone.con = mem
        try:
            index = ingest_source(alone, config, src, index_cols)
        except Exception as err:  # noqa: BLE001 - one source's surprise must not take the run down silently
            for name in _TABLES:
                if name != "gazetteer":
                    mem.execute(f'DELETE FROM "{name}" WHERE source = ?', [src.name])
            mem.execute("DELETE FROM gazetteer")
            index = None
            detail = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
            file_level_problem(alone, src, f"could not be ingested ({type(err).__name__}: {detail}) "
                                           f"reading {src.path}")
        where = {"gazetteer": ""}
        out = {name: mem.execute(f'SELECT * FROM "{name}" {where.get(name, "WHERE source = ?")}',
                                 [] if name in where else [src.name]).to_arrow_table() for name in _TABLES}
    finally:
        mem.close()
    return out, round(time.perf_counter() - started, 3), index


def _append(store: Store, name: str, rows: pa.Table) -> None:
    if rows.num_rows == 0:
        return
    store.con.register("_ingest_out", rows)
    try:
        store.con.execute(f'INSERT INTO "{name}" SELECT * FROM _ingest_out')
    finally:
        store.con.unregister("_ingest_out")
