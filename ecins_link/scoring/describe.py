"""Rules in plain English: what ``ecins-link rules check RULES.toml`` prints for each rule.

The text is generated from the validated rule objects (never from the raw file), so what it says is what
the engine evaluates: the scope, the window and how episodes are found, required conditions, k-of-n groups,
the other conditions, entity filters (ages at the time of the episode, a child in the household) and boosts.
"""

from __future__ import annotations

from pathlib import Path

from ecins_link.scoring.rules import Condition, Rule, RuleSet, load_rules
from ecins_link.scoring.taxonomy import load_taxonomy

_SCOPE = {"person": "a person", "household": "a household (the people living at one address)",
          "location": "an address", "cluster": "a connected cluster of people"}
_METRIC = {"household_size": "people living at the address", "churn": "people linked to the address who are not "
           "its household members", "rfg": "the Recency-Frequency-Gravity score", "age": "age (at the time)",
           "co_involved_with": "other people involved in the same incident"}


def _list(items: list[str], word: str = "or") -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {word} " + items[-1]


def _days(n: int) -> str:
    if n % 365 == 0:
        y = n // 365
        return f"{y} year{'s' if y > 1 else ''} ({n} days)"
    return f"{n} days"


def describe_condition(c: Condition, rule: Rule) -> str:
    """One condition as a sentence fragment."""
    parts: list[str] = []
    if c.selects_signals:
        if c.any_signal:
            what = "any signal"
        else:
            sel = [*(f"signal {s}" for s in c.signals), *(f"category {k}" for k in c.categories)]
            what = _list(sel)
        count = f"at least {c.min_count} record{'s' if c.min_count > 1 else ''} with {what}"
        if c.min_agencies > 1:
            count += f" from at least {c.min_agencies} agencies"
        if c.roles:
            count += f", role {_list(c.roles)}"
        if c.exclude_roles:
            count += f", not as {_list(c.exclude_roles)}"
        if c.member != "any":
            count += f", about {'an adult' if c.member == 'adult' else 'a child'} member (at the date of the event)"
        if c.link != "any":
            count += {"located": ", placed at the address", "resident": ", about a resident"}[c.link]
        if c.min_gravity is not None:
            count += f", gravity above {c.min_gravity:g}"
        if c.window_days:
            count += f", within {_days(c.window_days)} of the episode's end"
        parts.append(count)
    if c.metric:
        bounds = []
        if c.metric_min is not None:
            bounds.append(f"at least {c.metric_min:g}")
        if c.metric_max is not None:
            bounds.append(f"at most {c.metric_max:g}")
        m = f"{_METRIC[c.metric]} {' and '.join(bounds)}"
        if c.metric == "co_involved_with":
            who = _list([*c.with_signals, *c.with_categories])
            age = f" aged {c.with_min_age}+ at the incident" if c.with_min_age is not None else ""
            if c.with_min_age is not None and c.with_unknown_age:
                age += " (or of unknown age)"
            m = f"involved in an incident with {c.metric_min:g}+ other people{age} who have {who}"
        parts.append(m)
    text = " or ".join(parts)
    return f"{c.label} [{text}]" if c.label else text


def describe_rule(rule: Rule) -> str:
    """A rule as a short plain-English paragraph (several lines)."""
    lines = [f"{rule.id}{'' if rule.enabled else ' (disabled)'}: {rule.label}",
             f"  Flags {_SCOPE[rule.scope]} when, in ANY window of {_days(rule.window_days)} (ending on the date of "
             f"one of its events, inside the lookback), all of the following hold:"]
    for c in rule.conditions:
        if c.required:
            lines.append(f"    - required: {describe_condition(c, rule)}")
    for g in rule.groups:
        members = [c for c in rule.conditions if c.group == g.id]
        lines.append(f"    - at least {g.min} of these {len(members)} ({g.label or g.id}):")
        lines += [f"        * {describe_condition(c, rule)}" for c in members]
    free = rule.free_conditions
    if free:
        n = rule.free_needed
        head = "all of" if n == len(free) else f"at least {n} of"
        if len(free) == 1:
            lines.append(f"    - {describe_condition(free[0], rule)}")
        else:
            lines.append(f"    - {head} these {len(free)}:")
            lines += [f"        * {describe_condition(c, rule)}" for c in free]
    if rule.min_age is not None or rule.max_age is not None:
        lo = f"{rule.min_age} or over" if rule.min_age is not None else ""
        hi = f"{rule.max_age} or under" if rule.max_age is not None else ""
        lines.append(f"    - the person is aged {' and '.join(x for x in (lo, hi) if x)} on the date the "
                     f"criterion is met")
    if rule.require_child:
        lines.append(f"    - a member was a child (under {rule.child_under}) while living there during the window")
    for b in rule.boosts:
        when = []
        if b.min_age is not None:
            when.append(f"aged {b.min_age}+")
        if b.max_age is not None:
            when.append(f"aged {b.max_age} or under")
        if b.condition:
            when.append(f"condition '{b.condition}' held")
        lines.append(f"  Score x{b.factor:g} when {' and '.join(when)}{f' ({b.label})' if b.label else ''}.")
    lines.append(f"  Weight {rule.weight:g}; {rule.needed} condition(s) needed in all.")
    return "\n".join(lines)


def check_rules(path: str | Path, taxonomy: str | Path | None = None) -> tuple[RuleSet, str]:
    """Validate a rules file (raises :class:`~ecins_link.config.ConfigError`) and describe every rule."""
    ruleset = load_rules(path, load_taxonomy(taxonomy) if taxonomy else None)
    text = "\n\n".join(describe_rule(r) for r in ruleset.rules)
    enabled = sum(1 for r in ruleset.rules if r.enabled)
    return ruleset, f"{path}: {len(ruleset.rules)} rule(s), {enabled} enabled -- valid.\n\n{text}\n"
