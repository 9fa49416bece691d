"""Address part assignment by *shape*: which tokens of a cleaned text are flat, number, building, street, town.

Every decision of the parser depends only on each token's class (a number, a flat word, a street type, a
building word ... see ``_CLASS``), never on the words themselves.  So a cleaned text's *signature* (the class
bit masks of its tokens, parts separated by ``,``) determines a *template*: for each output field the list of
pieces (token ``t<i>``, flat word of a token ``w<i>``, a token without its leading F ``a<i>``, the two sides
of ``2/14`` ``s<i>`` / ``r<i>``, or a literal ``L:FLAT``), indices 1-based over the text's tokens with the
commas counted.  A town has hundreds of thousands of distinct addresses but only ~1-2 thousand signatures:
templates are made once per signature in Python and applied to all texts in SQL
(:mod:`ecins_link.standardise.address_sql`), or to one text in Python (:func:`apply_template`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

from ecins_link.standardise.address_clean import vocab

NUM_RX = r"\d+[A-Z]?(?:-\d+[A-Z]?)?"
SLASH_RX = r"(\d+[A-Z]?)/(\d+[A-Z]?)"
FLAT_TOKEN_RX = r"F(\d+[A-Z]?|[A-Z])"
LETTER_RX = r"[A-Z]"
NUM, SLASH, FTOK, LETTER, FLATW, STREET, BUILD, PREM = 1, 2, 4, 8, 16, 32, 64, 128
_RX = [(NUM, re.compile(NUM_RX)), (SLASH, re.compile(SLASH_RX)), (FTOK, re.compile(FLAT_TOKEN_RX)),
       (LETTER, re.compile(LETTER_RX))]
FIELDS = ("norm", "flat", "number", "building", "street", "town")


@dataclass(frozen=True)
class Vocab:
    """Word lists the parser uses (from ``data/address.toml``)."""

    abbrev: dict[str, str]
    words: dict[str, str]
    street: frozenset[str]
    building: frozenset[str]
    premises: frozenset[str]
    flat: dict[str, str]


@cache
def vocab_sets() -> Vocab:
    """The parser's vocabulary (cached)."""
    v = vocab()
    return Vocab(v["street_types"], v.get("words", {}), frozenset(v["street_words"]),
                 frozenset(v.get("building_words", [])),
                 frozenset(v.get("premises_words", [])) | frozenset(v.get("building_words", [])), v["flat_words"])


def expand_tokens(part: str, v: Vocab) -> list[str]:
    """Tokens of one part with street types expanded when they follow a word ("HIGH ST" -> HIGH STREET)."""
    out: list[str] = []
    for t in part.split():
        if t in v.words:
            out.append(v.words[t])
        else:
            out.append(v.abbrev[t] if t in v.abbrev and out and out[-1].isalpha() else t)
    return out


def vocab_masks() -> dict[str, int]:
    """Class bits of the vocabulary words (regex bits are added for other tokens)."""
    v = vocab_sets()
    out: dict[str, int] = {}
    for bit, words in ((FLATW, v.flat), (STREET, v.street), (BUILD, v.building), (PREM, v.premises)):
        for w in words:
            out[w] = out.get(w, 0) | bit
    return out


@lru_cache(maxsize=200_000)
def token_mask(tok: str) -> int:
    """Class bits of one token."""
    m = _vocab_masks().get(tok, 0)
    for bit, rx in _RX:
        if rx.fullmatch(tok):
            m |= bit
    return m


@cache
def _vocab_masks() -> dict[str, int]:
    return vocab_masks()


def signature(tokens: list[str]) -> str:
    """Signature of a flat token list (``,`` tokens separate parts): two hex digits per token."""
    return "".join("," if t == "," else f"{token_mask(t):02x}" for t in tokens)


_Tok = tuple[int, tuple[str, ...]]  # (class bits, pieces)


def _is(t: _Tok, bit: int) -> bool:
    return bool(t[0] & bit)


def _street_at(part: list[_Tok]) -> bool:
    return any(_is(t, STREET) and not _is(t, BUILD) for t in part[1:])


def _first_number(parts: list[list[_Tok]]) -> tuple[int, int] | None:
    return next(((i, k) for i, p in enumerate(parts) for k, t in enumerate(p) if _is(t, NUM)), None)


def _pieces(toks: list[_Tok]) -> tuple[str, ...]:
    return tuple(x for t in toks for x in t[1])


def _take_flat(parts: list[list[_Tok]]) -> tuple[str, ...] | None:
    """Remove and return a flat label: FLAT 2 / APT 2 / F2 / FB / 2/14 / a lone leading letter ("B, 1 X Rd")."""
    if len(parts) > 1 and len(parts[0]) == 1 and _is(parts[0][0], LETTER) and _first_number(parts[1:2]):
        return ("L:FLAT", *parts.pop(0)[0][1])
    for p in parts:
        for k, t in enumerate(p):
            if _is(t, FLATW) and k + 1 < len(p):
                flat = ("w" + t[1][0][1:], *p[k + 1][1])
                del p[k: k + 2]
                return flat
            if k == 0 and len(p) > 1 and _is(t, FTOK) and not _is(t, STREET):
                del p[k]
                return ("L:FLAT", "a" + t[1][0][1:])
            if _is(t, SLASH):
                p[k] = (NUM, ("r" + t[1][0][1:],))
                return ("L:FLAT", "s" + t[1][0][1:])
    return None


