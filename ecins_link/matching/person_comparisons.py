"""The person model's comparisons: the Splink comparison levels built from ``person_std`` columns and the
thresholds of the model file (``person_model.toml`` ``[thresholds]``, ``[m_prior]``).

Each level's SQL uses DuckDB built-ins only, so the saved settings JSON re-creates the model anywhere (see
``matching/explain.py``).  The named SQL conditions (:data:`SWAP`, :data:`SWAP_VARIANTS`, :data:`CONTAINED`,
:data:`HOUSEHOLD`) are shared with the tests that check them on hand-made pairs.
"""

from __future__ import annotations

from splink import comparison_level_library as cll
from splink import comparison_library as cl

# forename and surname swapped (each side may carry a typo)
# forename and surname swapped: each cross pair agrees by spelling (a typo allowed), by sound (a transliteration:
# IBRAHIM YOUSSEF / YUSUF IBRAHIM) or through the nickname table (BECKY LEE / LEE REBECCA)
SWAP = ("forename_l <> surname_l AND (jaro_winkler_similarity(forename_l, surname_r) >= {jw} "
        "OR forename_dm_l = surname_dm_r OR forename_canonical_l = surname_r) "
        "AND (jaro_winkler_similarity(surname_l, forename_r) >= {jw} "
        "OR surname_dm_l = forename_dm_r OR surname_l = forename_canonical_r)")
# ... and (thresholds.swap_variants) also through the nickname vocabulary read on either field (the name in the
# surname field in canonical form: surname_forename_canonical) or one keystroke apart in canonical form, while
# neither the forenames nor the surnames agree directly (ROB ROBERTS / BOB ROBERTS is no swap)
# ... or the forenames field holds the other's surname of several words (MC CARTHY ROISIN: forename MC, middle name
# CARTHY)
_SWAP_HALF = ("(forename_canonical_{a} = surname_forename_canonical_{b} OR "
              "(least(length(forename_canonical_{a}), length(surname_forename_canonical_{b})) >= 4 AND "
              "damerau_levenshtein(forename_canonical_{a}, surname_forename_canonical_{b}) <= 1) OR "
              "(middle_names_{a} IS NOT NULL AND forename_{a} || coalesce(split_part(middle_names_{a}, ' ', 1), '') "
              "|| coalesce(split_part(middle_names_{a}, ' ', 2), '') = surname_compact_{b}))")
SWAP_VARIANTS = ("(" + SWAP + ") OR (forename_l <> forename_r AND surname_l <> surname_r AND forename_l <> surname_l "
                 "AND (jaro_winkler_similarity(forename_l, surname_r) >= {jw} OR forename_dm_l = surname_dm_r OR "
                 + _SWAP_HALF.format(a="l", b="r") + ") "
                 "AND (jaro_winkler_similarity(surname_l, forename_r) >= {jw} OR surname_dm_l = forename_dm_r OR "
                 + _SWAP_HALF.format(a="r", b="l") + "))")
# one address written inside the other, word for word, at the same house number and flat, postcodes not in two
# sectors (an extract that adds or drops the locality and town)
CONTAINED = ("address_number_l = address_number_r AND coalesce(address_flat_l, '') = coalesce(address_flat_r, '') "
             "AND coalesce(postcode_sector_l = postcode_sector_r, TRUE) "
             "AND (contains(' ' || address_norm_l || ' ', ' ' || address_norm_r || ' ') "
             "OR contains(' ' || address_norm_r || ' ', ' ' || address_norm_l || ' '))")
# the other record's surname was recorded at this record's address (person_std.address_surnames, '|A|B|')
HOUSEHOLD = ("(contains(address_surnames_l, '|' || surname_r || '|') OR "
             "contains(address_surnames_r, '|' || surname_l || '|'))")


def _lvl(sql: str, label: str) -> cll.CustomLevel:
    return cll.CustomLevel(sql, label_for_charts=label)


def _cc(output_column_name: str, comparison_levels: list, priors: dict) -> cl.CustomComparison:
    """A comparison whose levels start EM from the prior m probabilities of the model file."""
    for level in comparison_levels:
        key = f"{output_column_name}.{getattr(level, 'label_for_charts', None)}"
        if not level.is_null_level and key in priors:
            level.configure(m_probability=float(priors[key]))
    return cl.CustomComparison(output_column_name=output_column_name, comparison_levels=comparison_levels)


