"""Compile one combination rule to DuckDB SQL over the ``signals`` table (set-based, no entity loops).

For a rule the compiler builds:

* ``es`` — the entity's signals in the rule window (entity = person, household, location or cluster,
  with ``link`` saying how a signal reaches it and ``member_child`` for member filters);
* one aggregate row per entity (and per agency when ``by_agency``) with, per condition, the number of
  distinct records and agencies that satisfy it, the derived metric, whether it holds, and how many held;
* the fired entities (enough conditions held and the rule's entity filters pass);
* the contributing signals of fired entities (signals of the conditions that held), with the evidence.
"""

from __future__ import annotations

import datetime as dt

from ecins_link.scoring.rules import Condition, Rule

SIGNAL_COLS = ("signal_id, source, record_key, agency, signal, category, role, event_date, person_id, uprn, "
               "link_confidence, decayed_weight, gravity")


def lit(value: object) -> str:
    """A SQL literal for a string / number / bool / None."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(lit(v) for v in values)})"


def _date(d: dt.date) -> str:
    return f"DATE '{d.isoformat()}'"


def current_residence_sql() -> str:
    """Each person's current residence: the latest-ending (open = current), then latest-starting one."""
    return ("SELECT person_id, location_id FROM residences WHERE location_id IS NOT NULL QUALIFY row_number() "
            "OVER (PARTITION BY person_id ORDER BY coalesce(last_seen, DATE '9999-12-31') DESC, "
            "coalesce(first_seen, DATE '1900-01-01') DESC, location_id) = 1")


def rep_household_sql() -> str:
    """Each location's most recent ``households`` id (open-ended = most recent)."""
    return ("SELECT location_id, household_id FROM households QUALIFY row_number() OVER (PARTITION BY "
            "location_id ORDER BY coalesce(last_seen, DATE '9999-12-31') DESC, household_id) = 1")


