"""The Splink person-linkage model: comparisons, unsupervised training with guards, weight bounds.

Comparisons are built from the canonical ``person_std`` columns (docs/contracts.md).  Every tunable number
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
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from splink import DuckDBAPI, Linker, SettingsCreator
from splink import comparison_level_library as cll
from splink import comparison_library as cl
from splink.internals.constants import LEVEL_NOT_OBSERVED_TEXT

# forename and surname swapped (each side may carry a typo)
SWAP = ("forename_l <> surname_l AND jaro_winkler_similarity(forename_l, surname_r) >= {jw} "
        "AND jaro_winkler_similarity(surname_l, forename_r) >= {jw}")
MODEL_FILE = Path(__file__).with_name("person_model.toml")
log = logging.getLogger(__name__)


def load_model_config(path: str | Path | None = None) -> dict:
    """Read the model file (default: the packaged ``person_model.toml``)."""
    p = Path(path) if path else MODEL_FILE
    with p.open("rb") as fh:
        return tomllib.load(fh)


def _lvl(sql: str, label: str) -> cll.CustomLevel:
    return cll.CustomLevel(sql, label_for_charts=label)


def _cc(output_column_name: str, comparison_levels: list, priors: dict) -> cl.CustomComparison:
    """A comparison whose levels start EM from the prior m probabilities of the model file."""
    for level in comparison_levels:
        key = f"{output_column_name}.{getattr(level, 'label_for_charts', None)}"
        if not level.is_null_level and key in priors:
            level.configure(m_probability=float(priors[key]))
    return cl.CustomComparison(output_column_name=output_column_name, comparison_levels=comparison_levels)


def _forename(t: dict, pri: dict) -> cl.CustomComparison:
    f = "coalesce(forename_{s}, initial_{s})"
    fl, fr = f.format(s="l"), f.format(s="r")
    return _cc(
        output_column_name="forename",
        comparison_levels=[
            _lvl(f"{fl} IS NULL OR {fr} IS NULL", "null").configure(is_null_level=True),
            _lvl(SWAP.format(jw=t["swap_jaro_winkler"]), "names swapped"),
            _lvl(f"(length({fl}) = 1 OR length({fr}) = 1) AND left({fl}, 1) = left({fr}, 1)",
                 "initial only, agrees"),
            cll.ExactMatchLevel("forename", term_frequency_adjustments=True).configure(label_for_charts="exact"),
            _lvl("forename_canonical_l = forename_canonical_r", "nickname"),
            _lvl("forename_l = split_part(middle_names_r, ' ', 1) OR split_part(middle_names_l, ' ', 1) = forename_r",
                 "middle name used"),
            _lvl("forename_dm_l = forename_dm_r AND jaro_winkler_similarity(forename_l, forename_r) >= "
                 f"{t['phonetic_min_jaro_winkler']}", "phonetic"),
            _lvl(f"jaro_winkler_similarity(forename_l, forename_r) >= {t['forename_jaro_winkler']}", "jaro-winkler"),
            # transliterations (LI / LEE, SIOBHAN / SHIVAUN) sound alike but are spelt apart; so do JOHN / JANE
            _lvl("forename_dm_l = forename_dm_r", "phonetic only"),
            _lvl("length(forename_l) >= 3 AND length(forename_r) >= 3 AND "
                 "(contains(forename_l, forename_r) OR contains(forename_r, forename_l))", "contained"),
            # optional (thresholds.cross_field_names): a forename typed into the surname field or vice versa
            *([_lvl(f"jaro_winkler_similarity(forename_l, surname_r) >= {t['swap_jaro_winkler']} OR "
                    f"jaro_winkler_similarity(surname_l, forename_r) >= {t['swap_jaro_winkler']}",
                    "name in the other field")] if t.get("cross_field_names", False) else []),
            # the twin pattern: nothing in the forename agrees, yet surname and full date of birth do
            _lvl(f"dob_l = dob_r AND (surname_dm_l = surname_dm_r OR jaro_winkler_similarity(surname_l, surname_r) >= "
                 f"{t['surname_jaro_winkler']}) AND jaro_winkler_similarity(forename_l, forename_r)"
                 f" < {t['twin_max_forename_jaro_winkler']}", "different, same surname and dob"),
            cll.ElseLevel().configure(label_for_charts="else"),
        ],
        priors=pri,
    )


def _surname(t: dict, pri: dict) -> cl.CustomComparison:
    parts = "list_filter(string_split(regexp_replace(surname_{s}, '[^A-Z]+', ' ', 'g'), ' '), x -> length(x) > 1)"
    return _cc(
        output_column_name="surname",
        comparison_levels=[
            cll.NullLevel("surname"),
            cll.ExactMatchLevel("surname", term_frequency_adjustments=True).configure(label_for_charts="exact"),
            _lvl(SWAP.format(jw=t["swap_jaro_winkler"]), "names swapped"),
            _lvl("surname_compact_l = surname_compact_r", "compact"),
            # only a surname with a non-letter (space, hyphen, apostrophe) has parts other than itself
            _lvl("(regexp_matches(surname_l, '[^A-Z]') OR regexp_matches(surname_r, '[^A-Z]')) AND "
                 f"list_has_any({parts.format(s='l')}, {parts.format(s='r')})", "shared part"),
            _lvl("surname_dm_l = surname_dm_r AND jaro_winkler_similarity(surname_l, surname_r) >= "
                 f"{t['phonetic_min_jaro_winkler']}", "phonetic"),
            _lvl(f"jaro_winkler_similarity(surname_l, surname_r) >= {t['surname_jaro_winkler']}", "jaro-winkler"),
            cll.ElseLevel().configure(label_for_charts="else"),
        ],
        priors=pri,
    )


def _dob(t: dict, pri: dict) -> cl.CustomComparison:
    year = "coalesce(dob_year_{s}, year(dob_{s}))"
    yl, yr = year.format(s="l"), year.format(s="r")
    generation = int(t["generation_years"])
    return _cc(
        output_column_name="dob",
        comparison_levels=[
            _lvl(f"{yl} IS NULL OR {yr} IS NULL", "null").configure(is_null_level=True),
            _lvl("dob_l = dob_r", "exact"),
            _lvl("dob_year_l = dob_year_r AND dob_day_l = dob_month_r AND dob_month_l = dob_day_r", "day-month swapped"),
            # one edit of YYYYMMDD leaves at least one of the three parts equal: test that first (cheap)
            _lvl("(dob_year_l = dob_year_r OR dob_month_l = dob_month_r OR dob_day_l = dob_day_r) AND "
                 "damerau_levenshtein(strftime(dob_l, '%Y%m%d'), strftime(dob_r, '%Y%m%d')) <= 1", "one character"),
            _lvl("(CAST(dob_year_l = dob_year_r AS INT) + CAST(dob_month_l = dob_month_r AS INT)"
                 " + CAST(dob_day_l = dob_day_r AS INT)) = 2", "two of three parts"),
            _lvl(f"(dob_l IS NULL OR dob_r IS NULL) AND {yl} = {yr}", "year only"),
            # the father/son pattern: same full name, a generation apart
            _lvl("((forename_l = forename_r AND surname_l = surname_r) OR "
                 f"(forename_l = surname_r AND surname_l = forename_r)) AND abs({yl} - {yr}) >= {generation}",
                 "generation apart, same name"),
            cll.ElseLevel().configure(label_for_charts="else"),
        ],
        priors=pri,
    )


def _address(t: dict, pri: dict) -> cl.CustomComparison:
    return _cc(
        output_column_name="address",
        comparison_levels=[
            _lvl("(uprn_l IS NULL AND address_norm_l IS NULL AND postcode_l IS NULL) OR "
                 "(uprn_r IS NULL AND address_norm_r IS NULL AND postcode_r IS NULL)", "null"
                 ).configure(is_null_level=True),
            _lvl("uprn_l = uprn_r", "uprn"),
            _lvl("address_norm_l = address_norm_r AND coalesce(postcode_l = postcode_r, TRUE)", "exact"),
            _lvl("address_number_l = address_number_r AND postcode_l = postcode_r AND "
                 "coalesce(address_flat_l, '') = coalesce(address_flat_r, '')", "number and postcode"),
            _lvl("postcode_l = postcode_r", "postcode"),
            _lvl(f"jaro_winkler_similarity(address_norm_l, address_norm_r) >= {t['address_jaro_winkler']}", "similar"),
            _lvl("postcode_sector_l = postcode_sector_r", "sector"),
            _lvl("postcode_outward_l = postcode_outward_r", "outward"),
            cll.ElseLevel().configure(label_for_charts="else"),
        ],
        priors=pri,
    )


def _simple(name: str, pri: dict, extra: list | None = None) -> cl.CustomComparison:
    return _cc(
        output_column_name=name,
        comparison_levels=[
            cll.NullLevel(name),
            cll.ExactMatchLevel(name).configure(label_for_charts="exact"),
            *(extra or []),
            cll.ElseLevel().configure(label_for_charts="else"),
        ],
        priors=pri,
    )


def comparisons(mc: dict) -> list[cl.CustomComparison]:
    """The model's comparisons (forename, surname, dob, address, phone, email, sex, suffix)."""
    t, pri = mc["thresholds"], mc.get("m_prior", {})
    return [
        _forename(t, pri), _surname(t, pri), _dob(t, pri), _address(t, pri),
        _simple("phone", pri, [_lvl("length(phone_l) >= 6 AND right(phone_l, 6) = right(phone_r, 6)", "last six digits"),
                               # optional (thresholds.phone_max_edits > 0): a mistyped digit
                               *([_lvl(f"damerau_levenshtein(phone_l, phone_r) <= {int(t['phone_max_edits'])}",
                                       "one character")] if int(t.get("phone_max_edits", 0)) > 0 else [])]),
        _simple("email", pri, [_lvl("split_part(email_l, '@', 1) = split_part(email_r, '@', 1)", "local part")]),
        _simple("sex", pri),
        _cc("suffix", [cll.NullLevel("suffix"),  # JR / JNR / JUNIOR and SR / SNR / SENIOR spellings agree
                       _lvl("left(suffix_l, 1) = left(suffix_r, 1)", "same generation"),
                       cll.ElseLevel().configure(label_for_charts="else")], pri),
    ]


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


