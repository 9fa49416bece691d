"""Extracts written from an address-forms gazetteer (:mod:`.address_forms`), with truth, and a project file.

See :func:`generate_address_town`.  Homes are written from residential UPRNs, event locations from any
property; each text records its form (``truth/addresses.csv``) so results can be read by form and by class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecins_link.synth import vocab
from ecins_link.synth.address_forms import _POSITION, _TYPES, _UPPER, COLUMNS, build_llpg

_ABBREV = dict(_TYPES)
_FLAT_ABOVE = vocab.address_forms()["flat_above"]["forms"]
_FORENAMES = ["JOHN", "MARY", "AHMED", "SARAH", "DAVID", "PRIYA", "TOM", "EMMA", "LIAM", "ZOE", "OLA", "KATE"]
_SURNAMES = ["SMITH", "JONES", "KHAN", "TAYLOR", "BROWN", "PATEL", "WILSON", "EVANS", "WALKER", "HUGHES"]


def _street(rng: np.random.Generator, street: str) -> str:
    base, _, typ = street.rpartition(" ")
    return f"{base} {_ABBREV.get(typ, typ)}" if rng.random() < 0.4 else street


def _join(rng: np.random.Generator, parts: list[str]) -> str:
    text = (", " if rng.random() < 0.9 else " ").join(p for p in parts if p)
    return text if rng.random() < 0.6 else " ".join(w.capitalize() for w in text.split(" "))


def _flat_text(rng: np.random.Generator, row: pd.Series) -> tuple[str, str]:
    """(flat part as written, form) for a residential unit."""
    kind, sao, n = row["kind"], row["SAO_TEXT"], row["SAO_START_NUMBER"]
    r = rng.random()
    if kind == "block_flat":
        forms = [(f"FLAT {n}", "flat_number"), (f"F{n}", "flat_glued"), (f"FL{n}", "flat_glued"),
                 (f"APT {n}", "flat_number"), (f"{n}", "flat_bare")]
        return forms[int(rng.integers(len(forms)))] if r > 0.03 else ("", "flat_dropped")
    if kind == "letter_flat":
        f = sao.split()[-1]
        return ((sao, "flat_letter") if r < 0.7 else (f, "flat_bare")) if r > 0.03 else ("", "flat_dropped")
    if kind == "floor_flat":
        return (str(rng.choice(_UPPER[sao])), "floor_descriptor") if r > 0.03 else ("", "flat_dropped")
    if kind == "flat_above":
        return (str(rng.choice(_FLAT_ABOVE)), "flat_above_shop") if r > 0.03 else ("", "flat_dropped")
    return "", {"suffix_house": "suffixed_number", "named_house": "named_house"}.get(kind, "house")


def render_homes(rng: np.random.Generator, g: pd.DataFrame, n: int) -> tuple[pd.DataFrame, list[tuple]]:
    """``n`` person records at residential UPRNs; (rows, truth tuples)."""
    res = g[g["CLASSIFICATION"].str.startswith("R")]
    pick = res.sample(n=n, replace=True, random_state=int(rng.integers(2**31)))
    dupes = _dupe_streets(g)
    rows, truth = [], []
    for i, (_, row) in enumerate(pick.iterrows()):
        flat, form = _flat_text(rng, row)
        number = f"{row['PAO_START_NUMBER']}{row['PAO_START_SUFFIX']}"
        building = row["PAO_TEXT"] if row["PAO_TEXT"] and (rng.random() < 0.85 or not number) else ""
        locality = row["LOCALITY"] if rng.random() < 0.6 else ""
        postcode = row["POSTCODE"] if rng.random() < 0.7 else ""
        parts = [flat, building, f"{number} {_street(rng, row['STREET'])}".strip(), locality,
                 row["TOWN"] if rng.random() < 0.7 else ""]
        key = f"H{i:06d}"
        rows.append({"ID": key, "NAME": f"{rng.choice(_FORENAMES)} {rng.choice(_SURNAMES)}",
                     "DOB": f"19{int(rng.integers(40, 99))}-0{int(rng.integers(1, 9))}-1{int(rng.integers(0, 9))}",
                     "ADDRESS": _join(rng, parts), "POSTCODE": postcode})
        # ambiguous: a flat written without its flat names only the building (truth keeps the flat); a street
        # name found in several localities, written with neither locality nor postcode, names no one street
        amb = form == "flat_dropped" or (row["STREET"] in dupes and not (locality or postcode or building))
        truth.append(("homes", key, row["UPRN"], "residential", form, int(amb)))
    return pd.DataFrame(rows), truth


def _dupe_streets(g: pd.DataFrame) -> set[str]:
    """Street names that occur in more than one locality of the town."""
    n = g.groupby("STREET")["LOCALITY"].nunique()
    return set(n[n > 1].index)


def _building(g: pd.DataFrame, row: pd.Series) -> pd.Series:
    """The building a property stands in: its parent when the gazetteer has one, else itself."""
    if row["PARENT_UPRN"]:
        return g.loc[g["UPRN"] == row["PARENT_UPRN"]].iloc[0]
    return row


def render_events(rng: np.random.Generator, g: pd.DataFrame, n: int) -> tuple[pd.DataFrame, list[tuple]]:
    """``n`` event locations: position words, premises by name, numbered shops, numbers that do not exist."""
    rows, truth = [], []
    shops = g[g["ORGANISATION"] != ""]
    numbered = g[(g["PAO_START_NUMBER"] != "") & (g["SAO_TEXT"] == "")]
    dupes = _dupe_streets(g)
    for i in range(n):
        r, key = rng.random(), f"E{i:06d}"
        cls = "other"
        if r < 0.4:  # position words before a building
            b = _building(g, numbered.iloc[int(rng.integers(len(numbered)))])
            num = f"{b['PAO_START_NUMBER']}{b['PAO_START_SUFFIX']}"
            text = str(rng.choice(_POSITION)) + _join(rng, [b["PAO_TEXT"], f"{num} {_street(rng, b['STREET'])}",
                                                           b["TOWN"]])
            uprn, form, amb = b["UPRN"], "position_words", int(b["STREET"] in dupes and not b["PAO_TEXT"])
        elif r < 0.65 and len(shops):  # premises by name and town (or locality)
            s = shops.iloc[int(rng.integers(len(shops)))]
            area, col = (s["TOWN"], "TOWN") if rng.random() < 0.6 else (s["LOCALITY"], "LOCALITY")
            same = shops[(shops["ORGANISATION"] == s["ORGANISATION"]) & (shops[col] == area)]
            text = _join(rng, [s["ORGANISATION"], area])
            uprn, form, amb, cls = s["UPRN"], "premises_name", int(len(same) > 1), "commercial"
        elif r < 0.85 and len(shops):  # a numbered shop with its name
            s = shops.iloc[int(rng.integers(len(shops)))]
            text = _join(rng, [s["ORGANISATION"], f"{s['PAO_START_NUMBER']} {_street(rng, s['STREET'])}", s["TOWN"]])
            uprn, form, amb, cls = s["UPRN"], "shop_with_name", 0, "commercial"
        else:  # a house number the gazetteer does not have (a gap): must stay unresolved
            st = g[g["PAO_START_NUMBER"] != ""].iloc[int(rng.integers((g["PAO_START_NUMBER"] != "").sum()))]
            have = set(g.loc[g["STREET"] == st["STREET"], "PAO_START_NUMBER"])
            nums = [int(x) for x in have if x]
            gaps = sorted(set(range(1, max(nums) + 1)) - {int(x) for x in have if x})
            if not gaps:
                continue
            text = _join(rng, [f"{gaps[int(rng.integers(len(gaps)))]} {st['STREET']}", st["TOWN"]])
            uprn, form, amb = "", "number_not_in_gazetteer", 1
        rows.append({"ID": key, "DATE": "2026-01-0" + str(1 + i % 9), "CODE": "ASB", "LOCATION": text})
        truth.append(("incidents", key, uprn, cls, form, amb))
    return pd.DataFrame(rows), truth


PROJECT = """[project]
name = "address town {seed}"
store = "store.duckdb"