class RuleCompiler:
    """SQL for one rule at one as-of date; ``tables`` maps optional graph tables to the names to read."""

    def __init__(self, rule: Rule, as_of: dt.date, tables: dict[str, str]) -> None:
        self.rule = rule
        self.as_of = as_of
        self.tables = tables
        self.start = as_of - dt.timedelta(days=rule.window_days)
        self.sig = tables.get("signals", "signals")
        self.es_table: str | None = None  # a table holding entity_signals(), when the caller made one

    def es_sql(self) -> str:
        """The rule's entity signals: :meth:`entity_signals`, or the table ``es_table`` made from it."""
        return f"SELECT * FROM {self.es_table}" if self.es_table else self.entity_signals()

    # ------------------------------------------------------------------ entity signals
    def entity_signals(self) -> str:
        """SELECT of (entity_id, signal columns, link, member_child) for the rule's scope and window."""
        s_cols = ", ".join(f"s.{c.strip()}" for c in SIGNAL_COLS.split(","))
        window = f"s.event_date BETWEEN {_date(self.start)} AND {_date(self.as_of)}"
        scope = self.rule.scope
        child = "coalesce(pa.is_child, false)"
        pa_join = "LEFT JOIN person_attributes pa ON pa.person_id = s.person_id"
        if scope == "person":
            return (f"SELECT s.person_id AS entity_id, {s_cols}, 'self' AS link, {child} AS member_child "
                    f"FROM {self.sig} s {pa_join} WHERE s.person_id IS NOT NULL AND {window}")
        if scope == "household":
            # people who were members at some time in the window bring all their signals in the window
            # (a new partner's recent substance misuse matters to the child, wherever it was recorded)
            return (f"SELECT DISTINCT m.entity_id, {s_cols}, 'member' AS link, "
                    f"coalesce(pa.is_child, false) AS member_child FROM {self.sig} s "
                    f"JOIN ({self.members_sql()}) m ON m.person_id = s.person_id {pa_join} WHERE {window}")
        if scope == "cluster":
            return (f"SELECT pc.component_id AS entity_id, {s_cols}, 'member' AS link, {child} AS member_child "
                    f"FROM {self.sig} s JOIN {self.tables['person_components']} pc ON pc.person_id = s.person_id "
                    f"{pa_join} WHERE {window}")
        resident = f"SELECT DISTINCT person_id, location_id FROM ({self.members_sql()})"
        member = ("EXISTS (SELECT 1 FROM households hm WHERE hm.location_id = s.location_id "
                  "AND hm.person_id = s.person_id)")
        return (f"SELECT s.location_id AS entity_id, {s_cols}, 'located' AS link, {child} AS member_child, "
                f"{member} AS is_member "
                f"FROM {self.sig} s {pa_join} WHERE s.location_id IS NOT NULL "
                f"AND {window} UNION ALL "
                f"SELECT r.location_id AS entity_id, {s_cols}, 'resident' AS link, {child} AS member_child, "
                f"true AS is_member "
                f"FROM {self.sig} s JOIN ({resident}) r ON r.person_id = s.person_id {pa_join} WHERE {window}")

    def current_residence_sql(self) -> str:
        """Each person's current residence (see :func:`current_residence_sql`), precomputed if available."""
        if "current_residence" in self.tables:
            return f"SELECT * FROM {self.tables['current_residence']}"
        return current_residence_sql()

    def rep_household_sql(self) -> str:
        """Each location's most recent household id (see :func:`rep_household_sql`), precomputed if available."""
        if "rep_household" in self.tables:
            return f"SELECT * FROM {self.tables['rep_household']}"
        return rep_household_sql()

    def members_sql(self) -> str:
        """Household members in the rule window: (entity_id, location_id, person_id, f, l).

        A household is the people resident at one location: a person is a member from their first
        sighting there until their last, or open-ended while it is their current address (a last
        sighting dated by an agency contact is not a departure).  The entity id is the location's most
        recent ``households`` id, so flags name a household of the graph.
        """
        lo, hi = "DATE '1900-01-01'", "DATE '9999-12-31'"
        rep = self.rep_household_sql()
        return (f"SELECT coalesce(rep.household_id, 'H' || r.location_id) AS entity_id, r.location_id, r.person_id, "
                f"coalesce(r.first_seen, {lo}) AS f, "
                f"CASE WHEN cur.location_id = r.location_id THEN {hi} ELSE coalesce(r.last_seen, {hi}) END AS l "
                f"FROM residences r LEFT JOIN ({self.current_residence_sql()}) cur ON cur.person_id = r.person_id "
                f"LEFT JOIN ({rep}) rep ON rep.location_id = r.location_id "
                f"WHERE r.location_id IS NOT NULL AND coalesce(r.first_seen, {lo}) <= {_date(self.as_of)} "
                f"AND (cur.location_id = r.location_id OR coalesce(r.last_seen, {hi}) >= {_date(self.start)})")

    # ------------------------------------------------------------------ conditions
    def window_start(self, c: Condition) -> dt.date:
        """First day of a condition's window."""
        return self.as_of - dt.timedelta(days=c.window_days or self.rule.window_days)

    def predicate(self, c: Condition) -> str:
        """Row-level SQL predicate: this es row counts towards condition ``c``."""
        parts = []
        if not c.any_signal:
            sel = []
            if c.signals:
                sel.append(_in("signal", c.signals))
            if c.categories:
                sel.append(_in("category", c.categories))
            parts.append("(" + " OR ".join(sel) + ")")
        if c.roles:
            parts.append(_in("role", c.roles))
        if c.exclude_roles:
            parts.append("NOT " + _in("coalesce(role, '')", c.exclude_roles))
        if c.member == "adult":
            parts.append("NOT member_child")
        elif c.member == "child":
            parts.append("member_child")
        if c.link != "any":
            parts.append(f"link = {lit(c.link)}")
        if c.min_gravity is not None:
            parts.append(f"gravity > {float(c.min_gravity)}")
        if c.window_days:
            parts.append(f"event_date >= {_date(self.window_start(c))}")
        return "(" + " AND ".join(parts or ["true"]) + ")"

    def rfg_predicate(self) -> str:
        """Rows that are offences for the RFG metric."""
        p = self.rule.rfg
        out = f"gravity > {float(p.min_gravity)}"
        if p.exclude_roles:
            out += " AND NOT " + _in("coalesce(role, '')", p.exclude_roles)
        return out

    def metric_ctes(self, by_agency: bool = False) -> tuple[list[str], dict[str, str]]:
        """CTEs computing entity-level metrics, and the SQL expression of each condition's metric value.

        In a single-agency view churn counts only that agency's located events (``g.churn<i>``); the
        all-agency view also counts residents who are not household members and the graph's churn.
        """
        ctes: list[str] = []
        exprs: dict[str, str] = {}
        a, scope = _date(self.as_of), self.rule.scope
        for i, c in enumerate(self.rule.conditions):
            if c.metric is None:
                continue
            name = f"m{i}"
            if c.metric == "household_size":
                # people whose current address is the same location (see members_sql)
                cur = self.current_residence_sql()
                size = f"SELECT location_id, count(DISTINCT person_id) AS v FROM ({cur}) GROUP BY location_id"
                if scope == "household":
                    ctes.append(f"{name} AS (SELECT DISTINCT m.entity_id, z.v FROM ({self.members_sql()}) m "
                                f"JOIN ({size}) z USING (location_id))")
                else:
                    ctes.append(f"{name} AS (SELECT c.person_id AS entity_id, z.v FROM ({cur}) c "
                                f"JOIN ({size}) z USING (location_id))")
                exprs[c.id] = f"{name}.v"
            elif c.metric == "age":
                ctes.append(f"{name} AS (SELECT person_id AS entity_id, age AS v FROM person_attributes)")
                exprs[c.id] = f"{name}.v"
            elif c.metric == "churn":
                ctes.append(f"{name} AS ({self._churn_sql(c)})")
                exprs[c.id] = f"g.churn{i}" if by_agency else f"greatest(g.churn{i}, coalesce({name}.v, 0))"
            elif c.metric == "co_involved_with":
                ctes.append(f"{name} AS ({self._co_involved_sql(c)})")
                exprs[c.id] = f"{name}.v"
            elif c.metric == "rfg":
                p = self.rule.rfg
                exprs[c.id] = (
                    f"(CASE WHEN rfg_n > 0 THEN {float(p.recency_points)} * greatest(0.0, 1.0 - "
                    f"date_diff('day', rfg_last, {a}) / {float(self.rule.window_days)}) "
                    f"+ least({float(p.frequency_points)} * rfg_n, {float(p.frequency_cap)}) "
                    f"+ least(rfg_gravity / {float(p.gravity_divisor)}, {float(p.gravity_cap)}) ELSE 0.0 END)")
        return ctes, exprs

    def _churn_sql(self, c: Condition) -> str:
        a, w = _date(self.as_of), _date(self.window_start(c))
        length = (c.window_days or self.rule.window_days) + 1
        linked = (
            f"SELECT location_id, person_id FROM {self.sig} WHERE person_id IS NOT NULL "
            f"AND location_id IS NOT NULL AND event_date BETWEEN {w} AND {a} "
            f"UNION SELECT location_id, person_id FROM residences WHERE location_id IS NOT NULL "
            f"AND coalesce(last_seen, {a}) >= {w} AND coalesce(first_seen, {w}) <= {a}")
        own = (f"SELECT x.location_id AS entity_id, count(DISTINCT x.person_id) AS v FROM ({linked}) x "
               f"WHERE NOT EXISTS (SELECT 1 FROM households h WHERE h.location_id = x.location_id "
               f"AND h.person_id = x.person_id) GROUP BY x.location_id")
        graph = (f"SELECT location_id AS entity_id, max(unrelated_persons) AS v FROM {self.tables['location_churn']} "
                 f"WHERE window_end BETWEEN {w} AND {a} AND date_diff('day', window_start, window_end) <= {length} "
                 f"GROUP BY location_id")
        return (f"SELECT entity_id, max(v) AS v FROM ({own} UNION ALL {graph}) GROUP BY entity_id")

    def _co_involved_sql(self, c: Condition) -> str:
        a, w = _date(self.as_of), _date(self.window_start(c))
        edges = self.tables["graph_edges"]
        pair = (f"SELECT src AS p, dst AS q, start_date FROM {edges} WHERE edge_type = 'co_involved' "
                f"UNION ALL SELECT dst, src, start_date FROM {edges} WHERE edge_type = 'co_involved'")
        sel = []
        if c.with_signals:
            sel.append(_in("s.signal", c.with_signals))
        if c.with_categories:
            sel.append(_in("s.category", c.with_categories))
        other = f"({' OR '.join(sel)}) AND s.event_date <= {a}"
        if c.with_exclude_roles:
            other += " AND NOT " + _in("coalesce(s.role, '')", c.with_exclude_roles)
        age = f"JOIN person_attributes pa ON pa.person_id = e.q AND pa.age >= {int(c.with_min_age)}" \
            if c.with_min_age is not None else ""
        return (f"SELECT e.p AS entity_id, count(DISTINCT e.q) AS v, list_sort(list_distinct(list(e.q))) AS ids "
                f"FROM ({pair}) e {age} "
                f"WHERE e.p <> e.q AND (e.start_date IS NULL OR e.start_date BETWEEN {w} AND {a}) "
                f"AND EXISTS (SELECT 1 FROM {self.sig} s WHERE s.person_id = e.q AND {other}) GROUP BY e.p")

    # ------------------------------------------------------------------ evaluation
    def evaluate_sql(self, by_agency: bool, only_entities: str | None = None) -> str:
        """Per (entity, view) condition stats and ``fired``; view = '*' (all agencies) or one agency."""
        r = self.rule
        view = "agency" if by_agency else "'*'"
        restrict = f" WHERE entity_id IN (SELECT entity_id FROM {only_entities})" if only_entities else ""
        aggs = []
        for i, c in enumerate(r.conditions):
            if c.selects_signals:
                p = self.predicate(c)
                aggs.append(f"count(DISTINCT CASE WHEN {p} THEN source || chr(31) || record_key END) AS n{i}")
                aggs.append(f"count(DISTINCT CASE WHEN {p} THEN agency END) AS a{i}")
        if any(c.metric == "rfg" for c in r.conditions):
            rp = self.rfg_predicate()
            aggs.append(f"count(DISTINCT CASE WHEN {rp} THEN source || chr(31) || record_key END) AS rfg_n")
            aggs.append(f"coalesce(sum(CASE WHEN {rp} THEN gravity END), 0.0) AS rfg_gravity")
            aggs.append(f"max(CASE WHEN {rp} THEN event_date END) AS rfg_last")
        for i, c in enumerate(r.conditions):
            if c.metric == "churn":
                visitor = (f"link = 'located' AND NOT is_member AND person_id IS NOT NULL "
                           f"AND event_date >= {_date(self.window_start(c))}")
                aggs.append(f"count(DISTINCT CASE WHEN {visitor} THEN person_id END) AS churn{i}")
                aggs.append(f"list_sort(list_distinct(list(CASE WHEN {visitor} THEN person_id END))) AS churn_ids{i}")
        ctes, mexpr = self.metric_ctes(by_agency)
        joins = "".join(f" LEFT JOIN m{i} ON m{i}.entity_id = g.entity_id"
                        for i, c in enumerate(r.conditions) if c.metric and c.metric != "rfg")
        cols, oks, ok_exprs = [], [], []
        for i, c in enumerate(r.conditions):
            sig = f"(g.n{i} >= {c.min_count} AND g.a{i} >= {c.min_agencies})" if c.selects_signals else None
            met = None
            if c.metric:
                m = mexpr[c.id]
                bounds = [f"{m} >= {float(c.metric_min)}" if c.metric_min is not None else None,
                          f"{m} <= {float(c.metric_max)}" if c.metric_max is not None else None]
                met = "coalesce(" + " AND ".join(b for b in bounds if b) + ", false)"
                cols.append(f"({m})::DOUBLE AS v{i}")
            else:
                cols.append(f"NULL::DOUBLE AS v{i}")
            related = {"co_involved_with": f"m{i}.ids", "churn": f"g.churn_ids{i}"}.get(c.metric or "")
            cols.append(f"{related or 'NULL::VARCHAR[]'} AS r{i}")
            ok = f"({sig} OR {met})" if sig and met else (sig or met)
            cols.append(f"{ok} AS ok{i}")
            cols.append(f"g.n{i}::BIGINT AS n{i}, g.a{i}::BIGINT AS a{i}" if c.selects_signals
                        else f"NULL::BIGINT AS n{i}, NULL::BIGINT AS a{i}")
            oks.append(f"({ok})::INT")
            ok_exprs.append(f"({ok})")
        filters = self._entity_filters()
        fired = f"({' + '.join(oks)}) >= {r.needed}" + (f" AND {filters}" if filters else "")
        boost = self._boost_expr(ok_exprs)
        for n, cond in enumerate(self._boost_conditions(ok_exprs)):
            cols.append(f"coalesce({cond}, false) AS boost_applied{n}")
        with_ctes = ", ".join([f"es AS ({self.es_sql()})",
                               f"g AS (SELECT entity_id, {view} AS view, {', '.join(aggs) or 'count(*) AS n_all'} "
                               f"FROM es{restrict} GROUP BY ALL)", *ctes])
        return (f"WITH {with_ctes} SELECT g.entity_id, g.view, {', '.join(cols)}, "
                f"({' + '.join(oks)}) AS n_ok, {fired} AS fired, {boost} AS boost "
                f"FROM g LEFT JOIN person_attributes pa_e ON pa_e.person_id = g.entity_id{joins}")

    def _entity_filters(self) -> str:
        r, out = self.rule, []
        if r.min_age is not None:
            out.append(f"coalesce(pa_e.age >= {int(r.min_age)}, false)")
        if r.max_age is not None:
            out.append(f"coalesce(pa_e.age <= {int(r.max_age)}, false)")
        if r.require_child and r.scope == "household":
            out.append(f"g.entity_id IN (SELECT m.entity_id FROM ({self.members_sql()}) m "
                       f"JOIN person_attributes p ON p.person_id = m.person_id WHERE p.is_child)")
        if r.require_child and r.scope == "cluster":
            out.append(f"g.entity_id IN (SELECT pc.component_id FROM {self.tables['person_components']} pc "
                       f"JOIN person_attributes p ON p.person_id = pc.person_id WHERE p.is_child)")
        return " AND ".join(out)

    def _boost_conditions(self, ok_exprs: list[str]) -> list[str]:
        ids = [c.id for c in self.rule.conditions]
        out = []
        for b in self.rule.boosts:
            conds = []
            if b.min_age is not None:
                conds.append(f"pa_e.age >= {int(b.min_age)}")
            if b.max_age is not None:
                conds.append(f"pa_e.age <= {int(b.max_age)}")
            if b.condition is not None:
                conds.append(ok_exprs[ids.index(b.condition)])
            out.append(" AND ".join(conds))
        return out

    def _boost_expr(self, ok_exprs: list[str]) -> str:
        terms = [f"CASE WHEN coalesce({cond}, false) THEN {float(b.factor)} ELSE 1.0 END"
                 for b, cond in zip(self.rule.boosts, self._boost_conditions(ok_exprs), strict=True)]
        return " * ".join(terms) if terms else "1.0"

    def boosts_struct(self, fired_alias: str) -> str:
        """A list of {label, factor, applied} for the evidence."""
        if not self.rule.boosts:
            return "[]::STRUCT(label VARCHAR, factor DOUBLE, applied BOOLEAN)[]"
        items = []
        for n, b in enumerate(self.rule.boosts):
            applied = f"{fired_alias}.boost_applied{n}"
            items.append(f"struct_pack(label := {lit(b.label or f'x{b.factor}')}::VARCHAR, "
                         f"factor := {float(b.factor)}::DOUBLE, applied := coalesce({applied}, false)::BOOLEAN)")
        return "[" + ", ".join(items) + "]"

    def contributing_predicate(self, fired_alias: str) -> str:
        """es rows that contribute to a fired entity: rows of the signal conditions that held."""
        parts = [f"({fired_alias}.ok{i} AND {self.predicate(c)})"
                 for i, c in enumerate(self.rule.conditions) if c.selects_signals]
        if any(c.metric == "rfg" for c in self.rule.conditions):
            idx = next(i for i, c in enumerate(self.rule.conditions) if c.metric == "rfg")
            parts.append(f"({fired_alias}.ok{idx} AND {self.rfg_predicate()})")
        return " OR ".join(parts) if parts else "false"

    def conditions_struct(self, fired_alias: str) -> str:
        """A list of {id, label, met, count, agencies, metric, min_count, min_agencies} for the evidence."""
        items = []
        for i, c in enumerate(self.rule.conditions):
            items.append(
                f"struct_pack(id := {lit(c.id)}::VARCHAR, label := {lit(c.label)}::VARCHAR, "
                f"met := {fired_alias}.ok{i}::BOOLEAN, count := {fired_alias}.n{i}::BIGINT, "
                f"agencies := {fired_alias}.a{i}::BIGINT, metric := {lit(c.metric)}::VARCHAR, "
                f"metric_value := {fired_alias}.v{i}::DOUBLE, "
                f"related_person_ids := {fired_alias}.r{i}::VARCHAR[], min_count := {c.min_count}::BIGINT, "
                f"min_agencies := {c.min_agencies}::BIGINT)")
        return "[" + ", ".join(items) + "]"
