"""Derived metrics and entity filters of a rule, per episode (entity, anchor) and at the time of the episode.

Mixed into :class:`~ecins_link.scoring.compile.RuleCompiler`; every CTE here reads the CTE ``a`` (the
anchors being evaluated: ``entity_id, anchor, ws``) and is keyed by ``(entity_id, anchor)``.

* ``household_size`` — people resident at the person's address (household: its members) at some time in the
  episode window (a person "lives alone" only if nobody else was there then);
* ``age`` — age at the anchor date (from the date of birth; a person 17 at the episode is a child for it);
* ``churn`` — people linked to the location in the window who are not its household members, and the graph's
  ``location_churn`` windows overlapping it;
* ``co_involved_with`` — co-involvement in an event dated in the window with another person who has the
  selected signals by then, aged ``with_min_age``+ at the event (of unknown age: counts only with
  ``with_unknown_age``, and never when recorded as a child);
* ``rfg`` — Recency (relative to the anchor), Frequency and Gravity of the window's offences;
* ``require_child`` — a member who was a child while a member at some time in the window.
"""

from __future__ import annotations

from ecins_link.scoring.rules import Condition


def age_at(dob: str, when: str) -> str:
    """SQL: completed years between a date of birth and a date (18 on the 18th birthday)."""
    return f"CAST(date_sub('year', {dob}, {when}) AS INTEGER)"


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(_lit(v) for v in values)})"


def _lit(v: str) -> str:
    return "'" + str(v).replace("'", "''") + "'"


