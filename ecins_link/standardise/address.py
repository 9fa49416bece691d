"""Address text -> one normalised text and parts (flat, number, building, street, town, postcode).

Applied over DISTINCT address texts (agency records and gazetteer rows alike, so normalised keys join).
Vocabulary (street-type abbreviations, flat words) lives in ``data/address.toml``.

Normalised text = flat, building, number, street, localities, town joined by single spaces; upper-case
ASCII, punctuation dropped, street types expanded, flat labels as ``FLAT 2`` (``APT 2``, ``F2``, ``FB``,
``2/14`` all read as flats).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from ecins_link.standardise.address_clean import clean_text, fold_fast, vocab

_NUM = re.compile(r"^\d+[A-Z]?(?:-\d+[A-Z]?)?$")
_SLASH = re.compile(r"^(\d+[A-Z]?)/(\d+[A-Z]?)$")
_FLAT_TOKEN = re.compile(r"^F(\d+[A-Z]?|[A-Z])$")
_LETTER = re.compile(r"^[A-Z]$")
_JUNK = re.compile(r"[^A-Z0-9,/\- ]+")


@dataclass
class Address:
    """Parsed parts of one address text (all upper-case ASCII, None when absent).

    ``approximate`` is True when the text placed the event relative to the address ("O/S", "REAR OF",
    "JUNCTION NEAR", "IN" ...); those words are not part of any returned part.
    """

    norm: str | None = None
    flat: str | None = None
    number: str | None = None
    building: str | None = None
    street: str | None = None
    town: str | None = None
    postcode: str | None = None
    approximate: bool = False


@dataclass(frozen=True)
class _Vocab:
    abbrev: dict[str, str]
    words: dict[str, str]
    street: frozenset[str]
    building: frozenset[str]
    premises: frozenset[str]
    flat: dict[str, str]


@cache
def _v() -> _Vocab:
    v = vocab()
    return _Vocab(v["street_types"], v.get("words", {}), frozenset(v["street_words"]),
                  frozenset(v.get("building_words", [])),
                  frozenset(v.get("premises_words", [])) | frozenset(v.get("building_words", [])), v["flat_words"])


def _street_at(part: list[str], v: _Vocab) -> bool:
    """Whether a part reads as a street: a street-type word (not a building word such as COURT) after a word."""
    return any(tok in v.street and tok not in v.building for tok in part[1:])


def _tokens(part: str, v: _Vocab) -> list[str]:
    """Tokens of one part with street types expanded when they follow a word ("HIGH ST" -> HIGH STREET)."""
    out: list[str] = []
    for t in part.split():
        if t in v.words:
            out.append(v.words[t])
        else:
            out.append(v.abbrev[t] if t in v.abbrev and out and out[-1].isalpha() else t)
    return out


def normalise_flat(text: str | None) -> str | None:
    """A sub-building label in canonical form: ``Apt 2`` -> ``FLAT 2``; ``FB`` -> ``FLAT B``."""
    if not text:
        return None
    flat_words = _v().flat
    toks = _JUNK.sub(" ", fold_fast(text).replace(".", "")).replace(",", " ").split()
    if not toks:
        return None
    if len(toks) == 1:
        m = _FLAT_TOKEN.match(toks[0])
        if m:
            return f"FLAT {m.group(1)}"
        return f"FLAT {toks[0]}" if _NUM.match(toks[0]) or len(toks[0]) == 1 else toks[0]
    if toks[0] in flat_words:
        return " ".join([flat_words[toks[0]], *toks[1:]])
    return " ".join(toks)


def _first_number(parts: list[list[str]]) -> tuple[int, int] | None:
    return next(((i, k) for i, p in enumerate(parts) for k, tok in enumerate(p) if _NUM.match(tok)), None)


def _take_flat(parts: list[list[str]], v: _Vocab) -> str | None:
    """Remove and return a flat label: FLAT 2 / APT 2 / F2 / FB / 2/14 / a lone leading letter ("B, 1 X Rd")."""
    if len(parts) > 1 and len(parts[0]) == 1 and _LETTER.match(parts[0][0]) and _first_number(parts[1:2]):
        return f"FLAT {parts.pop(0)[0]}"
    for p in parts:
        for k, tok in enumerate(p):
            if tok in v.flat and k + 1 < len(p):
                flat = f"{v.flat[tok]} {p[k + 1]}"
                del p[k: k + 2]
                return flat
            if k == 0 and len(p) > 1 and tok not in v.street and (m := _FLAT_TOKEN.match(tok)):
                del p[k]
                return f"FLAT {m.group(1)}"
            if m := _SLASH.match(tok):
                p[k] = m.group(2)
                return f"FLAT {m.group(1)}"
    return None


def _no_number_split(parts: list[list[str]], v: _Vocab) -> tuple[list[str], list[str], list[list[str]]]:
    """(building parts, street part, parts after) for an address without a house number."""
    plain = [j for j, p in enumerate(parts) if _street_at(p, v)]
    inner = [j for j in plain if j < len(parts) - 1 or len(parts) == 1]
    if inner:
        i: int | None = inner[0]
    elif plain:  # only the last part has a plain street type: "Apt 8, Sovereign Court, Ivy Ave"
        i = plain[0]
    else:
        i = next((j for j, p in enumerate(parts) if any(tok in v.street for tok in p[1:])), None)
    if i is None:
        return ([" ".join(parts[0])] if len(parts) > 1 else []), [], (parts[1:] if len(parts) > 1 else parts)
    building = [" ".join(x) for x in parts[:i]]
    after = parts[i]
    if not building:  # "THE LODGE OXFORD CLOSE ...": a premises word before the street name ends the building
        st = next((j for j, tok in enumerate(after) if tok in v.street and tok not in v.building and j > 0), None)
        cut = next((j for j, tok in enumerate(after[: (st or 0) - 1]) if tok in v.premises), None)
        if st is not None and cut is not None:
            building, after = [" ".join(after[: cut + 1])], after[cut + 1:]
    return building, after, parts[i + 1:]


def parse_clean(clean: str, postcode: str | None = None, approximate: bool = False) -> Address:
    """Parse an address text already cleaned by :func:`~ecins_link.standardise.address_clean.clean_text`."""
    if not clean:
        return Address(postcode=postcode, approximate=approximate)
    v = _v()
    parts = [_tokens(p, v) for p in clean.split(",")]
    flat = _take_flat(parts, v)
    number = None
    parts = [p for p in parts if p]
    loc = _first_number(parts)
    if loc and len(parts[loc[0]]) == 1 and loc[0] + 1 < len(parts) and flat is None:
        # a bare number as its own part: a flat when a numbered or building part follows ("21, 15 Station St",
        # "23, Copperfield House, Mill Rd"); the house number when a street follows ("53b, Wellington Rd")
        i, nxt = loc[0], parts[loc[0] + 1]
        last = i + 1 == len(parts) - 1
        if any(_NUM.match(t) for t in nxt) or not (_street_at(nxt, v) or (last and not set(nxt) & v.premises)):
            flat = f"FLAT {parts[i][0]}"
            parts = parts[:i] + parts[i + 1:]
            loc = _first_number(parts)
        else:
            number = parts[i][0]
            parts = parts[:i] + parts[i + 1:]
            loc = None
    if loc:
        i, k = loc
        p, k0 = parts[i], k
        if k + 1 < len(p) and _NUM.match(p[k + 1]) and flat is None:
            flat, k = f"FLAT {p[k]}", k + 1
        number = p[k]
        building_parts = [" ".join(x) for x in parts[:i]] + ([" ".join(p[:k0])] if k0 else [])
        after, rest = p[k + 1:], parts[i + 1:]
    else:
        building_parts, after, rest = _no_number_split(parts, v)
    ends = [j for j, tok in enumerate(after) if tok in v.street and j > 0]
    if ends:
        end = ends[-1] if rest else ends[0]
    elif rest:
        end = len(after) - 1
    else:
        end = len(after) - 2 if len(after) > 2 else len(after) - 1
    street_toks, tail = after[: end + 1], after[end + 1:]
    localities: list[str] = []
    town = None
    if rest:
        localities = ([" ".join(tail)] if tail else []) + [" ".join(x) for x in rest]
        town = " ".join(rest[-1])
    elif tail:
        localities = ([" ".join(tail[:-1])] if len(tail) > 1 else []) + [tail[-1]]
        town = tail[-1]
    building = " ".join(x for x in building_parts if x) or None
    street = " ".join(street_toks) or None
    norm = " ".join(x for x in (flat, building, number, street, *localities) if x) or None
    return Address(norm=norm, flat=flat, number=number, building=building, street=street, town=town,
                   postcode=postcode, approximate=approximate)


def parse_address(text: str | None) -> Address:
    """Parse one free-text address (see module docstring)."""
    if not text or not text.strip():
        return Address()
    return parse_clean(*clean_text(text))


def expand_street(text: str | None) -> str | None:
    """A street name with its type expanded (``HIGH ST`` -> ``HIGH STREET``)."""
    if not text:
        return None
    toks = _tokens(_JUNK.sub(" ", fold_fast(text).replace(".", "").replace("'", "")).replace(",", " "), _v())
    return " ".join(toks) or None


def clean_part(text: str | None) -> str | None:
    """An address part folded and stripped of punctuation."""
    if not text:
        return None
    out = " ".join(_JUNK.sub(" ", fold_fast(text).replace(".", "").replace("'", "")).replace(",", " ").split())
    return out or None