[[sources]]
name = "llpg"
agency = "council"
path = "gazetteer/llpg.csv"
key = "UPRN"
[sources.gazetteer]
uprn = "UPRN"
parent_uprn = "PARENT_UPRN"
sao_start_number = "SAO_START_NUMBER"
sao_start_suffix = "SAO_START_SUFFIX"
sao_text = "SAO_TEXT"
pao_start_number = "PAO_START_NUMBER"
pao_start_suffix = "PAO_START_SUFFIX"
pao_end_number = "PAO_END_NUMBER"
pao_text = "PAO_TEXT"
organisation = "ORGANISATION"
street = "STREET"
locality = "LOCALITY"
town = "TOWN"
postcode = "POSTCODE"
classification = "CLASSIFICATION"
x = "X"
y = "Y"

[[sources]]
name = "homes"
agency = "housing"
path = "homes.csv"
key = "ID"
[sources.person]
full_name = "NAME"
name_format = "forenames_surname"
dob = "DOB"
address = "ADDRESS"
postcode = "POSTCODE"

[[sources]]
name = "incidents"
agency = "police"
path = "events.csv"
key = "ID"
[sources.event]
code = "CODE"
date = "DATE"
location = "LOCATION"
"""


def generate_address_town(out: str | Path, seed: int, n_streets: int = 60, homes: int = 3000,
                          events: int = 1000) -> dict[str, int]:
    """Write an address-forms town (see module docstring) into ``out``; return row counts."""
    out = Path(out)
    (out / "gazetteer").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    g = build_llpg(rng, n_streets)
    g[COLUMNS].to_csv(out / "gazetteer" / "llpg.csv", index=False)
    h, t1 = render_homes(rng, g, homes)
    e, t2 = render_events(rng, g, events)
    h.to_csv(out / "homes.csv", index=False)
    e.to_csv(out / "events.csv", index=False)
    pd.DataFrame(t1 + t2, columns=["source", "record_key", "true_uprn", "address_class", "form", "ambiguous"]).to_csv(
        out / "truth" / "addresses.csv", index=False)
    (out / "project.toml").write_text(PROJECT.format(seed=seed))
    return {"gazetteer": len(g), "homes": len(h), "events": len(e)}
