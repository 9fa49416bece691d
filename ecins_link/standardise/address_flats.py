"""Flat descriptors and gazetteer classifications, from data (``data/address.toml``).

* :func:`rewrite_descriptors` / :func:`rewrite_descriptors_sql` -- "FIRST FLOOR FLAT, 9 MARKET PL",
  "ABOVE, 25 HIGH ST", "F2, 36 ELM TCE" -> "FLAT FLOOR1, 9 ...", "FLAT ABOVE, 25 ...", "FLAT 2, 36 ...": a flat
  named by its position becomes a flat label with a canonical id, the same for agency texts (after cleaning)
  and gazetteer SAO texts, so both sides meet on one flat id.  The Python and SQL versions give the same text
  (tests check).
* :func:`address_class_sql` -- a gazetteer classification (AddressBase code such as ``RD06`` / ``CR08``, or a
  word such as "Commercial") -> ``residential`` / ``commercial`` / ``other`` (NULL when not given).
"""

from __future__ import annotations

import re
from functools import cache

from ecins_link.standardise.text import load_toml

_END = r" *(,|$| +[0-9])"


@cache
def vocab() -> dict:
    """The address vocabulary (``data/address.toml``)."""
    return load_toml("address.toml")


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _word(w: str) -> str:
    """A regex for one word of a descriptor phrase: the word or one of its abbreviations (``[flat_descriptor_words]``)."""
    alts = [str(a).upper() for a in vocab().get("flat_descriptor_words", {}).get(w, [])]
    return "(?:" + "|".join(re.escape(x) for x in [w, *alts]) + ")" if alts else re.escape(w)


def _alts(phrases: list[str]) -> str:
    # the words of a phrase may be run together ("FIRSTFLOOR FLAT", "GROUND FLOORFLAT")
    return "|".join(" *".join(_word(w) for w in p.upper().split()) for p in sorted(phrases, key=len, reverse=True))


@cache
def _label_then_number() -> str:
    """'MAISONETTE 3, STANMOUTH POINT, 20 ...': a descriptor that is also a flat label (``label = true``), before
    a flat number and a house number later, labels that flat: read as 'FLAT 3'."""
    words = [p for d in vocab().get("flat_descriptors", []) if d.get("label") for p in d["phrases"] if " " not in p]
    if not words:
        return "$^"
    return r"(^|,| ) *(?:" + _alts(words) + r") +([0-9]{1,4}[A-Z]?)([ ,][^0-9]*[0-9])"


_FLATWORD = r"(?:(?:FLAT|FLT|APT|APARTMENT) +(?:AT +)?)?"


@cache
def descriptor_rules() -> list[tuple[str, str, bool]]:
    """(regex, canonical id, upper) per descriptor id and phrase kind, phrases longest first.

    A phrase of several words ("FIRST FLOOR FLAT") is read anywhere a word starts and before anything; a one-word
    phrase ("ABOVE", "BASEMENT") only at the start of a part and before a comma, the end or a number.  A flat
    word before the descriptor ("FLAT FIRST FLOOR FLAT", "FLAT AT FIRST FLOOR") is part of it.
    """
    out = []
    for d in vocab().get("flat_descriptors", []):
        one = [p for p in d["phrases"] if " " not in p.strip()]
        many = [p for p in d["phrases"] if " " in p.strip()]
        ident, up = str(d["id"]).upper(), bool(d.get("upper", False))
        if many:
            out.append((r"(^|,| ) *" + _FLATWORD + "(?:" + _alts(many) + r")( *,| *$| +)(?:AT +)?", ident, up))
        if one:
            out.append((r"(^|,) *" + _FLATWORD + "(?:" + _alts(one) + r")" + _END, ident, up))
    return out


@cache
def _floor_then_number() -> str:
    """'(FIRST FLOOR) FLAT 3 ... 22 ...': a descriptor before a numbered flat label says nothing more: dropped."""
    phrases = [p for d in vocab().get("flat_descriptors", []) for p in d["phrases"]
               if not p.upper().endswith("FLAT")]
    # only when a house number follows later ("... FLAT 3 BRADMOUTH POINT 22 ..."): else "GROUND FLOOR FLAT 1
    # THORNFIELD DRIVE" is the ground floor flat of number 1
    return r"(^|,| ) *(?:" + _alts(phrases) + r") +((?:FLAT|FLT|APT|APARTMENT|UNIT) +(?:[0-9]{1,4}[A-Z]?|[A-Z]))(?: +AT)?([ ,][^0-9]*[0-9])"