def _tf(level: cll.CustomLevel, column: str, t: dict) -> cll.CustomLevel:
    """``level`` with a term-frequency adjustment on ``column`` at ``thresholds.fuzzy_term_frequency_weight``
    (optional, off at 0): a near-match on a common name (SMITH / SMYTH) is weaker evidence than one on a rare
    name, as an exact match is.  Splink divides by the more frequent of the two values."""
    w = float(t.get("fuzzy_term_frequency_weight", 0) or 0)
    return level.configure(tf_adjustment_column=column, tf_adjustment_weight=w) if w > 0 else level


def _swap(t: dict) -> str:
    """The "names swapped" condition: :data:`SWAP`, or :data:`SWAP_VARIANTS` with ``thresholds.swap_variants``."""
    return (SWAP_VARIANTS if t.get("swap_variants", False) else SWAP).format(jw=t["swap_jaro_winkler"])


def _forename(t: dict, pri: dict) -> cl.CustomComparison:
    f = "coalesce(forename_{s}, initial_{s})"
    fl, fr = f.format(s="l"), f.format(s="r")
    return _cc(
        output_column_name="forename",
        comparison_levels=[
            _lvl(f"{fl} IS NULL OR {fr} IS NULL", "null").configure(is_null_level=True),
            _lvl(_swap(t), "names swapped"),
            # a person recorded under one name only, kept as the forename: it may be the other's surname
            _lvl("(surname_l IS NULL AND surname_r IS NOT NULL AND (forename_l = surname_r OR forename_dm_l = surname_dm_r))"
                 " OR (surname_r IS NULL AND surname_l IS NOT NULL AND (forename_r = surname_l OR "
                 "forename_dm_r = surname_dm_l))", "lone name is the other's surname"),
            # an initial agrees with the name or with its canonical form (O / UMAR, canonical OMAR)
            _lvl(f"(length({fl}) = 1 OR length({fr}) = 1) AND (left({fl}, 1) = left({fr}, 1) OR "
                 f"left(forename_canonical_l, 1) = left({fr}, 1) OR left({fl}, 1) = left(forename_canonical_r, 1))",
                 "initial only, agrees"),
            cll.ExactMatchLevel("forename", term_frequency_adjustments=True).configure(label_for_charts="exact"),
            _tf(_lvl("forename_canonical_l = forename_canonical_r", "nickname"), "forename", t),
            # twins of opposite sex: the recorded sexes differ, surname and full date of birth agree and the
            # forenames are neither the same nor one another's short form (JOHN / JOAN sound and look alike)
            # (on only where the model guards twins at all: twin_max_forename_jaro_winkler > 0)
            *([_lvl(f"sex_l <> sex_r AND dob_l = dob_r AND (surname_dm_l = surname_dm_r OR "
                    f"jaro_winkler_similarity(surname_l, surname_r) >= {t['surname_jaro_winkler']})",
                    "different sex, same surname and dob")] if float(t["twin_max_forename_jaro_winkler"]) > 0 else []),
            _lvl("forename_l = split_part(middle_names_r, ' ', 1) OR split_part(middle_names_l, ' ', 1) = forename_r",
                 "middle name used"),
            _tf(_lvl("forename_dm_l = forename_dm_r AND jaro_winkler_similarity(forename_l, forename_r) >= "
                     f"{t['phonetic_min_jaro_winkler']}", "phonetic"), "forename", t),
            _tf(_lvl(f"jaro_winkler_similarity(forename_l, forename_r) >= {t['forename_jaro_winkler']}",
                     "jaro-winkler"), "forename", t),
            # transliterations (LI / LEE, SIOBHAN / SHIVAUN) sound alike but are spelt apart; so do JOHN / JANE
            # ... but a known short form is compared through its full form (JENNY is JENNIFER, not JOHN)
            _lvl("forename_dm_l = forename_dm_r AND forename_canonical_l = forename_l AND "
                 "forename_canonical_r = forename_r", "phonetic only"),
            _lvl("length(forename_l) >= 3 AND length(forename_r) >= 3 AND "
                 "(contains(forename_l, forename_r) OR contains(forename_r, forename_l))", "contained"),
            # one keying error in the name or in its canonical form (MAVY / MARY; MICAHEL / MIKE -> MICHAEL)
            _lvl("least(length(forename_canonical_l), length(forename_canonical_r)) >= 4 AND "
                 "(damerau_levenshtein(forename_l, forename_r) <= 1 OR "
                 "damerau_levenshtein(forename_canonical_l, forename_canonical_r) <= 1)", "one typo"),
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
            _lvl(_swap(t), "names swapped"),
            _lvl("surname_compact_l = surname_compact_r", "compact"),
            # only a surname with a non-letter (space, hyphen, apostrophe) has parts other than itself
            _lvl("(regexp_matches(surname_l, '[^A-Z]') OR regexp_matches(surname_r, '[^A-Z]')) AND "
                 f"list_has_any({parts.format(s='l')}, {parts.format(s='r')})", "shared part"),
            _tf(_lvl("surname_dm_l = surname_dm_r AND jaro_winkler_similarity(surname_l, surname_r) >= "
                     f"{t['phonetic_min_jaro_winkler']}", "phonetic"), "surname", t),
            _tf(_lvl(f"jaro_winkler_similarity(surname_l, surname_r) >= {t['surname_jaro_winkler']}", "jaro-winkler"),
                "surname", t),
            # marriage, divorce, a maiden name: the surname differs, the forename and full date of birth agree
            # (twins differ in forename, fathers and sons in date of birth); bounded in the model file
            # ... and the other's surname was recorded at this one's address: a household link (she married into
            # the family she lived with; an old record carries her maiden name at the family's old address)
            _lvl("dob_l = dob_r AND (forename_l = forename_r OR forename_canonical_l = forename_canonical_r) AND "
                 f"{HOUSEHOLD}", "changed, household link"),
            _lvl("dob_l = dob_r AND (forename_l = forename_r OR forename_canonical_l = forename_canonical_r)",
                 "changed, forename and dob agree"),
            cll.ElseLevel().configure(label_for_charts="else"),
        ],
        priors=pri,
    )


