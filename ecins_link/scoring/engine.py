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

from ecins_link.config import ProjectConfig
from ecins_link.scoring.compile import RuleCompiler, current_residence_sql, lit, rep_household_sql
from ecins_link.scoring.overrides import ensure_overrides_table
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
                 "link_confidence := link_confidence::DOUBLE")
PROFESSIONAL_JUDGEMENT = "professional_judgement"


def load_project_rules(config: ProjectConfig) -> tuple[Taxonomy, RuleSet]:
    """The taxonomy and rules of a project (its own files if given, else the shipped ones)."""
    p = config.project
    taxonomy = load_taxonomy(config.path_of(p.taxonomy) if p.taxonomy else None)
    rules = load_rules(config.path_of(p.rules) if p.rules else None, taxonomy)
    return taxonomy, rules


def _rule_flags_sql(comp: RuleCompiler) -> str:
    """Flag rows (before overrides and ranking) of one rule, from (temp) tables ``_fired`` and ``_vis``."""
    r = comp.rule
    entity_uprn = {
        "location": "(SELECT min(uprn) FROM address_matches am WHERE am.location_id = f.entity_id)",
        "household": "(SELECT min(coalesce(h.uprn, am.uprn)) FROM households h LEFT JOIN address_matches am "
                     "ON am.location_id = h.location_id WHERE h.household_id = f.entity_id)",
    }.get(r.scope, "NULL::VARCHAR")
    self_person = "[f.entity_id]" if r.scope == "person" else "[]::VARCHAR[]"
    return f"""
    WITH es AS ({comp.es_sql()}),
    contrib AS (
        SELECT DISTINCT f.entity_id, es.signal_id, es.source, es.record_key, es.agency, es.signal, es.role,
               es.event_date, es.person_id, es.uprn, es.link_confidence, es.decayed_weight
        FROM _fired f JOIN es ON es.entity_id = f.entity_id
        WHERE {comp.contributing_predicate('f')}
    ),
    agg AS (
        SELECT entity_id, sum(decayed_weight) AS dw, list(person_id) AS person_ids, list(uprn) AS uprns,
               list(agency) AS agencies, min(event_date) AS first_date, max(event_date) AS last_date,
               list(struct_pack({RECORD_STRUCT}) ORDER BY event_date, source, record_key, signal) AS records
        FROM contrib GROUP BY entity_id
    )
    SELECT {lit(r.id)} AS rule, {lit(r.label)} AS label, {lit(r.scope)} AS entity_type, f.entity_id,
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
           {lit(r.guidance)} AS guidance, agg.first_date, agg.last_date
    FROM _fired f LEFT JOIN agg ON agg.entity_id = f.entity_id LEFT JOIN _vis v ON v.entity_id = f.entity_id
    """


def evaluate_rule(con: duckdb.DuckDBPyConnection, rule: Rule, as_of: dt.date, tables: dict[str, str],
                  target: str) -> int:
    """Evaluate one rule into table ``target`` (flag rows before overrides) on ``con``; returns flags raised.
    The rule's working tables are temp tables of ``con``: its entity signals (read three times), the fired
    entities and their single-agency visibility."""
    comp = RuleCompiler(rule, as_of, tables)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _es AS {comp.entity_signals()}")
        comp.es_table = "temp.main._es"
        con.execute(f"CREATE OR REPLACE TEMP TABLE _fired AS SELECT * FROM ({comp.evaluate_sql(False)}) WHERE fired")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _vis AS SELECT entity_id, bool_or(fired) AS visible "
                    f"FROM ({comp.evaluate_sql(True, 'temp.main._fired')}) GROUP BY entity_id")
        con.execute(f"CREATE OR REPLACE TABLE {target} AS {_rule_flags_sql(comp)}")
    finally:
        con.execute("DROP TABLE IF EXISTS temp.main._es")
        con.execute("DROP TABLE IF EXISTS temp.main._fired")
        con.execute("DROP TABLE IF EXISTS temp.main._vis")
    return int(con.execute(f"SELECT count(*) FROM {target}").fetchone()[0])


