"""Name parsing over DISTINCT name strings: titles and suffixes split off, forename vs middle names,
nickname -> canonical forename, double-metaphone keys.  Vocabulary lives in ``data/names.toml`` and
``data/nicknames.csv``; results are joined back to the records in SQL.
"""

from __future__ import annotations

import csv
from functools import cache

import pandas as pd
from metaphone import doublemetaphone

from ecins_link.standardise.text import DATA, clean_name, load_toml


@cache
def _vocab() -> tuple[frozenset[str], frozenset[str]]:
    v = load_toml("names.toml")
    return frozenset(v["titles"]), frozenset(v["suffixes"])


def parse_forenames(text: str | None) -> tuple[str | None, str | None, str | None, str | None]:
    """(title, forename, middle_names, suffix) from a forenames value such as ``"Mr John Paul Jnr"``."""
    titles, suffixes = _vocab()
    tokens = clean_name(text).split()
    title = suffix = None
    while tokens and tokens[0] in titles:  # a value that is only a title ("MR") has no forename
        title = title or tokens[0]
        tokens = tokens[1:]
    while len(tokens) > 1 and tokens[-1] in suffixes:
        suffix = suffix or tokens[-1]
        tokens = tokens[:-1]
    if not tokens:
        return title, None, None, suffix
    return title, tokens[0], " ".join(tokens[1:]) or None, suffix


def parse_surname(text: str | None) -> tuple[str | None, str | None]:
    """(surname, suffix): ``"Smith - Jones Jnr"`` -> (``SMITH-JONES``, ``JNR``)."""
    _titles, suffixes = _vocab()
    tokens = clean_name(text).split()
    suffix = None
    while len(tokens) > 1 and tokens[-1] in suffixes:
        suffix = suffix or tokens[-1]
        tokens = tokens[:-1]
    return (" ".join(tokens) or None), suffix


def dm_key(name: str | None) -> str | None:
    """Double-metaphone primary key of a name (letters only; NULL when empty)."""
    letters = "".join(c for c in (name or "") if c.isalpha())
    if not letters:
        return None
    return doublemetaphone(letters)[0] or None


def forename_frame(values: list[str | None]) -> pd.DataFrame:
    """One row per distinct forenames value with its parsed parts and phonetic key."""
    rows = []
    for v in values:
        title, fore, middle, suffix = parse_forenames(v)
        rows.append((v, title, fore, middle, fore[0] if fore else None, suffix, dm_key(fore)))
    return pd.DataFrame(rows, columns=["raw", "title", "forename", "middle_names", "initial", "suffix", "dm"],
                        dtype=object)


def surname_frame(values: list[str | None]) -> pd.DataFrame:
    """One row per distinct surname value: folded surname, compact form, suffix, phonetic key."""
    rows = []
    for v in values:
        sur, suffix = parse_surname(v)
        compact = sur.replace(" ", "").replace("-", "") if sur else None
        rows.append((v, sur, compact or None, suffix, dm_key(compact)))
    return pd.DataFrame(rows, columns=["raw", "surname", "surname_compact", "suffix", "dm"], dtype=object)


@cache
def nickname_table() -> pd.DataFrame:
    """(name, sex, canonical) with chains resolved (CATHY -> CATHERINE -> KATHERINE) and first entry winning."""
    seen: dict[tuple[str, str], str] = {}
    with open(DATA / "nicknames.csv", encoding="utf-8") as fh:
        for row in csv.reader(line for line in fh if line.strip() and not line.startswith("#")):
            if len(row) < 2 or row[0] == "name":
                continue
            name, canonical = clean_name(row[0]), clean_name(row[1])
            sex = (row[2].strip().upper() if len(row) > 2 else "") or ""
            if name and canonical:
                seen.setdefault((name, sex), canonical)
    plain = {n: c for (n, s), c in seen.items() if s == ""}
    out = []
    for (name, sex), canonical in seen.items():
        hops = 0
        while canonical in plain and plain[canonical] != canonical and hops < 5:
            canonical, hops = plain[canonical], hops + 1
        out.append((name, sex or None, canonical))
    return pd.DataFrame(out, columns=["name", "sex", "canonical"], dtype=object)


@cache
def surname_variant_table() -> pd.DataFrame:
    """(variant, canonical) from ``data/surname_variants.csv``, both in compact form (folded, no spaces or hyphens):
    spelling and transliteration variants of one surname (HUSSEIN -> HUSSAIN, CHAN -> CHEN).  A canonical form
    listed as a variant itself is followed once (chains resolve); the first entry for a variant wins."""
    seen: dict[str, str] = {}
    with open(DATA / "surname_variants.csv", encoding="utf-8") as fh:
        for row in csv.reader(line for line in fh if line.strip() and not line.startswith("#")):
            if len(row) < 2 or row[0] == "variant":
                continue
            variant, canonical = (clean_name(x).replace(" ", "").replace("-", "") for x in row[:2])
            if variant and canonical and variant != canonical:
                seen.setdefault(variant, canonical)
    out = [(v, seen.get(c, c)) for v, c in seen.items()]
    return pd.DataFrame(out, columns=["variant", "canonical"], dtype=object)


def household_max_surnames() -> int:
    """Distinct surnames above which an address counts as communal, not one household (``names.toml``)."""
    return int(load_toml("names.toml").get("household", {}).get("max_surnames", 6))


def sex_values() -> list[tuple[str, str]]:
    """(raw upper-case value, 'M' | 'F') pairs from ``names.toml``."""
    table = load_toml("names.toml").get("sex", {})
    return [(v.upper(), code) for code, values in table.items() for v in values]
