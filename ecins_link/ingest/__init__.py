"""Ingest stage: each agency's extract -> accounting, quarantine, field_issues and the record tables.

Entry point :func:`ingest` (contract in ``docs/contracts.md``).  Nothing is dropped silently: every data row
is accepted (possibly with an optional field nulled and a ``field_issues`` row), collapsed as an identical
duplicate (counted), or quarantined with a reason code.  A file that cannot be read at all (missing,
empty, undecodable container, mapped column absent) is one ``unreadable_file`` quarantine entry with
``row_number`` 0 and an accounting row of zeros; the other sources still ingest.  The audit row carries
per-source counts and wall seconds (no personal data).
"""

from __future__ import annotations

import time

from ecins_link.config import ProjectConfig
from ecins_link.ingest.source import ingest_source
from ecins_link.store import Store

_TABLES = {
    "accounting": "source VARCHAR, agency VARCHAR, rows_read BIGINT, rows_accepted BIGINT, rows_quarantined BIGINT, "
                  "duplicates_collapsed BIGINT",
    "quarantine": "source VARCHAR, row_number BIGINT, record_key VARCHAR, reason VARCHAR, raw VARCHAR",
    "field_issues": "source VARCHAR, row_number BIGINT, record_key VARCHAR, field VARCHAR, problem VARCHAR",
    "person_records": "source VARCHAR, agency VARCHAR, record_key VARCHAR, row_number BIGINT, title VARCHAR, "
                      "forenames VARCHAR, surname VARCHAR, full_name VARCHAR, dob DATE, dob_raw VARCHAR, sex VARCHAR, "
                      "address_text VARCHAR, postcode VARCHAR, uprn VARCHAR, phone VARCHAR, email VARCHAR, "
                      "resident_from DATE, resident_to DATE, unsafe BOOLEAN",
    "event_records": "source VARCHAR, agency VARCHAR, record_key VARCHAR, event_seq INT, signal VARCHAR, raw_code VARCHAR, "
                     "role VARCHAR, event_date DATE, event_ts TIMESTAMP, location_text VARCHAR, "
                     "location_postcode VARCHAR, person_source VARCHAR, person_record_key VARCHAR",
    "address_records": "source VARCHAR, agency VARCHAR, record_key VARCHAR, origin VARCHAR, address_text VARCHAR, "
                       "postcode VARCHAR, uprn VARCHAR",
    "gazetteer": "uprn VARCHAR, sub_building VARCHAR, number VARCHAR, building_name VARCHAR, organisation VARCHAR, "
                 "street VARCHAR, locality VARCHAR, town VARCHAR, postcode VARCHAR",
}

_ORDER = {"gazetteer": 0, "person": 1, "person_event": 2, "event": 3}


def ingest(store: Store, config: ProjectConfig) -> None:
    """Read every source of the project into the ingest tables (one transaction, one audit row)."""
    with store.stage("ingest"):
        for name, cols in _TABLES.items():
            store.con.execute(f'CREATE OR REPLACE TABLE "{name}" ({cols})')
        # persons before events so that person references can be checked against accepted persons
        seconds: dict[str, float] = {}
        for src in sorted(config.sources, key=lambda s: _ORDER[s.kind]):
            started = time.perf_counter()
            ingest_source(store, config, src)
            seconds[src.name] = round(time.perf_counter() - started, 3)
        store.con.execute("DROP TABLE IF EXISTS _ingest_rows")
        acc = store.df("SELECT * FROM accounting ORDER BY source")
        counts = {n: store.count(n) for n in _TABLES}
        per_source = {r.source: {"read": int(r.rows_read), "accepted": int(r.rows_accepted),
                                 "quarantined": int(r.rows_quarantined), "duplicates": int(r.duplicates_collapsed)}
                      for r in acc.itertuples()}
        store.audit("collection", "ingest", {"sources": per_source, "seconds": seconds}, counts)
