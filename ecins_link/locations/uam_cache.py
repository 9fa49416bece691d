"""uk_address_matcher's answers kept between runs, per distinct (text, postcode), for the same gazetteer and model.

A weekly batch sends the matcher mostly the texts it sent last week.  The matcher's answer for a text depends only
on that text, the gazetteer and the matcher itself (not on the other texts of the batch: checked in
``tests/test_uam_batch.py``), so an answer is reused while all three are unchanged.  The *fingerprint* names them:
an MD5 of the gazetteer as the matcher reads it (:func:`ecins_link.locations.uam.canonical_sql`, every row), the
matcher's settings, and the versions of uk_address_matcher, Splink and DuckDB.  Another fingerprint is a miss.

The answers live in the store table ``address_matcher_answers`` (fingerprint, address_concat, postcode, answered,
uprn, match_weight, dist, reason): one row per answer row of the matcher, or one row with ``answered`` false for a
text it gave no row for.  Each run rewrites it with the texts of its own residue only, so it never holds a text
the current extracts no longer contain; ``purge`` drops it with the other derived tables.  The engine's own checks
(:mod:`.uam_accept`, :mod:`.guards`) run on every answer, cached or fresh, in every run.
"""

from __future__ import annotations

import json
from importlib import metadata

import duckdb
import pyarrow as pa

CACHE_TABLE = "address_matcher_answers"
ANSWER_COLUMNS = "uprn, match_weight, dist, reason"
_EMPTY = ("SELECT NULL::VARCHAR AS fingerprint, NULL::VARCHAR AS address_concat, NULL::VARCHAR AS postcode, "
          "NULL::BOOLEAN AS answered, NULL::VARCHAR AS uprn, NULL::DOUBLE AS match_weight, NULL::DOUBLE AS dist, "
          "NULL::VARCHAR AS reason WHERE false")


def library_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """The installed version of each package ("?" when absent): part of every fingerprint of matcher work."""
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "?"

    return {p: version(p) for p in packages}


def gazetteer_digest(con: duckdb.DuckDBPyConnection, rows_sql: str) -> str:
    """``<row count>:<MD5>`` of the gazetteer rows ``rows_sql`` selects on ``con`` (unique_id, address_concat,
    postcode), in a fixed order: changes when any row does."""
    return con.execute(f"""
        SELECT count(*) || ':' || coalesce(md5(string_agg(concat_ws(chr(31), unique_id, address_concat,
                                                                  coalesce(postcode, chr(30))), chr(29)
                                                        ORDER BY unique_id, address_concat, postcode)), '')
        FROM ({rows_sql})""").fetchone()[0]


def fingerprint(con: duckdb.DuckDBPyConnection, canonical_sql: str, settings: dict, digest: str | None = None) -> str:
    """The gazetteer (``canonical_sql`` on ``con``: unique_id, address_concat, postcode), the matcher settings and
    the library versions, as one MD5.  ``digest``: the gazetteer's :func:`gazetteer_digest` when already known
    (then it is not read again)."""
    gazetteer = digest if digest is not None else gazetteer_digest(con, canonical_sql)
    versions = library_versions(("uk_address_matcher", "splink", "duckdb"))
    text = json.dumps({"gazetteer": gazetteer, "settings": settings, "versions": versions}, sort_keys=True,
                      default=str)
    return con.execute("SELECT md5(?)", [text]).fetchone()[0]


def cached_sql(has_table: bool) -> str:
    """SQL (one parameter: the fingerprint) reading the cached answers of one fingerprint from the store."""
    if not has_table:
        return _EMPTY
    return f"SELECT * FROM {CACHE_TABLE} WHERE fingerprint = ?"


