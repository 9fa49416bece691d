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
"""

from __future__ import annotations

import logging
import threading
import time

import duckdb
import pyarrow as pa

from ecins_link.locations.keys import area_consistent

log = logging.getLogger(__name__)


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

    def __init__(self, canonical: pa.Table, settings: dict) -> None:
        from uk_address_matcher import AddressMatcher

        self.canonical, self.settings = canonical, dict(settings)
        self.prepare_seconds: float | None = None
        self.waited_seconds = 0.0
        self._error: BaseException | None = None
        self._closed = False
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
        try:
            self._matcher._resolve_canonical_data()  # noqa: SLF001 - see __init__
            self._add_local_keys()
        except BaseException as err:  # noqa: BLE001 - re-raised in match()
            self._error = err
        self.prepare_seconds = round(time.perf_counter() - started, 3)

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
            self._thread.join()
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
            self._scratch.interrupt()
            self._thread.join()
        self._control.close()
        self._scratch.close()

    def __enter__(self) -> MatcherSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_uk_address_matcher(con: duckdb.DuckDBPyConnection, todo_sql: str, settings: dict,
                           session: MatcherSession | None = None) -> int:
    """Resolve the addresses selected by ``todo_sql`` (columns akey, address_concat, postcode).

    ``session`` is a :class:`MatcherSession` already preparing the gazetteer (``_loc_gaz`` is used to start
    one otherwise).  Accepted matches are inserted into ``_loc_res`` with method ``uk_address_matcher``;
    returns how many.
    """
    messy = con.execute(todo_sql).to_arrow_table()
    if messy.num_rows == 0:
        return 0
    if session is None:
        with MatcherSession(con.execute(canonical_sql("_loc_gaz")).to_arrow_table(), settings) as own:
            out = own.match(messy)
    else:
        out = session.match(messy)
    n = accept_matches(con, out, settings)
    log.info("uk_address_matcher: %d sent, %d accepted", messy.num_rows, n)
    return n


def _without_last(text: str, word: str) -> str:
    """SQL: ``text`` without the last whole-word occurrence of ``word`` (unchanged when ``word`` is NULL)."""
    return (f"coalesce(regexp_replace({text}, '^(.*)\\b\\Q' || {word} || '\\E\\b', '\\1'), {text})")


def accept_matches(con: duckdb.DuckDBPyConnection, out: pa.Table, settings: dict) -> int:
    """Insert the matcher's answers that pass the thresholds and guards into ``_loc_res``; return how many."""
    con.register("_loc_uam_out", out)
    try:
        w_min = float(settings.get("min_match_weight", 4.0))
        d_min = float(settings.get("min_distinguishability", 7.0))
        w_single = float(settings.get("single_candidate_min_weight", 8.0))
        cap = float(settings.get("max_confidence", 0.9))
        con.execute("CREATE OR REPLACE TEMP TABLE _loc_uam AS SELECT * FROM _loc_uam_out")
    finally:
        con.unregister("_loc_uam_out")
    before = con.execute("SELECT count(*) FROM _loc_res").fetchone()[0]
    rest = _without_last(_without_last("coalesce(a.address_norm, upper(a.address_text), '')", "g.town"), "g.locality")
    # consistency guards: the candidate's house number must be the address's (parsed; for a house, also one
    # of the text's numbers), every number in the text must be one of the candidate's (flat, house,
    # building), a parsed flat must be the candidate's flat, and areas the text names must be the candidate's --
    # the model alone sometimes takes a flat number for a house number ("Apt 8, 33 X Way" -> "8 X Way").
    con.execute(rf"""
        INSERT INTO _loc_res
        SELECT u.akey, u.uprn, 'uk_address_matcher',
               CASE WHEN u.reason LIKE 'exact%' THEN {cap}
                    ELSE least({cap}, 1.0 / (1.0 + pow(2.0, -least(u.match_weight,
                         coalesce(CASE WHEN isnan(u.dist) THEN NULL ELSE u.dist END, u.match_weight)) / 2.0))) END
        FROM (SELECT u.*, {rest} AS rest
              FROM _loc_uam u JOIN _loc_addr a USING (akey) JOIN _loc_gaz g ON g.uprn = u.uprn) u
        JOIN _loc_addr a USING (akey) JOIN _loc_gaz g ON g.uprn = u.uprn
        WHERE (u.reason LIKE 'exact%' OR (u.match_weight >= {w_min} AND u.dist >= {d_min})
               OR ((u.dist IS NULL OR isnan(u.dist)) AND u.match_weight >= {w_single}))
          AND NOT (a.number IS NOT NULL AND g.number IS NOT NULL AND a.number <> g.number
                   -- a parser that took a bare flat number for the house number: fine when it is the flat
                   AND NOT (a.number = g.flat_id AND list_contains(
                       regexp_extract_all(upper(coalesce(a.address_text, '')), '\b(\d+[A-Z]?)\b', 1), g.number)))
          AND (g.number IS NULL OR g.flat_id IS NOT NULL OR list_contains(
                   regexp_extract_all(upper(coalesce(a.address_text, a.address_norm, '')), '\d+'),
                   regexp_extract(g.number, '^\d+')))
          AND NOT (a.flat_id IS NOT NULL AND g.flat_id IS NOT NULL AND a.flat_id <> g.flat_id)
          -- "Flat 9, Foundry Wharf, Ashfield Pl" is not 9 Ashfield Pl: a flat label read as a house number
          AND NOT (a.flat_id IS NOT NULL AND a.number IS NULL AND g.flat_id IS NULL
                   AND regexp_extract(g.number, '^\d+') = regexp_extract(a.flat_id, '^\d+'))
          -- every number of the text (with its suffix: 26A is not 26) is one of the candidate's; "22A" may be
          -- flat A of 22
          AND list_has_all(regexp_extract_all(concat_ws(' ', g.flat, g.number, g.building, g.organisation,
                                                        g.number || CASE WHEN length(g.flat_id) = 1 THEN g.flat_id END),
                                              '\b(\d+[A-Z]?)\b', 1),
                           regexp_extract_all(upper(coalesce(a.address_text, '')),
                                              '\b(?:FLAT|FLT|FL|F|APT)?(\d+[A-Z]?)\b', 1))
          AND {area_consistent('a', 'g')}
          -- the candidate's street is written in the text (its first word, or a close spelling of it) apart from
          -- the candidate's town and locality names: "15 CARTONPLACE, YORKFORD" is not 15 Yorkford Grove
          AND (g.street IS NULL OR length(split_part(g.street, ' ', 1)) < 3
               OR contains(replace(u.rest, ' ', ''), split_part(g.street, ' ', 1))
               OR coalesce(list_max(list_transform(string_split(u.rest, ' '),
                                    t -> jaro_winkler_similarity(t, split_part(g.street, ' ', 1)))), 0) >= 0.88)
          AND u.akey NOT IN (SELECT akey FROM _loc_res)""")
    return int(con.execute("SELECT count(*) FROM _loc_res").fetchone()[0] - before)
