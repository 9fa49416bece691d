"""The residue of address resolution goes to uk_address_matcher's pre-trained Splink model.

The matcher runs on its own in-memory DuckDB connection (with a memory limit and thread cap) so its many
intermediate tables never touch the project store; only (akey, uprn, match_weight, distinguishability)
comes back.  A candidate is accepted only with a strong weight and a clear gap to the runner-up
(``distinguishability``), or from its exact stages; ambiguous ones stay unresolved rather than guessed.

Most of the matcher's cost is preparing the gazetteer side (cleaning, term frequencies, road catalogue,
inverted index: ~10 s for a 138k-row gazetteer, nearly independent of how many addresses are sent) and it
does not depend on the residue.  :class:`MatcherSession` therefore starts that preparation in a background
thread as soon as the stage starts, while the key joins run on the store connection; the residue is matched
when the keys are done.  DuckDB releases the GIL while it works, so the two overlap on a multi-core machine.
With a ``prepared_dir`` the session first looks there for the preparation of the same gazetteer kept by an earlier
run (:mod:`.uam_prepared`) and loads it instead; after preparing, it keeps its own there.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from ecins_link.locations.uam_accept import accept_matches
from ecins_link.locations.uam_cache import gazetteer_digest as uam_cache_digest

log = logging.getLogger(__name__)


# what uk_address_matcher 1.5's canonical preparation leaves on its AddressMatcher (kept by :mod:`.uam_prepared`)
_PREPARED_ATTRS = ("_canonical_clean", "_tf_table", "_roadlike_places", "_inverted_index_table_name")


def canonical_sql(table: str = "gazetteer_std") -> str:
    """SQL: the gazetteer as the matcher's canonical input (unique_id, address_concat, postcode), by UPRN."""
    def part(c: str) -> str:
        return f"nullif(trim(CAST({c} AS VARCHAR)), '')"

    return f"""
        SELECT CAST(uprn AS VARCHAR) AS unique_id,
               coalesce(nullif(CAST(full_address AS VARCHAR), ''),
                        concat_ws(', ', {part('organisation')}, {part('flat')}, {part('building')}, {part('number')},
                                  {part('street')}, {part('locality')}, {part('town')})) AS address_concat,
               {part('postcode')} AS postcode
        FROM {table} WHERE uprn IS NOT NULL ORDER BY ALL"""


def canonical_from_ingest_sql(table: str = "gazetteer") -> str:
    """SQL: :func:`canonical_sql`'s rows from the ingested gazetteer, before the standardise stage has run.

    The same one-line address and cleaned postcode the standardise stage writes into ``gazetteer_std``, so
    the matcher's preparation can start a stage early; :meth:`MatcherSession.accepts` checks that the rows
    really are the same before that preparation is used.
    """
    from ecins_link.standardise.address_sql import full_address_sql
    from ecins_link.standardise.fields import postcode_sql

    return f"""
        SELECT CAST(g.uprn AS VARCHAR) AS unique_id, coalesce({full_address_sql('g')}, '') AS address_concat,
               nullif(trim(CAST({postcode_sql('g.postcode')} AS VARCHAR)), '') AS postcode
        FROM {table} g WHERE g.uprn IS NOT NULL ORDER BY ALL"""