@cache
def _number_then_floor() -> str:
    """'2 SECOND FLOOR, EDDALE HOUSE, 29 ...' / 'FLAT 5 2ND FLOOR, ...': a flat number before a floor descriptor, a
    house number later: the flat is numbered, the floor says nothing more (read as 'FLAT 2, EDDALE HOUSE, 29 ...')."""
    phrases = [p for d in vocab().get("flat_descriptors", []) for p in d["phrases"]
               if " " in p.strip() and not p.upper().endswith("FLAT") and not p.upper().startswith("FLAT")]
    if not phrases:
        return "$^"
    return (r"(^|,) *(?:(?:FLAT|FLT|APT|APARTMENT) +)?([0-9]{1,4}[A-Z]?) +(?:" + _alts(phrases)
            + r")( *,[^0-9]*[0-9])")


@cache
def _lone_letter() -> str:
    """'C, THE LODGE, 22 EDWICS ROAD': one letter as the first part, a house number later: flat C
    (``[flat_glued] lone_letter_first``)."""
    return r"^ *([A-Z]) *(,[^0-9]*[0-9])" if vocab().get("flat_glued", {}).get("lone_letter_first") else "$^"


@cache
def _vague_then_flat() -> str:
    """'FLAT OVER, FLAT 1, PENDALE MANSIONS, 18 ...' / 'FLAT AT, FLAT 1, ...': a vague flat word (``vague = true``
    descriptors, or 'FLAT AT') followed by a flat label that names the flat: the second one (the first is a
    recorded use, "the flat over", not another flat).  Runs after the descriptor rewrites, on 'FLAT <id>' labels."""
    vague = [str(d["id"]).upper() for d in vocab().get("flat_descriptors", []) if d.get("vague")]
    ids = sorted({str(d["id"]).upper() for d in vocab().get("flat_descriptors", [])} - set(vague))
    if not vague:
        return "$^"
    return (r"(^|,) *FLAT (?:" + "|".join([*vague, "AT"]) + r") *,? *(FLAT (?:[0-9]{1,4}[A-Z]?|[A-Z]|"
            + "|".join(ids) + r")(?:,| |$))")


@cache
def upper_ids() -> list[str]:
    """Descriptor ids that name a flat above the ground floor (FLOOR1, TOP, ABOVE, ...)."""
    return list(dict.fromkeys(i for _rx, i, up in descriptor_rules() if up))


@cache
def _glued() -> str:
    return r"(^|,) *" + vocab().get("flat_glued", {}).get("pattern", "$^") + r" *(,|$| )"


@cache
def _glued_letter() -> str:
    return r"(^|,) *" + vocab().get("flat_glued", {}).get("letter_pattern", "$^") + r" *(,)"


@cache
def _compiled() -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(rx), rf"\g<1>FLAT {i}\g<2>") for rx, i, _up in descriptor_rules()]


@cache
def _spelling() -> tuple[list[str], list[str], int, list[str]]:
    """(words, context words, minimum length, words never corrected) of ``[flat_descriptor_spelling]``."""
    v = vocab()
    sp = v.get("flat_descriptor_spelling", {})
    known = sorted({str(w).upper() for k in ("street_words", "building_words", "premises_words")
                    for w in v.get(k, [])} | {str(k).upper() for k in v.get("street_types", {})})
    return ([str(w).upper() for w in sp.get("words", [])], [str(w).upper() for w in sp.get("context", [])],
            int(sp.get("min_length", 4)), known)


@cache
def _context_pre() -> str:
    """A cheap regex every text :func:`_context_re` matches matches too (a context word next to another word, or a
    short word before a number or letter at a part's start)."""
    ctx = _spelling()[1]
    if not ctx:
        return "$^"
    c = "|".join(re.escape(w) for w in ctx)
    return rf"(^|[ ,])({c})[ ,]+[A-Z]|[A-Z][ ,]+({c})([ ,]|$)|(^|,) *[A-Z]{{3,5}} +[0-9A-Z]"


def _one_edit_alts(word: str) -> list[str]:
    """Regex alternatives matching exactly the upper-case words one edit from ``word`` (never ``word`` itself)."""
    az = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = {word[:i] + word[i + 1:] for i in range(len(word))}  # a letter dropped
    out |= {word[:i] + "[A-Z]" + word[i:] for i in range(len(word) + 1)}  # a letter added
    out |= {word[:i] + "[" + az.replace(word[i], "") + "]" + word[i + 1:] for i in range(len(word))}  # changed
    out |= {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(len(word) - 1) if word[i] != word[i + 1]}
    return sorted(out - {word})


