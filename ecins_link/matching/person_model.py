"""The Splink person-linkage model: settings, unsupervised training with guards, weight bounds.

Comparisons are built from the canonical ``person_std`` columns (docs/contracts.md) in ``person_comparisons.py``.  Every tunable number
(thresholds, blocking rules, EM passes, prior m probabilities, weight bounds) lives in ``person_model.toml``.

Training is unsupervised: the prior from deterministic rules with an assumed recall, u by random sampling,
m by EM over several blocking rules.  Guards: an EM pass that fails is recorded and skipped; a level EM or
sampling could not observe gets its prior m / a small u instead of Splink's 1e-6 placeholder (which would
otherwise give a huge spurious weight); finally each level listed in ``[weight_bounds]`` has its match weight
capped.  The caps encode what naive Bayes cannot know: household members share surname, address and postcode
(one fact, not three), so location agreement is bounded and a fully different forename / date of birth /
JR-SNR suffix is near-conclusive.  All SQL conditions use DuckDB built-ins only, so the saved settings JSON
re-creates the model anywhere (see ``matching/explain.py``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from splink import DuckDBAPI, Linker, SettingsCreator
from splink.internals.constants import LEVEL_NOT_OBSERVED_TEXT

from ecins_link.config import ConfigError, read_toml
from ecins_link.matching.person_comparisons import (  # noqa: F401 (re-exported for the tests)
    CONTAINED,
    HOUSEHOLD,
    SWAP,
    SWAP_VARIANTS,
    comparisons,
)

MODEL_FILE = Path(__file__).with_name("person_model.toml")
log = logging.getLogger(__name__)


_REQUIRED = {"thresholds": ("forename_jaro_winkler", "surname_jaro_winkler", "address_jaro_winkler",
                             "swap_jaro_winkler", "phonetic_min_jaro_winkler", "twin_max_forename_jaro_winkler",
                             "generation_years"),
             "blocking": ("predict", "train", "prior_rules", "prior_recall", "fallback_prior", "u_sample_pairs",
                          "em_max_iterations"),
             "guard": ("negative_weight", "dob_years_apart", "max_side_evidence", "ambiguity_margin",
                       "keep_pairs_min_probability")}


def load_model_config(path: str | Path | None = None) -> dict:
    """Read and check the model file (default: the packaged ``person_model.toml``); a file that cannot be used
    is one :class:`~ecins_link.config.ConfigError` naming it, the key and the problem."""
    p = Path(path) if path else MODEL_FILE
    data = read_toml(p, "person model file")
    for section, keys in _REQUIRED.items():
        if not isinstance(data.get(section), dict):
            raise ConfigError(f"{p}: missing section [{section}] (see ecins_link/matching/person_model.toml)")
        missing = [k for k in keys if k not in data[section]]
        if missing:
            raise ConfigError(f"{p}: [{section}] lacks {missing} (see ecins_link/matching/person_model.toml)")
    b = data["blocking"]
    for key in ("predict", "train", "prior_rules", "train_fallback"):
        if not all(isinstance(r, str) and r.strip() for r in b.get(key, [])):
            raise ConfigError(f"{p}: [blocking] {key} must be a list of SQL conditions (text)")
    if not b["predict"]:
        raise ConfigError(f"{p}: [blocking] predict is empty: no pair would ever be compared")
    for section in ("m_prior", "weight_bounds"):
        if not isinstance(data.get(section, {}), dict):
            raise ConfigError(f"{p}: [{section}] must be a table")
    return data


def settings(mc: dict, max_iterations: int | None = None) -> SettingsCreator:
    """Splink settings for a one-table dedupe over all sources (``person_std``)."""
    comps = comparisons(mc)
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=comps,
        blocking_rules_to_generate_predictions=list(mc["blocking"]["predict"]),
        probability_two_random_records_match=float(mc["blocking"]["fallback_prior"]),
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
        max_iterations=max_iterations or int(mc["blocking"]["em_max_iterations"]),
        em_convergence=0.0001,
    )


def make_linker(con: Any, table: str, mc: dict) -> Linker:
    """A Splink linker over ``table`` on the DuckDB connection ``con``."""
    return Linker(table, settings(mc), DuckDBAPI(connection=con), set_up_basic_logging=False)


def _bad(p: Any) -> bool:
    return p is None or p == LEVEL_NOT_OBSERVED_TEXT or (isinstance(p, float) and (math.isnan(p) or p <= 0))


def guard_levels(linker: Linker, mc: dict) -> dict:
    """Replace untrained / invalid m and u by priors, then cap match weights; returns what was changed."""
    priors, u_default = mc.get("m_prior", {}), float(mc.get("u_prior", {}).get("default", 1e-5))
    bounds = mc.get("weight_bounds", {})
    m_floor = float(mc.get("u_prior", {}).get("m_floor_fraction", 0.1))
    fixed_m, fixed_u, capped = [], [], []
    for comp in linker._settings_obj.comparisons:
        for level in comp.comparison_levels:
            if level.is_null_level:
                continue
            key = f"{comp.output_column_name}.{level.label_for_charts}"
            prior = float(priors.get(key, 0.01))
            if _bad(level._m_probability):
                level.m_probability = prior
                fixed_m.append(key)
            elif level.m_probability < m_floor * prior:  # EM drove an unseen level to ~0
                level.m_probability = m_floor * prior
                fixed_m.append(key)
            if _bad(level._u_probability):  # never seen among random pairs: rare, unless it is 'else'
                level.u_probability = 0.5 if level.label_for_charts == "else" else u_default
                fixed_u.append(key)
            b = bounds.get(key)
            if not b:
                continue
            m, u = float(level.m_probability), float(level.u_probability)
            w = math.log2(m / u)
            if "max" in b and w > float(b["max"]):
                target = float(b["max"])
            elif "min" in b and w < float(b["min"]):
                target = float(b["min"])
            else:
                continue
            new_m = u * 2.0**target
            if new_m <= 1.0:
                level.m_probability = new_m
            else:
                level.u_probability = m / 2.0**target
            capped.append({"level": key, "trained_weight": round(w, 3), "bounded_to": target})
    return {"m_from_prior": fixed_m, "u_from_prior": fixed_u, "weights_bounded": capped}


@contextmanager
def quiet_splink() -> Iterator[None]:
    """Silence Splink's per-level training warnings (the guards record what they fixed in the summary)."""
    lg = logging.getLogger("splink")
    before = lg.level
    lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        lg.setLevel(before)


