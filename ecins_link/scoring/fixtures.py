"""Build the score stage's input tables directly (tests, benchmarks, demos without the upstream stages).

A :class:`World` collects linked persons, their agency records, residences/households, events and
co-involvements, then writes the contract tables (person_clusters, person_attributes, event_records,
address_matches, residences, households, location_churn, graph_edges, person_components) to a store.
Dates may be given as ``datetime.date`` or as days before the as-of date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from ecins_link.store import Store

DDL = {
    "person_clusters": "unique_id VARCHAR, source VARCHAR, record_key VARCHAR, person_id VARCHAR, "
                       "cluster_confidence DOUBLE",
    "person_attributes": "person_id VARCHAR, display_name VARCHAR, dob DATE, age INT, is_child BOOLEAN, "
                         "sex VARCHAR, n_records INT, agencies VARCHAR[]",
    "event_records": "source VARCHAR, agency VARCHAR, record_key VARCHAR, event_seq INT, signal VARCHAR, "
                     "raw_code VARCHAR, role VARCHAR, event_date DATE, event_ts TIMESTAMP, location_text VARCHAR, "
                     "location_postcode VARCHAR, person_source VARCHAR, person_record_key VARCHAR",
    "address_matches": "source VARCHAR, record_key VARCHAR, uprn VARCHAR, location_id VARCHAR, "
                       "match_confidence DOUBLE, match_method VARCHAR",
    "residences": "person_id VARCHAR, location_id VARCHAR, uprn VARCHAR, first_seen DATE, last_seen DATE, "
                  "n_records INT, from_recorded DATE",
    "households": "household_id VARCHAR, location_id VARCHAR, uprn VARCHAR, person_id VARCHAR, is_child BOOLEAN, "
                  "first_seen DATE, last_seen DATE",
    "location_churn": "location_id VARCHAR, window_start DATE, window_end DATE, distinct_persons INT, "
                      "unrelated_persons INT",
    "graph_edges": "src VARCHAR, dst VARCHAR, edge_type VARCHAR, role VARCHAR, start_date DATE, end_date DATE, "
                   "weight DOUBLE, source VARCHAR, record_key VARCHAR",
    "person_components": "person_id VARCHAR, component_id VARCHAR",
}

Day = dt.date | int


@dataclass
class World:
    """A small linked partnership world, written as the score stage's input tables."""

    as_of: dt.date
    rows: dict[str, list[tuple]] = field(default_factory=lambda: {k: [] for k in DDL})
    _records: dict[tuple[str, str], str] = field(default_factory=dict)
    _ages: dict[str, int | None] = field(default_factory=dict)
    _confidence: dict[str, float] = field(default_factory=dict)
    _seq: int = 0

    def day(self, d: Day | None) -> dt.date | None:
        """A date from a date or a number of days before as-of."""
        if d is None or isinstance(d, dt.date):
            return d
        return self.as_of - dt.timedelta(days=int(d))

    def person(self, person_id: str, age: int | None, name: str = "", confidence: float = 1.0,
               records: list[tuple[str, str]] | None = None, dob: dt.date | None = None) -> str:
        """A linked person with an age at as-of (None = unknown) and optional (source, record_key) records;
        ``dob`` gives the exact date of birth (then ``age`` is taken from it)."""
        if dob is not None:
            age = self.as_of.year - dob.year - ((self.as_of.month, self.as_of.day) < (dob.month, dob.day))
        else:
            dob = None if age is None else dt.date(self.as_of.year - age, 1, 1)
        self._ages[person_id] = age
        self._confidence[person_id] = confidence
        self.rows["person_attributes"].append(
            (person_id, name or person_id, dob, age, None if age is None else age < 18, None, 0, []))
        for source, key in records or []:
            self.record(person_id, source, key, confidence)
        return person_id

    def record(self, person_id: str, source: str, key: str, confidence: float | None = None) -> tuple[str, str]:
        """A person record (source, record_key) clustered into ``person_id``."""
        if confidence is None:
            confidence = self._confidence.get(person_id, 1.0)
        if (source, key) not in self._records:
            self._records[(source, key)] = person_id
            self.rows["person_clusters"].append((f"{source}:{key}", source, key, person_id, confidence))
        return source, key

    def live(self, person_id: str, location_id: str, household_id: str | None = None,
             first_seen: Day | None = 800, last_seen: Day | None = 0, start_recorded: bool = True) -> None:
        """The person resides at a location (and is a member of its household); ``start_recorded=False``: the
        first sighting is an agency contact, not a recorded start (``from_recorded`` NULL)."""
        uprn = location_id[1:] if location_id.startswith("U") else None
        fs, ls = self.day(first_seen), self.day(last_seen)
        self.rows["residences"].append((person_id, location_id, uprn, fs, ls, 1, fs if start_recorded else None))
        age = self._ages.get(person_id)
        self.rows["households"].append((household_id or f"H{location_id}", location_id, uprn, person_id,
                                        None if age is None else age < 18, fs, ls))

    def event(self, agency: str, signal: str | None, when: Day, person: str | None = None,
              location_id: str | None = None, role: str | None = None, source: str | None = None,
              record_key: str | None = None, person_record: tuple[str, str] | None = None) -> str:
        """An agency event row producing ``signal`` about ``person`` and/or at ``location_id``."""
        self._seq += 1
        source = source or f"{agency}_events"
        key = record_key or f"E{self._seq:06d}"
        ref = person_record
        if person is not None and ref is None:
            ref = self.record(person, f"{agency}_people", f"{person}-{agency}")
        self.rows["event_records"].append(
            (source, agency, key, 1, signal, signal, role, self.day(when), None, None, None,
             ref[0] if ref else None, ref[1] if ref else None))
        if location_id:
            uprn = location_id[1:] if location_id.startswith("U") else None
            self.rows["address_matches"].append((source, key, uprn, location_id, 1.0, "exact_key"))
        return key

    def co_involved(self, p: str, q: str, when: Day) -> None:
        """Two persons named in one event."""
        d = self.day(when)
        self.rows["graph_edges"].append((p, q, "co_involved", None, d, d, 1.0, None, None))

    def component(self, person_id: str, component_id: str) -> None:
        """The person belongs to a connected cluster (person_components)."""
        self.rows["person_components"].append((person_id, component_id))

    def churn(self, location_id: str, unrelated: int, window_days: int = 90) -> None:
        """A location_churn row for the window ending at as-of."""
        self.rows["location_churn"].append(
            (location_id, self.as_of - dt.timedelta(days=window_days), self.as_of, unrelated, unrelated))

    def write(self, store: Store) -> None:
        """Create every input table (empty ones too) in ``store``."""
        for name, ddl in DDL.items():
            store.con.execute(f'CREATE OR REPLACE TABLE "{name}" ({ddl})')
            rows = self.rows[name]
            if rows:
                cols = [c.strip().split(" ")[0] for c in ddl.split(", ")]
                df = pd.DataFrame(rows, columns=cols)
                store.con.register("__world", df)
                try:
                    store.con.execute(f'INSERT INTO "{name}" SELECT * FROM __world')
                finally:
                    store.con.unregister("__world")
