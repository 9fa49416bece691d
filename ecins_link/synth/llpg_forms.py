"""The town's gazetteer as a BS7666 LLPG: parent/child UPRNs, flats above shops, suffixes, floor flats, chains.

:func:`add_forms` rewrites the properties of :func:`~ecins_link.synth.places.build_gazetteer` in place: the same
rows in the same order, with the same UPRNs, residential flags and organisation flags, so the people, events
and scenarios drawn from the gazetteer (random streams 2-5) are exactly those of a town without the forms.
Only what a property *is called* changes, from random stream 9 and the shares in ``data/address_forms.toml``
(drawn per town within their ranges, so each seed is its own layout):

* a numbered shop's next-door house becomes the flat above the shop ("FIRST FLOOR FLAT", 12 HIGH STREET; its
  number 13 no longer exists), a child of the shop or, with the shop, of a building shell;
* a plain house after a plain house N becomes NA (3, 3A; sometimes 3B too);
* a house split into lettered flats becomes GROUND / FIRST / SECOND FLOOR FLAT;
* converted houses and blocks of flats get a parent shell UPRN (new rows: :func:`llpg_table`);
* some organisations become local shops ("<street> FISH BAR"), some branches of the town's three national chains.

:func:`llpg_table` writes the gazetteer file's BS7666 columns in the town's drawn conventions (how a flat
number and a floor flat are held, how the class is coded); :data:`GAZETTEER_MAPPING` is its project-file entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecins_link.synth import vocab

LLPG_COLUMNS = ["UPRN", "PARENT_UPRN", "SAO_START_NUMBER", "SAO_START_SUFFIX", "SAO_END_NUMBER", "SAO_TEXT",
                "PAO_START_NUMBER", "PAO_START_SUFFIX", "PAO_END_NUMBER", "PAO_TEXT", "ORGANISATION", "STREET",
                "LOCALITY", "TOWN", "POSTCODE", "CLASSIFICATION"]
# project-file gazetteer mapping (field -> column) of the file :func:`llpg_table` writes
GAZETTEER_MAPPING = {"uprn": "UPRN", "parent_uprn": "PARENT_UPRN", "sao_start_number": "SAO_START_NUMBER",
                     "sao_start_suffix": "SAO_START_SUFFIX", "sao_end_number": "SAO_END_NUMBER",
                     "sao_text": "SAO_TEXT", "pao_start_number": "PAO_START_NUMBER",
                     "pao_start_suffix": "PAO_START_SUFFIX", "pao_end_number": "PAO_END_NUMBER",
                     "pao_text": "PAO_TEXT", "organisation": "ORGANISATION", "street": "STREET",
                     "locality": "LOCALITY", "town": "TOWN", "postcode": "POSTCODE",
                     "classification": "CLASSIFICATION"}
FLOORS = ["GROUND FLOOR FLAT", "FIRST FLOOR FLAT", "SECOND FLOOR FLAT"]
_SHELL_BASE = 100_080_000_000  # shells are numbered apart from the properties (which start at 100012000000)


@dataclass(frozen=True)
class LlpgConventions:
    """A town's drawn gazetteer conventions and shares (``data/address_forms.toml``, ``[gazetteer]``)."""

    shares: dict[str, float]
    flat_numbers: str
    floor_text: str
    classification: str

    def describe(self) -> dict:
        """Plain dict (for the town summary)."""
        return {"shares": {k: round(v, 3) for k, v in self.shares.items()}, "flat_numbers": self.flat_numbers,
                "floor_text": self.floor_text, "classification": self.classification}


def _pick(rng: np.random.Generator, options: list[dict]) -> str:
    w = np.array([o.get("weight", 1) for o in options], dtype=float)
    return options[int(rng.choice(len(options), p=w / w.sum()))]["name"]


def draw_conventions(rng: np.random.Generator) -> LlpgConventions:
    """One town's shares (uniform in each range) and conventions (one option per axis, by weight)."""
    g = vocab.address_forms()["gazetteer"]
    shares = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in g["shares"].items()}
    return LlpgConventions(shares, _pick(rng, g["flat_numbers"]), _pick(rng, g["floor_text"]),
                           _pick(rng, g["classification"]))


def _plain(sao: np.ndarray, num: np.ndarray, bld: np.ndarray, org: np.ndarray, i: int) -> bool:
    return bool(num[i] and not sao[i] and not bld[i] and not org[i])


