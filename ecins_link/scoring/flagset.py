"""The final ``flags`` table: overrides, stable ids, status against the previous batch, ranking, evidence.

* **flag_id** = ``F`` + md5(rule | entity type | identity)[:12], where identity is the entity id (person ids
  are stable through the person id registry, locations are ``U<uprn>``, clusters ``C<smallest person id>``)
  and, for a household, its address's location id (a household's id changes as people come and go).
* **status**: ``lapsed`` when the criterion was last met more than ``[scoring] current_days`` before as-of;
  else ``new`` when the previous batch (the latest earlier as-of in ``flag_history``) had no such flag,
  ``escalated`` when it now meets more conditions or has a higher severity, else ``ongoing``.
* **severity** = the strongest episode's score at the time it was met (signal weights decayed to the episode's
  end, x rule weight x boosts); **score** = severity x recency (1 while current; a lapsed flag is halved and
  then halves again every ``current_days``) + professional-judgement raises.  Rank 1 = highest score: a lapsed
  episode ranks below a current one of the same severity, and stays listed.
* ``flag_history`` keeps every batch's flags (ids, conditions met, severity, dates, status) so the next batch
  can compare; re-running a batch with the same as-of replaces its rows (the status is reproducible).
"""

from __future__ import annotations

import datetime as dt

import duckdb

from ecins_link.scoring.compile import lit
from ecins_link.store import Store

PROFESSIONAL_JUDGEMENT = "professional_judgement"
HISTORY_DDL = """CREATE TABLE IF NOT EXISTS flag_history (
    run_as_of DATE, flag_id VARCHAR, rule VARCHAR, entity_type VARCHAR, entity_id VARCHAR,
    conditions_met BIGINT, severity DOUBLE, score DOUBLE, first_met DATE, last_met DATE, status VARCHAR,
    recorded_at TIMESTAMP)"""
_EMPTY_PREV = ("SELECT NULL::VARCHAR AS flag_id, NULL::BIGINT AS conditions_met, NULL::DOUBLE AS severity "
               "WHERE false")


def previous_flags_sql(store: Store, as_of: dt.date) -> str:
    """The previous batch's flags (flag_id, conditions_met, severity): the latest as-of before this one."""
    if not store.has_table("flag_history"):
        return _EMPTY_PREV
    a = f"DATE '{as_of.isoformat()}'"
    return (f"SELECT flag_id, conditions_met, severity FROM flag_history WHERE run_as_of = "
            f"(SELECT max(run_as_of) FROM flag_history WHERE run_as_of < {a})")


def final_flags_sql(parts: list[str], as_of: dt.date, current_days: int, prev: str) -> str:
    """The ``flags`` rows from the rules' flag parts, the ``overrides`` table and the previous flags ``prev``."""
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM {p}" for p in parts)
    ov_struct = ("struct_pack(override_id := o.override_id, rule := o.rule, raise_score := o.raise_score, "
                 "reason := o.reason, user_name := o.user_name, recorded_at := o.recorded_at::VARCHAR)")
    a = f"DATE '{as_of.isoformat()}'"
    cd = int(current_days)
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
               list({ov_struct} ORDER BY o.recorded_at) AS overrides, min(o.recorded_at)::DATE AS first_date,
               max(o.recorded_at)::DATE AS last_date
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
               entity_type, entity_id, entity_id AS identity,
               CASE WHEN entity_type = 'person' THEN [entity_id] ELSE []::VARCHAR[] END AS person_ids,
               []::VARCHAR[] AS uprns, []::VARCHAR[] AS agencies, 0.0 AS signal_score, 1.0 AS rule_weight,
               1.0 AS boost, 0.0 AS base_score, false AS visible_to_single_agency,
               0::BIGINT AS conditions_met, 0::BIGINT AS conditions_needed, 0::BIGINT AS window_days,
               'A professional raised this case (see the override reasons). Professional judgement may raise a '
               || 'case, never lower one.' AS guidance,
               first_date, last_date, first_date AS first_met, least(last_date, {a}) AS last_met,
               1::BIGINT AS windows_met, first_date AS window_start, last_date AS window_end,
               raise_score AS override_raise, overrides
        FROM orphan
    ),
    keyed AS (
        SELECT *, 'F' || substr(md5(rule || '|' || entity_type || '|' || identity), 1, 12) AS flag_id,
               round(base_score, 6) AS severity,
               date_diff('day', last_met, {a}) > {cd} AS lapsed,
               CASE WHEN date_diff('day', last_met, {a}) > {cd}
                    THEN 0.5 * pow(0.5, (date_diff('day', last_met, {a}) - {cd}) / {float(cd)}) ELSE 1.0 END
                   AS recency
        FROM combined
    ),
    scored AS (
        SELECT k.*, round(k.base_score * k.recency + k.override_raise, 6) AS score,
               CASE WHEN k.lapsed THEN 'lapsed'
                    WHEN p.flag_id IS NULL THEN 'new'
                    WHEN k.conditions_met > p.conditions_met OR round(k.base_score, 6) > p.severity + 1e-6
                        THEN 'escalated'
                    ELSE 'ongoing' END AS status
        FROM keyed k LEFT JOIN ({prev}) p ON p.flag_id = k.flag_id
    )
    SELECT flag_id, rule, label, entity_type, entity_id, person_ids, uprns, score,
           row_number() OVER (ORDER BY score DESC, rule, entity_type, entity_id)::INT AS rank,
           agencies, visible_to_single_agency,
           to_json(struct_pack(
               rule := rule, entity_type := entity_type, entity_id := entity_id, as_of := {a}::VARCHAR,
               window_days := window_days,
               window_start := window_start::VARCHAR, window_end := window_end::VARCHAR,
               first_met := first_met::VARCHAR, last_met := last_met::VARCHAR, windows_met := windows_met,
               status := status, current_days := {cd}, severity := severity, recency := round(recency, 6),
               conditions_met := conditions_met, conditions_needed := conditions_needed,
               conditions := conditions, boosts := boosts,
               signal_score := round(signal_score, 6), rule_weight := rule_weight, boost := boost,
               override_raise := override_raise, overrides := coalesce(overrides, []),
               records := coalesce(records, [])))::VARCHAR AS evidence,
           guidance, first_date, last_date, first_met, last_met, status, severity, conditions_met,
           window_start, window_end, windows_met
    FROM scored
    """


def record_history(con: duckdb.DuckDBPyConnection, as_of: dt.date, flags_table: str = "flags",
                   database: str | None = None) -> int:
    """Keep this batch's flags in ``flag_history`` (replacing a previous run with the same as-of)."""
    hist = f'"{database}".main.flag_history' if database else "flag_history"
    con.execute(HISTORY_DDL.replace("flag_history", hist, 1))
    con.execute(f"DELETE FROM {hist} WHERE run_as_of = ?", [as_of])
    con.execute(f"INSERT INTO {hist} SELECT ?::DATE, flag_id, rule, entity_type, entity_id, conditions_met, "
                f"severity, score, first_met, last_met, status, now()::TIMESTAMP FROM {flags_table}", [as_of])
    return int(con.execute(f"SELECT count(*) FROM {hist} WHERE run_as_of = ?", [as_of]).fetchone()[0])


def status_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Flags by status (for the audit row)."""
    rows = con.execute("SELECT status, count(*) FROM flags GROUP BY status").fetchall()
    return {f"flags_{status}": int(n) for status, n in rows}
