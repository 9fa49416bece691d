"""Purpose-bound views: what one purpose of the information-sharing agreement may see.

A :class:`View` is built from ``config.purposes[name]`` (or is the full view when no purpose is given) and
answers three questions for every output:

* which rules' flags are shown;
* whose records are shown in detail: a signal or record is *detailed* when its agency is one of the
  purpose's agencies and (for signals) its category is one of the purpose's categories;
* anything else is shown *existence-only* ("Housing holds records", no detail) when the purpose says
  ``existence_only = true``, and not at all otherwise;
* which personal fields (name, dob, sex, address, phone, email) may be displayed.

The lists fail closed: an empty (or missing) ``agencies``, ``categories``, ``rules`` or ``fields`` list means
*nothing* on that axis; ``["*"]`` means everything, and has to be written out.  A person's displayed
attributes (name spelling, date of birth, age, sex) come only from records of agencies the purpose may see
in detail (:meth:`View.person_attributes_sql`): a person known only to other partners is shown by id.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecins_link.config import ProjectConfig

ALL_FIELDS = frozenset({"name", "dob", "sex", "address", "phone", "email"})


@dataclass(frozen=True)
class View:
    """The slice of a run that one purpose may see (``name`` None = the full, unrestricted view)."""

    name: str | None
    agencies: frozenset[str] | None
    categories: frozenset[str] | None
    rules: frozenset[str] | None
    fields: frozenset[str]
    existence_only: bool
    as_of: dt.date | None = None  # the project's as_of (ages in purpose views); None = latest event date
    child_under: int = 18

    # ------------------------------------------------------------------------------------------ predicates
    def agency_detail(self, agency: str | None) -> bool:
        """Whether records of ``agency`` may be shown in detail."""
        return self.agencies is None or (agency is not None and agency.lower() in self.agencies)

    def category_detail(self, category: str | None) -> bool:
        """Whether signals of ``category`` may be shown in detail."""
        return self.categories is None or (category is not None and category.upper() in self.categories)

    def signal_detail(self, agency: str | None, category: str | None) -> bool:
        """Whether one signal (agency, category) may be shown in detail."""
        return self.agency_detail(agency) and self.category_detail(category)

    def rule_shown(self, rule: str | None) -> bool:
        """Whether flags of ``rule`` belong to this view."""
        return self.rules is None or (rule is not None and rule in self.rules)

    def field(self, name: str) -> bool:
        """Whether personal field ``name`` (name, dob, sex, address, phone, email) may be displayed."""
        return name in self.fields

    def visible_agencies(self, agencies: list[str] | None) -> list[str]:
        """The agencies whose *involvement* may be named: all (existence-only) or only detailed ones."""
        items = [a for a in (agencies or []) if a is not None]
        if self.existence_only:
            return sorted(set(items))
        return sorted({a for a in items if self.agency_detail(a)})

    # ------------------------------------------------------------------------------------------ SQL
    def sql_signal_filter(self, agency_col: str = "agency", category_col: str = "category") -> tuple[str, list]:
        """A SQL predicate (with parameters) true for signals shown in detail."""
        parts, params = ["TRUE"], []
        if self.agencies is not None:
            parts.append(f"list_contains(?::VARCHAR[], lower({agency_col}))")
            params.append(sorted(self.agencies))
        if self.categories is not None:
            parts.append(f"list_contains(?::VARCHAR[], upper({category_col}))")
            params.append(sorted(self.categories))
        return " AND ".join(parts), params

    def sql_agency_filter(self, agency_col: str = "agency") -> tuple[str, list]:
        """A SQL predicate (with parameters) true for records of agencies shown in detail."""
        if self.agencies is None:
            return "TRUE", []
        return f"list_contains(?::VARCHAR[], lower({agency_col}))", [sorted(self.agencies)]

    def person_attributes_sql(self, store_tables: set[str]) -> str:
        """SQL giving ``person_attributes``' columns for this view: the table itself for the full view; for a
        purpose, recomputed from the records of agencies it may see in detail only (modal name spelling, DOB
        and sex; age and child marker from that DOB; record count of those records; agencies as the view may
        name them).  ``store_tables``: the store's table names."""
        if self.name is None:
            return "person_attributes"
        if not {"person_records", "person_clusters"} <= store_tables:  # no records to draw from: ids only
            return ("(SELECT person_id, NULL::VARCHAR AS display_name, NULL::DATE AS dob, NULL::INT AS age, "
                    "NULL::BOOLEAN AS is_child, NULL::VARCHAR AS sex, 0 AS n_records, "
                    f"{'agencies' if self.existence_only else '[]::VARCHAR[]'} AS agencies FROM person_attributes)")
        has_std = "person_std" in store_tables
        sex = ("(SELECT unique_id, sex FROM person_std)" if has_std else
               "(SELECT source || ':' || record_key AS unique_id, CASE WHEN upper(left(trim(sex), 1)) IN ('M', 'F') "
               "THEN upper(left(trim(sex), 1)) END AS sex FROM person_records)")
        as_of = (f"DATE '{self.as_of.isoformat()}'" if self.as_of else
                 "coalesce((SELECT max(event_date) FROM event_records), current_date)"
                 if "event_records" in store_tables else "current_date")
        agencies = sorted(self.agencies) if self.agencies is not None else None
        keep = ("TRUE" if agencies is None else
                "list_contains([" + ", ".join("'" + a.replace("'", "''") + "'" for a in agencies) + "]::VARCHAR[], "
                "lower(r.agency))")
        named = "coalesce(a.agencies, []::VARCHAR[])" if self.existence_only else "coalesce(v.agencies, [])"
        return f"""(
            WITH rec AS (
                SELECT c.person_id, r.agency, r.dob, s.sex,
                       nullif(trim(CASE WHEN coalesce(trim(r.surname), '') <> ''
                                        THEN concat_ws(' ', nullif(trim(r.forenames), ''), trim(r.surname))
                                        ELSE r.full_name END), '') AS name
                FROM person_clusters c
                JOIN person_records r ON r.source = c.source AND r.record_key = c.record_key
                LEFT JOIN {sex} s ON s.unique_id = c.unique_id
                WHERE {keep}),
            v AS (SELECT person_id, count(*) AS n_records,
                         list(DISTINCT agency ORDER BY agency) FILTER (WHERE agency IS NOT NULL) AS agencies FROM rec GROUP BY ALL),
            names AS (SELECT person_id, arg_max(name, (n, name)) AS display_name
                      FROM (SELECT person_id, name, count(*) AS n FROM rec WHERE name IS NOT NULL GROUP BY ALL)
                      GROUP BY ALL),
            dobs AS (SELECT person_id, arg_max(dob, (n, dob)) AS dob
                     FROM (SELECT person_id, dob, count(*) AS n FROM rec WHERE dob IS NOT NULL GROUP BY ALL)
                     GROUP BY ALL),
            sexes AS (SELECT person_id, arg_max(sex, (n, sex)) AS sex
                      FROM (SELECT person_id, sex, count(*) AS n FROM rec WHERE sex IS NOT NULL GROUP BY ALL)
                      GROUP BY ALL)
            SELECT a.person_id, names.display_name, dobs.dob,
                   CAST(date_sub('year', dobs.dob, {as_of}) AS INT) AS age,
                   date_sub('year', dobs.dob, {as_of}) < {int(self.child_under)} AS is_child,
                   sexes.sex, CAST(coalesce(v.n_records, 0) AS INT) AS n_records, {named} AS agencies
            FROM person_attributes a LEFT JOIN v USING (person_id) LEFT JOIN names USING (person_id)
            LEFT JOIN dobs USING (person_id) LEFT JOIN sexes USING (person_id))"""

    # ------------------------------------------------------------------------------------------ evidence
    def filter_evidence(self, evidence: str | None, category_of: dict[str, str]) -> str | None:
        """Evidence JSON with every item outside the view removed (items naming a hidden agency/category).

        The evidence structure belongs to the scoring stage; this walks it generically: any JSON object
        carrying an ``agency`` the view may not detail, a ``category`` it may not detail, or a ``signal``
        whose taxonomy category it may not detail, is dropped from the list that holds it.
        """
        if evidence is None or self.name is None:
            return evidence
        try:
            data = json.loads(evidence)
        except (TypeError, ValueError):
            return json.dumps({"note": "evidence withheld: not readable as JSON"})
        pruned = self._prune(data, category_of)
        self._withhold_hidden_counts(data, pruned)
        return json.dumps(pruned, default=str, sort_keys=True)

    @staticmethod
    def _withhold_hidden_counts(data: Any, pruned: Any) -> None:
        """Condition counts are totals over every record behind the flag; once records outside the view were
        pruned they would tell how many hidden records exist, so they are withheld (the condition's met/not met
        stays: it is the rule's logic)."""
        if not (isinstance(data, dict) and isinstance(pruned, dict)):
            return
        before, after = data.get("records"), pruned.get("records")
        if not (isinstance(before, list) and isinstance(after, list)) or len(after) == len(before):
            return
        for cond in pruned.get("conditions") or []:
            if isinstance(cond, dict):
                for key in ("count", "agencies"):
                    if key in cond:
                        cond[key] = None
        pruned["counts_withheld"] = "condition counts include records outside this purpose"

    def _hidden(self, obj: dict, category_of: dict[str, str]) -> bool:
        agency = obj.get("agency")
        if isinstance(agency, str) and not self.agency_detail(agency):
            return True
        category = obj.get("category")
        if isinstance(category, str) and not self.category_detail(category):
            return True
        signal = obj.get("signal")
        if isinstance(signal, str) and signal in category_of and not self.category_detail(category_of[signal]):
            return True
        return False

    def _prune(self, data: Any, category_of: dict[str, str]) -> Any:
        if isinstance(data, list):
            return [self._prune(x, category_of) for x in data
                    if not (isinstance(x, dict) and self._hidden(x, category_of))]
        if isinstance(data, dict):
            out = {}
            for k, v in data.items():
                if isinstance(v, dict) and self._hidden(v, category_of):
                    continue
                if k in {"agencies"} and isinstance(v, list):
                    v = self.visible_agencies([str(a) for a in v])
                out[k] = self._prune(v, category_of)
            return out
        return data