def add_forms(rng: np.random.Generator, gaz: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, LlpgConventions]:
    """(properties with the forms, parent shells, conventions).

    The properties keep every row, UPRN, ``residential`` and organisation flag of ``gaz``; they gain ``kind``
    (house, suffixed_house, named_house, block_flat, letter_flat, floor_flat, flat_above, shop),
    ``PARENT_UPRN``, ``PAO_NUMBER`` as written (number + suffix), ``pao_start``/``pao_suffix`` and the
    organisation's ``CLASSIFICATION``.  Shells: UPRN, street fields, PAO number / text, ``before`` (the row
    they are listed before).
    """
    conv = draw_conventions(rng)
    sh = conv.shares
    forms = vocab.address_forms()
    g = gaz.reset_index(drop=True).copy()
    n = len(g)
    sao, num = g["SAO_TEXT"].to_numpy(object).copy(), g["PAO_NUMBER"].to_numpy(object).copy()
    bld, org = g["PAO_TEXT"].to_numpy(object), g["ORGANISATION"].to_numpy(object).copy()
    sid, uprn = g["street_id"].to_numpy(), g["UPRN"].to_numpy(object)
    kind = np.where(org != "", "shop", np.where(num == "", "named_house", np.where(
        sao == "", "house", np.where(bld != "", "block_flat", "letter_flat")))).astype(object)
    start, suffix = num.copy(), np.full(n, "", object)
    parent, shop_sao = np.full(n, "", object), np.full(n, "", object)
    shells: list[dict] = []

    def shell(i: int, number: str, name: str = "") -> str:
        u = str(_SHELL_BASE + 7 * len(shells) + int(rng.integers(1, 7)))
        shells.append({"UPRN": u, "PAO_NUMBER": number, "PAO_TEXT": name, "before": i})
        return u

    i = 0
    while i < n:
        same_next = i + 1 < n and sid[i + 1] == sid[i]
        if kind[i] == "shop" and same_next and _plain(sao, num, bld, org, i + 1) and num[i] and \
                num[i + 1] == str(int(num[i]) + 1) and rng.random() < sh["flat_above_shop"]:
            kind[i + 1], num[i + 1], start[i + 1], sao[i + 1] = "flat_above", num[i], num[i], "FIRST FLOOR FLAT"
            if rng.random() < sh["flat_under_shop"]:
                parent[i + 1] = uprn[i]
            else:
                parent[i] = parent[i + 1] = shell(i, num[i])
                shop_sao[i] = "GROUND FLOOR"
            i += 2
            continue
        if kind[i] == "house" and same_next and _plain(sao, num, bld, org, i + 1) and \
                num[i + 1] == str(int(num[i]) + 1) and rng.random() < sh["suffixed_number"]:
            j, base = i + 1, num[i]
            for letter in "AB":
                kind[j], num[j], start[j], suffix[j] = "suffixed_house", base + letter, base, letter
                if not (letter == "A" and j + 1 < n and sid[j + 1] == sid[i] and _plain(sao, num, bld, org, j + 1)
                        and num[j + 1] == str(int(base) + 2) and rng.random() < 0.4):
                    break
                j += 1
            i = j + 1
            continue
        if kind[i] in ("letter_flat", "block_flat"):
            j = i
            while j + 1 < n and sid[j + 1] == sid[i] and num[j + 1] == num[i] and kind[j + 1] == kind[i] \
                    and bld[j + 1] == bld[i]:
                j += 1
            group = range(i, j + 1)
            if kind[i] == "letter_flat" and len(group) <= len(FLOORS) and rng.random() < sh["floor_flats"]:
                for k, f in zip(group, FLOORS, strict=False):
                    kind[k], sao[k] = "floor_flat", f
            if kind[i] == "block_flat" or rng.random() < sh["converted_shell"]:
                p = shell(i, num[i], bld[i])
                for k in group:
                    parent[k] = p
            i = j + 1
            continue
        i += 1
    r = rng.random(n)
    shop = np.flatnonzero(kind == "shop")
    words = forms["shop_words"]
    chains = [str(c) for c in rng.choice(forms["chains"], size=min(3, len(forms["chains"])), replace=False)]
    base = g["street_base"].to_numpy(object)
    for k, x in zip(shop, r[shop], strict=True):
        if x < sh["local_shop"]:
            org[k] = f"{base[k]} {words[int(rng.integers(len(words)))]}"
        elif x < sh["local_shop"] + sh["chain_shop"]:
            org[k] = chains[int(rng.integers(len(chains)))]
    codes = forms["gazetteer"]["codes"]
    cls = np.select([kind == "shop", np.isin(kind, ["house", "suffixed_house"]), kind == "named_house"],
                    [np.array([codes.get(o, codes["shop"]) for o in org], object), codes["house"],
                     codes["named_house"]], codes["flat"])
    if conv.classification == "primary_secondary":
        cls = np.array([c[:2] for c in cls], object)
    g["SAO_TEXT"], g["PAO_NUMBER"], g["ORGANISATION"] = sao, num, org
    g["kind"], g["PARENT_UPRN"], g["pao_start"], g["pao_suffix"] = kind, parent, start, suffix
    g["shop_sao"], g["CLASSIFICATION"] = shop_sao, cls
    sh_df = pd.DataFrame(shells, columns=["UPRN", "PAO_NUMBER", "PAO_TEXT", "before"])
    for col in ("street_id", "STREET", "LOCALITY", "TOWN", "POSTCODE"):
        sh_df[col] = g[col].to_numpy()[sh_df["before"].to_numpy(int)] if len(sh_df) else []
    sh_df["CLASSIFICATION"] = codes["shell"][:2] if conv.classification == "primary_secondary" else codes["shell"]
    return g, sh_df, conv


