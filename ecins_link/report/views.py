"""Purpose-bound views: what one purpose of the information-sharing agreement may see.

A :class:`View` is built from ``config.purposes[name]`` (or is the full view when no purpose is given) and
answers three questions for every output:

* which rules' flags are shown (all when the purpose lists no rules);
* whose records are shown in detail: a signal or record is *detailed* when its agency is one of the
  purpose's agencies and (for signals) its category is one of the purpose's categories; an empty
  ``agencies`` or ``categories`` list means "no restriction on that axis";
* anything else is shown *existence-only* ("Housing holds records", no detail) when the purpose says
  ``existence_only = true``, and not at all otherwise;
* which personal fields (name, dob, sex, address, phone, email) may be displayed.
"""

from __future__ import annotations

import json
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
    unknown = sorted(set(p.fields) - ALL_FIELDS)
    if unknown:
        raise ValueError(f"purpose {purpose!r}: unknown field(s) {unknown}; known: {sorted(ALL_FIELDS)}")
    return View(
        name=purpose,
        agencies=frozenset(a.lower() for a in p.agencies) if p.agencies else None,
        categories=frozenset(c.upper() for c in p.categories) if p.categories else None,
        rules=frozenset(p.rules) if p.rules else None,
        fields=frozenset(p.fields),
        existence_only=p.existence_only,
    )
