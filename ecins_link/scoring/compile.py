"""Compile one combination rule to DuckDB SQL over the ``signals`` table (set-based, no entity loops).

A rule holds in *episodes*: windows of ``window_days`` anchored on each contributing event inside the
lookback (SafeLives: 3 or more incidents in ANY 12 months, met on the date of the incident that reaches it).
For a rule the compiler builds:

* ``entity_signals`` — the entity's signals in the lookback (entity = person, household, location or cluster,
  with ``link`` saying how a signal reaches it, ``member_child`` = a child *at the event date*, and ``mf``/``ml``
  the membership period of a household member or resident);
* ``anchors_sql`` — one row per (entity, date of a contributing event): the episode window ``[ws, anchor]``;
* ``evaluate_sql`` — one aggregate row per (entity, anchor) (and per agency when ``by_agency``) over a range
  join of the anchors and the signals: per condition the distinct records and agencies in that window, the
  derived metric at that time (:mod:`ecins_link.scoring.metrics`), whether it holds, and whether the rule
  fired (required conditions, k-of-n groups, the other conditions, entity filters such as age at the anchor).
"""

from __future__ import annotations

import datetime as dt

from ecins_link.scoring.metrics import MetricsMixin, age_at
from ecins_link.scoring.placement import LocationSignalsMixin
from ecins_link.scoring.rules import Condition, Rule

SIGNAL_COLS = ("signal_id, source, record_key, agency, signal, category, role, event_date, person_id, uprn, "
               "link_confidence, decayed_weight, gravity, weight, half_life_days, location_origin")
LOW, HIGH = "DATE '1900-01-01'", "DATE '9999-12-31'"


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


