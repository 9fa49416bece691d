"""Load the synthetic town's data files (names, nicknames, places, agency codes, rates) from the package."""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"


def _csv(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _toml(name: str) -> dict:
    return tomllib.loads((DATA / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Pool:
    """Values with sampling probabilities."""

    values: np.ndarray
    p: np.ndarray

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` values drawn with replacement by weight."""
        return self.values[rng.choice(len(self.values), size=size, p=self.p)]


def _pool(values: list[str], weights: list[float]) -> Pool:
    w = np.asarray(weights, dtype=float)
    return Pool(np.asarray(values, dtype=object), w / w.sum())


@lru_cache(maxsize=1)
def surnames() -> dict[str, Pool]:
    """Surname pools by name origin."""
    rows = _csv("surnames.csv")
    out: dict[str, Pool] = {}
    for origin in sorted({r["origin"] for r in rows}):
        sel = [r for r in rows if r["origin"] == origin]
        out[origin] = _pool([r["surname"] for r in sel], [float(r["weight"]) for r in sel])
    return out


@lru_cache(maxsize=1)
def forenames() -> dict[tuple[str, str], Pool]:
    """Forename pools by (origin, sex)."""
    rows = _csv("forenames.csv")
    out: dict[tuple[str, str], Pool] = {}
    for key in sorted({(r["origin"], r["sex"]) for r in rows}):
        sel = [r for r in rows if (r["origin"], r["sex"]) == key]
        out[key] = _pool([r["forename"] for r in sel], [float(r["weight"]) for r in sel])
    return out


@lru_cache(maxsize=1)
def name_variants() -> dict[str, tuple[tuple[str, str], ...]]:
    """Forename -> ((variant, kind), ...) from the shipped nickname table."""
    out: dict[str, list[tuple[str, str]]] = {}
    for r in _csv("nicknames.csv"):
        out.setdefault(r["name"], []).append((r["variant"], r["kind"]))
    return {k: tuple(v) for k, v in out.items()}


@lru_cache(maxsize=1)
def surname_variants() -> dict[str, tuple[str, ...]]:
    """Surname -> spelling / transliteration variants."""
    out: dict[str, list[str]] = {}
    for r in _csv("surname_variants.csv"):
        out.setdefault(r["surname"], []).append(r["variant"])
    return {k: tuple(v) for k, v in out.items()}


@lru_cache(maxsize=1)
def places() -> dict:
    """Place vocabulary (localities, streets, premises)."""
    return _toml("places.toml")


@lru_cache(maxsize=1)
def agencies() -> dict:
    """Agency code tables and background code mixes."""
    return _toml("agencies.toml")


@lru_cache(maxsize=1)
def town() -> dict:
    """Population, coverage and noise rates."""
    return _toml("town.toml")


@lru_cache(maxsize=1)
def address_forms() -> dict:
    """Address-form vocabularies, shares and gazetteer conventions (``data/address_forms.toml``)."""
    return _toml("address_forms.toml")


def weighted(table: dict[str, float]) -> Pool:
    """A pool from a {value: weight} table (order as written in the file)."""
    return _pool(list(table.keys()), list(table.values()))
