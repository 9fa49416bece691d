"""Pseudonymised research export (Five Safes: "safe data").

``export_pseudonymised(store, out_dir, key_file)`` writes Parquet files a researcher may hold:

* ``persons.parquet``   pseudo_person_id, dob_year, sex, is_child, n_records, agencies
* ``residences.parquet`` pseudo_person_id, pseudo_location_id, postcode_sector, first_month, last_month
* ``signals.parquet``   pseudo_person_id, pseudo_location_id, pseudo_household_id, postcode_sector, signal,
  category, agency, role, event_month, link_confidence
* ``flags.parquet``     pseudo_entity_id, rule, entity_type, score, rank, agencies, visible_to_single_agency,
  pseudo_person_ids, n_persons, first_month, last_month
* ``manifest.json``     tables, row counts, key fingerprint (an HMAC of a constant: proves which key, not the key)

Person, location and household ids are HMAC-SHA256 keyed hashes (the key file's bytes) with a domain prefix,
so the same key gives the same pseudonyms in every run and different keys give unlinkable ones.  DOB is
reduced to its year, postcodes to their sector, dates to their month; names, phones, emails, free text,
addresses, UPRNs, record keys and rule evidence are never exported.  Hashing is a Python lookup over the
DISTINCT ids only; everything else is DuckDB SQL.

Small-cell suppression (``min_cell``, default 5): a person's ``dob_year`` is withheld (NULL) when fewer than
``min_cell`` exported persons share that (dob_year, sex) cell, and a ``postcode_sector`` is withheld everywhere
when fewer than ``min_cell`` distinct persons are linked to places in it — rare combinations are what
re-identify people in pseudonymised data.  The manifest records the threshold and how many values were withheld.

On top of that (:mod:`ecins_link.export_guard`): only whitelisted columns are written, and the coded ones
(signal, category, agency, role, rule, entity_type) only carry values that look like codes shared by at least
``min_cell`` persons; k-anonymity with k = ``min_cell`` is enforced on the quasi-identifiers a researcher can
assemble by joining the files on the pseudonym (DOB year, sex, child marker, postcode sectors), with the counts
in the manifest (``k_anonymity``); and the key must look random (:func:`~ecins_link.export_guard.check_key`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ecins_link.export_guard import (
    CODED,
    COLUMNS,
    MIN_KEY_BYTES,
    check_key,
    coded,
    enforce_k_anonymity,
    k_report,
)
from ecins_link.store import Store

DEFAULT_MIN_CELL = 5
__all__ = ["MIN_KEY_BYTES", "DEFAULT_MIN_CELL", "export_pseudonymised", "pseudonym"]


def _load_key(key_file: Path) -> bytes:
    key_file = Path(key_file)
    if not key_file.exists():
        raise FileNotFoundError(f"key file not found: {key_file}")
    key = key_file.read_bytes()
    check_key(key, str(key_file))
    return key


def pseudonym(key: bytes, domain: str, value: str) -> str:
    """Keyed-hash pseudonym of ``value`` in ``domain`` (person, location, household): 32 hex chars."""
    return hmac.new(key, f"{domain}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def _id_map(store: Store, key: bytes, domain: str, sql: str) -> pd.DataFrame:
    """(id, pseudo) for the DISTINCT ids returned by ``sql``."""
    ids = [r[0] for r in store.con.execute(f"SELECT DISTINCT id FROM ({sql}) WHERE id IS NOT NULL").fetchall()]
    return pd.DataFrame({"id": pd.array([str(i) for i in ids], dtype="string"),
                         "pseudo": pd.array([pseudonym(key, domain, str(i)) for i in ids], dtype="string")})


def _sector_sql(store: Store) -> str:
    """SQL giving (location_id, postcode_sector) from the gazetteer and the matched address records."""
    parts = ["SELECT NULL::VARCHAR AS location_id, NULL::VARCHAR AS postcode_sector WHERE FALSE"]
    if store.has_table("gazetteer_std"):
        parts.append("SELECT 'U' || uprn, postcode_sector FROM gazetteer_std WHERE postcode_sector IS NOT NULL")
    if store.has_table("address_matches") and store.has_table("address_std"):
        parts.append("SELECT m.location_id, a.postcode_sector FROM address_matches m JOIN address_std a "
                     "USING (source, record_key) WHERE a.postcode_sector IS NOT NULL")
    return (f"SELECT location_id, mode(postcode_sector) AS postcode_sector FROM ({' UNION ALL '.join(parts)}) "
            "GROUP BY location_id")


def _frame(store: Store, sql: str) -> pd.DataFrame:
    return store.con.execute(sql).df()


def _small_sectors(store: Store, min_cell: int) -> set[str]:
    """Postcode sectors (from ``__x_sector_all``) to which fewer than ``min_cell`` distinct persons are linked."""
    links = [f"SELECT person_id, location_id FROM {t}" for t in ("residences", "signals") if store.has_table(t)]
    if not links:
        return set()
    rows = store.con.execute(f"""
        SELECT s.postcode_sector FROM __x_sector_all s
        LEFT JOIN ({' UNION '.join(links)}) x ON x.location_id = s.location_id AND x.person_id IS NOT NULL
        WHERE s.postcode_sector IS NOT NULL
        GROUP BY s.postcode_sector HAVING count(DISTINCT x.person_id) < {int(min_cell)}""").fetchall()
    return {r[0] for r in rows}


def export_pseudonymised(store: Store, out_dir: Path, key_file: Path, min_cell: int = DEFAULT_MIN_CELL) -> dict:
    """Write the pseudonymised research extract to ``out_dir``; returns files, row counts and suppression counts.

    Needs ``person_clusters``; other tables are exported when present.  ``min_cell`` is the small-cell
    threshold (1 disables suppression).  Appends one 'disclosure' audit row (purpose 'research', counts only).
    """
    if not isinstance(min_cell, int) or min_cell < 1:
        raise ValueError(f"min_cell must be a whole number >= 1, got {min_cell!r}")
    store.require("person_clusters", stage="research export")
    key = _load_key(Path(key_file))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    con, has = store.con, store.has_table
    loc_src = ["SELECT location_id AS id FROM address_matches"] if has("address_matches") else []
    if has("signals"):
        loc_src.append("SELECT location_id FROM signals")
    if has("residences"):
        loc_src.append("SELECT location_id FROM residences")
    hh_src = [q for q, t in (("SELECT household_id AS id FROM households", "households"),
                             ("SELECT household_id FROM signals", "signals")) if has(t)]
    maps = {
        "__x_person": _id_map(store, key, "person", "SELECT person_id AS id FROM person_clusters"),
        "__x_loc": _id_map(store, key, "location", " UNION ".join(loc_src) or "SELECT NULL AS id"),
        "__x_hh": _id_map(store, key, "household", " UNION ".join(hh_src) or "SELECT NULL AS id"),
    }
    for name, df in maps.items():
        con.register(name, df)
    sectors = con.execute(_sector_sql(store)).df()
    con.register("__x_sector_all", sectors)
    suppressed: dict[str, int] = {}
    try:
        small = _small_sectors(store, min_cell)
    finally:
        con.unregister("__x_sector_all")
    suppressed["postcode_sectors"] = len(small)
    sectors.loc[sectors["postcode_sector"].isin(small), "postcode_sector"] = None
    con.register("__x_sector", sectors)
    counts: dict[str, int] = {}
    frames: dict[str, pd.DataFrame] = {}
    try:
        if has("person_attributes"):
            persons = _frame(store, f"""
                SELECT a.pseudo AS pseudo_person_id, CASE WHEN a.cell >= {min_cell} THEN year(a.dob) END AS dob_year,
                       a.sex, a.is_child, a.n_records, a.agencies,
                       a.dob IS NOT NULL AND a.cell < {min_cell} AS withheld
                FROM (SELECT a.*, p.pseudo, count(*) OVER (PARTITION BY year(a.dob), a.sex) AS cell
                      FROM person_attributes a JOIN __x_person p ON p.id = a.person_id) a
                ORDER BY 1""")
            suppressed["dob_years"] = int(persons["withheld"].sum())
            frames["persons"] = persons.drop(columns=["withheld"])
        else:
            frames["persons"] = _frame(store, """
                SELECT p.pseudo AS pseudo_person_id, NULL::INT AS dob_year, NULL::VARCHAR AS sex,
                       NULL::BOOLEAN AS is_child, count(*)::INT AS n_records, NULL::VARCHAR[] AS agencies
                FROM person_clusters c JOIN __x_person p ON p.id = c.person_id GROUP BY 1 ORDER BY 1""")
        if has("residences"):
            frames["residences"] = _frame(store, """
                SELECT p.pseudo AS pseudo_person_id, l.pseudo AS pseudo_location_id, s.postcode_sector,
                       strftime(r.first_seen, '%Y-%m') AS first_month, strftime(r.last_seen, '%Y-%m') AS last_month
                FROM residences r JOIN __x_person p ON p.id = r.person_id
                LEFT JOIN __x_loc l ON l.id = r.location_id LEFT JOIN __x_sector s ON s.location_id = r.location_id
                ORDER BY 1, 2""")
        if has("signals"):
            frames["signals"] = _frame(store, """
                SELECT p.pseudo AS pseudo_person_id, l.pseudo AS pseudo_location_id, h.pseudo AS pseudo_household_id,
                       sec.postcode_sector, s.signal, s.category, s.agency, s.role,
                       strftime(s.event_date, '%Y-%m') AS event_month, s.link_confidence
                FROM signals s LEFT JOIN __x_person p ON p.id = s.person_id
                LEFT JOIN __x_loc l ON l.id = s.location_id LEFT JOIN __x_hh h ON h.id = s.household_id
                LEFT JOIN __x_sector sec ON sec.location_id = s.location_id
                ORDER BY event_month, s.agency, s.signal, 1""")
        if has("flags"):
            frames["flags"] = _frame(store, """
                SELECT coalesce(p.pseudo, l.pseudo, h.pseudo) AS pseudo_entity_id, f.rule, f.entity_type, f.score,
                       f.rank, f.agencies, f.visible_to_single_agency,
                       (SELECT list(x.pseudo ORDER BY x.pseudo) FROM __x_person x
                         WHERE list_contains(f.person_ids, x.id)) AS pseudo_person_ids,
                       len(f.person_ids) AS n_persons, strftime(f.first_date, '%Y-%m') AS first_month,
                       strftime(f.last_date, '%Y-%m') AS last_month
                FROM flags f LEFT JOIN __x_person p ON f.entity_type = 'person' AND p.id = f.entity_id
                LEFT JOIN __x_loc l ON f.entity_type = 'location' AND l.id = f.entity_id
                LEFT JOIN __x_hh h ON f.entity_type = 'household' AND h.id = f.entity_id
                ORDER BY f.rank""")
    finally:
        for name in [*maps, "__x_sector"]:
            con.unregister(name)
    guard = _guard(frames, min_cell)
    for name, frame in frames.items():
        pq.write_table(pa.Table.from_pandas(frame[COLUMNS[name]], preserve_index=False), out / f"{name}.parquet")
        counts[name] = len(frame)
    fingerprint = hmac.new(key, b"ecins-link key fingerprint", hashlib.sha256).hexdigest()[:12]
    manifest = {"tables": {k: f"{k}.parquet" for k in counts}, "row_counts": counts, "key_fingerprint": fingerprint,
                "pseudonyms": "HMAC-SHA256(key, '<domain>:<id>')[:32 hex]", "dob": "year only",
                "postcode": "sector only", "dates": "month only",
                "small_cell_suppression": {"min_cell": min_cell, "withheld": suppressed},
                "columns": {k: COLUMNS[k] for k in counts}, "coded_values_withheld": guard["coded_values_withheld"],
                "k_anonymity": guard["k_anonymity"]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    store.audit("disclosure", "research_export",
                {"out_dir": str(out), "tables": sorted(counts), "key_fingerprint": fingerprint,
                 "min_cell": min_cell, "withheld": suppressed, "k_anonymity": guard["k_anonymity"]}, counts,
                purpose="research")
    return {"out_dir": out, "files": {k: out / f"{k}.parquet" for k in counts} | {"manifest": out / "manifest.json"},
            "counts": counts, "key_fingerprint": fingerprint, "withheld": suppressed,
            "k_anonymity": guard["k_anonymity"]}


def _guard(frames: dict[str, pd.DataFrame], k: int) -> dict:
    """Whitelist and code-check the columns, then enforce k-anonymity across the files (frames changed in place)."""
    withheld: dict[str, int] = {}
    for name, frame in frames.items():
        extra = sorted(set(frame.columns) - set(COLUMNS[name]))
        if extra:
            raise RuntimeError(f"research export: column(s) {extra} of {name} are not on the whitelist")
        owner = frame["pseudo_person_id"] if "pseudo_person_id" in frame else frame["pseudo_entity_id"]
        for col in CODED.get(name, []):
            frame[col], n = coded(frame[col], owner, k)
            withheld[f"{name}.{col}"] = n
    report = enforce_k_anonymity(frames, k)
    report.update(checked=k_report(frames))
    return {"coded_values_withheld": withheld, "k_anonymity": report}
