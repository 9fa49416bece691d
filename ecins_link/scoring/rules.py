"""Combination rules ("toxic cocktails") as a TOML data file a partnership can read and change.

A rule has an id, a label, a scope (``person``, ``household``, ``location`` or ``cluster``), a window in
days ending at the project's as-of date, a list of conditions, how many of them must hold
(``min_conditions``, default all), a weight, optional entity filters (age bounds, a child in the
household), optional score boosts, and the ``guidance`` text a panel sees.  A condition counts the
entity's signals selected by code and/or category (with role, member and link filters) and holds when
``min_count`` distinct records from ``min_agencies`` agencies fall in its window; or it tests a derived
metric (``household_size``, ``churn``, ``rfg``, ``co_involved_with``) against ``metric_min``/``metric_max``;
with both, either satisfies it.  See ``rules.toml`` for the shipped defaults and their meaning.

Every mistake is one :class:`~ecins_link.config.ConfigError` naming the file, the rule and the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ecins_link.config import ConfigError, read_toml
from ecins_link.scoring.taxonomy import Taxonomy, load_taxonomy

DEFAULT_RULES = Path(__file__).resolve().parent / "rules.toml"
SCOPES = ("person", "household", "location", "cluster")
Metric = Literal["household_size", "churn", "rfg", "co_involved_with", "age"]
# which derived metrics make sense for which scope
METRIC_SCOPES: dict[str, tuple[str, ...]] = {
    "household_size": ("person", "household"),
    "churn": ("location",),
    "rfg": ("person",),
    "co_involved_with": ("person",),
    "age": ("person",),
}
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Model):
    """One factor of a rule."""

    id: str = Field(pattern=_ID.pattern)
    label: str = ""
    signals: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    any_signal: bool = False
    roles: list[str] = Field(default_factory=list)
    exclude_roles: list[str] = Field(default_factory=list)
    member: Literal["any", "adult", "child"] = "any"
    link: Literal["any", "located", "resident"] = "any"
    min_gravity: float | None = None
    window_days: int | None = Field(default=None, gt=0)
    min_count: int = Field(default=1, ge=1)
    min_agencies: int = Field(default=1, ge=1)
    metric: Metric | None = None
    metric_min: float | None = None
    metric_max: float | None = None
    # co_involved_with: the other person's signals (by category/code), minimum age, excluded roles
    with_categories: list[str] = Field(default_factory=list)
    with_signals: list[str] = Field(default_factory=list)
    with_min_age: int | None = None
    # with_min_age and a person of unknown age (no date of birth, not recorded as a child): counts when true
    with_unknown_age: bool = False
    with_exclude_roles: list[str] = Field(default_factory=list)
    # how the condition counts towards the rule: required (must hold), a member of a k-of-n group, or (neither)
    # one of the rule's other conditions, of which ``min_conditions`` must hold
    required: bool = False
    group: str | None = Field(default=None, pattern=_ID.pattern)

    @model_validator(mode="after")
    def _shape(self) -> Condition:
        selects = bool(self.signals or self.categories or self.any_signal)
        if not selects and self.metric is None:
            raise ValueError("a condition needs 'signals', 'categories', 'any_signal = true' or a 'metric'")
        if self.metric is not None and self.metric_min is None and self.metric_max is None:
            raise ValueError("a 'metric' condition needs 'metric_min' and/or 'metric_max'")
        if self.metric is None and (self.metric_min is not None or self.metric_max is not None):
            raise ValueError("'metric_min'/'metric_max' given without a 'metric'")
        if self.metric == "co_involved_with" and not (self.with_categories or self.with_signals):
            raise ValueError("metric 'co_involved_with' needs 'with_categories' or 'with_signals'")
        if self.required and self.group is not None:
            raise ValueError("a condition is either 'required' or in a 'group', not both")
        return self

    @property
    def selects_signals(self) -> bool:
        """Whether this condition counts signals (as opposed to only testing a metric)."""
        return bool(self.signals or self.categories or self.any_signal)


class Boost(_Model):
    """Multiply a flag's score when the entity meets an age bound or a named condition held."""

    factor: float = Field(gt=0)
    label: str = ""
    min_age: int | None = None
    max_age: int | None = None
    condition: str | None = None

    @model_validator(mode="after")
    def _one_trigger(self) -> Boost:
        if self.min_age is None and self.max_age is None and self.condition is None:
            raise ValueError("a boost needs 'min_age', 'max_age' or 'condition'")
        return self


