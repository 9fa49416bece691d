"""Text folding shared by name and address standardisation: upper-case ASCII, accents removed.

NFKD decomposes most accented letters (É -> E + combining accent) but not letters that are distinct in
Unicode (Ł, Ø, Đ, ß, Æ, Œ, Þ, ı); those come from the ``fold`` table in ``data/names.toml``.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from functools import cache
from pathlib import Path

DATA = Path(__file__).parent / "data"


@cache
def load_toml(name: str) -> dict:
    """A shipped data file from ``ecins_link/standardise/data``."""
    return tomllib.loads((DATA / name).read_text(encoding="utf-8"))


@cache
def _fold_table() -> dict[int, str]:
    table = load_toml("names.toml").get("fold", {})
    out = {ord(k): v for k, v in table.items()}
    out.update({ord(k.lower()): v.lower() for k, v in table.items() if k.lower() != k})
    return out


def fold(text: str | None) -> str:
    """Upper-case ASCII form of ``text``: accents folded, special letters transliterated."""
    if not text:
        return ""
    text = text.translate(_fold_table())
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return ascii_text.translate(_fold_table()).upper().encode("ascii", "ignore").decode("ascii")


_NAME_JUNK = re.compile(r"[^A-Z\- ]+")
_SPACES = re.compile(r"\s+")
_HYPHEN = re.compile(r"\s*-\s*")


_ORDINAL = re.compile(r"\b\d+(ST|ND|RD|TH)\b")
_DIGIT_IN_WORD = re.compile(r"(?<=[A-Z])\d+(?=[A-Z])")


def clean_name(text: str | None) -> str:
    """Folded name: letters, single spaces and hyphens only (apostrophes and dots dropped: O'BRIEN -> OBRIEN).
    An ordinal (1ST, 2ND) is dropped; a digit keyed inside a word is a keying or OCR slip and is dropped
    without splitting the word (ARTH8R -> ARTHR, W9OD -> WOD), so the name stays comparable by spelling."""
    t = _DIGIT_IN_WORD.sub("", _ORDINAL.sub(" ", fold(text))).replace("'", "").replace("`", "").replace(".", " ")
    t = _NAME_JUNK.sub(" ", t)
    t = _HYPHEN.sub("-", t.strip(" -"))
    return _SPACES.sub(" ", t).strip(" -")
