"""Plain labels for codes (signals, categories, roles, sources, agencies, rules) and one colour per category.

Read from ``labels.toml`` (next to this module) and the signal taxonomy; unknown codes are humanised, never
dropped, so an extract with codes no one here has seen still reads as words.
"""

from __future__ import annotations

import hashlib
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path


@lru_cache(maxsize=1)
def _data() -> dict:
    text = (resources.files("ecins_link.report") / "labels.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@lru_cache(maxsize=8)
def _signals(taxonomy: str | None = None) -> dict[str, str]:
    """signal code -> taxonomy description (the shipped taxonomy unless a path is given)."""
    try:
        from ecins_link.scoring.taxonomy import DEFAULT_TAXONOMY, load_taxonomy

        tax = load_taxonomy(Path(taxonomy) if taxonomy else DEFAULT_TAXONOMY)
        return {s.code: s.description for s in tax.signals if s.description}
    except Exception:  # noqa: BLE001 - labels must never break a page; codes are humanised instead
        return {}


def humanise(code: object) -> str:
    """``police_occurrences`` -> ``Police occurrences``; ``DA_VICTIM`` -> ``Da victim`` (last resort)."""
    if code is None:
        return ""
    text = str(code).replace("_", " ").strip()
    return text[:1].upper() + text[1:].lower() if text.isupper() or "_" in str(code) else text[:1].upper() + text[1:]


def signal_label(code: object, taxonomy: str | None = None) -> str:
    """The taxonomy's description of a signal code, else the code humanised."""
    if code is None:
        return ""
    return _signals(taxonomy).get(str(code)) or humanise(code)


def category_label(code: object) -> str:
    """Plain words for a signal category (``DA`` -> ``domestic abuse``)."""
    if code is None:
        return ""
    item = _data().get("categories", {}).get(str(code).upper())
    return item["label"] if isinstance(item, dict) and item.get("label") else humanise(code).lower()


def category_colour(code: object) -> str:
    """The one colour of a category on every page and chart (listed, else a stable pick from the spares)."""
    item = _data().get("categories", {}).get(str(code).upper())
    if isinstance(item, dict) and item.get("colour"):
        return str(item["colour"])
    spare = _data().get("spare", {}).get("colours") or ["#5b5ea6"]
    digest = int(hashlib.sha256(str(code).encode()).hexdigest()[:8], 16)
    return str(spare[digest % len(spare)])


def role_label(code: object) -> str:
    """``V`` -> ``victim``; unknown roles as recorded (lower case)."""
    if code is None or str(code).strip() == "":
        return ""
    return str(_data().get("roles", {}).get(str(code).upper(), str(code).lower()))


def entity_label(entity_type: object) -> str:
    """``location`` -> ``address``."""
    return str(_data().get("entity_types", {}).get(str(entity_type), humanise(entity_type).lower()))


def edge_label(edge_type: object) -> str:
    """``co_involved`` -> ``in the same incident``."""
    return str(_data().get("edge_types", {}).get(str(edge_type), humanise(edge_type).lower()))


def source_label(source: object) -> str:
    """A source name as words (``police_occurrences`` -> ``Police occurrences``)."""
    return humanise(source)


def agency_label(agency: object) -> str:
    """An agency as words (``police`` -> ``Police``)."""
    return humanise(agency)


def join_words(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


HEADERS = {"record_key": "record", "forenames": "forenames", "address_text": "address", "cluster_confidence":
           "link confidence", "linked_to": "linked to", "best_match_weight": "match weight",
           "best_match_probability": "match probability", "dob": "born", "sex": "sex"}


def header_label(column: str) -> str:
    """A record table's column name as words."""
    return HEADERS.get(column, column.replace("_", " "))