class Group(_Model):
    """A k-of-n group: at least ``min`` of the conditions naming this group must hold."""

    id: str = Field(pattern=_ID.pattern)
    label: str = ""
    min: int = Field(ge=1)


class RfgParams(_Model):
    """Recency-Frequency-Gravity points (IOM cohort selection), see rules.toml."""

    recency_points: float = 30.0
    frequency_points: float = 5.0
    frequency_cap: float = 40.0
    gravity_divisor: float = Field(default=30.0, gt=0)
    gravity_cap: float = 40.0
    min_gravity: float = 0.0
    exclude_roles: list[str] = Field(default_factory=lambda: ["V", "VICTIM", "W", "WITNESS"])


class Rule(_Model):
    """One combination rule."""

    id: str = Field(pattern=_ID.pattern)
    label: str
    scope: Literal["person", "household", "location", "cluster"]
    window_days: int = Field(gt=0)
    weight: float = Field(default=1.0, gt=0)
    min_conditions: int | None = Field(default=None, ge=1)
    guidance: str
    min_age: int | None = None
    max_age: int | None = None
    require_child: bool = False
    conditions: list[Condition] = Field(min_length=1)
    boosts: list[Boost] = Field(default_factory=list)
    rfg: RfgParams = Field(default_factory=RfgParams)
    groups: list[Group] = Field(default_factory=list)
    child_under: int = Field(default=18, ge=1, le=25)  # "a child" = younger than this at the date in question
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        ids = [c.id for c in self.conditions]
        if len(set(ids)) != len(ids):
            raise ValueError("condition ids must be unique within a rule")
        free = self.free_conditions
        if self.min_conditions is not None and self.min_conditions > len(free):
            raise ValueError(f"'min_conditions' ({self.min_conditions}) exceeds the number of conditions that are "
                             f"neither required nor in a group ({len(free)})")
        gids = [g.id for g in self.groups]
        if len(set(gids)) != len(gids):
            raise ValueError("group ids must be unique within a rule")
        for i, c in enumerate(self.conditions):
            if c.group is not None and c.group not in gids:
                raise ValueError(f"conditions.{i}.group: '{c.group}' is not a group of this rule (see [[rules.groups]])")
        for i, g in enumerate(self.groups):
            n = sum(1 for c in self.conditions if c.group == g.id)
            if g.min > n:
                raise ValueError(f"groups.{i}.min: {g.min} exceeds the group's {n} condition(s)")
        if (self.min_age is not None or self.max_age is not None) and self.scope != "person":
            raise ValueError("'min_age'/'max_age' apply to person-scope rules only")
        if self.require_child and self.scope not in ("household", "cluster"):
            raise ValueError("'require_child' applies to household or cluster rules only")
        for i, c in enumerate(self.conditions):
            if c.metric and self.scope not in METRIC_SCOPES[c.metric]:
                raise ValueError(f"conditions.{i}.metric: '{c.metric}' is not available for scope '{self.scope}'")
            if c.link != "any" and self.scope != "location":
                raise ValueError(f"conditions.{i}.link: 'link' applies to location rules only")
            if c.member != "any" and self.scope == "location":
                raise ValueError(f"conditions.{i}.member: 'member' applies to person/household/cluster rules")
            if (c.window_days or 0) > self.window_days:
                raise ValueError(f"conditions.{i}.window_days: longer than the rule's window_days")
        for i, b in enumerate(self.boosts):
            if b.condition is not None and b.condition not in ids:
                raise ValueError(f"boosts.{i}.condition: '{b.condition}' is not a condition of this rule")
            if (b.min_age is not None or b.max_age is not None) and self.scope != "person":
                raise ValueError(f"boosts.{i}: age boosts apply to person-scope rules only")
        return self

    @property
    def free_conditions(self) -> list[Condition]:
        """Conditions that are neither required nor in a group (``min_conditions`` of them must hold)."""
        return [c for c in self.conditions if not c.required and c.group is None]

    @property
    def free_needed(self) -> int:
        """How many of the free conditions must hold (default: all)."""
        free = self.free_conditions
        return len(free) if self.min_conditions is None else self.min_conditions

    @property
    def needed(self) -> int:
        """How many conditions must hold in all (required + each group's minimum + the free ones needed)."""
        return (sum(1 for c in self.conditions if c.required) + sum(g.min for g in self.groups)
                + self.free_needed)


