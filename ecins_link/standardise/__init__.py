"""Standardise stage: person_records / address_records / gazetteer -> person_std, address_std, gazetteer_std.

Entry point :func:`standardise` (contract in ``docs/contracts.md``).  Set-based: Python parses each DISTINCT
name string once (accent folding, titles, suffixes, double metaphone) and the nickname table is joined in
SQL; addresses and the gazetteer go through the set-based :func:`~.address_sql.address_table` /
:func:`~.address_sql.gazetteer_table`; DuckDB joins everything back to the records and does the rest
(dates, postcodes, phones, e-mails).  :func:`address_frame` / :func:`gazetteer_frame` are the one-text-at-a-time
reference versions (kept for benchmarks and tests).
"""

from __future__ import annotations

import time

import pandas as pd
import pyarrow as pa

from ecins_link.config import ProjectConfig
from ecins_link.standardise.address import clean_part, expand_street, normalise_flat, parse_address
from ecins_link.standardise.address_sql import address_table, gazetteer_table
from ecins_link.standardise.fields import (
    email_sql,
    extra_columns,
    identifier_sql,
    phone_any_sql,
    phone_sql,
    postcode_any_sql,
    postcode_sql,
    year_from_text_sql,
)
from ecins_link.standardise.names import (
    forename_frame,
    household_max_surnames,
    nickname_table,
    sex_values,
    surname_frame,
    surname_variant_table,
)
from ecins_link.store import Store

ADDR_COLS = ["raw", "norm", "flat", "number", "building", "street", "town", "postcode"]


def address_frame(values: list[str]) -> pd.DataFrame:
    """One row per distinct address text with its normalised text and parts."""
    rows = []
    for v in values:
        a = parse_address(v)
        rows.append((v, a.norm, a.flat, a.number, a.building, a.street, a.town, a.postcode))
    return pd.DataFrame(rows, columns=ADDR_COLS, dtype=object)


def gazetteer_frame(rows: list[tuple]) -> pd.DataFrame:
    """Gazetteer rows -> parts normalised like agency addresses; ``address_norm`` from the same parser."""
    out = []
    for uprn, sao, number, building, org, street, locality, town, postcode in rows:
        num_street = " ".join(x for x in (number, street) if x)
        name = org if org and not (number or building) else None
        text = ", ".join(x for x in (sao, name, building, num_street, locality, town) if x)
        a = parse_address(text)
        full = ", ".join(x for x in (sao, org, building, num_street, locality, town, postcode) if x)
        out.append((uprn, a.norm, normalise_flat(sao) if sao else a.flat, clean_part(number) or a.number,
                    clean_part(building), clean_part(org), expand_street(street) or a.street, clean_part(locality),
                    clean_part(town) or a.town, postcode, full))
    cols = ["uprn", "address_norm", "flat", "number", "building", "organisation", "street", "locality", "town",
            "postcode_raw", "full_address"]
    return pd.DataFrame(out, columns=cols, dtype=object)


def _distinct(store: Store, sql: str) -> list:
    return [r[0] for r in store.con.execute(sql).fetchall()]


def _register(store: Store, name: str, df: pd.DataFrame) -> None:
    """A temp table of text columns from a frame (all-NULL columns stay VARCHAR)."""
    arrow_frame = pa.table({c: pa.array(df[c].tolist(), pa.string()) for c in df.columns})
    store.con.register("_std_frame_in", arrow_frame)
    try:
        store.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _std_frame_in")
    finally:
        store.con.unregister("_std_frame_in")


def _pc_parts(pc: str) -> str:
    return f"{pc} AS postcode, split_part({pc}, ' ', 1) AS postcode_outward, left({pc}, length({pc}) - 2) AS postcode_sector"


def _timed(timings: dict[str, float], name: str, started: float) -> float:
    now = time.perf_counter()
    timings[name] = round(now - started, 3)
    return now