class RuleCompiler(MetricsMixin, LocationSignalsMixin):
    """SQL for one rule at one as-of date over a lookback; ``tables`` maps optional graph tables to the names
    to read.  ``lookback_start`` = the first date whose events count (None: all the data)."""

    def __init__(self, rule: Rule, as_of: dt.date, tables: dict[str, str],
                 lookback_start: dt.date | None = None) -> None:
        self.rule = rule
        self.as_of = as_of
        self.tables = tables
        self.lookback_start = lookback_start
        self.sig = tables.get("signals", "signals")
        self.es_table: str | None = None       # a table holding entity_signals(), when the caller made one
        self.anchor_table: str | None = None   # a table holding anchors_sql(), when the caller made one

    @property
    def window(self) -> int:
        """The rule's window in days."""
        return int(self.rule.window_days)

    def es_sql(self) -> str:
        """The rule's entity signals: :meth:`entity_signals`, or the table ``es_table`` made from it."""
        return f"SELECT * FROM {self.es_table}" if self.es_table else self.entity_signals()

    def anchors(self) -> str:
        """The rule's anchors: :meth:`anchors_sql`, or the table ``anchor_table`` made from it."""
        return f"SELECT * FROM {self.anchor_table}" if self.anchor_table else self.anchors_sql()

    # ------------------------------------------------------------------ entity signals
    def _lookback(self, alias: str = "s") -> str:
        lo = f"{alias}.event_date >= {_date(self.lookback_start)} AND " if self.lookback_start else ""
        return f"{lo}{alias}.event_date <= {_date(self.as_of)}"

    def _selection(self, located: bool) -> str:
        """Signal-level part of :meth:`relevant_predicate` (what a signal row is, before it reaches an entity):
        the rows any condition selects, RFG offences and (``located``) visitors for churn."""
        r, parts = self.rule, []
        for c in r.conditions:
            if not c.selects_signals or (c.link == "located" and not located) or (c.link == "resident" and located):
                continue
            sel = []
            if not c.any_signal:
                sel.append("(" + " OR ".join([*([_in("s.signal", c.signals)] if c.signals else []),
                                               *([_in("s.category", c.categories)] if c.categories else [])]) + ")")
            if c.min_gravity is not None:
                sel.append(f"s.gravity > {float(c.min_gravity)}")
            parts.append("(" + " AND ".join(sel or ["true"]) + ")")
        if any(c.metric == "rfg" for c in r.conditions):
            parts.append(f"s.gravity > {float(r.rfg.min_gravity)}")
        if located and any(c.metric == "churn" for c in r.conditions):
            parts.append("s.person_id IS NOT NULL")
        return " OR ".join(parts) if parts else "false"

    def entity_signals(self, prefilter: bool = False) -> str:
        """SELECT of (entity_id, signal columns, link, member_child, is_member, mf, ml) in the lookback; with
        ``prefilter`` only the signal rows that can matter to the rule (see :meth:`_selection`)."""
        s_cols = ", ".join(f"s.{c.strip()}" for c in SIGNAL_COLS.split(","))
        window = self._lookback()
        if prefilter:
            loc_window = f"{window} AND ({self._selection(True)})"
            window = f"{window} AND ({self._selection(self.rule.scope != 'location')})"
        else:
            loc_window = window
        scope = self.rule.scope
        child = (f"CASE WHEN pa.dob IS NOT NULL THEN {age_at('pa.dob', 's.event_date')} < {self.rule.child_under} "
                 f"ELSE coalesce(pa.is_child, false) END")
        pa_join = "LEFT JOIN person_attributes pa ON pa.person_id = s.person_id"
        none = "NULL::DATE AS mf, NULL::DATE AS ml, true AS is_member, true AS certain"
        if scope == "person":
            return (f"SELECT s.person_id AS entity_id, {s_cols}, 'self' AS link, {child} AS member_child, {none} "
                    f"FROM {self.sig} s {pa_join} WHERE s.person_id IS NOT NULL AND {window}")
        if scope == "household":
            # people who were members at some time in an episode window bring all their signals in that window
            # (a new partner's recent substance misuse matters to the child, wherever it was recorded)
            return (f"SELECT m.entity_id, {s_cols}, 'member' AS link, {child} AS member_child, "
                    f"m.f AS mf, m.l AS ml, true AS is_member, true AS certain FROM {self.sig} s "
                    f"JOIN ({self.members_sql()}) m ON m.person_id = s.person_id {pa_join} WHERE {window}")
        if scope == "cluster":
            return (f"SELECT pc.component_id AS entity_id, {s_cols}, 'member' AS link, {child} AS member_child, "
                    f"{none} FROM {self.sig} s JOIN {self.tables['person_components']} pc "
                    f"ON pc.person_id = s.person_id {pa_join} WHERE {window}")
        return self.location_entity_signals(s_cols, child, pa_join, window, loc_window)

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

    def residence_periods_sql(self) -> str:
        """Every residence as a period (person_id, location_id, f, l): from its first sighting when some record
        gives a start date (else from the end of the person's previous residence, else open) to the last
        sighting, or open-ended while it is the person's current address -- a first or last sighting dated only
        by agency contacts is not an arrival or a departure."""
        start = self.tables.get("residence_from", "first_seen")
        prev_end = (f"lag(r.last_seen) OVER (PARTITION BY r.person_id ORDER BY coalesce(r.first_seen, {LOW}), "
                    f"r.location_id) + 1")
        first = f"CASE WHEN r.{start} IS NOT NULL THEN r.first_seen ELSE coalesce({prev_end}, {LOW}) END"
        return (f"SELECT r.person_id, r.location_id, coalesce({first}, {LOW}) AS f, "
                f"CASE WHEN cur.location_id = r.location_id THEN {HIGH} ELSE coalesce(r.last_seen, {HIGH}) END AS l "
                f"FROM residences r LEFT JOIN ({self.current_residence_sql()}) cur ON cur.person_id = r.person_id "
                f"WHERE r.location_id IS NOT NULL")

    def members_sql(self) -> str:
        """Household members over the lookback: (entity_id, location_id, person_id, f, l).

        A household is the people resident at one location: a person is a member over their residence period
        (:meth:`residence_periods_sql`).  The entity id is the location's most recent ``households`` id, so
        flags name a household of the graph.
        """
        lo = f" AND p.l >= {_date(self.lookback_start)}" if self.lookback_start else ""
        return (f"SELECT coalesce(rep.household_id, 'H' || p.location_id) AS entity_id, p.location_id, p.person_id, "
                f"p.f, p.l FROM ({self.residence_periods_sql()}) p "
                f"LEFT JOIN ({self.rep_household_sql()}) rep ON rep.location_id = p.location_id "
                f"WHERE p.f <= {_date(self.as_of)}{lo}")

    # ------------------------------------------------------------------ conditions
    def cond_window(self, c: Condition) -> int:
        """A condition's window in days (its own, else the rule's)."""
        return int(c.window_days or self.rule.window_days)

    def predicate(self, c: Condition, anchor: str = "anchor", windowed: bool = True) -> str:
        """Row-level SQL predicate: this row counts towards condition ``c`` (in the episode ending at
        ``anchor`` when the condition has a shorter window of its own and ``windowed``)."""
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
        if c.window_days and windowed:
            parts.append(f"event_date >= {anchor} - {int(c.window_days)}")
        return "(" + " AND ".join(parts or ["true"]) + ")"

    def rfg_predicate(self) -> str:
        """Rows that are offences for the RFG metric."""
        p = self.rule.rfg
        out = f"gravity > {float(p.min_gravity)}"
        if p.exclude_roles:
            out += " AND NOT " + _in("coalesce(role, '')", p.exclude_roles)
        return out

    def visitor_predicate(self, c: Condition, anchor: str = "anchor", windowed: bool = True) -> str:
        """Located signals of people who are not household members (churn)."""
        w = f" AND event_date >= {anchor} - {int(c.window_days)}" if c.window_days and windowed else ""
        return f"(link = 'located' AND NOT is_member AND person_id IS NOT NULL{w})"

    def anchors_sql(self) -> str:
        """(entity_id, anchor, ws): every date of an event that can contribute to the rule, with its window
        ``[ws, anchor]`` (``ws = anchor - window_days``)."""
        r = self.rule
        preds = [self.predicate(c, windowed=False) for c in r.conditions if c.selects_signals]
        if any(c.metric == "rfg" for c in r.conditions):
            preds.append(self.rfg_predicate())
        preds += [self.visitor_predicate(c, windowed=False) for c in r.conditions if c.metric == "churn"]
        if any(c.metric and c.metric not in ("rfg", "churn") and not c.selects_signals for c in r.conditions) \
                and not preds:
            preds = ["true"]
        where = " OR ".join(preds) if preds else "true"
        own = (f"SELECT DISTINCT entity_id, event_date AS anchor, event_date - {self.window} AS ws "
               f"FROM ({self.es_sql()}) WHERE {where}")
        extra = self.metric_anchors_sql()
        return f"{own} UNION {extra}" if extra else own

    def relevant_predicate(self) -> str:
        """Signal rows that can matter to the rule: selected by a condition, an RFG offence or a visitor."""
        r = self.rule
        preds = [self.predicate(c, windowed=False) for c in r.conditions if c.selects_signals]
        if any(c.metric == "rfg" for c in r.conditions):
            preds.append(self.rfg_predicate())
        preds += [self.visitor_predicate(c, windowed=False) for c in r.conditions if c.metric == "churn"]
        return " OR ".join(preds) if preds else "true"

    def candidates_sql(self) -> str:
        """Entities that could meet the rule in some window: each condition's signals counted over the whole
        lookback (a window holds no more), metric conditions and entity filters taken as possibly met.  A
        necessary condition, so evaluating only these entities' episodes loses nothing; it spares the range
        join of the many entities that can never fire."""
        r = self.rule
        aggs, oks = [], []
        for i, c in enumerate(r.conditions):
            if c.selects_signals and c.metric is None:
                p = self.predicate(c, windowed=False)
                aggs.append(f"count(DISTINCT CASE WHEN {p} THEN source || chr(31) || record_key END) >= {c.min_count} "
                            f"AND count(DISTINCT CASE WHEN {p} THEN agency END) >= {c.min_agencies} AS ok{i}")
                oks.append(f"ok{i}")
            else:
                oks.append("true")
        if not aggs:
            return f"SELECT DISTINCT entity_id FROM ({self.es_sql()})"
        fired = self._fired_expr([f"({o})" for o in oks])
        return (f"SELECT entity_id FROM (SELECT entity_id, {', '.join(aggs)} FROM ({self.es_sql()}) "
                f"GROUP BY entity_id) WHERE {fired}")

    @staticmethod
    def in_episode(es: str, a: str) -> str:
        """Join predicate: signal row ``es`` is in the episode window of anchor row ``a`` (and, for a member or
        resident, the person belonged there at some time in that window)."""
        return (f"{es}.entity_id = {a}.entity_id AND {es}.event_date BETWEEN {a}.ws AND {a}.anchor "
                f"AND ({es}.mf IS NULL OR ({es}.mf <= {a}.anchor AND {es}.ml >= {a}.ws))")

    # ------------------------------------------------------------------ evaluation
    def evaluate_sql(self, by_agency: bool, only_entities: str | None = None) -> str:
        """Per (entity, anchor, view) condition stats and ``fired``; view = '*' (all agencies) or one agency."""
        r = self.rule
        view = "agency" if by_agency else "'*'"
        restrict = f" WHERE entity_id IN (SELECT entity_id FROM {only_entities})" if only_entities else ""
        aggs = []
        for i, c in enumerate(r.conditions):
            if c.selects_signals:
                p = self.predicate(c)
                aggs.append(f"{self.counted(p, 'source || chr(31) || record_key')} AS n{i}")
                aggs.append(f"{self.counted(p, 'agency')} AS a{i}")
        if self.ambiguous:
            aggs.append("count(*) FILTER (WHERE certain) AS n_certain")
        if any(c.metric == "rfg" for c in r.conditions):
            rp = self.rfg_predicate()
            aggs.append(f"count(DISTINCT CASE WHEN {rp} THEN source || chr(31) || record_key END) AS rfg_n")
            aggs.append(f"coalesce(sum(CASE WHEN {rp} THEN gravity END), 0.0) AS rfg_gravity")
            aggs.append(f"max(CASE WHEN {rp} THEN event_date END) AS rfg_last")
        for i, c in enumerate(r.conditions):
            if c.metric == "churn":
                visitor = self.visitor_predicate(c)
                aggs.append(f"{self.counted(visitor, 'person_id')} AS churn{i}")
                ids = f"list_sort(list_distinct(list(CASE WHEN {visitor} THEN person_id END)))"
                if self.ambiguous:
                    ids = f"CASE WHEN count(*) FILTER (WHERE certain) > 0 THEN {ids} ELSE []::VARCHAR[] END"
                aggs.append(f"{ids} AS churn_ids{i}")
        ctes, mexpr = self.metric_ctes(by_agency)
        joins = "".join(f" LEFT JOIN m{i} ON m{i}.entity_id = g.entity_id AND m{i}.anchor = g.anchor"
                        for i, c in enumerate(r.conditions) if c.metric and c.metric != "rfg")
        cols, ok_exprs = [], []
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
            ok_exprs.append(f"({ok})")
        if self.ambiguous:
            cols.append("g.n_certain")
        n_ok = " + ".join(f"{o}::INT" for o in ok_exprs)
        filters = self._entity_filters()
        fired = self._fired_expr(ok_exprs) + (f" AND {filters}" if filters else "")
        boost = self._boost_expr(ok_exprs)
        for n, cond in enumerate(self._boost_conditions(ok_exprs)):
            cols.append(f"coalesce({cond}, false) AS boost_applied{n}")
        strength = " + ".join(f"CASE WHEN {ok_exprs[i]} THEN g.n{i} ELSE 0 END"
                              for i, c in enumerate(r.conditions) if c.selects_signals) or "0"
        with_ctes = ", ".join([
            f"a AS (SELECT * FROM ({self.anchors()}){restrict})",
            f"es AS ({self.es_sql()})",
            f"g AS (SELECT a.entity_id, a.anchor, a.ws, {view} AS view, "
            f"{', '.join(aggs) or 'count(*) AS n_all'} FROM a JOIN es ON {self.in_episode('es', 'a')} GROUP BY ALL)",
            *ctes, *self.filter_ctes()])
        filter_joins = self.filter_joins()
        return (f"WITH {with_ctes} SELECT g.entity_id, g.anchor, g.ws, g.view, {', '.join(cols)}, "
                f"({n_ok}) AS n_ok, coalesce({fired}, false) AS fired, {boost} AS boost, ({strength})::BIGINT "
                f"AS strength FROM g LEFT JOIN person_attributes pa_e ON pa_e.person_id = g.entity_id"
                f"{joins}{filter_joins}")

    def _fired_expr(self, ok_exprs: list[str]) -> str:
        """Required conditions all hold, each group has its minimum, and enough of the other conditions."""
        r, parts = self.rule, []
        conds = r.conditions
        parts += [ok_exprs[i] for i, c in enumerate(conds) if c.required]
        for g in r.groups:
            members = [f"{ok_exprs[i]}::INT" for i, c in enumerate(conds) if c.group == g.id]
            parts.append(f"(({' + '.join(members)}) >= {g.min})")
        free = [f"{ok_exprs[i]}::INT" for i, c in enumerate(conds) if not c.required and c.group is None]
        if free and r.free_needed:
            parts.append(f"(({' + '.join(free)}) >= {r.free_needed})")
        return "(" + " AND ".join(parts or ["true"]) + ")"

    def _age(self) -> str:
        """The entity's (a person's) age at the episode's anchor date."""
        return f"coalesce({age_at('pa_e.dob', 'g.anchor')}, pa_e.age)"

    def _entity_filters(self) -> str:
        r, out = self.rule, []
        if r.min_age is not None:
            out.append(f"coalesce({self._age()} >= {int(r.min_age)}, false)")
        if r.max_age is not None:
            out.append(f"coalesce({self._age()} <= {int(r.max_age)}, false)")
        if r.require_child and r.scope in ("household", "cluster"):
            out.append("kid.entity_id IS NOT NULL")
        return " AND ".join(out)

    def _boost_conditions(self, ok_exprs: list[str]) -> list[str]:
        ids = [c.id for c in self.rule.conditions]
        out = []
        for b in self.rule.boosts:
            conds = []
            if b.min_age is not None:
                conds.append(f"{self._age()} >= {int(b.min_age)}")
            if b.max_age is not None:
                conds.append(f"{self._age()} <= {int(b.max_age)}")
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
        """Signal rows that contribute to a fired episode: rows of the signal conditions that held."""
        anchor = f"{fired_alias}.anchor"
        parts = [f"({fired_alias}.ok{i} AND {self.predicate(c, anchor)})"
                 for i, c in enumerate(self.rule.conditions) if c.selects_signals]
        if any(c.metric == "rfg" for c in self.rule.conditions):
            idx = next(i for i, c in enumerate(self.rule.conditions) if c.metric == "rfg")
            parts.append(f"({fired_alias}.ok{idx} AND {self.rfg_predicate()})")
        out = " OR ".join(parts) if parts else "false"
        # ambiguous rows contribute only to an episode with certain evidence (they were counted only there)
        return f"({out}) AND (certain OR {fired_alias}.n_certain > 0)" if self.ambiguous else out

    def conditions_struct(self, fired_alias: str) -> str:
        """A list of {id, label, met, count, agencies, metric, ...} for the evidence."""
        items = []
        for i, c in enumerate(self.rule.conditions):
            how = "required" if c.required else (f"group:{c.group}" if c.group else "any")
            items.append(
                f"struct_pack(id := {lit(c.id)}::VARCHAR, label := {lit(c.label)}::VARCHAR, "
                f"met := {fired_alias}.ok{i}::BOOLEAN, count := {fired_alias}.n{i}::BIGINT, "
                f"agencies := {fired_alias}.a{i}::BIGINT, metric := {lit(c.metric)}::VARCHAR, "
                f"metric_value := {fired_alias}.v{i}::DOUBLE, "
                f"related_person_ids := {fired_alias}.r{i}::VARCHAR[], min_count := {c.min_count}::BIGINT, "
                f"min_agencies := {c.min_agencies}::BIGINT, counts_as := {lit(how)}::VARCHAR)")
        return "[" + ", ".join(items) + "]"
