"""Locations stage: every address text of person records and events -> a UPRN (or a stable cluster id).

Order of work (cheapest and most certain first; each step sees only what earlier steps left):

1. de-duplicate address strings (one row per distinct normalised address + parts);
2. a UPRN the agency supplied, when it exists in the gazetteer (``source_uprn``);
3. key joins to the gazetteer in SQL, each accepted only when the key names one UPRN (``exact_key``
   flat+number+street+postcode, ``building_key``, ``street_number`` with the town when the postcode is
   missing or mistyped, ``street_sector``, ``street_area`` with a locality the text names; ``postcode_number``:
   flat + number + full postcode when the street is misspelt, ``misspelt_street``: flat + number + a close spelling
   of one street, :mod:`.fuzzy_keys`; ``flat_postcode``: flat + street + postcode when the number is dropped,
   ``building_number``: flat + building name + its number when the street is replaced, :mod:`.partial_keys`);
4. premises names against gazetteer organisation / building names in the areas the text names
   (``premises_name``, :mod:`.premises`); "FLAT ABOVE" to the one upper-floor flat (``flat_descriptor``);
5. the hard guards (:mod:`.guards`: never another number, suffix, flat or street type; never a home on a
   commercial UPRN; position words to the building);
6. the residue to uk_address_matcher's pre-trained model, accepted only with a clear winner, and the guards again;
7. a flat the gazetteer does not list, to its one building (``building_only``, level ``building``);
8. anything else stays unresolved (``uprn`` NULL) and gets ``L<hash>`` of a cluster of normalised addresses.

Each answer gets a ``match_level`` and ``match_reason`` (:func:`.guards.matches_sql`; docs/addresses.md).

"REAR OF 12 HIGH ST" / "O/S 12 ..." resolve to 12 High St as ``proximity`` with lower confidence (see
``location_rules.toml``).  Without a gazetteer, step 6 alone clusters addresses among themselves.
Settings live in ``location_rules.toml``.

Where the time goes (250k-person town): uk_address_matcher is most of it, and most of that is preparing the
gazetteer, which does not depend on the residue; so it starts first, in a background thread on its own
connection (``location_uam.MatcherSession``), while steps 1-4 run on an in-memory scratch copy of the inputs
(``Store.scratch``: temp tables inside the stage's transaction are about half as fast to read).  The prepared
gazetteer is kept next to the store for the next run on the same gazetteer (:mod:`.uam_prepared`), and the
matcher's answers in the store (:mod:`.uam_cache`).  Each step's wall and CPU seconds go into the audit row
(``steps.seconds`` / ``steps.cpu_seconds``, :mod:`.laps`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ecins_link.config import ProjectConfig, read_settings
from ecins_link.locations import (
    fuzzy_keys,
    guards,
    keys,
    partial_keys,
    premises,
    uam_cache,
    uam_prepared,
    units,
)
from ecins_link.locations.evaluate import evaluate_locations  # noqa: F401 - re-exported
from ecins_link.locations.laps import Laps
from ecins_link.store import Store

if TYPE_CHECKING:
    from ecins_link.locations.uam import MatcherSession

log = logging.getLogger(__name__)
RULES_FILE = Path(__file__).with_name("location_rules.toml")
METHODS = ["source_uprn", *keys.KEY_METHODS, "street_area", "postcode_number", "misspelt_street", "flat_postcode", "building_number", "building_spelling",
           "premises_name", "flat_descriptor", "uk_address_matcher",
           "uk_address_matcher_relaxed",
           "uk_address_matcher_keyed", "building_only", "only_home_in_building", "premises_in_building",
           "proximity", "unresolved", "too_vague"]
LEVELS = ["exact", "flat", "building", "approximate", "street", "unresolved"]


def load_location_rules(path: str | Path | None = None) -> dict:
    """Read the address-resolution settings (``location_rules.toml`` by default)."""
    return read_settings(Path(path) if path else RULES_FILE, "location rules", ("confidence", "proximity", "premises", "uk_address_matcher"))


def start_matcher(con: duckdb.DuckDBPyConnection, rules: dict, with_gazetteer: bool,
                  early: MatcherSession | None = None, prepared_dir: Path | None = None) -> MatcherSession | None:
    """Start uk_address_matcher's gazetteer preparation (from ``gazetteer_std`` on ``con``) in the background.

    It does not depend on the residue, so it runs while the key joins do.  ``early`` is a session started
    before this stage (:func:`prepare_matcher_early`): used when it prepared exactly these gazetteer rows with
    these settings, closed otherwise.  None when the matcher is disabled, there is no gazetteer, or it cannot
    start (the matcher then starts once the residue is known).  ``prepared_dir``: where the prepared gazetteer
    is kept between runs (:mod:`.uam_prepared`; None: prepare it every run).
    """
    uam = rules["uk_address_matcher"]
    if not (with_gazetteer and uam.get("enabled", True)):
        if early is not None:
            early.close()
        return None
    from ecins_link.locations.uam import MatcherSession, canonical_sql

    try:
        canonical = con.execute(canonical_sql()).to_arrow_table()
        if early is not None and early.accepts(canonical, uam):
            return early
        if early is not None:
            log.info("uk_address_matcher: the gazetteer changed since the early start; preparing it again")
            early.close()
        return MatcherSession(canonical, uam, prepared_dir)
    except Exception as err:  # noqa: BLE001 - see the docstring
        log.warning("uk_address_matcher could not start early (%s)", type(err).__name__)
        return None


def prepare_matcher_early(store: Store, config: ProjectConfig, rules_path: str | Path | None = None
                          ) -> MatcherSession | None:
    """Start preparing uk_address_matcher's gazetteer side from the ingested ``gazetteer`` table, before the
    standardise stage, so that the preparation (the locations stage's longest fixed cost) runs while
    standardise does.  Pass the session to :func:`link_locations` (``early_matcher``), which uses it only if
    ``gazetteer_std`` gives the same rows; close it if the locations stage does not run.  None when there is
    nothing to prepare or it cannot start."""
    rules = load_location_rules(rules_path)
    uam = rules["uk_address_matcher"]
    if config.gazetteer_source is None or not uam.get("enabled", True) or not store.has_table("gazetteer"):
        return None
    from ecins_link.locations.uam import MatcherSession, canonical_from_ingest_sql

    try:
        canonical = store.con.execute(canonical_from_ingest_sql()).to_arrow_table()
        prepared_dir = uam_prepared.folder_for(store.path, uam)
        return MatcherSession(canonical, uam, prepared_dir) if canonical.num_rows else None
    except Exception as err:  # noqa: BLE001 - the locations stage starts its own
        log.warning("uk_address_matcher could not start before standardising (%s)", type(err).__name__)
        return None


def resolve_addresses(con: duckdb.DuckDBPyConnection, rules: dict, with_gazetteer: bool,
                      session: MatcherSession | None = None, cache: tuple[str, str] | None = None,
                      laps: Laps | None = None) -> dict:
    """Run the resolution steps on ``address_std`` (and ``gazetteer_std``) of ``con``; return counts per step.

    ``session`` is a matcher started by :func:`start_matcher` (one is started here otherwise); it is closed
    before returning.  Leaves temp tables ``_loc_map``, ``_loc_addr``, ``_loc_res`` and ``_loc_clu`` on
    ``con`` (a scratch connection: ``link_locations`` runs this on an in-memory copy of the inputs).
    ``cache``: the matcher's answers kept from earlier runs (:func:`.uam.run_uk_address_matcher`).  ``laps``:
    the stage's stopwatch (per-step wall and CPU seconds land in the counts' ``seconds`` / ``cpu_seconds``).
    """
    laps = laps or Laps()
    lap = laps.lap

    try:
        if session is None:
            session = start_matcher(con, rules, with_gazetteer)
            lap("uk_address_matcher_start")
        if session is not None:
            # the matcher's gazetteer preparation is the longer chain: the key joins need not outrun it, and
            # fewer threads than cores between the two keeps a busy machine from oversubscribing
            con.execute(f"SET threads = {int(rules['uk_address_matcher'].get('key_join_threads', 1))}")
        counts = _resolve(con, rules, with_gazetteer, session, lap, cache)
    finally:
        if session is not None:
            session.close()
            con.execute("RESET threads")
    counts["seconds"], counts["cpu_seconds"] = laps.seconds, laps.cpu_seconds
    if session is not None:
        counts["uk_address_matcher_gazetteer_seconds"] = session.prepare_seconds
        counts["uk_address_matcher_waited_seconds"] = session.waited_seconds
        counts["uk_address_matcher_gazetteer_cached"] = session.prepared_from_cache
    return counts


def _resolve(con: duckdb.DuckDBPyConnection, rules: dict, with_gazetteer: bool, session: MatcherSession | None,
             lap: Callable[[str], None], cache: tuple[str, str] | None = None) -> dict:
    conf, prox = rules["confidence"], rules["proximity"]
    flats = rules.get("flats", {})
    keys.prepare(con, prox.get("prefixes", []), with_gazetteer, flats.get("label_words", []),
                 flats.get("hint_patterns", []), prox.get("at_prefixes", []),
                 bool(flats.get("suffix_as_flat_letter", False)), flats.get("plot_words", []))
    guards.init(con)
    lap("prepare")
    counts: dict = {"distinct_addresses": con.execute("SELECT count(*) FROM _loc_addr").fetchone()[0]}
    home_rule = bool(rules.get("guards", {}).get("home_not_commercial", True))
    from ecins_link.standardise.address_clean import vocab

    street_types = sorted(set(vocab().get("street_words", [])) - set(vocab().get("building_words", [])))
    counts["source_uprn"] = keys.resolve_source_uprn(
        con, conf["source_uprn" if with_gazetteer else "source_uprn_unchecked"], with_gazetteer)
    if with_gazetteer:
        for method in keys.KEY_METHODS:
            counts[method] = keys.resolve_key(con, method, conf[method])
            lap(method)
        counts["street_area"] = keys.resolve_street_area(con, conf.get("street_area", conf["street_number"]))
        lap("street_area")
        counts["postcode_number"] = fuzzy_keys.resolve_postcode_number(
            con, conf.get("postcode_number", conf["street_sector"]),
            float(rules.get("postcode_number", {}).get("min_street_similarity", 0.88)))
        lap("postcode_number")
        counts["misspelt_street"] = fuzzy_keys.resolve_misspelt_street(
            con, conf.get("misspelt_street", 0.9),
            float(rules.get("postcode_number", {}).get("misspelt_street_similarity", 0.92)))
        lap("misspelt_street")
        counts["flat_postcode"] = partial_keys.resolve_flat_postcode(
            con, conf.get("flat_postcode", 0.9),
            float(rules.get("postcode_number", {}).get("min_street_similarity", 0.88)))
        counts["building_number"] = partial_keys.resolve_building_number(con, conf.get("building_number", 0.9))
        counts["building_spelling"] = partial_keys.resolve_building_spelling(con, conf.get("building_spelling", 0.9))
        lap("partial_keys")
        prem = rules["premises"]
        counts["premises_name"] = premises.resolve_premises(
            con, conf["premises_name"], prem.get("ignore_leading", []), int(prem.get("min_name_chars", 4)),
            prem.get("ignore_trailing", []))
        lap("premises_name")
        from ecins_link.standardise.address_flats import upper_ids

        counts["flat_descriptor"] = guards.resolve_upper_flat(con, conf.get("flat_descriptor", 0.9), upper_ids())
        lap("flat_descriptor")
        counts["units_after_keys"] = units.resolve_units(con, conf)
        counts["guards_after_keys"] = guards.apply_guards(con, home_rule, street_types)
        lap("guards")
        uam = rules["uk_address_matcher"]
        if uam.get("enabled", True):
            from ecins_link.locations.uam import run_uk_address_matcher

            strip = keys.proximity_regex(prox.get("prefixes", []) + prox.get("at_prefixes", [])).replace("'", "''")
            todo = f"""SELECT akey, trim(regexp_replace(upper(coalesce(nullif(trim(address_text), ''), address_norm, '')),
                                                     '{strip}', '')) AS address_concat, postcode
                       FROM _loc_addr a
                       WHERE NOT EXISTS (SELECT 1 FROM _loc_res r WHERE r.akey = a.akey)"""
            if uam.get("skip_key_ties", True):
                # a key tie (same flat + number + street in every area the text names, several UPRNs) for a text
                # that says nothing else (no building or premises name, no postcode): the matcher can only guess
                todo += """ AND NOT (a.postcode IS NULL AND a.building IS NULL AND a.n_unexplained = 0
                                     AND a.akey IN (SELECT akey FROM _loc_ties))
                           -- nor a flat text with no number whose flat, street and postcode fit several flats
                           AND NOT (a.number IS NULL AND a.building IS NULL AND a.n_unexplained = 0
                                    AND a.akey IN (SELECT akey FROM _loc_ties WHERE method = 'flat_postcode'))"""
            # materialised once: counted here, matched by its distinct texts (uam.distinct_texts); the short texts
            # are deleted after (a filter on the text in the query is run under the anti-join, on every address)
            con.execute(f"CREATE OR REPLACE TEMP TABLE _loc_todo AS {todo}")
            con.execute("DELETE FROM _loc_todo WHERE address_concat IS NULL OR length(address_concat) < 3")
            todo = "SELECT * FROM _loc_todo"
            counts["uk_address_matcher_sent"] = con.execute("SELECT count(*) FROM _loc_todo").fetchone()[0]
            counts["uk_address_matcher_texts"] = con.execute(
                "SELECT count(*) FROM (SELECT DISTINCT address_concat, postcode FROM _loc_todo)").fetchone()[0]
            try:
                counts["uk_address_matcher"] = run_uk_address_matcher(con, todo, uam, session=session, cache=cache)
                if cache is not None:
                    counts["uk_address_matcher_texts_cached"] = counts["uk_address_matcher_texts"] - con.execute(
                        "SELECT count(*) FROM _loc_uam_miss").fetchone()[0]
            except Exception as err:  # noqa: BLE001 - the residue stays unresolved; the audit row says why
                counts["uk_address_matcher_error"] = type(err).__name__
                log.warning("uk_address_matcher failed (%s); its residue stays unresolved", type(err).__name__)
            lap("uk_address_matcher")
        counts["units_after_matcher"] = units.resolve_units(con, conf)
        counts["guards_after_matcher"] = guards.apply_guards(
            con, home_rule, street_types, ["uk_address_matcher", "uk_address_matcher_relaxed",
                                           "uk_address_matcher_keyed", *units.METHODS])
        counts["building_only"] = guards.resolve_building_only(con, conf.get("building_only", 0.9))
        counts["units_last"] = units.resolve_units(con, conf)
        counts["guards_last"] = guards.apply_guards(con, home_rule, street_types, ["building_only", *units.METHODS])
        lap("after_matcher")
    if not prox.get("resolve", True):
        con.execute("""DELETE FROM _loc_res WHERE match_method <> 'source_uprn'
                       AND akey IN (SELECT akey FROM _loc_addr WHERE near)""")
    keys.cluster_unresolved(con)
    lap("cluster")
    return counts


def link_locations(store: Store, config: ProjectConfig, rules_path: str | Path | None = None,
                   early_matcher: MatcherSession | None = None) -> None:
    """The locations stage: write ``address_matches`` for every ``address_std`` row (docs/contracts.md).

    ``early_matcher``: from :func:`prepare_matcher_early`; always closed by this function."""
    try:
        _link_locations(store, config, rules_path, early_matcher)
    finally:
        if early_matcher is not None:
            early_matcher.close()


def _link_locations(store: Store, config: ProjectConfig, rules_path: str | Path | None,
                    early: MatcherSession | None) -> None:
    store.require("address_std", stage="locations")
    with_gazetteer = config.gazetteer_source is not None
    if with_gazetteer:
        store.require("gazetteer_std", stage="locations")
        with_gazetteer = store.count("gazetteer_std") > 0
    rules = load_location_rules(rules_path)
    laps = Laps()
    with store.stage("locations"):
        session = start_matcher(store.con, rules, with_gazetteer, early,  # first: it is the longest chain
                                uam_prepared.folder_for(store.path, rules["uk_address_matcher"]))
        laps.lap("start_matcher")
        # the work (many intermediate tables, each re-read) runs on an in-memory copy of the inputs: tables
        # created inside the stage's transaction on the store are about half as fast to read
        try:
            inputs = _inputs(store, with_gazetteer)
            addresses = store.con.execute(inputs.pop("address_std")).to_arrow_table()
            with store.scratch(inputs) as work:
                # read once (keys.prepare): scanned from Arrow rather than copied into a table first
                work.register("address_std", addresses)
                laps.lap("inputs")
                cache = uam_cache.open_cache(store, work, rules["uk_address_matcher"], with_gazetteer, session)
                laps.lap("answer_cache")
                counts = resolve_addresses(work, rules, with_gazetteer, session, cache, laps)
                matches = work.execute(guards.matches_sql(
                    float(rules["proximity"]["confidence_factor"]),
                    float(rules.get("guards", {}).get("building_confidence_factor", 0.9)),
                    rules.get("reasons", {}), with_gazetteer)).to_arrow_table()
                work.register("_loc_out", matches)
                by_method = dict(work.execute(
                    "SELECT match_method, count(*) FROM _loc_out GROUP BY 1 ORDER BY 1").fetchall())
                kept = uam_cache.next_cache(work, cache)
                laps.lap("matches")
        finally:
            if session is not None:
                session.close()
        n = store.write_table("address_matches", matches)
        if kept is not None:
            store.write_table(uam_cache.CACHE_TABLE, kept)
        laps.lap("write")
        counts["uk_address_matcher_started_early"] = session is not None and session is early
        store.audit("combination", "link_locations",
                    details={"with_gazetteer": with_gazetteer, "steps": counts},
                    row_counts={"address_matches": n, **{f"method_{k}": v for k, v in by_method.items()}})


def _inputs(store: Store, with_gazetteer: bool) -> dict[str, str]:
    """The store columns the stage reads, copied into its scratch connection (optional ones NULL when absent)."""
    def optional(table: str, cols: tuple[str, ...]) -> str:
        have = {r[0] for r in store.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}
        return ", ".join(c if c in have else f"CAST(NULL AS VARCHAR) AS {c}" for c in cols)

    tables = {"address_std": f"""SELECT source, record_key, address_text, address_norm, flat, number, building, street,
                                       town, postcode, postcode_outward, postcode_sector, uprn,
                                       {optional("address_std", ("origin",))} FROM address_std"""}
    if with_gazetteer:
        tables["gazetteer_std"] = f"""SELECT uprn, flat, number, building, organisation, street, locality, town,
                                            postcode, postcode_outward, postcode_sector, full_address, address_norm,
                                            {optional("gazetteer_std", ("parent_uprn", "address_class"))}
                                     FROM gazetteer_std"""
    return tables