def split_texts(con: duckdb.DuckDBPyConnection, cached: str) -> int:
    """Of ``_loc_uam_text`` (tkey, address_concat, postcode), mark which have answers in table ``cached``:
    creates ``_loc_uam_hits`` (tkey + the cached answer rows, ``answered`` rows only) and ``_loc_uam_miss``
    (tkey, address_concat, postcode); returns the number of misses."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_uam_known AS
        SELECT x.tkey, c.answered, c.uprn, c.match_weight, c.dist, c.reason
        FROM _loc_uam_text x JOIN {cached} c
          ON c.address_concat = x.address_concat AND c.postcode IS NOT DISTINCT FROM x.postcode""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _loc_uam_hits AS
                   SELECT tkey AS akey, uprn, match_weight, dist, reason FROM _loc_uam_known WHERE answered""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _loc_uam_miss AS
                   SELECT * FROM _loc_uam_text x WHERE NOT EXISTS (SELECT 1 FROM _loc_uam_known k WHERE k.tkey = x.tkey)""")
    return con.execute("SELECT count(*) FROM _loc_uam_miss").fetchone()[0]


def new_cache(con: duckdb.DuckDBPyConnection, fresh: pa.Table | None, fp: str) -> pa.Table:
    """The cache for the next run: this run's texts (``_loc_uam_text``) with their cached (``_loc_uam_known``) or
    fresh (``fresh``: the matcher's rows keyed by tkey) answers; a text the matcher gave no row gets one row with
    ``answered`` false."""
    con.register("_loc_uam_fresh", fresh if fresh is not None else pa.table(
        {"akey": pa.array([], pa.string()), "uprn": pa.array([], pa.string()),
         "match_weight": pa.array([], pa.float64()), "dist": pa.array([], pa.float64()),
         "reason": pa.array([], pa.string())}))
    try:
        return con.execute(f"""
            WITH answers AS (
                SELECT tkey, answered, {ANSWER_COLUMNS} FROM _loc_uam_known
                UNION ALL
                SELECT m.tkey, f.akey IS NOT NULL, f.uprn, f.match_weight, f.dist, f.reason
                FROM _loc_uam_miss m LEFT JOIN _loc_uam_fresh f ON f.akey = m.tkey)
            SELECT ?::VARCHAR AS fingerprint, x.address_concat, x.postcode, a.answered, a.uprn, a.match_weight,
                   a.dist, a.reason
            FROM _loc_uam_text x JOIN answers a USING (tkey)
            ORDER BY x.address_concat, x.postcode, a.uprn""", [fp]).to_arrow_table()
    finally:
        con.unregister("_loc_uam_fresh")


def open_cache(store, work: duckdb.DuckDBPyConnection, settings: dict,  # noqa: ANN001 - a Store
               with_gazetteer: bool, session=None) -> tuple[str, str] | None:  # noqa: ANN001 - a MatcherSession
    """Copy the store's answers for the current fingerprint into table ``_loc_uam_cache`` on the scratch
    connection ``work`` (which holds ``gazetteer_std``); returns (that table, the fingerprint), or None when the
    matcher or its cache (``answer_cache = false``) is off or there is no gazetteer.

    ``session``: the matcher session preparing this gazetteer (:class:`~ecins_link.locations.uam.MatcherSession`),
    which digests the gazetteer too: the digest is computed once, by whichever needs it first, and shared."""
    if not (with_gazetteer and settings.get("enabled", True) and settings.get("answer_cache", True)):
        return None
    from ecins_link.locations.uam import canonical_sql

    digest = session.gazetteer_digest() if session is not None else None
    if digest is None:
        digest = gazetteer_digest(work, canonical_sql())
        if session is not None:
            session.offer_digest(digest)
    fp = fingerprint(work, canonical_sql(), settings, digest)
    has = store.has_table(CACHE_TABLE)
    work.register("_loc_uam_cache_in", store.con.execute(cached_sql(has), [fp] if has else []).to_arrow_table())
    try:
        work.execute("CREATE OR REPLACE TABLE _loc_uam_cache AS SELECT * FROM _loc_uam_cache_in")
    finally:
        work.unregister("_loc_uam_cache_in")
    return "_loc_uam_cache", fp


def next_cache(work: duckdb.DuckDBPyConnection, cache: tuple[str, str] | None) -> pa.Table | None:
    """The answers to keep for the next run (``_loc_uam_next``, left by the matcher step), or None to leave the
    store's table as it is (cache off, or the matcher step did not finish)."""
    if cache is None:
        return None
    found = work.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_loc_uam_next'").fetchone()[0]
    return work.execute("SELECT * FROM _loc_uam_next").to_arrow_table() if found else None
