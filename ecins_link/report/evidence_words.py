"""A flag's evidence in plain sentences: one per condition ("4 records: domestic-abuse incidents ... in 12 months,
recorded by Police and Council (threshold 3) — met"), from the evidence JSON the scoring stage keeps and the
project's rules (which signals each condition counts, so a sentence names only its own records' agencies).
Used by the static pack and the web workspace."""

from __future__ import annotations

import json

from ecins_link.config import ProjectConfig
from ecins_link.report.labels import agency_label, join_words


def _months(days: object) -> str:
    try:
        d = int(days)
    except (TypeError, ValueError):
        return ""
    if d % 365 == 0:
        return f"{d // 365 * 12} months"
    if d >= 60:
        return f"{round(d / 30.4)} months"
    return f"{d} days"


Selector = tuple[frozenset[str], frozenset[str], bool]  # a condition's signal codes, categories, any_signal


_selectors: dict[str, dict] = {}


def condition_selectors(config: ProjectConfig | None) -> dict[tuple[str, str], Selector]:
    """(rule id, condition id) -> which signals the condition counts, from the project's rules (so a sentence
    names only the agencies of the records behind *that* condition); empty when the rules cannot be read."""
    if config is None:
        return {}
    key = str(config.file)
    if key not in _selectors:
        try:
            from ecins_link.scoring import load_project_rules

            _, ruleset = load_project_rules(config)
            _selectors[key] = {(r.id, c.id): (frozenset(c.signals), frozenset(x.upper() for x in c.categories),
                                              c.any_signal) for r in ruleset.rules for c in r.conditions}
        except Exception:  # noqa: BLE001 - without rules every record of the flag is shown against each condition
            _selectors[key] = {}
    return _selectors[key]


def _counted(record: dict, selector: Selector | None, category_of: dict[str, str]) -> bool:
    if selector is None:
        return True
    signals, categories, any_signal = selector
    code = str(record.get("signal") or "")
    return any_signal or code in signals or category_of.get(code, "").upper() in categories


_PLACED_WORDS = {
    "ambiguous": "give an address that fits more than one premises",
    "building": "give an address known only at building level (the flat is not certain)",
}


def _placement_sentences(records: list[dict]) -> list[str]:
    """One sentence per kind of uncertain placement among the evidence records (``placed`` = ambiguous /
    building): such records only corroborate a flag at a place, they never start one."""
    out = []
    for placed, words in _PLACED_WORDS.items():
        n = sum(1 for r in records if r.get("placed") == placed)
        if n:
            out.append(f"{n} of the records {words}: counted here only alongside records placed at this address "
                       "with certainty.")
    return out


def evidence_sentences(evidence: str | None, selectors: dict[tuple[str, str], Selector] | None = None,
                       category_of: dict[str, str] | None = None) -> list[str]:
    """Plain sentences from a flag's (already pruned) evidence JSON: one per condition, then boosts."""
    try:
        data = json.loads(evidence or "{}")
    except (TypeError, ValueError):
        return ["The evidence of this flag could not be read."]
    if not isinstance(data, dict):
        return []
    window = _months(data.get("window_days"))
    records = [r for r in data.get("records") or [] if isinstance(r, dict)]
    out = []
    for cond in data.get("conditions") or []:
        if not isinstance(cond, dict):
            continue
        label = str(cond.get("label") or cond.get("id") or "condition")
        met = "met" if cond.get("met") else "not met"
        if cond.get("metric"):
            value = cond.get("metric_value")
            measure = str(cond["metric"]).replace("_", " ")
            out.append(f"{label} — {met}" + (f" ({measure}: {value})." if value is not None else "."))
            continue
        selector = (selectors or {}).get((str(data.get("rule")), str(cond.get("id"))))
        # without the rules' selectors the condition's own records are unknown: no agencies named for it
        mine = [r for r in records if _counted(r, selector, category_of or {})] if selector is not None else []
        agencies = join_words(sorted({agency_label(r.get("agency")) for r in mine if r.get("agency")}))
        count = cond.get("count")
        threshold = cond.get("min_count")
        text = (f"{count} record{'s' if count != 1 else ''}" if count is not None
                else "Count withheld (it includes records outside this purpose)")
        text += f": {label.lower()}" + (f" in {window}" if window else "")
        if agencies:
            text += f", recorded by {agencies}"
        if threshold:
            text += f" (threshold {threshold}"
            if cond.get("min_agencies") and int(cond["min_agencies"]) > 1:
                text += f", from {cond['min_agencies']} or more agencies"
            text += ")"
        out.append(f"{text} — {met}.")
    if not selectors and records:
        every = join_words(sorted({agency_label(r.get("agency")) for r in records if r.get("agency")}))
        if every:
            out.append(f"The records behind this flag come from {every}.")
    out += _placement_sentences(records)
    for boost in data.get("boosts") or []:
        if isinstance(boost, dict):
            out.append(f"Priority raised ×{boost.get('factor', '?')}: {boost.get('label') or boost.get('id') or 'boost'}.")
    if data.get("override_raise"):
        out.append(f"Raised by professional judgement (+{data['override_raise']}).")
    if data.get("counts_withheld"):
        out.append("Some counts are withheld: they include records outside this purpose.")
    return out
