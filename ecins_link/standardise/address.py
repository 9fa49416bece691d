"""Address text -> one normalised text and parts (flat, number, building, street, town, postcode).

Applied over DISTINCT address texts (agency records and gazetteer rows alike, so normalised keys join).
Vocabulary (street-type abbreviations, flat / premises / position words) lives in ``data/address.toml``.

Normalised text = flat, building, number, street, localities, town joined by single spaces; upper-case
ASCII, punctuation dropped, street types expanded, flat labels as ``FLAT 2`` (``APT 2``, ``F2``, ``FB``,
``2/14``, a bare "23, Copperfield House" or "B, 1 Chester Grove" all read as flats).  Leading position words
("O/S", "REAR OF", "JUNCTION NEAR", "IN") are dropped and reported as ``approximate``.

Three steps, each in its own module: cleaning (:mod:`.address_clean`), part assignment by token-class
signature (:mod:`.address_shape`), and the set-based DuckDB versions the standardise stage runs over all
distinct texts (:mod:`.address_sql`).  The functions here parse one text and give the same parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ecins_link.standardise.address_clean import clean_text, fold_fast
from ecins_link.standardise.address_flats import rewrite_descriptors
from ecins_link.standardise.address_shape import (
    apply_template,
    expand_tokens,
    signature,
    template,
    vocab_sets,
)

_NUM = re.compile(r"^\d+[A-Z]?(?:-\d+[A-Z]?)?$")
_FLAT_TOKEN = re.compile(r"^F(\d+[A-Z]?|[A-Z])$")
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


def normalise_flat(text: str | None) -> str | None:
    """A sub-building label in canonical form: ``Apt 2`` -> ``FLAT 2``; ``FB`` -> ``FLAT B``."""
    if not text:
        return None
    flat_words = vocab_sets().flat
    toks = rewrite_descriptors(" ".join(_JUNK.sub(" ", fold_fast(text).replace(".", "")).replace(",", " ").split())).split()
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


def tokens_of(clean: str) -> list[str]:
    """Tokens of a cleaned text, street types expanded, with ``,`` tokens between parts."""
    v = vocab_sets()
    out: list[str] = []
    for k, part in enumerate(clean.split(",")):
        out += ([","] if k else []) + expand_tokens(part, v)
    return out


def parse_clean(clean: str, postcode: str | None = None, approximate: bool = False) -> Address:
    """Parse an address text already cleaned by :func:`~ecins_link.standardise.address_clean.clean_text`."""
    if not clean:
        return Address(postcode=postcode, approximate=approximate)
    toks = tokens_of(clean)
    return Address(**apply_template(template(signature(toks)), toks), postcode=postcode, approximate=approximate)


def parse_address(text: str | None) -> Address:
    """Parse one free-text address (see module docstring)."""
    if not text or not text.strip():
        return Address()
    return parse_clean(*clean_text(text))


def expand_street(text: str | None) -> str | None:
    """A street name with its type expanded (``HIGH ST`` -> ``HIGH STREET``)."""
    if not text:
        return None
    toks = expand_tokens(_JUNK.sub(" ", fold_fast(text).replace(".", "").replace("'", "")).replace(",", " "),
                         vocab_sets())
    return " ".join(toks) or None


def clean_part(text: str | None) -> str | None:
    """An address part folded and stripped of punctuation."""
    if not text:
        return None
    out = " ".join(_JUNK.sub(" ", fold_fast(text).replace(".", "").replace("'", "")).replace(",", " ").split())
    return out or None
