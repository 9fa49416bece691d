"""An address-only synthetic town: a BS7666 LLPG with the forms real towns have, and extracts written in them.

``generate_address_town(out, seed)`` writes a project any user could run (``ecins-link run project.toml``):

* ``gazetteer/llpg.csv`` -- BS7666 columns (SAO / PAO start number, suffix, text; organisation; parent UPRN;
  AddressBase-style classification; coordinates) with: houses, suffixed numbers next to their plain neighbour
  (3, 3A, 3B), numbered shops carrying organisation names with a first-floor flat above (the flat a child of the
  shop, or both children of a building shell), converted houses split into floor flats, blocks of numbered
  flats under a parent shell, named houses, several branches of one chain in a town, gaps in the numbering;
* ``homes.csv`` -- person records whose home address is written as agencies write it: floor descriptors
  ("FIRST FLOOR FLAT", "1ST FLOOR", "FLAT ABOVE", "ABOVE"), glued flat labels ("F2", "FL2"), abbreviations,
  missing postcode or locality, upper or title case, commas or none;
* ``events.csv`` -- event locations: position words ("O/S", "REAR OF", "OPP", "NR", "BEHIND") before a
  building, premises by name and town ("BOOTS, <town>"), numbered shops with their name;
* ``truth/addresses.csv`` -- ``source, record_key, true_uprn, address_class, form, ambiguous``: the UPRN the
  text was written from (the building for position words); ``ambiguous = 1`` where the text cannot name one
  UPRN (a chain with several branches in the town, a house number the gazetteer does not have: true_uprn empty).

Town, locality and street names are drawn per seed from syllables, so every seed is a town no rule was tuned on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecins_link.synth import vocab

_SYL = ["ash", "bar", "bel", "brad", "brom", "cal", "car", "chel", "dun", "ed", "fen", "gar", "hal", "ken", "lang",
        "mar", "nor", "ox", "pen", "ran", "shel", "stan", "thorn", "wal", "wen", "whit", "wil", "york", "mel", "tam"]
_END = ["ton", "ley", "field", "ford", "by", "ham", "wick", "bury", "worth", "dale", "mouth", "stead"]
_TYPES = [("ROAD", "RD"), ("STREET", "ST"), ("LANE", "LN"), ("AVENUE", "AVE"), ("CLOSE", "CL"), ("DRIVE", "DR"),
          ("GARDENS", "GDNS"), ("TERRACE", "TCE"), ("PLACE", "PL"), ("CRESCENT", "CRES"), ("GROVE", "GRV"),
          ("WAY", "WAY"), ("MEWS", "MEWS")]
_FORMS = vocab.address_forms()
_CHAINS = _FORMS["chains"]
_SHOP_WORDS = _FORMS["shop_words"]
_HOUSE_NAMES = ["ROSE COTTAGE", "IVY HOUSE", "THE LODGE", "WILLOW BANK", "THE OLD RECTORY", "ORCHARD HOUSE",
                "HOLLY COTTAGE", "THE BARN", "MEADOW VIEW", "STONE HOUSE"]
_BLOCK_ENDS = ["HOUSE", "COURT", "LODGE", "MANSIONS", "POINT"]
_UPPER = _FORMS["descriptors"]
_POSITION = _FORMS["position_words"]
COLUMNS = ["UPRN", "PARENT_UPRN", "SAO_START_NUMBER", "SAO_START_SUFFIX", "SAO_TEXT", "PAO_START_NUMBER",
           "PAO_START_SUFFIX", "PAO_END_NUMBER", "PAO_TEXT", "ORGANISATION", "STREET", "LOCALITY", "TOWN", "POSTCODE",
           "CLASSIFICATION", "X", "Y"]


def _name(rng: np.random.Generator) -> str:
    return (_SYL[rng.integers(len(_SYL))] + _END[rng.integers(len(_END))]).upper()


class _Llpg:
    """Builds the gazetteer rows street by street (UPRNs ascending, parents before children)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.rows, self.next_uprn = rng, [], int(rng.integers(10**11, 9 * 10**11))

    def add(self, street: dict, kind: str, cls: str, *, parent: str = "", sao_n: str = "", sao_text: str = "",
            pao_n: str = "", pao_suffix: str = "", pao_text: str = "", org: str = "") -> str:
        self.next_uprn += int(self.rng.integers(1, 30))
        uprn = str(self.next_uprn)
        street["x"] += float(self.rng.uniform(3, 12))
        self.rows.append({"UPRN": uprn, "PARENT_UPRN": parent, "SAO_START_NUMBER": sao_n, "SAO_START_SUFFIX": "",
                          "SAO_TEXT": sao_text, "PAO_START_NUMBER": pao_n, "PAO_START_SUFFIX": pao_suffix,
                          "PAO_END_NUMBER": "", "PAO_TEXT": pao_text, "ORGANISATION": org, "STREET": street["name"],
                          "LOCALITY": street["locality"], "TOWN": street["town"], "POSTCODE": street["postcode"](),
                          "CLASSIFICATION": cls, "X": round(street["x"], 1), "Y": round(street["y"], 1),
                          "kind": kind})
        return uprn