class MatcherSession:
    """uk_address_matcher on a scratch connection, its gazetteer side prepared in a background thread.

    ``MatcherSession(canonical, settings)`` starts the preparation; :meth:`match` waits for it and matches
    the residue; :meth:`close` (always call it, or use ``with``) stops and frees everything.
    """

    def __init__(self, canonical: pa.Table, settings: dict, prepared_dir: Path | None = None) -> None:
        from uk_address_matcher import AddressMatcher

        self.canonical, self.settings = canonical, dict(settings)
        # where the prepared gazetteer is kept between runs (:mod:`.uam_prepared`); None: always prepare it
        self.prepared_dir = prepared_dir
        self.prepared_from_cache: bool | None = None  # None: no cache (or not yet known)
        self.prepare_seconds: float | None = None
        self.waited_seconds = 0.0
        self._error: BaseException | None = None
        self._closed = False
        # the gazetteer's digest (uam_cache.gazetteer_digest), shared with the answer cache: computed here when a
        # kept copy may be loaded, else given by the stage (:meth:`offer_digest`) or computed when the copy is saved
        self._digest: str | None = None
        self._digest_known = threading.Event()
        # set when the gazetteer side is ready to match (prepared or loaded); the copy kept for the next run may
        # still be being written after that, alongside the match (:meth:`_keep_prepared`)
        self._ready = threading.Event()
        self._canonical_table: str | None = None  # the prepared gazetteer's own table (:meth:`_add_local_keys`)
        self._saver: duckdb.DuckDBPyConnection | None = None
        self._scratch = duckdb.connect()
        self._scratch.execute("SET memory_limit = ?", [str(settings.get('memory_limit', '2GB'))])  # bound, never pasted
        # `background_threads` while the key joins run alongside on another connection, `threads` once it is alone
        self._threads = int(settings.get("threads", 1))
        self._background_threads = int(settings.get("background_threads", 1))
        self._scratch.execute(f"SET threads = {self._background_threads}")
        self._scratch.register("canonical_in", canonical)
        self._scratch.execute("CREATE TABLE canon AS SELECT * FROM canonical_in")
        self._scratch.unregister("canonical_in")
        self._scratch.execute("CREATE TABLE messy (unique_id VARCHAR, address_concat VARCHAR, postcode VARCHAR)")
        self._control = self._scratch.cursor()
        self._matcher = AddressMatcher(
            canonical_addresses=self._scratch.table("canon"),
            addresses_to_match=self._scratch.table("messy"),
            con=self._scratch,
            show_progress="off",
            cleaning_num_chunks=max(1, int(settings.get("cleaning_chunks", 1))),
        )
        # AddressMatcher.match() = prepare the canonical side, clean the messy side, run the stages; the first
        # part runs ahead here (uk_address_matcher 1.5's _resolve_canonical_data; without it, match() does all)
        self._split = callable(getattr(self._matcher, "_resolve_canonical_data", None))
        self._thread = threading.Thread(target=self._prepare, name="ukam-canonical", daemon=True)
        if self._split:
            self._thread.start()

    def _prepare(self) -> None:
        started = time.perf_counter()
        writer = None
        try:
            # the cache knows uk_address_matcher 1.5's matcher attributes; another layout is prepared every run
            keep = self.prepared_dir is not None and all(hasattr(self._matcher, a) for a in _PREPARED_ATTRS)
            if keep:
                from ecins_link.locations import uam_prepared

                self.prepared_from_cache = False
                # fingerprinted first only when a kept copy could be loaded; else after the preparation
                if uam_prepared.has_copy(self.prepared_dir):
                    self._digest = uam_cache_digest(self._scratch, "SELECT * FROM canon")
                    self._digest_known.set()
                    fp = uam_prepared.fingerprint(self._scratch, "canon", self.settings, self._digest)
                    self.prepared_from_cache = self._load_prepared(
                        uam_prepared.load(self._scratch, self.prepared_dir, fp))
            self._digest_known.set()
            if not self.prepared_from_cache:
                self._matcher._resolve_canonical_data()  # noqa: SLF001 - see __init__
                self._add_local_keys()
                if keep:
                    writer = self._save_before_match()
        except BaseException as err:  # noqa: BLE001 - re-raised in match()
            self._error = err
        finally:
            self._digest_known.set()
            self.prepare_seconds = round(time.perf_counter() - started, 3)
            self._ready.set()
        if writer is not None:
            self._keep_prepared(writer)

    def _add_local_keys(self) -> None:
        """The Splink stage's postcode-wide name keys of the gazetteer, ahead of time.

        uk_address_matcher derives them from the gazetteer alone inside its Splink stage unless the canonical
        relation already carries ``local_key_index`` (as its prepared folders do); same values, computed here
        in the background instead of on the critical path.
        """
        try:
            from uk_address_matcher.cleaning.local_keys import prepare_canonical_local_keys
        except ImportError:  # another uk_address_matcher version: its Splink stage derives them
            return
        canonical = self._matcher._canonical_clean  # noqa: SLF001
        if canonical is None or "local_key_index" in canonical.columns:
            return
        keyed = prepare_canonical_local_keys(self._scratch, canonical)
        self._scratch.execute(f"CREATE TABLE canon_keyed AS {keyed.sql_query()}")
        self._matcher._canonical_clean = self._scratch.table("canon_keyed")  # noqa: SLF001
        self._canonical_table = "canon_keyed"

    def _load_prepared(self, tables: dict[str, str] | None) -> bool:
        """Give the matcher the prepared gazetteer loaded from the cache (what ``_resolve_canonical_data`` and
        :meth:`_add_local_keys` leave on it); False when there is no complete copy."""
        if tables is None or not {"addresses", "term_frequencies", "inverted_index"} <= set(tables):
            return False
        from uk_address_matcher.linking_model.matching.stages.splink import SplinkStage

        m = self._matcher
        m._canonical_clean = self._scratch.table(tables["addresses"])  # noqa: SLF001 - see __init__
        m._tf_table = self._scratch.table(tables["term_frequencies"])  # noqa: SLF001
        roads = tables.get("roadlike_places")
        m._roadlike_places = self._scratch.table(roads) if roads else None  # noqa: SLF001
        m._inverted_index_table_name = tables["inverted_index"]  # noqa: SLF001
        for stage in m.stages:
            if isinstance(stage, SplinkStage):
                stage.roadlike_places = m._roadlike_places  # noqa: SLF001
        return True

    def _save_before_match(self):  # noqa: ANN202 - uam_prepared.Writer | None
        """Start keeping the preparation for the next run (:mod:`.uam_prepared`): the parts the match drops or
        may rebuild are written now; the gazetteer's own table (the largest part, which the match only reads) is
        written by :meth:`_keep_prepared` while the match runs.  None when nothing is kept."""
        from ecins_link.locations import uam_prepared

        m = self._matcher
        parts = {"addresses": m._canonical_clean, "term_frequencies": m._tf_table,  # noqa: SLF001
                 "inverted_index": m._inverted_index, "roadlike_places": m._roadlike_places}  # noqa: SLF001
        if any(parts[p] is None for p in ("addresses", "term_frequencies", "inverted_index")):
            return None  # another uk_address_matcher version: nothing known to keep
        writer = uam_prepared.Writer(self.prepared_dir)
        if self._canonical_table is not None:
            del parts["addresses"]
        if not writer.write({k: v for k, v in parts.items() if v is not None}):
            return None
        # a connection of its own to the same database: the match goes on on the session's
        self._saver = self._scratch.cursor()
        return writer

    def _keep_prepared(self, writer) -> None:  # noqa: ANN001 - uam_prepared.Writer
        """Finish keeping the preparation: the gazetteer's own table, the fingerprint (from the digest the stage
        gave, or computed now), the manifest (:mod:`.uam_prepared`).  Runs alongside the match, on its own
        connection; a failure only loses the copy."""
        from ecins_link.locations import uam_prepared

        try:
            if self._canonical_table is not None:
                writer.write({"addresses": self._saver.table(self._canonical_table)})
            digest = self._digest or uam_cache_digest(self._saver, "SELECT * FROM canon")
            if not writer.failed:
                writer.finish(uam_prepared.fingerprint(self._saver, "canon", self.settings, digest))
        except BaseException as err:  # noqa: BLE001 - keeping it only saves time; the match goes on
            log.warning("uk_address_matcher: the prepared gazetteer was not kept (%s)", type(err).__name__)
            writer.abandon()

    def gazetteer_digest(self) -> str | None:
        """The gazetteer's digest (:func:`.uam_cache.gazetteer_digest` of these canonical rows) when this session
        computes it (waiting for it), else None."""
        if not self._split or self._closed:
            return None
        self._digest_known.wait()
        return self._digest

    def offer_digest(self, digest: str) -> None:
        """Give the session the gazetteer's digest computed elsewhere on the same rows (used to fingerprint the
        copy it keeps, instead of reading the gazetteer again)."""
        if self._digest is None:
            self._digest = digest

    def accepts(self, canonical: pa.Table, settings: dict) -> bool:
        """Whether this session prepared exactly ``canonical`` with ``settings`` (and is still usable)."""
        return (not self._closed and self._error is None and settings == self.settings
                and canonical.equals(self.canonical))

    def match(self, messy: pa.Table) -> pa.Table:
        """Match ``messy`` (akey, address_concat, postcode); (akey, uprn, match_weight, dist, reason) per row."""
        if self._split:
            started = time.perf_counter()
            # the key joins are done: let the rest of the preparation use every thread (a second connection to
            # the same database, since the first is busy in the background thread)
            if self._threads != self._background_threads:
                self._control.execute(f"SET threads = {self._threads}")
            self._ready.wait()
            self.waited_seconds = round(time.perf_counter() - started, 3)
            if self._error is not None:
                raise self._error
            self._matcher._resolve_canonical_data = lambda: None  # already done by the background thread
        else:
            self._scratch.execute(f"SET threads = {self._threads}")
        self._scratch.register("messy_in", messy)
        try:
            self._scratch.execute("INSERT INTO messy SELECT akey, address_concat, postcode FROM messy_in")
        finally:
            self._scratch.unregister("messy_in")
        result = self._matcher.match()
        return (
            result.matches()
            .select(
                "CAST(unique_id AS VARCHAR) AS akey, CAST(resolved_canonical_id AS VARCHAR) AS uprn, "
                "CAST(match_weight AS DOUBLE) AS match_weight, CAST(distinguishability AS DOUBLE) AS dist, "
                "CAST(match_reason AS VARCHAR) AS reason"
            )
            .to_arrow_table()
        )

    def close(self) -> None:
        """Stop the background preparation if it is still running and free the scratch connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            if not self._ready.is_set():
                self._scratch.interrupt()  # still preparing: stop it (a copy being kept is finished, not cut off)
            self._thread.join()
        self._control.close()
        if self._saver is not None:
            self._saver.close()
        self._scratch.close()

    def __enter__(self) -> MatcherSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_uk_address_matcher(con: duckdb.DuckDBPyConnection, todo_sql: str, settings: dict,
                           session: MatcherSession | None = None, cache: tuple[str, str] | None = None) -> int:
    """Resolve the addresses selected by ``todo_sql`` (columns akey, address_concat, postcode).

    ``session`` is a :class:`MatcherSession` already preparing the gazetteer (``_loc_gaz`` is used to start
    one otherwise).  The matcher is called once, on the distinct (text, postcode) pairs (:func:`distinct_texts`:
    its answer for a text does not depend on the rest of the batch, so texts that several addresses share are
    matched once).  ``cache`` = (table on ``con`` with the answers kept from earlier runs for this gazetteer and
    matcher, its fingerprint; :mod:`.uam_cache`): only the texts it lacks go to the matcher (none: the matcher is
    not called), and the answers for this run's texts are left in temp table ``_loc_uam_next``.  Accepted matches
    are inserted into ``_loc_res`` with method ``uk_address_matcher``; returns how many.
    """
    from ecins_link.locations import uam_cache

    n_texts = distinct_texts(con, todo_sql)
    pending = "_loc_uam_text"
    if cache is not None:
        n_texts = uam_cache.split_texts(con, cache[0])
        pending = "_loc_uam_miss"
    fresh = None
    if n_texts == 0 and session is not None:
        session.close()  # every text has a kept answer: stop the gazetteer preparation if it is still running
    if n_texts:
        messy = con.execute(f"SELECT tkey AS akey, address_concat, postcode FROM {pending} ORDER BY tkey").to_arrow_table()
        if session is None:
            with MatcherSession(con.execute(canonical_sql("_loc_gaz")).to_arrow_table(), settings) as own:
                fresh = own.match(messy)
        else:
            fresh = session.match(messy)
    if cache is not None:
        con.register("_loc_uam_next_in", uam_cache.new_cache(con, fresh, cache[1]))
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE _loc_uam_next AS SELECT * FROM _loc_uam_next_in")
        finally:
            con.unregister("_loc_uam_next_in")
        if fresh is None:
            fresh = con.execute("SELECT * FROM _loc_uam_hits").to_arrow_table()
        else:
            con.register("_loc_uam_fresh_in", fresh)
            try:
                fresh = con.execute("SELECT akey, uprn, match_weight, dist, reason FROM _loc_uam_fresh_in "
                                    "UNION ALL SELECT * FROM _loc_uam_hits").to_arrow_table()
            finally:
                con.unregister("_loc_uam_fresh_in")
    if fresh is None:
        return 0
    return _accept_by_text(con, fresh, settings)


def distinct_texts(con: duckdb.DuckDBPyConnection, todo_sql: str) -> int:
    """Materialise ``todo_sql`` once as ``_loc_uam_todo`` (akey, address_concat, postcode, tkey) and its distinct
    (address_concat, postcode) pairs as ``_loc_uam_text`` (tkey, address_concat, postcode); return how many pairs.

    Extracts repeat an address in many spellings that standardise to different parts (so different akeys) but
    often to the same one-line text: those are sent to the matcher once.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_uam_text AS
        SELECT 'T' || row_number() OVER (ORDER BY address_concat, postcode NULLS FIRST) AS tkey, address_concat, postcode
        FROM (SELECT DISTINCT address_concat, postcode FROM ({todo_sql}))""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _loc_uam_todo AS
        SELECT t.akey, t.address_concat, t.postcode, x.tkey
        FROM ({todo_sql}) t JOIN _loc_uam_text x
          ON x.address_concat = t.address_concat AND x.postcode IS NOT DISTINCT FROM t.postcode""")
    return con.execute("SELECT count(*) FROM _loc_uam_text").fetchone()[0]


def _accept_by_text(con: duckdb.DuckDBPyConnection, by_text: pa.Table, settings: dict) -> int:
    """Give each address the matcher's answer for its text (``by_text``: keyed by tkey), then accept or refuse."""
    con.register("_loc_uam_by_text", by_text)
    try:
        out = con.execute("""SELECT t.akey, o.uprn, o.match_weight, o.dist, o.reason
                             FROM _loc_uam_todo t JOIN _loc_uam_by_text o ON o.akey = t.tkey""").to_arrow_table()
    finally:
        con.unregister("_loc_uam_by_text")
    n = accept_matches(con, out, settings)
    log.info("uk_address_matcher: %d texts sent for %d addresses, %d accepted", by_text.num_rows, out.num_rows, n)
    return n