def _final_flags_sql(parts: list[str], as_of: dt.date) -> str:
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM {p}" for p in parts)
    ov_struct = ("struct_pack(override_id := o.override_id, rule := o.rule, raise_score := o.raise_score, "
                 "reason := o.reason, user_name := o.user_name, recorded_at := o.recorded_at::VARCHAR)")
    a = f"DATE '{as_of.isoformat()}'"
    return f"""
    WITH raw AS ({union}),
    raised AS (
        SELECT r.rule, r.entity_type, r.entity_id, sum(o.raise_score) AS raise_score,
               list({ov_struct} ORDER BY o.recorded_at) AS overrides
        FROM raw r JOIN overrides o ON o.entity_type = r.entity_type AND o.entity_id = r.entity_id
             AND (o.rule IS NULL OR o.rule = r.rule)
        GROUP BY r.rule, r.entity_type, r.entity_id
    ),
    orphan AS (
        SELECT o.entity_type, o.entity_id, sum(o.raise_score) AS raise_score,
               list({ov_struct} ORDER BY o.recorded_at) AS overrides, min(o.recorded_at)::DATE AS first_date
        FROM overrides o
        WHERE NOT EXISTS (SELECT 1 FROM raw r WHERE r.entity_type = o.entity_type AND r.entity_id = o.entity_id
                          AND (o.rule IS NULL OR o.rule = r.rule))
        GROUP BY o.entity_type, o.entity_id
    ),
    combined AS (
        SELECT r.*, coalesce(x.raise_score, 0.0) AS override_raise, x.overrides FROM raw r
        LEFT JOIN raised x ON x.rule = r.rule AND x.entity_type = r.entity_type AND x.entity_id = r.entity_id
        UNION ALL BY NAME
        SELECT {lit(PROFESSIONAL_JUDGEMENT)} AS rule, 'Raised by professional judgement' AS label,
               entity_type, entity_id,
               CASE WHEN entity_type = 'person' THEN [entity_id] ELSE []::VARCHAR[] END AS person_ids,
               []::VARCHAR[] AS uprns, []::VARCHAR[] AS agencies, 0.0 AS signal_score, 1.0 AS rule_weight,
               1.0 AS boost, 0.0 AS base_score, false AS visible_to_single_agency,
               0::BIGINT AS conditions_met, 0::BIGINT AS conditions_needed, 0::BIGINT AS window_days,
               'A professional raised this case (see the override reasons). Professional judgement may raise a '
               || 'case, never lower one.' AS guidance,
               first_date, first_date AS last_date, raise_score AS override_raise, overrides
        FROM orphan
    ),
    scored AS (SELECT *, round(base_score + override_raise, 6) AS score FROM combined)
    SELECT 'F' || substr(md5(rule || '|' || entity_type || '|' || entity_id), 1, 12) AS flag_id,
           rule, label, entity_type, entity_id, person_ids, uprns, score,
           row_number() OVER (ORDER BY score DESC, rule, entity_type, entity_id)::INT AS rank,
           agencies, visible_to_single_agency,
           to_json(struct_pack(
               rule := rule, entity_type := entity_type, entity_id := entity_id, as_of := {a}::VARCHAR,
               window_days := window_days,
               window_start := ({a} - CAST(window_days AS INTEGER))::VARCHAR, window_end := {a}::VARCHAR,
               conditions_met := conditions_met, conditions_needed := conditions_needed,
               conditions := conditions, boosts := boosts,
               signal_score := round(signal_score, 6), rule_weight := rule_weight, boost := boost,
               override_raise := override_raise, overrides := coalesce(overrides, []),
               records := coalesce(records, [])))::VARCHAR AS evidence,
           guidance, first_date, last_date
    FROM scored
    """


def score_steps(work: Scratch, taxonomy: Taxonomy, ruleset: RuleSet, as_of: dt.date
                ) -> tuple[list[Step], list[Step], list[Rule]]:
    """The score stage as scratch steps (signals, then every rule side by side) and the main steps that
    write ``signals`` and ``flags`` in the stage transaction; also the enabled rules in order."""
    tables = optional_tables(work.store)
    tables.update(signals="_score_signals", current_residence="_score_current", rep_household="_score_rep_household")
    base = ("_score_signals", "_score_current", "_score_rep_household")
    rules = [r for r in ruleset.rules if r.enabled]
    parts = [f"_flags_part{i}" for i in range(len(rules))]
    steps = [
        Step(TAXONOMY_TABLE, lambda cur: register_taxonomy(cur, taxonomy, temp=False)),
        sql_step("_score_signals", signals_sql(as_of), (TAXONOMY_TABLE,), all_threads=True),  # all wait for it
        sql_step("_score_current", current_residence_sql()),
        sql_step("_score_rep_household", rep_household_sql()),
        *(Step(part, lambda cur, r=rule, p=part: evaluate_rule(cur, r, as_of, tables, p), base)
          for rule, part in zip(rules, parts, strict=True)),
    ]
    signals = work.write("signals", f"SELECT * FROM {work.table('_score_signals')}", ("_score_signals",))
    flags = work.write("flags", f"SELECT * FROM ({_final_flags_sql(parts, as_of)}) ORDER BY rank", tuple(parts))
    return steps, [signals, flags], rules


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
        steps, main, rules = score_steps(work, taxonomy, ruleset, as_of)
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
                details={"as_of": as_of.isoformat(), "rules": [r.id for r in rules], "seconds": timings},
                row_counts={"signals": n_signals, "signals_without_person": stats[0],
                            "signals_without_location": stats[1], "signals_unknown_code": stats[2],
                            "flags": n_flags, "flags_invisible_to_single_agency": invisible,
                            **{r.id: done[f"_flags_part{i}"] for i, r in enumerate(rules)}},
            )
    log.info("score: %d signals, %d flags", n_signals, n_flags)
