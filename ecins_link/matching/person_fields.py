"""Fit the person model to the data in hand: keep the comparisons, blocking rules and training passes whose
fields the extract actually populates, and say which fields were dropped and why.

A field no source maps, or that is empty (or holds one value) in every record, carries no evidence: its
comparison would sit on its prior m probabilities, its blocking rules generate no pairs and an EM pass that
blocks on it finds none (Splink then raises -- after it has changed the linker, see ``person_training``).
So such fields are dropped up front, each with a note that goes into the run summary (``dropped_fields``).

A rule ``l.x IS NULL AND ...`` still applies when ``x`` is empty everywhere (every record lacks it): only the
columns a rule needs *values* of count.  Identifier (``id_*``) and attribute (``attr_*``) columns of
``person_std`` add one comparison each; identifiers also add a blocking rule and a training pass.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb

from ecins_link.config import ProjectConfig

# comparison -> person_std columns that carry its evidence (it is kept when any of them has values)
COMPARISON_FIELDS = {"forename": ["forename"], "surname": ["surname"], "dob": ["dob"],
                     "address": ["uprn", "address_norm", "postcode"], "phone": ["phone"], "email": ["email"],
                     "sex": ["sex"], "suffix": ["suffix"]}
# comparison -> every person_std column holding its evidence (derived keys included): a training pass on the
# alias copies of columns (person_training.alias_rule) cannot estimate the comparisons whose evidence it blocks on
EVIDENCE = {"forename": {"forename", "forename_canonical", "forename_dm", "initial", "middle_names"},
            "surname": {"surname", "surname_compact", "surname_dm"},
            "dob": {"dob", "dob_year", "dob_month", "dob_day"},
            "address": {"uprn", "address_norm", "postcode", "postcode_sector", "postcode_outward", "address_number",
                        "address_flat"},
            "phone": {"phone"}, "email": {"email"}, "sex": {"sex"}, "suffix": {"suffix"}}


def evidence_columns(comparison: str) -> set[str]:
    """The person_std columns holding a comparison's evidence (``id_*`` / ``attr_*``: the column itself)."""
    return EVIDENCE.get(comparison, {comparison})


# comparison -> the person mapping keys that would populate it (for the note: "not mapped" vs "empty")
_MAPPING_KEYS = {"forename": ["forenames", "full_name"], "surname": ["surname", "full_name"], "dob": ["dob"],
                 "address": ["address", "address_lines", "postcode", "uprn"], "phone": ["phone"],
                 "email": ["email"], "sex": ["sex"]}
_NULL_TEST = re.compile(r"\b[lr]\.(\w+)\s+IS\s+NULL\b", re.IGNORECASE)
_COLUMN = re.compile(r"\b[lr]\.(\w+)\b")


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The column names of ``table`` (or view) on ``con``."""
    return {r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()}


def column_stats(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, tuple[int, int]]:
    """(records with a value, approximate distinct values) of every column of ``table``, in one scan."""
    cols = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
    parts = ", ".join(f'count("{c}"), approx_count_distinct("{c}")' for c in cols)
    row = con.execute(f'SELECT {parts} FROM "{table}"').fetchone()
    return {c: (int(row[2 * i]), int(row[2 * i + 1])) for i, c in enumerate(cols)}


def rule_columns(rule: str) -> set[str]:
    """Columns whose values a blocking rule needs (a column only tested ``IS NULL`` is not needed)."""
    return set(_COLUMN.findall(_NULL_TEST.sub(" ", rule)))


def _mapped(config: ProjectConfig | None, comparison: str) -> bool | None:
    if config is None:
        return None
    people = [s.person for s in config.sources if s.person]
    if comparison.startswith(("id_", "attr_")):
        kind, name = comparison.split("_", 1)
        return any(name in (p.identifiers if kind == "id" else p.attributes) for p in people)
    return any(getattr(p, key, None) for p in people for key in _MAPPING_KEYS.get(comparison, []))


def fit_to_data(mc: dict, stats: dict[str, tuple[int, int]], config: ProjectConfig | None = None) -> dict:
    """A copy of model config ``mc`` fitted to the data: ``comparisons`` (names kept), ``extra_columns`` (the
    ``id_*`` / ``attr_*`` columns), blocking ``predict`` / ``train`` without rules on unusable columns (plus
    one rule and pass per identifier), ``train_fallback`` likewise, and ``dropped_fields`` /
    ``dropped_rules`` notes.  ``stats``: :func:`column_stats` of ``person_std``."""
    extra = sorted(c for c in stats if c.startswith(("id_", "attr_")))
    fields = {**COMPARISON_FIELDS, **{c: [c] for c in extra}}
    dropped: list[dict[str, Any]] = []
    unusable: set[str] = {c for c, (n, distinct) in stats.items() if n == 0 or distinct <= 1}
    unusable |= {c for c in ("dob_year", "dob_month", "dob_day") if "dob" in unusable}
    kept = []
    for comparison, cols in fields.items():
        if any(c in stats and c not in unusable for c in cols):
            kept.append(comparison)
            continue
        n = sum(stats.get(c, (0, 0))[0] for c in cols)
        mapped = _mapped(config, comparison)
        if comparison == "suffix":
            reason, mapped = "no generation suffix (JR, SNR...) in any name", None
        elif n == 0 and mapped is False:
            reason = "not mapped by any source"
        elif n == 0:
            reason = "no value in any record" + (" (mapped, but empty or nulled as invalid)" if mapped else "")
        else:
            reason = f"the same value in all {n:,} records that have one: it cannot tell records apart"
        dropped.append({"field": comparison, "reason": reason, "mapped": mapped})
    identifiers = [c for c in extra if c.startswith("id_") and c in kept]
    b = dict(mc["blocking"])
    dropped_rules = []

    def usable(key: str, extra_rules: list[str]) -> list[str]:
        out = []
        for rule in list(b.get(key, [])) + extra_rules:
            bad = sorted(c for c in rule_columns(rule) if c in unusable or c not in stats)
            if bad:
                dropped_rules.append({"rule": rule, "kind": key, "reason": f"no usable values in {', '.join(bad)}"})
            else:
                out.append(rule)
        return out

    # a source's own person reference (qualified by the source): its records sharing one are scored as pairs, so the
    # source-id step (person_source_ids) can accept them; never a comparison
    own_ids = ["l.source_person_id = r.source_person_id"] \
        if "source_person_id" in stats and "source_person_id" not in unusable else []
    b["predict"] = usable("predict", [f"l.{c} = r.{c}" for c in identifiers] + own_ids)
    b["train"] = usable("train", [])
    b["train_fallback"] = usable("train_fallback", [f"l.{c} = r.{c}" for c in identifiers])
    b["prior_rules"] = usable("prior_rules", [])
    return {**mc, "blocking": b, "comparisons": kept, "extra_columns": extra, "dropped_fields": dropped,
            "dropped_rules": dropped_rules}