class RuleSet(_Model):
    """All rules of a file."""

    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule ids must be unique; repeated: {dupes}")
        if not any(r.enabled for r in self.rules):
            raise ValueError("at least one rule must be enabled")
        return self

    def get(self, rule_id: str) -> Rule:
        """The rule called ``rule_id``."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def _check_codes(rule: Rule, taxonomy: Taxonomy) -> str | None:
    codes, cats = taxonomy.codes, set(taxonomy.categories)
    for i, c in enumerate(rule.conditions):
        for key, values, known, what in (
            ("signals", c.signals, codes, "signal code"),
            ("categories", c.categories, cats, "category"),
            ("with_signals", c.with_signals, codes, "signal code"),
            ("with_categories", c.with_categories, cats, "category"),
        ):
            bad = [v for v in values if v not in known]
            if bad:
                return f"conditions.{i}.{key}: unknown {what} {bad[0]!r}"
    return None


def _rule_label(data: dict, index: int) -> str:
    items = data.get("rules") or []
    if index < len(items) and isinstance(items[index], dict) and items[index].get("id"):
        return str(items[index]["id"])
    return f"#{index + 1}"


def _merge_base(data: dict, path: Path) -> dict:
    """A rules file with ``extends = "shipped"`` (or a path to another rules file) starts from that file's rules:
    its own rules replace those with the same id or are added, and ``disable = [ids]`` switches rules off."""
    extends = data.get("extends")
    disable = data.get("disable", [])
    if extends is None:
        if disable:
            raise ConfigError(f"{path}: key 'disable': only a file that 'extends' another may disable its rules")
        return data
    if not isinstance(extends, str) or not extends.strip():
        raise ConfigError(f"{path}: key 'extends': a rules file path or \"shipped\"")
    if not isinstance(disable, list) or not all(isinstance(d, str) for d in disable):
        raise ConfigError(f"{path}: key 'disable': a list of rule ids")
    base_path = DEFAULT_RULES if extends == "shipped" else (path.parent / extends)
    if base_path.resolve() == path.resolve():
        raise ConfigError(f"{path}: key 'extends': a rules file cannot extend itself")
    base = read_toml(base_path, "rules file (extended)")
    if "extends" in base:
        base = _merge_base(base, base_path)
    rules = [dict(r) for r in base.get("rules") or [] if isinstance(r, dict)]
    ids = [r.get("id") for r in rules]
    unknown = [d for d in disable if d not in ids]
    if unknown:
        raise ConfigError(f"{path}: key 'disable': {unknown[0]!r} is not a rule of {base_path}")
    own = [r for r in data.get("rules") or [] if isinstance(r, dict)]
    for r in own:
        if r.get("id") in ids:
            rules[ids.index(r.get("id"))] = r
        else:
            rules.append(r)
            ids.append(r.get("id"))
    for r in rules:
        if r.get("id") in disable:
            r["enabled"] = False
    return {k: v for k, v in data.items() if k not in ("extends", "disable", "rules")} | {"rules": rules}


def load_rules(path: str | Path | None = None, taxonomy: Taxonomy | None = None) -> RuleSet:
    """Read and validate a rules TOML file (default: the shipped ``rules.toml``) against the taxonomy.

    A file may extend another (``extends = "shipped"``, see :func:`_merge_base`) rather than replace it."""
    path = Path(path) if path else DEFAULT_RULES
    data = _merge_base(read_toml(path, "rules file"), path)
    try:
        ruleset = RuleSet.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc, msg = list(first["loc"]), first["msg"].removeprefix("Value error, ")
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            key = ".".join(str(p) for p in loc[2:])
            where = f"rule '{_rule_label(data, loc[1])}'" + (f": key '{key}'" if key else "")
            raise ConfigError(f"{path}: {where}: {msg}") from None
        raise ConfigError(f"{path}: key '{'.'.join(str(p) for p in loc) or 'rules'}': {msg}") from None
    taxonomy = taxonomy or load_taxonomy()
    for rule in ruleset.rules:
        problem = _check_codes(rule, taxonomy)
        if problem:
            key, msg = problem.split(": ", 1)
            raise ConfigError(f"{path}: rule '{rule.id}': key '{key}': {msg}")
    return ruleset
