"""The score stage: build ``signals``, evaluate every rule set-based, explain and rank the flags.

``score(store, config)`` reads the linked graph tables and writes ``signals`` and ``flags`` (creating
``overrides`` if absent) in one transaction.  Per rule: one aggregate over all agencies gives the fired
entities; the same SQL grouped by agency (restricted to the fired entities) says whether any single
agency's records alone would have raised the flag.  Overrides (professional judgement) only raise.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import duckdb

from ecins_link.config import ProjectConfig, ScoringSettings
from ecins_link.scoring.compile import RuleCompiler, current_residence_sql, lit, rep_household_sql
from ecins_link.scoring.flagset import final_flags_sql, previous_flags_sql, record_history, status_counts
from ecins_link.scoring.overrides import ensure_overrides_table
from ecins_link.scoring.placement import (
    can_list_possible,
    classes_premises,
    has_units,
    possible_locations_sql,
)
from ecins_link.scoring.rules import Rule, RuleSet, load_rules
from ecins_link.scoring.signals import (
    TAXONOMY_TABLE,
    optional_tables,
    register_taxonomy,
    resolve_as_of,
    signals_sql,
)
from ecins_link.scoring.taxonomy import Taxonomy, load_taxonomy
from ecins_link.scratch_steps import Scratch, Step, scratch, sql_step
from ecins_link.store import Store

log = logging.getLogger(__name__)

REQUIRED = ("event_records", "person_clusters", "address_matches", "households", "person_attributes", "residences")
RECORD_STRUCT = ("source := source, record_key := record_key, agency := agency, signal := signal, "
                 "date := event_date::VARCHAR, role := role, person_id := person_id, "
                 "link_confidence := link_confidence::DOUBLE, placed := location_origin")


def load_project_rules(config: ProjectConfig) -> tuple[Taxonomy, RuleSet]:
    """The taxonomy and rules of a project (its own files if given, else the shipped ones)."""
    p = config.project
    taxonomy = load_taxonomy(config.path_of(p.taxonomy) if p.taxonomy else None)
    rules = load_rules(config.path_of(p.rules) if p.rules else None, taxonomy)
    return taxonomy, rules


def _rule_flags_sql(comp: RuleCompiler) -> str:
    """Flag rows (before overrides and ranking) of one rule, from (temp) tables ``_fired`` (the strongest
    episode of each entity, with first_met / last_met) and ``_vis``."""
    r = comp.rule
    entity_uprn = {
        "location": "(SELECT min(uprn) FROM address_matches am WHERE am.location_id = f.entity_id)",
        "household": "(SELECT min(coalesce(h.uprn, am.uprn)) FROM households h LEFT JOIN address_matches am "
                     "ON am.location_id = h.location_id WHERE h.household_id = f.entity_id)",
    }.get(r.scope, "NULL::VARCHAR")
    # what the flag id hashes: a household by its address (its households id changes as people come and go)
    identity = ("coalesce((SELECT min(location_id) FROM households h WHERE h.household_id = f.entity_id), "
                "f.entity_id)" if r.scope == "household" else "f.entity_id")
    self_person = "[f.entity_id]" if r.scope == "person" else "[]::VARCHAR[]"
    return f"""
    WITH es AS ({comp.es_sql()}),
    contrib AS (
        SELECT DISTINCT f.entity_id, es.signal_id, es.source, es.record_key, es.agency, es.signal, es.role,
               es.event_date, es.person_id, es.uprn, es.link_confidence, es.decayed_weight, es.location_origin,
               es.weight * pow(0.5, greatest(date_diff('day', es.event_date, f.anchor), 0) / es.half_life_days)
                   AS episode_weight
        FROM _fired f JOIN es ON {comp.in_episode('es', 'f')}
        WHERE {comp.contributing_predicate('f')}
    ),
    agg AS (
        SELECT entity_id, sum(episode_weight) AS dw, list(person_id) AS person_ids, list(uprn) AS uprns,
               list(agency) AS agencies, min(event_date) AS first_date, max(event_date) AS last_date,
               list(struct_pack({RECORD_STRUCT}) ORDER BY event_date, source, record_key, signal) AS records
        FROM contrib GROUP BY entity_id
    )
    SELECT {lit(r.id)} AS rule, {lit(r.label)} AS label, {lit(r.scope)} AS entity_type, f.entity_id,
           {identity} AS identity,
           list_sort(list_distinct(list_concat(coalesce(agg.person_ids, []::VARCHAR[]), {self_person})))
               AS person_ids,
           list_sort(list_distinct(list_concat(coalesce(agg.uprns, []::VARCHAR[]), [{entity_uprn}]))) AS uprns,
           list_sort(list_distinct(coalesce(agg.agencies, []::VARCHAR[]))) AS agencies,
           coalesce(agg.dw, 0.0) AS signal_score, {float(r.weight)} AS rule_weight, f.boost::DOUBLE AS boost,
           coalesce(agg.dw, 0.0) * {float(r.weight)} * f.boost AS base_score,
           coalesce(v.visible, false) AS visible_to_single_agency,
           {comp.conditions_struct('f')} AS conditions, f.n_ok::BIGINT AS conditions_met,
           {r.needed}::BIGINT AS conditions_needed, {comp.boosts_struct('f')} AS boosts,
           coalesce(agg.records, []) AS records, {r.window_days}::BIGINT AS window_days,
           {lit(r.guidance)} AS guidance, agg.first_date, agg.last_date,
           f.first_met, f.last_met, f.windows_met::BIGINT AS windows_met, f.ws AS window_start,
           f.anchor AS window_end
    FROM _fired f LEFT JOIN agg ON agg.entity_id = f.entity_id LEFT JOIN _vis v ON v.entity_id = f.entity_id
    """


def evaluate_rule(con: duckdb.DuckDBPyConnection, rule: Rule, as_of: dt.date, tables: dict[str, str],
                  target: str, lookback_start: dt.date | None = None) -> int:
    """Evaluate one rule into table ``target`` (flag rows before overrides) on ``con``; returns flags raised.

    The rule's working tables are temp tables of ``con``: its entity signals over the lookback, its anchors
    (one episode window per contributing event date), the episodes that met the criterion, the strongest
    episode of each entity with the first and last dates it was met, and its single-agency visibility (one
    agency's records alone met the criterion in some window)."""
    comp = RuleCompiler(rule, as_of, tables, lookback_start)
    temps = ("_es_all", "_es", "_anchors", "_ep", "_fired", "_vis")
    try:
        # the entity signals that can matter to the rule ...
        con.execute(f"CREATE OR REPLACE TEMP TABLE _es_all AS SELECT * FROM ({comp.entity_signals(prefilter=True)}) "
                    f"WHERE {comp.relevant_predicate()}")
        comp.es_table = "temp.main._es_all"
        # ... of the entities that could meet it in some window (a necessary condition) go on to the range join
        con.execute(f"CREATE OR REPLACE TEMP TABLE _es AS SELECT * FROM temp.main._es_all "
                    f"WHERE entity_id IN ({comp.candidates_sql()})")
        con.execute("DROP TABLE temp.main._es_all")
        comp.es_table = "temp.main._es"
        con.execute(f"CREATE OR REPLACE TEMP TABLE _anchors AS {comp.anchors_sql()}")
        comp.anchor_table = "temp.main._anchors"
        con.execute(f"CREATE OR REPLACE TEMP TABLE _ep AS SELECT * FROM ({comp.evaluate_sql(False)}) WHERE fired")
        con.execute("""CREATE OR REPLACE TEMP TABLE _fired AS
            SELECT * EXCLUDE (rk) FROM (
                SELECT *, min(anchor) OVER (PARTITION BY entity_id) AS first_met,
                       max(anchor) OVER (PARTITION BY entity_id) AS last_met,
                       count(*) OVER (PARTITION BY entity_id) AS windows_met,
                       row_number() OVER (PARTITION BY entity_id
                                          ORDER BY n_ok DESC, boost DESC, strength DESC, anchor DESC) AS rk
                FROM temp.main._ep) WHERE rk = 1""")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _vis AS SELECT entity_id, bool_or(fired) AS visible "
                    f"FROM ({comp.evaluate_sql(True, 'temp.main._fired')}) GROUP BY entity_id")
        con.execute(f"CREATE OR REPLACE TABLE {target} AS {_rule_flags_sql(comp)}")
    finally:
        for t in temps:
            con.execute(f"DROP TABLE IF EXISTS temp.main.{t}")
    return int(con.execute(f"SELECT count(*) FROM {target}").fetchone()[0])