def build_llpg(rng: np.random.Generator, n_streets: int = 60) -> pd.DataFrame:
    """The gazetteer (:data:`COLUMNS` + internal ``kind``) of one town of about ``n_streets`` streets."""
    town = _name(rng)
    localities = list(dict.fromkeys(_name(rng) for _ in range(6)))
    g = _Llpg(rng)
    chain_pool = list(rng.choice(_CHAINS, size=4, replace=False))
    used_names: set[tuple[str, str]] = set()
    for s in range(n_streets):
        while True:
            base = _name(rng) if rng.random() < 0.6 else (_name(rng)[:-1] + "S").upper()
            typ = _TYPES[rng.integers(len(_TYPES))][0]
            loc = localities[rng.integers(len(localities))]
            if (base + typ, loc) not in used_names:
                used_names.add((base + typ, loc))
                break
        district, sector, unit = f"ZX{localities.index(loc) + 1}", int(rng.integers(1, 9)), [0]

        def postcode(d: str = district, sec: int = sector, u: list[int] = unit, s: int = s) -> str:
            u[0] += 1
            k = u[0] // 12
            return f"{d} {sec}{'ABDEFGHJLNPQRSTUWXYZ'[k % 20]}{'ABDEFGHJLNPQRSTUWXYZ'[(s * 7 + k // 20) % 20]}"

        st = {"name": f"{base} {typ}", "locality": loc, "town": town, "postcode": postcode,
              "x": float(rng.uniform(400000, 420000)), "y": float(rng.uniform(300000, 320000))}
        n = 0
        for _ in range(int(rng.integers(8, 40))):
            n += 1 + int(rng.random() < 0.06)  # a gap now and then: that number does not exist
            k = rng.random()
            if k < 0.55:
                g.add(st, "house", "RD02", pao_n=str(n))
            elif k < 0.61:
                g.add(st, "house", "RD02", pao_n=str(n))
                for suf in "AB"[: int(rng.integers(1, 3))]:
                    g.add(st, "suffix_house", "RD02", pao_n=str(n), pao_suffix=suf)
            elif k < 0.71:  # a numbered shop with a flat above
                org = (chain_pool[rng.integers(len(chain_pool))] if rng.random() < 0.5
                       else f"{base} {_SHOP_WORDS[rng.integers(len(_SHOP_WORDS))]}")
                if rng.random() < 0.5:
                    shop = g.add(st, "shop", "CR01", pao_n=str(n), org=org)
                    g.add(st, "flat_above", "RD06", parent=shop, pao_n=str(n), sao_text="FIRST FLOOR FLAT")
                else:
                    shell = g.add(st, "shell", "PP", pao_n=str(n))
                    g.add(st, "shop", "CR01", parent=shell, pao_n=str(n), sao_text="GROUND FLOOR", org=org)
                    g.add(st, "flat_above", "RD06", parent=shell, pao_n=str(n), sao_text="FIRST FLOOR FLAT")
            elif k < 0.76:
                org = chain_pool[rng.integers(len(chain_pool))] if rng.random() < 0.5 else f"{base} {_SHOP_WORDS[rng.integers(len(_SHOP_WORDS))]}"
                g.add(st, "shop", "CR01", pao_n=str(n), org=org)
            elif k < 0.85:  # a converted house: floor flats or lettered flats under a shell
                shell = g.add(st, "shell", "PP", pao_n=str(n))
                if rng.random() < 0.6:
                    for sao in ["GROUND FLOOR FLAT", "FIRST FLOOR FLAT", "SECOND FLOOR FLAT"][: int(rng.integers(2, 4))]:
                        g.add(st, "floor_flat", "RD06", parent=shell, pao_n=str(n), sao_text=sao)
                else:
                    for f in "ABC"[: int(rng.integers(2, 4))]:
                        g.add(st, "letter_flat", "RD06", parent=shell, pao_n=str(n), sao_text=f"FLAT {f}")
            elif k < 0.91:  # a block of numbered flats
                name = f"{_name(rng)} {_BLOCK_ENDS[rng.integers(len(_BLOCK_ENDS))]}"
                shell = g.add(st, "shell", "PP", pao_n=str(n), pao_text=name)
                for f in range(1, int(rng.integers(4, 16))):
                    g.add(st, "block_flat", "RD06", parent=shell, pao_n=str(n), pao_text=name, sao_n=str(f),
                          sao_text="FLAT")
            elif k < 0.95:
                n -= 1
                g.add(st, "named_house", "RD03", pao_text=f"{_HOUSE_NAMES[rng.integers(len(_HOUSE_NAMES))]}")
            else:
                g.add(st, "house", "RD02", pao_n=str(n))
    df = pd.DataFrame(g.rows)
    # a named house recurring on one street is not addressable by name: make names unique per street
    dup = df.duplicated(["PAO_TEXT", "STREET", "LOCALITY"], keep="first") & (df["kind"] == "named_house")
    return df[~dup].reset_index(drop=True)