@cache
def _context_re() -> str:
    """A regex every text :func:`correct_descriptor_words` may change matches (a gate: most texts fail it): a word
    one edit from a spelling word next to a context word, or one edit from FLAT before a flat id at a part's start."""
    words, ctx, _min_len, _known = _spelling()
    if not words or not ctx:
        return "$^"
    near = "|".join(a for w in words for a in _one_edit_alts(w))
    c = "|".join(re.escape(w) for w in ctx)
    out = (rf"(^|[ ,])({near})[ ,]+({c})([ ,]|$)|(^|[ ,])({c})[ ,]+({near})([ ,]|$)")
    if "FLAT" in words:
        out += r"|(^|,) *(" + "|".join(_one_edit_alts("FLAT")) + r") +([0-9]{1,4}[A-Z]?|[A-Z])([ ,]|$)"
    return out


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` is one edit from ``b``: a letter added, dropped or changed, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


_FLAT_ID = re.compile(r"[0-9]{1,4}[A-Z]?|[A-Z]")


def correct_descriptor_words(clean: str) -> str:
    """Misspelt descriptor words read as written right (``[flat_descriptor_spelling]``): "FIRST FOOR FLAT, 9" ->
    "FIRST FLOOR FLAT, 9"; "FQAT 5, X HOUSE" -> "FLAT 5, X HOUSE".  :func:`correct_descriptor_words_sql` is its twin."""
    words, ctx, min_len, known = _spelling()
    if not words or not re.search(_context_re(), clean):
        return clean
    toks = clean.split(" ")
    cores = [t.replace(",", "") for t in toks]
    out = []
    for i, (tok, core) in enumerate(zip(toks, cores, strict=True)):
        hit = None
        if re.fullmatch(r",?[A-Z]+,?", tok) and len(core) >= min_len and core not in ctx and core not in known:
            hit = next((w for w in words if _one_edit(core, w)), None)
        if hit is not None:
            near = (i > 0 and cores[i - 1] in ctx) or (i + 1 < len(toks) and cores[i + 1] in ctx)
            lead = (hit == "FLAT" and i + 1 < len(toks) and _FLAT_ID.fullmatch(cores[i + 1]) is not None
                    and (i == 0 or toks[i - 1].endswith(",") or tok.startswith(",")))
            if near or lead:
                tok = re.sub(r"[A-Z]+", hit, tok, count=1)
        out.append(tok)
    return " ".join(out)


def correct_descriptor_words_sql(x: str) -> str:
    """SQL twin of :func:`correct_descriptor_words` over a cleaned text expression (only texts the gate
    :func:`_context_re` lets through are split into words: a CASE, no subquery, so the rest cost one regex)."""
    words, ctx, min_len, known = _spelling()
    if not words:
        return x
    cl = "[" + ", ".join(_q(w) for w in ctx) + "]"
    kn = "[" + ", ".join(_q(w) for w in known) + "]" if known else "[]::VARCHAR[]"
    t = f"string_split({x}, ' ')"
    # each word with the words before and after it (NULL at the ends): the lambda reads only its argument, so the
    # expression also binds inside a correlated subquery (normalise_flat_sql)
    zipped = f"list_zip({t}, list_concat([NULL], {t}[:-2]), list_concat({t}[2:], [NULL]))"

    def c(k: int) -> str:
        return f"replace(z[{k}], ',', '')"

    # the first spelling word one edit away (a CASE, not a nested lambda: it binds in a correlated subquery too)
    hit = "CASE " + " ".join(f"WHEN damerau_levenshtein({c(1)}, {_q(w)}) = 1 THEN {_q(w)}" for w in words) + " END"
    near = (f"((z[2] IS NOT NULL AND list_contains({cl}, {c(2)})) "
            f"OR (z[3] IS NOT NULL AND list_contains({cl}, {c(3)})))")
    lead = (f"({hit} = 'FLAT' AND z[3] IS NOT NULL AND regexp_full_match({c(3)}, {_q(_FLAT_ID.pattern)}) "
            f"AND (z[2] IS NULL OR ends_with(z[2], ',') OR starts_with(z[1], ',')))")
    fix = (f"CASE WHEN regexp_full_match(z[1], ',?[A-Z]+,?') AND length({c(1)}) >= {min_len} "
           f"AND NOT list_contains({cl}, {c(1)}) AND NOT list_contains({kn}, {c(1)}) AND {hit} IS NOT NULL "
           f"AND ({near} OR {lead}) THEN regexp_replace(z[1], '[A-Z]+', {hit}) ELSE z[1] END")
    body = f"array_to_string(list_transform({zipped}, z -> {fix}), ' ')"
    # a cheap test first (a context word next to a word), the exact gate only on the texts it lets through
    return (f"CASE WHEN regexp_matches({x}, {_q(_context_pre())}) AND regexp_matches({x}, {_q(_context_re())}) "
            f"THEN {body} ELSE {x} END")


def rewrite_descriptors(clean: str) -> str:
    """An upper-case text (punctuation dropped, parts separated by ',') with flat descriptors as ``FLAT <id>``
    (misspelt descriptor words first read as written right: :func:`correct_descriptor_words`)."""
    if not clean:
        return clean
    clean = correct_descriptor_words(clean)
    clean = re.sub(_lone_letter(), r"FLAT \g<1>\g<2>", clean, count=1)
    clean = re.sub(_number_then_floor(), r"\g<1>FLAT \g<2>\g<3>", clean, count=1)
    clean = re.sub(_label_then_number(), r"\g<1>FLAT \g<2>\g<3>", clean, count=1)
    clean = re.sub(_floor_then_number(), r"\g<1>\g<2>\g<3>", clean, count=1)
    for rx, rep in _compiled():
        clean = rx.sub(rep, clean, count=1)
    clean = re.sub(_glued(), r"\g<1>FLAT \g<2>\g<3>", clean, count=1)
    clean = re.sub(_glued_letter(), r"\g<1>FLAT \g<2>\g<3>", clean, count=1)
    return re.sub(_vague_then_flat(), r"\g<1>\g<2>", clean, count=1)


@cache
def _may_hold_descriptor() -> str:
    """One regex every text that some rewrite could change matches (each rewrite needs one of the vocabulary's
    phrases, or a glued flat label at the start of a part): most addresses fail it and skip the chain."""
    phrases = [p for d in vocab().get("flat_descriptors", []) for p in d["phrases"]]
    glued = vocab().get("flat_glued", {})
    parts = ([_alts(phrases)] if phrases else []) + [_lone_letter(), _vague_then_flat()] + [
        r"(?:^|,) *" + glued[k] for k in ("pattern", "letter_pattern") if glued.get(k)]
    return "|".join(f"(?:{p})" for p in parts) or "$^"


def rewrite_descriptors_sql(x: str) -> str:
    """SQL twin of :func:`rewrite_descriptors` over a cleaned text expression (the chain of rewrites runs
    only on texts that may hold a descriptor; the others are returned as they are, as the chain would)."""
    y = f"regexp_replace({correct_descriptor_words_sql(x)}, {_q(_lone_letter())}, {_q('FLAT ' + chr(92) + '1' + chr(92) + '2')})"
    y = f"regexp_replace({y}, {_q(_number_then_floor())}, {_q(chr(92) + '1FLAT ' + chr(92) + '2' + chr(92) + '3')})"
    y = f"regexp_replace({y}, {_q(_label_then_number())}, {_q(chr(92) + '1FLAT ' + chr(92) + '2' + chr(92) + '3')})"
    y = f"regexp_replace({y}, {_q(_floor_then_number())}, {_q(chr(92) + '1' + chr(92) + '2' + chr(92) + '3')})"
    for rx, i, _up in descriptor_rules():
        y = f"regexp_replace({y}, {_q(rx)}, {_q(chr(92) + '1FLAT ' + i + chr(92) + '2')})"
    rep = _q(chr(92) + '1FLAT ' + chr(92) + '2' + chr(92) + '3')
    chain = f"regexp_replace(regexp_replace({y}, {_q(_glued())}, {rep}), {_q(_glued_letter())}, {rep})"
    chain = f"regexp_replace({chain}, {_q(_vague_then_flat())}, {_q(chr(92) + '1' + chr(92) + '2')})"
    ctx = f"(regexp_matches({x}, {_q(_context_pre())}) AND regexp_matches({x}, {_q(_context_re())}))"
    return f"CASE WHEN regexp_matches({x}, {_q(_may_hold_descriptor())}) OR {ctx} THEN {chain} ELSE {x} END"


_CODE = r"^[A-Z]{1,2}([0-9]{2}[A-Z]{0,2})?$"


def address_class_sql(x: str) -> str:
    """SQL: ``residential`` / ``commercial`` / ``other`` for a classification expression (NULL stays NULL)."""
    c = vocab().get("classification", {})
    v = f"upper(trim(CAST({x} AS VARCHAR)))"
    first = f"split_part(regexp_replace({v}, '[^A-Z0-9 ]', ' ', 'g'), ' ', 1)"
    words = [(w, "residential") for w in c.get("residential_words", [])] + \
            [(w, "commercial") for w in c.get("commercial_words", [])]
    prefixes = [(p, "other") for p in c.get("other_prefixes", [])] + \
               [(p, "residential") for p in c.get("residential_prefixes", [])] + \
               [(p, "commercial") for p in c.get("commercial_prefixes", [])]
    whens = [f"WHEN {first} = {_q(w.upper())} THEN {_q(k)}" for w, k in words]
    # prefixes: longest first within the order given (other before residential before commercial)
    whens += [f"WHEN regexp_full_match({v}, {_q(_CODE)}) AND starts_with({v}, {_q(p.upper())}) THEN {_q(k)}"
              for p, k in sorted(prefixes, key=lambda pk: -len(pk[0]))]
    return f"CASE WHEN nullif({v}, '') IS NULL THEN NULL {' '.join(whens)} ELSE 'other' END"