def em_sample_rule(con: Any, table: str, rule: str, max_pairs: int) -> tuple[str, int]:
    """``rule`` for an EM pass, thinned to about ``max_pairs`` pairs when it generates more on ``table``: a
    pseudo-random 1-in-k sample of its pairs (a hash of the two record ids, so the same pairs every run).  EM
    estimates proportions; a million pairs pin them as well as several.  Returns (rule, k); k = 1: all pairs."""
    if max_pairs <= 0:
        return rule, 1
    n = con.execute(f"""SELECT count(*) FROM "{table}" l JOIN "{table}" r
                        ON ({rule}) AND l.unique_id < r.unique_id""").fetchone()[0]
    k = -(-int(n) // max_pairs)
    if k <= 1:
        return rule, 1
    return f"({rule}) AND hash(l.unique_id || '|' || r.unique_id) % {k} = 0", k


def _lap(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def u_sample_pairs(b: dict, n_records: int) -> float:
    """Random pairs for u estimation: ``u_sample_pairs`` (an upper bound), but no more than
    ``u_sample_pairs_per_record`` x records -- a small input is not sampled more than it has pairs worth."""
    per_record = float(b.get("u_sample_pairs_per_record", 0) or 0)
    cap = float(b["u_sample_pairs"])
    return min(cap, max(per_record * n_records, 1e5)) if per_record and n_records > 0 else cap


def level_weights(linker: Linker) -> dict[str, float]:
    """log2 Bayes factor of every non-null level, keyed ``comparison.level``."""
    out = {}
    for comp in linker._settings_obj.comparisons:
        for level in comp.comparison_levels:
            if not level.is_null_level:
                out[f"{comp.output_column_name}.{level.label_for_charts}"] = round(
                    math.log2(level.m_probability / level.u_probability), 3)
    return out