def _sao_parts(g: pd.DataFrame, conv: LlpgConventions) -> tuple[np.ndarray, np.ndarray]:
    """(SAO_START_NUMBER, SAO_TEXT) of each property as the town's gazetteer holds them."""
    sao, kind = g["SAO_TEXT"].to_numpy(object), g["kind"].to_numpy(object)
    number = np.full(len(g), "", object)
    text = np.where(kind == "shop", g["shop_sao"].to_numpy(object), sao).astype(object)
    floor = np.isin(kind, ["floor_flat", "flat_above"])
    first = floor & (sao == "FIRST FLOOR FLAT")
    text[first] = conv.floor_text
    if conv.floor_text == "FIRST FLOOR":
        text[floor] = [s.removesuffix(" FLAT") for s in sao[floor]]
    block = kind == "block_flat"
    labels = np.array([s.split(" ", 1)[-1] for s in sao[block]], object)
    if conv.flat_numbers != "text":
        number[block] = labels
        text[block] = "FLAT" if conv.flat_numbers == "word_and_number" else ""
    return number, text


def llpg_table(g: pd.DataFrame, shells: pd.DataFrame, conv: LlpgConventions) -> pd.DataFrame:
    """The gazetteer file (:data:`LLPG_COLUMNS`): properties and shells, each shell listed before its first child."""
    sao_n, sao_t = _sao_parts(g, conv)
    props = pd.DataFrame({"UPRN": g["UPRN"], "PARENT_UPRN": g["PARENT_UPRN"], "SAO_START_NUMBER": sao_n,
                          "SAO_START_SUFFIX": "", "SAO_END_NUMBER": "", "SAO_TEXT": sao_t,
                          "PAO_START_NUMBER": g["pao_start"], "PAO_START_SUFFIX": g["pao_suffix"],
                          "PAO_END_NUMBER": "", "PAO_TEXT": g["PAO_TEXT"], "ORGANISATION": g["ORGANISATION"],
                          "STREET": g["STREET"], "LOCALITY": g["LOCALITY"], "TOWN": g["TOWN"],
                          "POSTCODE": g["POSTCODE"], "CLASSIFICATION": g["CLASSIFICATION"],
                          "_order": np.arange(len(g), dtype=float)})
    sh = pd.DataFrame({"UPRN": shells["UPRN"], "PARENT_UPRN": "", "SAO_START_NUMBER": "", "SAO_START_SUFFIX": "",
                       "SAO_END_NUMBER": "", "SAO_TEXT": "", "PAO_START_NUMBER": shells["PAO_NUMBER"],
                       "PAO_START_SUFFIX": "", "PAO_END_NUMBER": "", "PAO_TEXT": shells["PAO_TEXT"],
                       "ORGANISATION": "", "STREET": shells["STREET"], "LOCALITY": shells["LOCALITY"],
                       "TOWN": shells["TOWN"], "POSTCODE": shells["POSTCODE"],
                       "CLASSIFICATION": shells["CLASSIFICATION"],
                       "_order": shells["before"].to_numpy(float) - 0.5})
    out = pd.concat([sh, props], ignore_index=True).sort_values("_order", kind="stable")
    return out[LLPG_COLUMNS].reset_index(drop=True)