def lookback_start(scoring: ScoringSettings, as_of: dt.date) -> dt.date | None:
    """The first date whose events the rules see (``[scoring] lookback_days``), or None for all the data."""
    days = scoring.lookback_days
    return None if days is None else as_of - dt.timedelta(days=int(days))


def score_steps(work: Scratch, taxonomy: Taxonomy, ruleset: RuleSet, as_of: dt.date,
                config: ProjectConfig | None = None) -> tuple[list[Step], list[Step], list[Rule]]:
    """The score stage as scratch steps (signals, then every rule side by side) and the main steps that
    write ``signals``, ``flags`` and ``flag_history`` in the stage transaction; also the enabled rules."""
    scoring = config.scoring if config is not None else ScoringSettings()
    start = lookback_start(scoring, as_of)
    tables = optional_tables(work.store)
    tables.update(signals="_score_signals", current_residence="_score_current", rep_household="_score_rep_household")
    base: tuple[str, ...] = ("_score_signals", "_score_current", "_score_rep_household")
    possible = ([sql_step("_score_possible", possible_locations_sql(has_units(work.store), classes_premises(work.store)))]
                if can_list_possible(work.store) else [])
    if possible:  # location rules may count an ambiguous event address at the premises it may be
        tables["possible_locations"] = "_score_possible"
        base = (*base, "_score_possible")
    rules = [r for r in ruleset.rules if r.enabled]
    parts = [f"_flags_part{i}" for i in range(len(rules))]
    steps = [
        Step(TAXONOMY_TABLE, lambda cur: register_taxonomy(cur, taxonomy, temp=False)),
        sql_step("_score_signals", signals_sql(as_of), (TAXONOMY_TABLE,), all_threads=True),  # all wait for it
        *possible,
        sql_step("_score_current", current_residence_sql()),
        sql_step("_score_rep_household", rep_household_sql()),
        sql_step("_score_prev", previous_flags_sql(work.store, as_of)),
        *(Step(part, lambda cur, r=rule, p=part: evaluate_rule(cur, r, as_of, tables, p, start), base)
          for rule, part in zip(rules, parts, strict=True)),
    ]
    signals = work.write("signals", f"SELECT * FROM {work.table('_score_signals')}", ("_score_signals",))
    final = final_flags_sql(parts, as_of, scoring.current_days, "SELECT * FROM _score_prev")
    flags = work.write("flags", f"SELECT * FROM ({final}) ORDER BY rank", (*parts, "_score_prev"))
    history = Step("store.flag_history",
                   lambda con: record_history(con, as_of, f'"{work.home}".main.flags', work.home),
                   ("store.flags",))
    return steps, [signals, flags, history], rules