def _dob(t: dict, pri: dict) -> cl.CustomComparison:
    year = "coalesce(dob_year_{s}, year(dob_{s}))"
    yl, yr = year.format(s="l"), year.format(s="r")
    generation = int(t["generation_years"])
    apart = f"abs({yl} - {yr}) >= {generation}"
    if t.get("generation_first", False):
        apart += f" AND abs({yl} - {yr}) NOT IN (100, 200)"  # portable to Spark (model_dialect): no modulo
    generation_level = _lvl("((forename_l = forename_r AND surname_l = surname_r) OR "
                            f"(forename_l = surname_r AND surname_l = forename_r)) AND {apart}",
                            "generation apart, same name")
    return _cc(
        output_column_name="dob",
        comparison_levels=[
            _lvl(f"{yl} IS NULL OR {yr} IS NULL", "null").configure(is_null_level=True),
            # optional (thresholds.dob_term_frequencies): a date many records share (1 January of a year: the
            # placeholder for "year known only") weighs less than a rare one
            (cll.ExactMatchLevel("dob", term_frequency_adjustments=True).configure(label_for_charts="exact")
             if t.get("dob_term_frequencies", False) else _lvl("dob_l = dob_r", "exact")),
            _lvl("dob_year_l = dob_year_r AND dob_day_l = dob_month_r AND dob_month_l = dob_day_r", "day-month swapped"),
            # one edit of YYYYMMDD leaves at least one of the three parts equal: test that first (cheap)
            _lvl("(dob_year_l = dob_year_r OR dob_month_l = dob_month_r OR dob_day_l = dob_day_r) AND "
                 "damerau_levenshtein(strftime(dob_l, '%Y%m%d'), strftime(dob_r, '%Y%m%d')) <= 1", "one character"),
            # optional (thresholds.generation_first): the father/son level below, tested before "two of three
            # parts" when the years differ by a generation (but not by whole centuries: '55 read as 1955 / 2055)
            *([generation_level] if t.get("generation_first", False) else []),
            _lvl("(CAST(dob_year_l = dob_year_r AS INT) + CAST(dob_month_l = dob_month_r AS INT)"
                 " + CAST(dob_day_l = dob_day_r AS INT)) = 2", "two of three parts"),
            _lvl(f"(dob_l IS NULL OR dob_r IS NULL) AND {yl} = {yr}", "year only"),
            # the father/son pattern: same full name, a generation apart
            *([] if t.get("generation_first", False) else [generation_level]),
            # optional (thresholds.namesake_dob_level): the same name (forename or its canonical form, compact
            # surname) with two full dates of birth that nothing above reconciles (no typo, swap or single wrong
            # part) -- two namesakes (brothers both recorded as MOHAMMED, a mother and daughter, strangers); the
            # name is no evidence of which of them a record is, so the date decides.  Bounded in the model file
            *([_lvl("dob_l IS NOT NULL AND dob_r IS NOT NULL AND surname_compact_l = surname_compact_r AND "
                    "(forename_l = forename_r OR forename_canonical_l = forename_canonical_r)",
                    "different, same name")] if t.get("namesake_dob_level", False) else []),
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
            # optional (thresholds.address_locality_omitted): the same house number and flat, one address written
            # inside the other word for word (an agency adds or drops the locality and town: '3 LIME WAY' /
            # '3 LIME WAY EASTFIELD NORTHTOWN'), the postcode missing on one side or mistyped within its sector
            *([_lvl(CONTAINED, "same address, locality omitted")] if t.get("address_locality_omitted", False) else []),
            _lvl("postcode_l = postcode_r", "postcode"),
            # optional (thresholds.postcode_max_edits > 0): a mistyped character (TQ13 8DF / TQ1W 8DF)
            *([_lvl(f"damerau_levenshtein(postcode_l, postcode_r) <= {int(t['postcode_max_edits'])}",
                    "postcode, one character")] if int(t.get("postcode_max_edits", 0)) > 0 else []),
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


def _identifier(column: str, pri: dict) -> cl.CustomComparison:
    """A reference number (``id_<name>``): exact, one typo (a digit mistyped or two swapped), else."""
    return _cc(column, [
        cll.NullLevel(column),
        cll.ExactMatchLevel(column).configure(label_for_charts="exact"),
        _lvl(f"length({column}_l) >= 4 AND damerau_levenshtein({column}_l, {column}_r) <= 1", "one character"),
        cll.ElseLevel().configure(label_for_charts="else")], pri)


def _attribute(column: str, t: dict, pri: dict) -> cl.CustomComparison:
    """An extra attribute (``attr_<name>``: birth place, occupation): exact, similar spelling, else."""
    return _cc(column, [
        cll.NullLevel(column),
        cll.ExactMatchLevel(column, term_frequency_adjustments=True).configure(label_for_charts="exact"),
        _lvl(f"jaro_winkler_similarity({column}_l, {column}_r) >= {t.get('attribute_jaro_winkler', 0.9)}", "similar"),
        # optional (thresholds.attribute_shared_word): one value names a part of the other or shares a word
        # with it (DEVON / WEST DEVON; BRISTOL / BRISTOL, CITY OF; FOOTBALL PLAYER / ASSOCIATION FOOTBALL PLAYER)
        *([_lvl(f"list_has_any({_WORDS.format(c=column, s='l')}, {_WORDS.format(c=column, s='r')})", "shared word")]
          if t.get("attribute_shared_word", False) else []),
        cll.ElseLevel().configure(label_for_charts="else")], pri)


# the words of an attribute value longer than three letters (OF, AND, THE and other short words left out)
_WORDS = "list_filter(string_split(regexp_replace({c}_{s}, '[^A-Z]+', ' ', 'g'), ' '), x -> length(x) > 3)"
# prior m of the generic comparisons (a model file's [m_prior] may name "id_nhs_number.exact" etc.)
_GENERIC_PRIOR = {"id": {"exact": 0.85, "one character": 0.05, "else": 0.10},
                  "attr": {"exact": 0.70, "similar": 0.05, "shared word": 0.05, "else": 0.25}}


def comparisons(mc: dict) -> list[cl.CustomComparison]:
    """The model's comparisons: forename, surname, dob, address, phone, email, sex, suffix, then one per
    identifier column (``id_*``) and extra attribute (``attr_*``) in ``mc["extra_columns"]``.  With
    ``mc["comparisons"]`` (the names kept by ``person_fields.fit_to_data``), only those."""
    t, pri = mc["thresholds"], mc.get("m_prior", {})
    out = _fixed_comparisons(t, pri)
    for column in mc.get("extra_columns", []):
        kind = column.split("_", 1)[0]
        generic = {f"{column}.{k}": v for k, v in _GENERIC_PRIOR[kind].items()}
        out.append(_identifier(column, {**generic, **pri}) if kind == "id"
                   else _attribute(column, t, {**generic, **pri}))
    keep = mc.get("comparisons")
    return out if keep is None else [c for c in out if c.create_output_column_name() in keep]


def _fixed_comparisons(t: dict, pri: dict) -> list[cl.CustomComparison]:
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