def person_extras(config: ProjectConfig) -> dict[str, list[str]]:
    """The identifier and attribute names the project's person mappings declare (any source)."""
    people = [s.person for s in config.sources if s.person]
    return {"identifiers": sorted({k for p in people for k in p.identifiers}),
            "attributes": sorted({k for p in people for k in p.attributes})}


def standardise(store: Store, config: ProjectConfig) -> None:
    """Write person_std, address_std and gazetteer_std (one transaction, one audit row).

    Per-step wall times (names, addresses, gazetteer, tables) go into the audit details as ``seconds``.
    """
    store.require("person_records", "address_records", "gazetteer", stage="standardise")
    con = store.con
    timings: dict[str, float] = {}
    with store.stage("standardise"):
        t = time.perf_counter()
        _register(store, "_std_fore", forename_frame(_distinct(
            store, "SELECT DISTINCT forenames FROM person_records WHERE forenames IS NOT NULL")))
        _register(store, "_std_sur", surname_frame(_distinct(
            store, "SELECT DISTINCT surname FROM person_records WHERE surname IS NOT NULL")))
        _register(store, "_std_nick", nickname_table())
        _register(store, "_std_survar", surname_variant_table())
        _register(store, "_std_sex", pd.DataFrame(sex_values(), columns=["raw", "code"]))
        t = _timed(timings, "names", t)
        address_table(con, """SELECT address_text FROM person_records
            UNION ALL SELECT address_text FROM address_records""", "_std_addr")
        t = _timed(timings, "addresses", t)
        gazetteer_table(con, "_std_gaz")
        t = _timed(timings, "gazetteer", t)
        # ingest nulled a postcode / phone not in UK format unless its source said "any": what is left and not
        # UK format is kept as written
        pc = f"coalesce({postcode_sql('r.postcode')}, {postcode_any_sql('r.postcode')}, a.postcode)"
        pc_uk = f"coalesce({postcode_sql('r.postcode')}, a.postcode)"  # addresses: UK postcodes only
        extras = "".join(f", {sql} AS {col}" for _k, col, sql in extra_columns(person_extras(config)))
        store.write_table("person_std", f"""
            WITH b AS (
              SELECT r.*, sx.code AS sex_code, f.title AS f_title, f.forename, f.middle_names, f.initial,
                     f.suffix AS f_suffix, f.dm AS forename_dm, s.surname AS s_surname, s.surname_compact,
                     s.suffix AS s_suffix, s.dm AS surname_dm, {pc} AS pc, a.norm, a.number, a.flat
              FROM person_records r
              LEFT JOIN _std_fore f ON f.raw = r.forenames
              LEFT JOIN _std_sur s ON s.raw = r.surname
              LEFT JOIN _std_sex sx ON sx.raw = upper(trim(r.sex))
              LEFT JOIN _std_addr a ON a.raw = r.address_text),
            -- household link: the surnames recorded at each address ('|A|B|'), none for a communal address
            hh AS (SELECT coalesce(norm, uprn) AS k, CASE WHEN count(DISTINCT s_surname) <= {household_max_surnames()}
                          THEN '|' || string_agg(DISTINCT s_surname, '|' ORDER BY s_surname) || '|' END AS surnames
                   FROM b WHERE s_surname IS NOT NULL AND coalesce(norm, uprn) IS NOT NULL GROUP BY 1),
            -- a short form listed only for one sex still resolves on a record without sex when it is unambiguous
            nick_any AS (SELECT name, any_value(canonical) AS canonical FROM _std_nick GROUP BY name
                         HAVING count(DISTINCT canonical) = 1)
            SELECT b.source || ':' || b.record_key AS unique_id, b.source, b.agency, b.record_key,
                   coalesce(NULLIF(regexp_replace(upper(b.title), '[^A-Z]', '', 'g'), ''), b.f_title) AS title,
                   coalesce(b.s_suffix, b.f_suffix) AS suffix, b.forename,
                   coalesce(n1.canonical, n2.canonical, n3.canonical, b.forename) AS forename_canonical, b.middle_names, b.initial,
                   b.s_surname AS surname, b.surname_compact, b.forename_dm, b.surname_dm, b.dob,
                   coalesce(CAST(year(b.dob) AS INT), {year_from_text_sql('b.dob_raw')}) AS dob_year, CAST(month(b.dob) AS INT) AS dob_month,
                   CAST(day(b.dob) AS INT) AS dob_day, b.sex_code AS sex, {_pc_parts('b.pc')},
                   b.norm AS address_norm, b.number AS address_number, b.flat AS address_flat, b.uprn,
                   coalesce({phone_sql('b.phone')}, {phone_any_sql('b.phone')}) AS phone,
                   {email_sql('b.email')} AS email, b.unsafe, hh.surnames AS address_surnames,
                   coalesce(sv.canonical, b.surname_compact) AS surname_canonical,
                   -- the surname read as a forename (a name written in the other order: PRICE KIT)
                   coalesce(m1.canonical, m2.canonical, m3.canonical, b.s_surname) AS surname_forename_canonical,
                   -- the source's own person reference, qualified by the source (equal only within one source)
                   b.source || ':' || {identifier_sql("b.extras['sid']")} AS source_person_id{extras}
            FROM b
            LEFT JOIN _std_nick n1 ON n1.name = b.forename AND n1.sex = b.sex_code
            LEFT JOIN _std_nick n2 ON n2.name = b.forename AND n2.sex IS NULL
            LEFT JOIN nick_any n3 ON n3.name = b.forename AND b.sex_code IS NULL
            LEFT JOIN _std_nick m1 ON m1.name = b.s_surname AND m1.sex = b.sex_code
            LEFT JOIN _std_nick m2 ON m2.name = b.s_surname AND m2.sex IS NULL
            LEFT JOIN nick_any m3 ON m3.name = b.s_surname AND b.sex_code IS NULL
            LEFT JOIN hh ON hh.k = coalesce(b.norm, b.uprn)
            LEFT JOIN _std_survar sv ON sv.variant = b.surname_compact
            ORDER BY b.source, b.row_number""")
        store.write_table("address_std", f"""
            SELECT source, record_key, origin, address_text, address_norm, flat, number, building, street, town,
                   {_pc_parts('pc')}, uprn
            FROM (SELECT r.source, r.record_key, r.origin, r.address_text, a.norm AS address_norm, a.flat, a.number,
                         a.building, a.street, a.town, {pc_uk} AS pc, r.uprn
                  FROM address_records r LEFT JOIN _std_addr a ON a.raw = r.address_text)
            ORDER BY source, record_key""")
        store.write_table("gazetteer_std", f"""
            SELECT uprn, address_norm, flat, number, building, organisation, street, locality, town,
                   {_pc_parts('pc')}, full_address, parent_uprn, address_class, x, y
            FROM (SELECT *, {postcode_sql('postcode_raw')} AS pc FROM _std_gaz) ORDER BY uprn""")
        for tmp in ("_std_fore", "_std_sur", "_std_nick", "_std_survar", "_std_sex", "_std_addr", "_std_gaz"):
            con.execute(f"DROP TABLE IF EXISTS {tmp}")
        _timed(timings, "tables", t)
        counts = {name: store.count(name) for name in ("person_std", "address_std", "gazetteer_std")}
        issues = con.execute("""SELECT count(*) FILTER (WHERE postcode IS NULL), count(*) FILTER (WHERE dob IS NULL),
            count(*) FILTER (WHERE forename IS NULL) FROM person_std""").fetchone()
        store.audit("alteration", "standardise",
                    {"persons_without_postcode": issues[0], "persons_without_dob": issues[1],
                     "persons_without_forename": issues[2], "seconds": timings}, counts)
