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

from ecins_link.standardise.text import fold, load_toml

_PC_RE = re.compile(
    r"(?:^|[\s,])((?:GIR ?0AA)|(?:[A-PR-UWYZ](?:[0-9]{1,2}|[A-HK-Y][0-9](?:[0-9]|[ABEHMNPRV-Y])?|[0-9][A-HJKPS-UW])"
    r" ?[0-9][ABD-HJLNP-UW-Z]{2}))\s*,?\s*$")
_NUM = re.compile(r"^\d+[A-Z]?(?:-\d+[A-Z]?)?$")
_SLASH = re.compile(r"^(\d+[A-Z]?)/(\d+[A-Z]?)$")
_FLAT_TOKEN = re.compile(r"^F(\d+[A-Z]?|[A-Z])$")
_JUNK = re.compile(r"[^A-Z0-9,/\- ]+")
_RANGE = re.compile(r"(\d)\s*-\s*(\d)")


@dataclass
class Address:
    """Parsed parts of one address text (all upper-case ASCII, None when absent)."""

    norm: str | None = None
    flat: str | None = None
    number: str | None = None
    building: str | None = None
    street: str | None = None
    town: str | None = None
    postcode: str | None = None


@cache
def _vocab() -> tuple[dict[str, str], frozenset[str], dict[str, str]]:
    v = load_toml("address.toml")
    return v["street_types"], frozenset(v["street_words"]), v["flat_words"]


@cache
def _building_words() -> frozenset[str]:
    return frozenset(load_toml("address.toml").get("building_words", []))


def _street_at(part: list[str], street_words: frozenset[str], building_words: frozenset[str]) -> bool:
    """Whether a part reads as a street: a street-type word (not a building word such as COURT) after a word."""
    return any(tok in street_words and tok not in building_words for tok in part[1:])


def _postcode(text: str) -> tuple[str, str | None]:
    m = _PC_RE.search(text)
    if not m:
        return text, None
    pc = m.group(1).replace(" ", "")
    return text[: m.start(1)].rstrip(" ,"), f"{pc[:-3]} {pc[-3:]}"


def _tokens(part: str, abbrev: dict[str, str]) -> list[str]:
    toks = part.split()
    out: list[str] = []
    for k, t in enumerate(toks):
        prev = out[-1] if out else ""
        if t in abbrev and k > 0 and prev.isalpha():
            out.append(abbrev[t])
        else:
            out.append(t)
    return out


def normalise_flat(text: str | None) -> str | None:
    """A sub-building label in canonical form: ``Apt 2`` -> ``FLAT 2``; ``FB`` -> ``FLAT B``."""
    if not text:
        return None
    _abbrev, _words, flat_words = _vocab()
    toks = _JUNK.sub(" ", fold(text).replace(".", "")).replace(",", " ").split()
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


def parse_address(text: str | None) -> Address:
    """Parse one free-text address (see module docstring)."""
    if not text or not text.strip():
        return Address()
    abbrev, street_words, flat_words = _vocab()
    building_words = _building_words()
    t = fold(text).replace("&", " AND ").replace(".", "").replace("'", "")
    t = _RANGE.sub(r"\1-\2", _JUNK.sub(" ", t))
    t, postcode = _postcode(t)
    parts = [_tokens(p, abbrev) for p in t.split(",") if p.strip()]
    flat = number = None
    # flat labels: FLAT 2 / APT 2 / F2 / FB / 2/14; then two leading numbers "2A 14 HIGH STREET"
    for p in parts:
        for k, tok in enumerate(p):
            if flat is None and tok in flat_words and k + 1 < len(p):
                flat = f"{flat_words[tok]} {p[k + 1]}"
                del p[k: k + 2]
                break
            if flat is None and k == 0 and _FLAT_TOKEN.match(tok) and len(p) > 1 and tok not in street_words:
                flat = f"FLAT {_FLAT_TOKEN.match(tok).group(1)}"
                del p[k]
                break
            m = _SLASH.match(tok)
            if m and flat is None:
                flat, p[k] = f"FLAT {m.group(1)}", m.group(2)
                break
    parts = [p for p in parts if p]
    building_parts: list[str] = []
    street_toks: list[str] = []
    localities: list[str] = []
    town = None
    loc = next(((i, k) for i, p in enumerate(parts) for k, tok in enumerate(p) if _NUM.match(tok)), None)
    if loc and len(parts[loc[0]]) == 1 and loc[0] + 1 < len(parts) - 1 and flat is None:
        # a bare number as its own part: "21, 15 Station St" / "1, Mayfield House, Mill Rd" -> a flat label
        # when a numbered or building part follows; "25a, Station Rd" -> the house number of the next part
        i, nxt = loc[0], parts[loc[0] + 1]
        if any(_NUM.match(t) for t in nxt) or not _street_at(nxt, street_words, building_words):
            flat = f"FLAT {parts[i][0]}"
            parts = parts[:i] + parts[i + 1:]
            loc = next(((j, k) for j, p in enumerate(parts) for k, tok in enumerate(p) if _NUM.match(tok)), None)
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
        cands = [j for j, p in enumerate(parts[:-1] if len(parts) > 1 else parts)
                 if _street_at(p, street_words, building_words)]
        i = cands[0] if cands else next(
            (j for j, p in enumerate(parts) if any(tok in street_words for tok in p[1:])), None)
        if i is None:
            building_parts = [" ".join(parts[0])] if len(parts) > 1 else []
            after, rest = [], parts[1:] if len(parts) > 1 else parts
        else:
            building_parts = [" ".join(x) for x in parts[:i]]
            after, rest = parts[i], parts[i + 1:]
    ends = [j for j, tok in enumerate(after) if tok in street_words and j > 0]
    if ends:
        end = ends[-1] if rest else ends[0]
    elif rest:
        end = len(after) - 1
    else:
        end = len(after) - 2 if len(after) > 2 else len(after) - 1
    street_toks, tail = after[: end + 1], after[end + 1:]
    if rest:
        localities = ([" ".join(tail)] if tail else []) + [" ".join(x) for x in rest]
        town = " ".join(rest[-1])
    elif tail:
        localities = ([" ".join(tail[:-1])] if len(tail) > 1 else []) + [tail[-1]]
        town = tail[-1]
    building = " ".join(x for x in building_parts if x) or None
    street = " ".join(street_toks) or None
    pieces = [flat, building, number, street, *localities]
    norm = " ".join(x for x in pieces if x) or None
    return Address(norm=norm, flat=flat, number=number, building=building, street=street, town=town,
                   postcode=postcode)


def expand_street(text: str | None) -> str | None:
    """A street name with its type expanded (``HIGH ST`` -> ``HIGH STREET``)."""
    if not text:
        return None
    abbrev, _w, _f = _vocab()
    toks = _tokens(_JUNK.sub(" ", fold(text).replace(".", "").replace("'", "")).replace(",", " "), abbrev)
    return " ".join(toks) or None


def clean_part(text: str | None) -> str | None:
    """An address part folded and stripped of punctuation."""
    if not text:
        return None
    out = " ".join(_JUNK.sub(" ", fold(text).replace(".", "").replace("'", "")).replace(",", " ").split())
    return out or None