def _no_number_split(parts: list[list[_Tok]]) -> tuple[list[list[_Tok]], list[_Tok], list[list[_Tok]]]:
    """(building parts, street part, parts after) for an address without a house number."""
    plain = [j for j, p in enumerate(parts) if _street_at(p)]
    inner = [j for j in plain if j < len(parts) - 1 or len(parts) == 1]
    if inner:
        i: int | None = inner[0]
    elif plain:  # only the last part has a plain street type: "Apt 8, Sovereign Court, Ivy Ave"
        i = plain[0]
    else:
        i = next((j for j, p in enumerate(parts) if any(_is(t, STREET) for t in p[1:])), None)
    if i is None:
        return (parts[:1] if len(parts) > 1 else []), [], (parts[1:] if len(parts) > 1 else parts)
    building = parts[:i]
    after = parts[i]
    if not building:  # "THE LODGE OXFORD CLOSE ...": a premises word before the street name ends the building
        st = next((j for j, t in enumerate(after) if _is(t, STREET) and not _is(t, BUILD) and j > 0), None)
        cut = next((j for j, t in enumerate(after[: (st or 0) - 1]) if _is(t, PREM)), None)
        if st is not None and cut is not None:
            building, after = [after[: cut + 1]], after[cut + 1:]
    return building, after, parts[i + 1:]


@cache
def template(sig: str) -> tuple[tuple[str, ...], ...]:
    """Pieces of (norm, flat, number, building, street, town) for a signature (see module docstring)."""
    parts: list[list[_Tok]] = [[]]
    idx = 0
    for chunk in sig.split(","):
        if idx:
            idx += 1  # the comma token
            parts.append([])
        for j in range(0, len(chunk), 2):
            idx += 1
            parts[-1].append((int(chunk[j: j + 2], 16), (f"t{idx}",)))
    if not any(parts):
        return ((),) * len(FIELDS)
    flat = _take_flat(parts)
    number: tuple[str, ...] = ()
    parts = [p for p in parts if p]
    loc = _first_number(parts)
    if loc and len(parts[loc[0]]) == 1 and loc[0] + 1 < len(parts) and flat is None:
        # a bare number as its own part: a flat when a numbered or building part follows ("21, 15 Station St",
        # "23, Copperfield House, Mill Rd"); the house number when a street follows ("53b, Wellington Rd")
        i, nxt = loc[0], parts[loc[0] + 1]
        last = i + 1 == len(parts) - 1
        premises = any(_is(t, PREM) for t in nxt)
        if any(_is(t, NUM) for t in nxt) or not (_street_at(nxt) or (last and not premises)):
            flat = ("L:FLAT", *parts[i][0][1])
            parts = parts[:i] + parts[i + 1:]
            loc = _first_number(parts)
        else:
            number = parts[i][0][1]
            parts = parts[:i] + parts[i + 1:]
            loc = None
    if loc:
        i, k = loc
        p, k0 = parts[i], k
        if k + 1 < len(p) and _is(p[k + 1], NUM) and flat is None:
            flat, k = ("L:FLAT", *p[k][1]), k + 1
        number = p[k][1]
        building_parts = parts[:i] + ([p[:k0]] if k0 else [])
        after, rest = p[k + 1:], parts[i + 1:]
        second = next((j for j, t in enumerate(after) if _is(t, NUM)), None)
        if flat is None and not building_parts and second and not any(_is(t, STREET) for t in after[:second]) \
                and _street_at(after[second:]):
            # "18 THE MALTINGS 16 PARK ROAD" written without commas: flat, building, the building's number, street
            flat, number = ("L:FLAT", *number), after[second][1]
            building_parts, after = [after[:second]], after[second + 1:]
        if not after and rest:  # "First Floor Flat, 5, Walford Lane, ...": the number's own part, then the street
            after, rest = rest[0], rest[1:]
    else:
        building_parts, after, rest = _no_number_split(parts)
    ends = [j for j, t in enumerate(after) if _is(t, STREET) and j > 0]
    if ends:
        end = ends[-1] if rest else ends[0]
    elif rest:
        end = len(after) - 1
    else:
        end = len(after) - 2 if len(after) > 2 else len(after) - 1
    street, tail = _pieces(after[: end + 1]), after[end + 1:]
    localities: tuple[str, ...] = ()
    town: tuple[str, ...] = ()
    if rest:
        localities = _pieces(tail) + _pieces([t for x in rest for t in x])
        town = _pieces(rest[-1])
    elif tail:
        localities, town = _pieces(tail), _pieces(tail[-1:])
    building = _pieces([t for x in building_parts for t in x])
    flat = flat or ()
    return flat + building + number + street + localities, flat, number, building, street, town


def piece_text(piece: str, tokens: list[str]) -> str:
    """The text of one template piece for a text's tokens."""
    kind = piece[0]
    if kind == "L":
        return piece[2:]
    tok = tokens[int(piece[1:]) - 1]
    if kind == "t":
        return tok
    if kind == "w":
        return vocab_sets().flat[tok]
    if kind == "a":
        return tok[1:]
    return tok.split("/")[0 if kind == "s" else 1]


def apply_template(tpl: tuple[tuple[str, ...], ...], tokens: list[str]) -> dict[str, str | None]:
    """Fields of one text from its template (``None`` for an empty field)."""
    return {f: (" ".join(piece_text(p, tokens) for p in pieces) or None) for f, pieces in zip(FIELDS, tpl, strict=True)}