def score(store: Store, config: ProjectConfig) -> None:
    """Score stage: write ``signals`` and ``flags`` (and create ``overrides`` if absent).

    The work is done on cursors in attached in-memory scratch databases (:mod:`ecins_link.scratch_steps`):
    signals first, then the rules side by side; meanwhile the stage transaction writes ``signals`` and,
    once every rule is done, ``flags``, and audits.
    """
    store.require(*REQUIRED, stage="score")
    taxonomy, ruleset = load_project_rules(config)
    as_of = resolve_as_of(store, config.project.as_of)
    con = store.con
    started = time.perf_counter()
    ensure_overrides_table(store)
    with scratch(store, "score") as work:
        steps, main, rules = score_steps(work, taxonomy, ruleset, as_of, config)
        with store.stage("score"):
            done = work.run(steps, main=main)
            n_signals, n_flags = done["store.signals"], done["store.flags"]
            stats = con.execute(
                "SELECT count(*) FILTER (WHERE person_id IS NULL), count(*) FILTER (WHERE location_id IS NULL), "
                f"count(*) FILTER (WHERE category IS NULL) FROM {work.table('_score_signals')}").fetchone()
            invisible = con.execute(
                "SELECT count(*) FILTER (WHERE NOT visible_to_single_agency) FROM flags").fetchone()[0]
            timings = {"signals": work.seconds["_score_signals"],
                       **{r.id: work.seconds[f"_flags_part{i}"] for i, r in enumerate(rules)},
                       "total": round(time.perf_counter() - started, 3)}
            store.audit(
                "combination", "score",
                details={"as_of": as_of.isoformat(), "rules": [r.id for r in rules], "seconds": timings,
                         "lookback_days": config.scoring.lookback_days,
                         "current_days": config.scoring.current_days},
                row_counts={"signals": n_signals, "signals_without_person": stats[0],
                            "signals_without_location": stats[1], "signals_unknown_code": stats[2],
                            "flags": n_flags, "flags_invisible_to_single_agency": invisible,
                            **status_counts(con),
                            **{r.id: done[f"_flags_part{i}"] for i, r in enumerate(rules)}},
            )
    log.info("score: %d signals, %d flags", n_signals, n_flags)
