"""Unsupervised training of the person model that never silently damages it.

The prior comes from deterministic rules with an assumed recall, u from random sampling, m from EM passes.
Splink's EM (4.0.x) changes the linker *before* it knows whether a pass will work: the pass's blocked
comparisons are removed from the linker's settings and the prior is replaced by a blocking-adjusted one.  A
pass that then fails (no pairs, degenerate data) would leave the linker with comparisons missing and a wrong
prior.  So every pass here

* starts from a snapshot of the model (comparisons with their parameters and training history, and the
  prior) and is **checked** afterwards: the same comparisons, the same prior, and for each comparison it was
  to train a finite m on at least one observed level;
* on any failure or failed check, the model is **restored exactly** from the snapshot, and the pass recorded
  as failed with the reason.

Before the passes run, the planned passes are checked against the comparisons: a comparison that every pass
blocks on (so none can estimate it) gets the first pass from ``[blocking] train_fallback`` that could.  After
training, each comparison is *trained* (u sampled and m estimated by at least one pass) or *untrained* with the
reason; an untrained key comparison (forename, surname, dob) fails the run unless the project accepts it
(``[linkage] allow_untrained``).  A data set too small to train (``blocking.min_records_to_train``) keeps
its prior m probabilities, with a warning, and is not failed.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from splink import Linker
from splink.internals.constants import LEVEL_NOT_OBSERVED_TEXT
from splink.internals.parse_sql import get_columns_used_from_sql

from ecins_link.matching.person_fields import evidence_columns, rule_columns
from ecins_link.matching.person_model import _bad, em_sample_rule, guard_levels, quiet_splink, u_sample_pairs

KEY_COMPARISONS = ("forename", "surname", "dob")
ALIAS = "_t_"  # training-only copies of columns (see alias_rule)


class TrainingError(Exception):
    """Training left a key comparison untrained and the project did not accept that."""


def _lap(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def comparison_columns(linker: Linker) -> dict[str, set[str]]:
    """Input columns each comparison of the linker reads (what Splink checks a training rule against)."""
    return {c.output_column_name: {col.input_name for col in c._input_columns_used_by_case_statement}
            for c in linker._settings_obj.comparisons}


def blocked_by(linker: Linker, rule: str) -> set[str]:
    """Comparisons an EM pass on ``rule`` cannot estimate (they read a column the rule blocks on)."""
    used = set(get_columns_used_from_sql(rule, linker._db_api.sql_dialect.sqlglot_dialect))
    return {name for name, cols in comparison_columns(linker).items() if cols & used}


def alias_columns(rules: list[str]) -> list[str]:
    """Columns that fallback passes block on: the persons stage adds a copy ``_t_<column>`` of each to its
    working copy of ``person_std`` (see :func:`alias_rule`)."""
    return sorted({c for r in rules for c in re.findall(r"\b[lr]\.(\w+)\b", r)})


def alias_rule(rule: str) -> str:
    """``rule`` on the ``_t_`` column copies.  Splink will not let a pass estimate a comparison that reads a
    column the pass blocks on; the dob comparison reads the names (its father/son level) and the forename
    comparison reads dob and surname (twin and swap levels), so no pass on names or dates could train them.
    On the copies Splink estimates every comparison; afterwards the comparisons that really read the blocked
    columns are put back as they were before the pass (see ``_train``)."""
    return re.sub(r"\b([lr])\.(\w+)\b", rf"\1.{ALIAS}\2", rule)


def evidence_blocked(linker: Linker, rule: str) -> set[str]:
    """Comparisons whose own evidence (``person_fields.EVIDENCE``) a pass on ``rule`` blocks on: what a pass on
    the alias copies (:func:`alias_rule`) cannot estimate."""
    used = rule_columns(rule)
    return {name for name in comparison_columns(linker) if evidence_columns(name) & used}


def plan_passes(linker: Linker, passes: list[str], fallbacks: list[str]) -> tuple[list[str], list[str]]:
    """The EM passes to run: ``passes``, plus for each comparison none of them can estimate the first
    fallback rule that can (run on the alias copies, so judged by :func:`evidence_blocked`).  Returns
    (passes, fallback rules added)."""
    names = set(comparison_columns(linker))
    covered = set().union(*(names - blocked_by(linker, r) for r in passes)) if passes else set()
    added = []
    for rule in fallbacks:
        if covered >= names:
            break
        gain = (names - evidence_blocked(linker, rule)) - covered
        if gain and rule not in passes:
            added.append(rule)
            covered |= gain
    return list(passes) + added, added


def _check_pass(linker: Linker, names: list[str], snapshot: Any, estimated: list[str]) -> tuple[str | None, list[str]]:
    """Problem with the model after a pass (None: fine) and the comparisons it trained (a new, observed m on
    some level since ``snapshot``, the model's core settings before the pass)."""
    settings = linker._settings_obj
    prior = snapshot.probability_two_random_records_match
    now = [c.output_column_name for c in settings.comparisons]
    if now != names:
        return f"comparisons changed: {sorted(set(names) - set(now))} missing", []
    if not math.isclose(float(settings._probability_two_random_records_match), float(prior), rel_tol=1e-9):
        return f"prior changed from {prior} to {settings._probability_two_random_records_match}", []
    trained = []
    for comp in settings.comparisons:
        if comp.output_column_name not in estimated:
            continue
        before = snapshot.get_comparison_by_output_column_name(comp.output_column_name)
        seen = {lv.comparison_vector_value: len(lv._trained_m_probabilities)
                for lv in before._comparison_levels_excluding_null}
        got = [h["probability"] for lv in comp._comparison_levels_excluding_null
               for h in lv._trained_m_probabilities[seen.get(lv.comparison_vector_value, 0):]]
        values = [g for g in got if g != LEVEL_NOT_OBSERVED_TEXT]
        if any(isinstance(v, float) and math.isnan(v) for v in values):
            return f"{comp.output_column_name}: EM produced NaN m probabilities", []
        if values:
            trained.append(comp.output_column_name)
    return None, trained


def train(linker: Linker, mc: dict, seed: int = 42, n_records: int = 0, con: Any = None,
          table: str = "person_std", allow_untrained: list[str] | None = None) -> dict:
    """Train ``linker`` (see the module docstring); returns the training summary for ``linkage_models``
    (no personal data): prior, u sampling, each EM pass (rule, ok, error, comparisons trained / blocked),
    ``trained_comparisons``, ``untrained_comparisons`` ({comparison, reason}), ``warnings``, seconds.
    Raises :class:`TrainingError` when a key comparison is untrained and not in ``allow_untrained``."""
    with quiet_splink():
        summary = _train(linker, mc, seed, n_records, con, table)
    accepted = set(allow_untrained or [])
    bad = [u for u in summary["untrained_comparisons"]
           if u["comparison"] in KEY_COMPARISONS and u["comparison"] not in accepted and not summary["too_small"]]
    if bad:
        detail = "; ".join(f"{u['comparison']}: {u['reason']}" for u in bad)
        raise TrainingError(
            f"persons: key comparison(s) left untrained -- {detail}. Linking on untrained name / date-of-birth "
            f"weights is unsafe. Map a field the training passes can block on (postcode, address, phone, e-mail, "
            f"an identifier), add a pass to the model file's [blocking] train, or accept it with [linkage] "
            f"allow_untrained = {sorted(u['comparison'] for u in bad)}")
    return summary


def _prior(linker: Linker, b: dict, summary: dict) -> None:
    try:
        if not b["prior_rules"]:
            raise ValueError("no prior rule applies to this data")
        linker.training.estimate_probability_two_random_records_match(
            list(b["prior_rules"]), recall=float(b["prior_recall"]))
        prior = linker._settings_obj._probability_two_random_records_match
        if _bad(prior) or prior >= 0.5:
            raise ValueError(f"implausible prior {prior}")
    except Exception as err:  # noqa: BLE001 - any failure falls back to the configured prior
        linker._settings_obj._probability_two_random_records_match = float(b["fallback_prior"])
        summary["errors"].append(f"prior: {type(err).__name__}: {err}")
        summary["warnings"].append(f"persons: the prior could not be estimated ({err}); using the model "
                                   f"file's fallback_prior {b['fallback_prior']}")
    summary["prior"] = linker._settings_obj._probability_two_random_records_match


def _train(linker: Linker, mc: dict, seed: int, n_records: int, con: Any, table: str) -> dict:
    b = mc["blocking"]
    summary: dict[str, Any] = {"em_passes": [], "errors": [], "warnings": []}
    seconds: dict[str, float] = {}
    names = [c.output_column_name for c in linker._settings_obj.comparisons]
    started = time.perf_counter()
    _prior(linker, b, summary)
    seconds["prior"] = _lap(started)
    started = time.perf_counter()
    u_error = None
    try:
        linker.training.estimate_u_using_random_sampling(max_pairs=u_sample_pairs(b, n_records), seed=seed)
    except Exception as err:  # noqa: BLE001
        u_error = f"{type(err).__name__}: {err}"
        summary["errors"].append(f"u sampling: {u_error}")
    seconds["u_sampling"] = _lap(started)
    min_records = int(b.get("min_records_to_train", 0) or 0)
    summary["too_small"] = n_records < min_records
    passes, added = plan_passes(linker, list(b["train"]), list(b.get("train_fallback", [])))
    if summary["too_small"]:
        summary["warnings"].append(f"persons: {n_records} records are too few to train the model (fewer than "
                                   f"blocking.min_records_to_train = {min_records}); prior m probabilities used")
        passes, added = [], []
    summary["fallback_passes"] = added
    trained_by: dict[str, list[str]] = {n: [] for n in names}
    failed_for: dict[str, list[str]] = {n: [] for n in names}
    for i, rule in enumerate(passes):
        started = time.perf_counter()
        aliased = rule in added and con is not None and _has_aliases(con, table, rule)
        blocked = evidence_blocked(linker, rule) if aliased else blocked_by(linker, rule)
        snapshot = linker._settings_obj.core_model_settings.copy()
        em_rule = alias_rule(rule) if aliased else rule
        sampled, one_in = (em_sample_rule(con, table, em_rule, int(b.get("em_max_pairs", 0) or 0)) if con
                           else (em_rule, 1))
        record: dict[str, Any] = {"rule": rule, "ok": True, "sampled_one_in": one_in, "blocked": sorted(blocked)}
        try:
            session = linker.training.estimate_parameters_using_expectation_maximisation(
                sampled, estimate_without_term_frequencies=bool(b.get("em_without_term_frequencies", False)))
            estimated = [c.output_column_name for c in session.core_model_settings.comparisons
                         if c.output_column_name not in blocked]
            if aliased:  # the comparisons that read the blocked columns: exactly as before the pass
                linker._settings_obj.comparisons = [
                    snapshot.get_comparison_by_output_column_name(c.output_column_name)
                    if c.output_column_name in blocked else c for c in linker._settings_obj.comparisons]
            problem, trained = _check_pass(linker, names, snapshot, estimated)
        except Exception as err:  # noqa: BLE001 - e.g. no pairs on this rule, or degenerate data
            problem, trained = f"{type(err).__name__}: {err}".split("\n")[0], []
        if problem:
            linker._settings_obj.core_model_settings = snapshot  # exactly as before the pass
            record.update(ok=False, error=problem)
            for n in set(names) - blocked:
                failed_for[n].append(f"pass '{rule}' failed ({problem[:200]})")
        record["trained"] = trained
        for n in trained:
            trained_by[n].append(rule)
        summary["em_passes"].append(record)
        # EM on clean data may set a level's m to 0 or leave it unobserved: repair before the next pass
        guard_levels(linker, {**mc, "weight_bounds": {}})
        record["seconds"] = seconds[f"em_{i + 1}"] = _lap(started)
    summary["guards"] = guard_levels(linker, mc)
    summary["seconds"] = seconds
    _name_untrained(summary, names, trained_by, failed_for, passes, u_error)
    return summary


def _has_aliases(con: Any, table: str, rule: str) -> bool:
    cols = {r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()}
    return all(f"{ALIAS}{c}" in cols for c in alias_columns([rule]))


def _name_untrained(summary: dict, names: list[str], trained_by: dict, failed_for: dict, passes: list[str],
                    u_error: str | None) -> None:
    untrained = []
    for n in names:
        if u_error:
            reason = f"u probabilities not estimated: random sampling failed ({u_error[:200]})"
        elif trained_by[n]:
            continue
        elif summary["too_small"]:
            reason = "too few records to train; prior m probabilities used"
        elif failed_for[n]:
            reason = "; ".join(failed_for[n])
        elif not passes:
            reason = "no training pass applies to this data"
        else:
            reason = ("every training pass blocks on a column it compares, and no fallback pass applies "
                      "(or its levels were never observed)")
        untrained.append({"comparison": n, "reason": reason})
    summary["trained_comparisons"] = [n for n in names if n not in {u["comparison"] for u in untrained}]
    summary["untrained_comparisons"] = untrained
    for u in untrained:
        summary["warnings"].append(f"persons: comparison '{u['comparison']}' untrained (prior m used): {u['reason']}")
    for p in summary["em_passes"]:
        if not p["ok"]:
            summary["warnings"].append(f"persons: training pass '{p['rule']}' failed and was undone: {p['error'][:200]}")
