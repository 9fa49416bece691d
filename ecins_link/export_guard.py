"""What makes the research export hold up (docs/governance.md): key strength, coded columns only, k-anonymity.

* :func:`check_key` rejects keys an attacker could guess: too short, few distinct bytes, a repeated pattern,
  a counting sequence, or low byte entropy.
* :data:`COLUMNS` is the whitelist of exported columns per file; :func:`coded` keeps a text value only when it
  looks like a code (one short token) that at least ``k`` distinct persons share, so free text typed into a
  mapped column (a role such as "SMITH, JOHN 01/02/1980 NT1 4AB") never leaves as a value.
* :func:`enforce_k_anonymity` makes every person indistinguishable from at least ``k - 1`` others on the
  quasi-identifiers a researcher can assemble by joining the files on the pseudonym (DOB year, sex, child
  marker and the set of postcode sectors linked to the person), generalising step by step: the person's
  location links (sector, location and household pseudonyms) withheld, then DOB year, then sex and child
  marker; a person still in a small class after that is left out of the export.  :func:`k_report` measures it.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import pandas as pd

MIN_KEY_BYTES = 16
QUASI_IDENTIFIERS = ("dob_year", "sex", "is_child", "postcode_sectors")
COLUMNS = {
    "persons": ["pseudo_person_id", "dob_year", "sex", "is_child", "n_records", "agencies"],
    "residences": ["pseudo_person_id", "pseudo_location_id", "postcode_sector", "first_month", "last_month"],
    "signals": ["pseudo_person_id", "pseudo_location_id", "pseudo_household_id", "postcode_sector", "signal",
                "category", "agency", "role", "event_month", "link_confidence"],
    "flags": ["pseudo_entity_id", "rule", "entity_type", "score", "rank", "agencies", "visible_to_single_agency",
              "pseudo_person_ids", "n_persons", "first_month", "last_month"],
}
CODED = {"signals": ["signal", "category", "agency", "role"], "flags": ["rule", "entity_type"]}
_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,31}$")


def check_key(key: bytes, where: str) -> None:
    """``ValueError`` unless ``key`` looks like a long random secret."""
    key = key.strip()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"key file {where} holds fewer than {MIN_KEY_BYTES} bytes: use a long random secret")
    counts = Counter(key)
    entropy = -sum(n / len(key) * math.log2(n / len(key)) for n in counts.values())
    deltas = Counter((b - a) % 256 for a, b in zip(key, key[1:], strict=False))
    period = next((p for p in range(1, len(key) // 2 + 1) if key == (key[:p] * (len(key) // p + 1))[:len(key)]),
                  None)
    problem = None
    if len(counts) < 8:
        problem = f"only {len(counts)} distinct byte values"
    elif period is not None:
        problem = f"a pattern of {period} byte(s) repeated"
    elif deltas.most_common(1)[0][1] > (len(key) - 1) / 2:
        problem = "a counting sequence"
    elif entropy < 3.0:
        problem = f"about {entropy:.1f} bits of entropy per byte"
    if problem:
        raise ValueError(f"key file {where} is guessable ({problem}): use a long random secret, e.g. "
                         "`python -c \"import secrets; print(secrets.token_hex(32))\" > research.key`")


def coded(values: pd.Series, persons: pd.Series, k: int) -> tuple[pd.Series, int]:
    """``values`` with every non-code withheld (NULL): a code is one short token shared by >= ``k`` distinct
    persons (``persons``: the person pseudonym of each row).  Returns the series and how many values were
    withheld."""
    text = values.astype("string")
    shape = text.str.fullmatch(_CODE_RE.pattern).fillna(False).astype(bool)
    frame = pd.DataFrame({"v": text, "p": persons})
    support = frame[shape].groupby("v")["p"].nunique()
    common = set(support[support >= k].index)
    keep = shape & text.isin(common)
    withheld = int((text.notna() & ~keep).sum())
    return text.where(keep, None), withheld


def _classes(persons: pd.DataFrame, sectors: pd.Series) -> pd.Series:
    """Per person: the size of its equivalence class on the quasi-identifiers."""
    key = (persons["dob_year"].astype("string").fillna("-") + "|" + persons["sex"].astype("string").fillna("-")
           + "|" + persons["is_child"].astype("string").fillna("-") + "|"
           + persons["pseudo_person_id"].map(sectors).fillna(""))
    return key.map(key.value_counts())


def _sector_sets(residences: pd.DataFrame | None, signals: pd.DataFrame | None) -> pd.Series:
    parts = [f[["pseudo_person_id", "postcode_sector"]] for f in (residences, signals) if f is not None]
    if not parts:
        return pd.Series(dtype="string")
    links = pd.concat(parts).dropna()
    return links.groupby("pseudo_person_id")["postcode_sector"].agg(lambda s: ",".join(sorted(set(s))))


def enforce_k_anonymity(tables: dict[str, pd.DataFrame], k: int) -> dict:
    """Generalise ``tables`` (persons, residences, signals, flags; changed in place) until every person's
    quasi-identifier class has >= ``k`` members; returns what was done, for the manifest.

    In this order: withhold the location links of persons in a small class even without their DOB year (the
    set of postcode sectors is the most identifying quasi-identifier once files are joined); then withhold
    the DOB year, then sex and child marker, of persons still in a small class; a person still in a small
    class after that is left out of every file."""
    persons = tables["persons"]
    report = {"k": k, "quasi_identifiers": list(QUASI_IDENTIFIERS), "persons": len(persons),
              "location_links_withheld": 0, "dob_year_withheld": 0, "sex_withheld": 0, "persons_left_out": 0}
    if k <= 1 or persons.empty:
        report["min_class_size"] = k_report(tables)["min_class_size"]
        return report

    def small(without_dob: bool = False) -> pd.Series:
        frame = tables["persons"].assign(dob_year=None) if without_dob else tables["persons"]
        return _classes(frame, _sector_sets(tables.get("residences"), tables.get("signals"))) < k

    unlinked = set(persons.loc[small(without_dob=True), "pseudo_person_id"])  # small even without a DOB year
    report["location_links_withheld"] = len(unlinked)
    _unlink(tables, unlinked)
    rows = small()
    report["dob_year_withheld"] = int((rows & persons["dob_year"].notna()).sum())
    persons["dob_year"] = persons["dob_year"].astype(object)
    persons.loc[rows, "dob_year"] = None
    rows = small()
    report["sex_withheld"] = int((rows & (persons["sex"].notna() | persons["is_child"].notna())).sum())
    persons["is_child"] = persons["is_child"].astype(object)
    persons.loc[rows, ["sex", "is_child"]] = None
    rows = small()
    gone = set(persons.loc[rows, "pseudo_person_id"])
    report["persons_left_out"] = len(gone)
    tables["persons"] = persons[~rows].reset_index(drop=True)
    for name in ("residences", "signals"):
        if tables.get(name) is not None:
            tables[name] = tables[name][~tables[name]["pseudo_person_id"].isin(gone)].reset_index(drop=True)
    flags = tables.get("flags")
    if flags is not None and (unlinked or gone):
        hidden = unlinked | gone
        flags["pseudo_person_ids"] = flags["pseudo_person_ids"].map(
            lambda ids: None if ids is None else [i for i in ids if i not in hidden])
        tables["flags"] = flags[~flags["pseudo_entity_id"].isin(gone)].reset_index(drop=True)
    after = k_report(tables)
    report["min_class_size"] = after["min_class_size"]
    if len(tables["persons"]) and after["min_class_size"] < k:  # cannot happen; refuse rather than leak
        raise RuntimeError(f"k-anonymity enforcement failed: a class of {after['min_class_size']} < {k}")
    return report


def _unlink(tables: dict[str, pd.DataFrame], persons: set[str]) -> None:
    """Withhold the location links of ``persons``: their residence rows go, their signal rows lose sector,
    location and household pseudonyms (which would lead back to a sector through other persons' rows)."""
    if not persons:
        return
    if tables.get("residences") is not None:
        res = tables["residences"]
        tables["residences"] = res[~res["pseudo_person_id"].isin(persons)].reset_index(drop=True)
    sig = tables.get("signals")
    if sig is not None:
        rows = sig["pseudo_person_id"].isin(persons)
        cols = [c for c in ("postcode_sector", "pseudo_location_id", "pseudo_household_id") if c in sig]
        for col in cols:
            sig[col] = sig[col].astype(object)
        sig.loc[rows, cols] = None


def k_report(tables: dict[str, pd.DataFrame]) -> dict:
    """The smallest equivalence class on the quasi-identifiers across the joined files, and the class count."""
    persons = tables["persons"]
    if persons.empty:
        return {"min_class_size": 0, "classes": 0}
    sizes = _classes(persons, _sector_sets(tables.get("residences"), tables.get("signals")))
    return {"min_class_size": int(sizes.min()), "classes": int((1 / sizes).sum().round())}
