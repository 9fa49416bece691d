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


@cache
def descriptor_rules() -> list[tuple[str, str, bool]]:
    """(regex, canonical id, upper) per descriptor id, phrases longest first."""
    out = []
    for d in vocab().get("flat_descriptors", []):
        alts = "|".join(re.escape(p.upper()).replace("\\ ", " +")
                        for p in sorted(d["phrases"], key=len, reverse=True))
        # a flat word before the descriptor ("FLAT FIRST FLOOR FLAT", "FLAT AT FIRST FLOOR") is part of it
        out.append((r"(^|,) *(?:(?:FLAT|FLT|APT|APARTMENT) +(?:AT +)?)?(?:" + alts + r")" + _END, str(d["id"]).upper(),
                    bool(d.get("upper", False))))
    return out


@cache
def upper_ids() -> list[str]:
    """Descriptor ids that name a flat above the ground floor (FLOOR1, TOP, ABOVE, ...)."""
    return [i for _rx, i, up in descriptor_rules() if up]


@cache
def _glued() -> str:
    return r"(^|,) *" + vocab().get("flat_glued", {}).get("pattern", "$^") + r" *(,|$| )"


@cache
def _glued_letter() -> str:
    return r"(^|,) *" + vocab().get("flat_glued", {}).get("letter_pattern", "$^") + r" *(,)"


@cache
def _compiled() -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(rx), rf"\g<1>FLAT {i}\g<2>") for rx, i, _up in descriptor_rules()]


def rewrite_descriptors(clean: str) -> str:
    """An upper-case text (punctuation dropped, parts separated by ',') with flat descriptors as ``FLAT <id>``."""
    if not clean:
        return clean
    for rx, rep in _compiled():
        clean = rx.sub(rep, clean, count=1)
    clean = re.sub(_glued(), r"\g<1>FLAT \g<2>\g<3>", clean, count=1)
    return re.sub(_glued_letter(), r"\g<1>FLAT \g<2>\g<3>", clean, count=1)


def rewrite_descriptors_sql(x: str) -> str:
    """SQL twin of :func:`rewrite_descriptors` over a cleaned text expression."""
    for rx, i, _up in descriptor_rules():
        x = f"regexp_replace({x}, {_q(rx)}, {_q(chr(92) + '1FLAT ' + i + chr(92) + '2')})"
    rep = _q(chr(92) + '1FLAT ' + chr(92) + '2' + chr(92) + '3')
    return f"regexp_replace(regexp_replace({x}, {_q(_glued())}, {rep}), {_q(_glued_letter())}, {rep})"


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