def _guard_levels(linker: Linker, mc: dict) -> dict:
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


def train(linker: Linker, mc: dict, seed: int = 42, n_records: int = 0, con: Any = None,
          table: str = "person_std") -> dict:
    """Unsupervised training with guards.  Returns a summary (no personal data, with seconds per step) for
    ``linkage_models``.  ``n_records`` (the input size) bounds the u sample (see ``u_sample_pairs``).  With the
    linker's connection ``con`` and input ``table``, an EM pass over more than ``blocking.em_max_pairs`` pairs
    runs on a sample of them (``em_sample_rule``)."""
    with quiet_splink():
        return _train(linker, mc, seed, n_records, con, table)


def _train(linker: Linker, mc: dict, seed: int, n_records: int, con: Any, table: str) -> dict:
    b = mc["blocking"]
    summary: dict[str, Any] = {"em_passes": [], "errors": []}
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    try:
        linker.training.estimate_probability_two_random_records_match(
            list(b["prior_rules"]), recall=float(b["prior_recall"]))
        prior = linker._settings_obj._probability_two_random_records_match
        if _bad(prior) or prior >= 0.5:
            raise ValueError(f"implausible prior {prior}")
    except Exception as err:  # noqa: BLE001 - any failure falls back to the configured prior
        linker._settings_obj._probability_two_random_records_match = float(b["fallback_prior"])
        summary["errors"].append(f"prior: {type(err).__name__}: {err}")
    summary["prior"] = linker._settings_obj._probability_two_random_records_match
    seconds["prior"] = _lap(started)
    started = time.perf_counter()
    try:
        linker.training.estimate_u_using_random_sampling(max_pairs=u_sample_pairs(b, n_records), seed=seed)
    except Exception as err:  # noqa: BLE001
        summary["errors"].append(f"u sampling: {type(err).__name__}: {err}")
    seconds["u_sampling"] = _lap(started)
    for i, rule in enumerate(b["train"]):
        started = time.perf_counter()
        sampled, one_in = em_sample_rule(con, table, rule, int(b.get("em_max_pairs", 0) or 0)) if con else (rule, 1)
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                sampled, estimate_without_term_frequencies=bool(b.get("em_without_term_frequencies", False)))
            summary["em_passes"].append({"rule": rule, "ok": True, "sampled_one_in": one_in})
        except Exception as err:  # noqa: BLE001 - e.g. no pairs on this rule, or degenerate data
            summary["em_passes"].append({"rule": rule, "ok": False, "sampled_one_in": one_in,
                                         "error": f"{type(err).__name__}: {err}"})
        # EM on clean data may set a level's m to 0 or leave it unobserved: repair before the next pass
        _guard_levels(linker, {**mc, "weight_bounds": {}})
        summary["em_passes"][-1]["seconds"] = seconds[f"em_{i + 1}"] = _lap(started)
    summary["guards"] = _guard_levels(linker, mc)
    summary["seconds"] = seconds
    return summary


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
