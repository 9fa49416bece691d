"""First step of address parsing: raw text -> cleaned comma-separated parts, postcode, approximate flag.

The same cleaning exists twice, kept equal by tests: :func:`clean_text` for one text (Python) and
:func:`clean_sql` for a column of distinct texts (DuckDB SQL, set-based).  Cleaning = upper-case ASCII
(accents folded), ``&`` -> AND, dots and apostrophes dropped, other punctuation -> space, ``1 - 3`` -> ``1-3``,
a trailing postcode cut off (returned as ``AB1 2CD``), leading position words ("O/S", "REAR OF",
"JUNCTION NEAR", "IN") cut off and reported as ``approximate``, parts trimmed, empty parts dropped.
"""

from __future__ import annotations

import re
from functools import cache

from ecins_link.standardise.address_flats import rewrite_descriptors, rewrite_descriptors_sql
from ecins_link.standardise.text import fold, load_toml

PC_PATTERN = (r"(?:GIR ?0AA)|(?:[A-PR-UWYZ](?:[0-9]{1,2}|[A-HK-Y][0-9](?:[0-9]|[ABEHMNPRV-Y])?|[0-9][A-HJKPS-UW])"
              r" ?[0-9][ABD-HJLNP-UW-Z]{2})")
_PC_RE = re.compile(r"(?:^|[\s,])(" + PC_PATTERN + r")\s*,?\s*$")
_JUNK = r"[^A-Z0-9,/\- ]+"
_JUNK_RE = re.compile(_JUNK)
_RANGE_RE = re.compile(r"(\d)\s*-\s*(\d)")


@cache
def vocab() -> dict:
    """The address vocabulary (``data/address.toml``)."""
    return load_toml("address.toml")


@cache
def _position_alts() -> str:
    words = sorted((re.escape(p.upper()) for p in vocab().get("position_prefixes", [])), key=len, reverse=True)
    return "|".join(words) or "$^"


def _street_alts() -> str:
    v = vocab()
    return "|".join(sorted({*v["street_words"], *v["street_types"]}, key=len, reverse=True))


@cache
def _position_re() -> re.Pattern[str]:
    return re.compile(r"^[\s,]*(?:" + _position_alts() + r")(?:[\s,]+|$)")


@cache
def _street_named_re() -> re.Pattern[str]:
    """A position word that is the name of a street ("JUNCTION ROAD", "REAR LANE"): not stripped."""
    return re.compile(r"^[\s,]*(?:" + _position_alts() + r") (?:" + _street_alts() + r")(?:[\s,]|$)")


def fold_fast(text: str) -> str:
    """``fold`` with a fast path for plain ASCII text (upper-case only)."""
    return text.upper() if text.isascii() else fold(text)


def clean_text(text: str | None) -> tuple[str, str | None, bool]:
    """One raw address text -> (cleaned parts joined by ',', postcode or None, approximate)."""
    if not text:
        return "", None, False
    t = fold_fast(text).replace("&", " AND ").replace(".", "").replace("'", "")
    t = _RANGE_RE.sub(r"\1-\2", _JUNK_RE.sub(" ", t))
    postcode = None
    m = _PC_RE.search(t)
    if m:
        pc = m.group(1).replace(" ", "")
        postcode = f"{pc[:-3]} {pc[-3:]}"
        t = t[: m.start(1)].rstrip(" ,")
    t = rewrite_descriptors(t)  # "REAR FLAT, 7 ..." is a flat, not a position: before position words
    approx = False
    for _ in range(2):  # "NEAR, O/S 12 ..." -- at most two stacked phrases
        t2 = t if _street_named_re().match(t) else _position_re().sub("", t, count=1)
        if t2 == t:
            break
        approx, t = True, t2
    if approx:  # "ADJ GROUND FLOOR FLAT 32 ...": the descriptor after the position words
        t = rewrite_descriptors(t)
    parts = (" ".join(p.split()) for p in t.split(","))
    return ",".join(p for p in parts if p), postcode, approx


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def clean_select(source_sql: str) -> str:
    """SQL: ``raw, clean, postcode, approximate`` for each row of ``source_sql`` (columns ``raw``, ``folded``).

    ``folded`` is the upper-case ASCII form of ``raw`` (``upper(raw)`` for ASCII text, see :func:`fold_fast`).
    Same result as :func:`clean_text`, set-based.
    """
    pc_rx = _q(r"(^|[\s,])(" + PC_PATTERN + r")\s*,?\s*$")
    pos_rx = _q(r"^[\s,]*(?:" + _position_alts() + r")(?:[\s,]+|$)")
    named_rx = _q(_street_named_re().pattern)
    strip = f"CASE WHEN regexp_matches({{x}}, {named_rx}) THEN {{x}} ELSE regexp_replace({{x}}, {pos_rx}, '') END"
    t0 = (r"regexp_replace(regexp_replace(replace(replace(replace(folded, '&', ' AND '), '.', ''), '''', ''), "
          + _q(_JUNK) + r", ' ', 'g'), '(\d)\s*-\s*(\d)', '\1-\2', 'g')")
    parts = ("array_to_string(list_filter(list_transform(string_split(t2, ','), "
             "x -> trim(regexp_replace(x, ' +', ' ', 'g'))), x -> x <> ''), ',')")
    return f"""
        SELECT raw, {parts} AS clean,
               CASE WHEN pc0 <> '' THEN left(replace(pc0, ' ', ''), -3) || ' ' || right(replace(pc0, ' ', ''), 3)
               END AS postcode,
               t2 <> t1 AS approximate
        FROM (SELECT *, CASE WHEN t2s <> t1 THEN {rewrite_descriptors_sql("t2s")} ELSE t2s END AS t2
        FROM (SELECT *, {strip.format(x=strip.format(x="t1"))} AS t2s
        FROM (SELECT *, {rewrite_descriptors_sql(f"CASE WHEN pc0 = '' THEN t0 ELSE rtrim(regexp_replace(t0, {pc_rx}, '{chr(92)}1'), ' ,') END")} AS t1
        FROM (SELECT *, CASE WHEN regexp_full_match(right(rtrim(t0, ' ,'), 3), '[0-9][A-Z][A-Z]')
                             THEN regexp_extract(t0, {pc_rx}, 2) ELSE '' END AS pc0
        FROM (SELECT raw, {t0} AS t0 FROM ({source_sql}))))))"""