class MetricsMixin:
    """Metric and filter CTEs (needs ``rule``, ``tables``, ``sig``, ``as_of``, ``lookback_start`` and the
    compiler's ``residence_periods_sql``, ``members_sql``, ``cond_window``, ``_lookback``)."""

    def metric_ctes(self, by_agency: bool = False) -> tuple[list[str], dict[str, str]]:
        """CTEs computing the conditions' metrics per (entity, anchor), and each condition's metric expression.

        In a single-agency view churn counts only that agency's located events (``g.churn<i>``); the
        all-agency view also counts residents who are not household members and the graph's churn.
        """
        ctes: list[str] = []
        exprs: dict[str, str] = {}
        scope = self.rule.scope
        for i, c in enumerate(self.rule.conditions):
            if c.metric is None:
                continue
            name = f"m{i}"
            if c.metric == "household_size":
                ctes.append(f"{name} AS ({self._household_size_sql(c, scope)})")
                exprs[c.id] = f"{name}.v"
            elif c.metric == "age":
                ctes.append(f"{name} AS (SELECT a.entity_id, a.anchor, coalesce({age_at('pa.dob', 'a.anchor')}, "
                            f"pa.age) AS v FROM a JOIN person_attributes pa ON pa.person_id = a.entity_id)")
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
                    f"date_diff('day', rfg_last, g.anchor) / {float(self.rule.window_days)}) "
                    f"+ least({float(p.frequency_points)} * rfg_n, {float(p.frequency_cap)}) "
                    f"+ least(rfg_gravity / {float(p.gravity_divisor)}, {float(p.gravity_cap)}) ELSE 0.0 END)")
        return ctes, exprs

    def _household_size_sql(self, c: Condition, scope: str) -> str:
        cw = int(self.cond_window(c))
        overlap = "{t}.f <= a.anchor AND {t}.l >= a.anchor - " + str(cw)
        if scope == "household":
            return (f"SELECT a.entity_id, a.anchor, count(DISTINCT m.person_id) AS v FROM a "
                    f"JOIN ({self.members_sql()}) m ON m.entity_id = a.entity_id AND {overlap.format(t='m')} "
                    f"GROUP BY ALL")
        res = self.residence_periods_sql()
        per_home = (f"SELECT a.entity_id, a.anchor, r.location_id, count(DISTINCT r2.person_id) AS v FROM a "
                    f"JOIN ({res}) r ON r.person_id = a.entity_id AND {overlap.format(t='r')} "
                    f"JOIN ({res}) r2 ON r2.location_id = r.location_id AND {overlap.format(t='r2')} GROUP BY ALL")
        # of several homes in the window, the fullest: "lives alone" only if alone at each
        return f"SELECT entity_id, anchor, max(v) AS v FROM ({per_home}) GROUP BY ALL"

    def _churn_sql(self, c: Condition) -> str:
        cw = int(self.cond_window(c))
        low, high = "DATE '1900-01-01'", "DATE '9999-12-31'"
        linked = (
            f"SELECT location_id, person_id, event_date AS d0, event_date AS d1 FROM {self.sig} s "
            f"WHERE person_id IS NOT NULL AND location_id IS NOT NULL AND {self._lookback()} "
            f"UNION ALL SELECT location_id, person_id, coalesce(first_seen, {low}), coalesce(last_seen, {high}) "
            f"FROM residences WHERE location_id IS NOT NULL")
        own = (f"SELECT a.entity_id, a.anchor, count(DISTINCT x.person_id) AS v FROM a JOIN ({linked}) x "
               f"ON x.location_id = a.entity_id AND x.d0 <= a.anchor AND x.d1 >= a.anchor - {cw} "
               f"WHERE NOT EXISTS (SELECT 1 FROM households h WHERE h.location_id = x.location_id "
               f"AND h.person_id = x.person_id) GROUP BY ALL")
        graph = (f"SELECT a.entity_id, a.anchor, max(lc.unrelated_persons) AS v FROM a "
                 f"JOIN {self.tables['location_churn']} lc ON lc.location_id = a.entity_id "
                 f"AND lc.window_end >= a.anchor - {cw} AND lc.window_start <= a.anchor "
                 f"AND date_diff('day', lc.window_start, lc.window_end) <= {cw + 1} GROUP BY ALL")
        return f"SELECT entity_id, anchor, max(v) AS v FROM ({own} UNION ALL {graph}) GROUP BY ALL"

    def _pairs_sql(self) -> str:
        edges = self.tables["graph_edges"]
        return (f"SELECT src AS p, dst AS q, start_date FROM {edges} WHERE edge_type = 'co_involved' "
                f"UNION ALL SELECT dst, src, start_date FROM {edges} WHERE edge_type = 'co_involved'")

    def _co_involved_sql(self, c: Condition) -> str:
        cw = int(self.cond_window(c))
        sel = []
        if c.with_signals:
            sel.append(_in("s.signal", c.with_signals))
        if c.with_categories:
            sel.append(_in("s.category", c.with_categories))
        other = f"({' OR '.join(sel)})"
        if c.with_exclude_roles:
            other += " AND NOT " + _in("coalesce(s.role, '')", c.with_exclude_roles)
        off = f"SELECT person_id, min(event_date) AS first FROM {self.sig} s WHERE {other} GROUP BY person_id"
        age = ""
        if c.with_min_age is not None:
            when = "coalesce(e.start_date, a.anchor)"
            unknown = "NOT coalesce(pq.is_child, false)" if c.with_unknown_age else "false"
            age = (f"JOIN person_attributes pq ON pq.person_id = e.q AND "
                   f"coalesce(coalesce({age_at('pq.dob', when)}, pq.age) >= {int(c.with_min_age)}, {unknown})")
        return (f"SELECT a.entity_id, a.anchor, count(DISTINCT e.q) AS v, list_sort(list_distinct(list(e.q))) AS ids "
                f"FROM a JOIN ({self._pairs_sql()}) e ON e.p = a.entity_id AND e.p <> e.q "
                f"AND (e.start_date IS NULL OR e.start_date BETWEEN a.anchor - {cw} AND a.anchor) "
                f"JOIN ({off}) o ON o.person_id = e.q AND o.first <= a.anchor {age} GROUP BY ALL")

    def metric_anchors_sql(self) -> str | None:
        """Extra anchors from metric events that are not the entity's own signals (co-involvement dates)."""
        if not any(c.metric == "co_involved_with" for c in self.rule.conditions):
            return None
        lo = f" AND start_date >= DATE '{self.lookback_start.isoformat()}'" if self.lookback_start else ""
        return (f"SELECT DISTINCT p AS entity_id, start_date AS anchor, start_date - {int(self.rule.window_days)} "
                f"AS ws FROM ({self._pairs_sql()}) WHERE start_date IS NOT NULL AND p <> q "
                f"AND start_date <= DATE '{self.as_of.isoformat()}'{lo}")

    def filter_ctes(self) -> list[str]:
        """CTE ``kid``: (entity, anchor) with a member who was a child while a member in the window."""
        r = self.rule
        if not (r.require_child and r.scope in ("household", "cluster")):
            return []
        cu = int(r.child_under)
        if r.scope == "household":
            return [f"kid AS (SELECT DISTINCT a.entity_id, a.anchor FROM a JOIN ({self.members_sql()}) m "
                    f"ON m.entity_id = a.entity_id AND m.f <= a.anchor AND m.l >= a.ws "
                    f"JOIN person_attributes p ON p.person_id = m.person_id WHERE CASE WHEN p.dob IS NULL "
                    f"THEN coalesce(p.is_child, false) ELSE p.dob <= least(m.l, a.anchor) "
                    f"AND {age_at('p.dob', 'greatest(m.f, a.ws)')} < {cu} END)"]
        return [f"kid AS (SELECT DISTINCT a.entity_id, a.anchor FROM a JOIN {self.tables['person_components']} pc "
                f"ON pc.component_id = a.entity_id JOIN person_attributes p ON p.person_id = pc.person_id "
                f"WHERE CASE WHEN p.dob IS NULL THEN coalesce(p.is_child, false) ELSE p.dob <= a.anchor "
                f"AND {age_at('p.dob', 'a.ws')} < {cu} END)"]

    def filter_joins(self) -> str:
        """The joins the entity filters need (see :meth:`filter_ctes`)."""
        r = self.rule
        if r.require_child and r.scope in ("household", "cluster"):
            return " LEFT JOIN kid ON kid.entity_id = g.entity_id AND kid.anchor = g.anchor"
        return ""