def full_view() -> View:
    """The unrestricted view (no purpose): every rule, agency, category and field."""
    return View(name=None, agencies=None, categories=None, rules=None, fields=ALL_FIELDS, existence_only=True)


def view_for(config: ProjectConfig, purpose: str | None) -> View:
    """The :class:`View` for ``purpose`` (``None`` = full view); ValueError naming known purposes if unknown."""
    if purpose is None:
        return full_view()
    if purpose not in config.purposes:
        raise ValueError(f"purpose {purpose!r} is not in the project file; known: {sorted(config.purposes)}")
    p = config.purposes[purpose]
    fields = set(ALL_FIELDS) if "*" in p.fields else set(p.fields)
    unknown = sorted(fields - ALL_FIELDS)
    if unknown:
        raise ValueError(f"purpose {purpose!r}: unknown field(s) {unknown}; known: {sorted(ALL_FIELDS)}")
    return View(
        name=purpose,
        agencies=_axis(p.agencies, str.lower),
        categories=_axis(p.categories, str.upper),
        rules=_axis(p.rules, str),
        fields=frozenset(fields),
        existence_only=p.existence_only,
        as_of=config.project.as_of,
    )


def _axis(values: list[str], norm: Callable[[str], str]) -> frozenset[str] | None:
    """One purpose list: ``["*"]`` = no restriction (None); otherwise exactly the listed values, so an empty
    list means nothing (fail closed), never everything."""
    if "*" in values:
        return None
    return frozenset(norm(v) for v in values)
