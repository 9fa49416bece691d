"""The town's gazetteer (an LLPG-like list of addressable properties) and agency-style address rendering."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ecins_link.synth import vocab
from ecins_link.synth.written_fits import FitIndex

_INWARD = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))
_MAX_STALL = 5_000  # consecutive rejected street draws before a street name may recur in one more locality


def build_gazetteer(rng: np.random.Generator, n_residential: int) -> pd.DataFrame:
    """About ``n_residential`` residential UPRNs plus a few organisations, on streets grouped by locality.

    Columns: UPRN, SAO_TEXT, PAO_NUMBER, PAO_TEXT, ORGANISATION, STREET, LOCALITY, TOWN, POSTCODE, and the
    internal ``residential``, ``street_id``, ``street_base``, ``street_type``, ``district``.
    """
    pl = vocab.places()
    localities = pl["localities"]
    bases = pl["street_bases"]
    types = pl["street_types"]
    type_p = np.array([t[2] for t in types], float)
    type_p /= type_p.sum()
    n_streets = max(12, int(n_residential / 38))
    seen: set[tuple[str, str, int]] = set()
    per_name: dict[tuple[str, str], int] = {}
    streets: list[tuple[str, str, int]] = []
    for i, (base, typ) in enumerate(pl["lookalikes"]):
        key = (base, typ, i % len(localities))
        seen.add(key)
        per_name[key[:2]] = per_name.get(key[:2], 0) + 1
        streets.append(key)
    # A street name recurs in at most `per_name_cap` localities (3, as in a real town's lookalike streets).  A town
    # too big for that many distinct names raises the cap one step whenever sampling stalls, so every size
    # finishes; towns that never stall come out exactly as before.
    per_name_cap, stalled = 3, 0
    while len(streets) < n_streets:
        key = (bases[int(rng.integers(len(bases)))], types[int(rng.choice(len(types), p=type_p))][0],
               int(rng.integers(len(localities))))
        if key not in seen and per_name.get(key[:2], 0) < per_name_cap:
            seen.add(key)
            per_name[key[:2]] = per_name.get(key[:2], 0) + 1
            streets.append(key)
            stalled = 0
        elif (stalled := stalled + 1) > _MAX_STALL:
            if per_name_cap >= len(localities):
                raise ValueError(f"town too large for the street vocabulary: {n_streets} streets wanted, "
                                 f"{len(streets)} distinct (name, locality) pairs found")
            per_name_cap, stalled = per_name_cap + 1, 0
    rows: list[tuple] = []
    blocks = pl["block_names"]
    houses = pl["house_names"]
    orgs = pl["organisations"]
    n_res = 0
    for sid, _street in enumerate(streets):
        n_props = int(np.clip(rng.lognormal(3.3, 0.6), 6, 160))
        number = 0
        for _ in range(n_props):
            number += 1
            kind = rng.random()
            if kind < 0.035:
                rows.append((sid, "", str(number), "", orgs[int(rng.integers(len(orgs)))], False))
            elif kind < 0.06:
                rows.append((sid, "", "", houses[int(rng.integers(len(houses)))], "", True))
                number -= 1
            elif kind < 0.085:
                name = blocks[int(rng.integers(len(blocks)))]
                for f in range(1, int(rng.integers(6, 31)) + 1):
                    rows.append((sid, f"FLAT {f}", str(number), name, "", True))
            elif kind < 0.13:
                for f in ["A", "B", "C"][: int(rng.integers(2, 4))]:
                    rows.append((sid, f"FLAT {f}", str(number), "", "", True))
            else:
                rows.append((sid, "", str(number), "", "", True))
        if len(rows) >= n_residential * 1.04 and sid >= len(pl["lookalikes"]):
            n_res = sum(1 for r in rows if r[5])
        if n_res >= n_residential and sid >= len(pl["lookalikes"]):
            streets = streets[: sid + 1]
            break
    g = pd.DataFrame(rows, columns=["street_id", "SAO_TEXT", "PAO_NUMBER", "PAO_TEXT", "ORGANISATION",
                                    "residential"])
    sdf = pd.DataFrame(streets, columns=["street_base", "street_type", "loc"])
    g = g.join(sdf, on="street_id")
    g["STREET"] = g["street_base"] + " " + g["street_type"]
    g["LOCALITY"] = [localities[i][0] for i in g["loc"]]
    g["district"] = [localities[i][1] for i in g["loc"]]
    g["TOWN"] = pl["town"]
    g["POSTCODE"] = _postcodes(rng, g, pl["postcode_area"])
    gaps = rng.integers(1, 40, size=len(g))
    g.insert(0, "UPRN", (100012000000 + np.cumsum(gaps)).astype(str))
    return g.drop(columns=["loc"]).reset_index(drop=True)


def _postcodes(rng: np.random.Generator, g: pd.DataFrame, area: str) -> list[str]:
    """One postcode per run of about 14 properties of a street; unique across the town."""
    pools: dict[int, list[str]] = {}
    used: dict[int, int] = {}
    out: list[str] = []
    prev_sid, left, cur = -1, 0, ""
    for sid, district in zip(g["street_id"].to_numpy(), g["district"].to_numpy(), strict=True):
        if sid != prev_sid or left == 0:
            if district not in pools:
                combos = [f"{s}{a}{b}" for s in range(1, 10) for a in _INWARD for b in _INWARD]
                pools[district] = [combos[i] for i in rng.permutation(len(combos))]
                used[district] = 0
            cur = f"{area}{district} {pools[district][used[district]]}"
            used[district] += 1
            prev_sid, left = sid, int(rng.integers(8, 20))
        out.append(cur)
        left -= 1
    return out


def _title(s: str) -> str:
    return " ".join(w.capitalize() for w in s.split(" "))


@dataclass
class FormStyle:
    """How one town's agencies write the address forms: its own random stream and drawn shares
    (``data/address_forms.toml``, ``[render.shares]``), so the forms never move the town's other streams."""

    rng: np.random.Generator
    glued_flat: float
    premises_name: float
    shells: pd.DataFrame | None = None  # the gazetteer's building shells (ambiguity of a text: FitIndex)
    _counts: dict | None = None
    _fits: FitIndex | None = None

    @classmethod
    def draw(cls, rng: np.random.Generator) -> FormStyle:
        """Shares drawn uniformly in their ranges from ``rng`` (which the style then keeps)."""
        sh = vocab.address_forms()["render"]["shares"]
        return cls(rng, float(rng.uniform(*sh["glued_flat"])), float(rng.uniform(*sh["premises_name"])))

    def premises_count(self, gaz: pd.DataFrame, scope: int, key: tuple) -> int:
        """Organisations with this name in the area a premises-name text gives (0 street + locality,
        1 locality, 2 town)."""
        if self._counts is None:
            orgs = gaz[gaz["ORGANISATION"] != ""]
            self._counts = {k: orgs.groupby(["ORGANISATION", *cols]).size().to_dict() for k, cols in
                            enumerate((["STREET", "LOCALITY"], ["LOCALITY"], ["TOWN"]))}
        return int(self._counts[scope].get(key, 0))

    def fits(self, gaz: pd.DataFrame) -> FitIndex:
        """The town's :class:`~ecins_link.synth.written_fits.FitIndex` (built once per style)."""
        if self._fits is None or self._fits.gaz is not gaz:
            self._fits = FitIndex(gaz, self.shells)
        return self._fits


@dataclass
class Rendered:
    """Address texts with, per text, its written form, whether it names more than one property, and the
    postcodes of the properties its written parts fit (:mod:`~ecins_link.synth.written_fits`; empty where not
    judged, as for a premises name)."""

    texts: list[str]
    forms: list[str]
    ambiguous: list[bool]
    rivals: list[tuple[str, ...]] = field(default_factory=list)


_KIND_FORM = {"house": "house", "suffixed_house": "suffixed_number", "named_house": "named_house",
              "block_flat": "flat_number", "letter_flat": "flat_letter", "floor_flat": "floor_descriptor",
              "flat_above": "flat_above_shop", "shop": "shop_with_name"}


def _flat_form(kind: str, flat: str, f: str, v: bool, q: np.ndarray, style: FormStyle | None) -> tuple[str, str]:
    """(flat text, form) for a floor flat, a flat above a shop or a numbered flat that agencies glue (F3)."""
    forms = vocab.address_forms()
    if kind in ("floor_flat", "flat_above"):
        opts = forms["flat_above"]["forms"] if kind == "flat_above" else forms["descriptors"][flat]
        return (opts[int(q[0] * len(opts))] if v else flat), _KIND_FORM[kind]
    if kind == "block_flat" and style is not None and v and q[0] < style.glued_flat:
        return (f"F{f}" if q[2] < 0.5 else f"FL{f}"), "flat_glued"
    return flat, _KIND_FORM.get(kind, "flat")


def render_addresses(rng: np.random.Generator, gaz: pd.DataFrame, uprns: np.ndarray, variant_rate: float,
                     upper: bool, style: FormStyle | None = None) -> Rendered:
    """One address line per UPRN in an agency's own way: flat styles, abbreviations, missing parts.

    ``variant_rate`` is how often a non-canonical form is used; ``upper`` writes upper case, else title case.
    ``style`` adds the forms of :mod:`~ecins_link.synth.llpg_forms` (floor descriptors, glued flat numbers,
    premises by name) from its own stream; ``rng``'s draws do not depend on it.
    """
    idx = gaz.index.get_indexer(uprns) if len(uprns) else np.array([], int)
    sub = gaz["SAO_TEXT"].to_numpy()[idx]
    num = gaz["PAO_NUMBER"].to_numpy()[idx]
    bld = gaz["PAO_TEXT"].to_numpy()[idx]
    org = gaz["ORGANISATION"].to_numpy()[idx]
    base = gaz["street_base"].to_numpy()[idx]
    typ = gaz["street_type"].to_numpy()[idx]
    loc = gaz["LOCALITY"].to_numpy()[idx]
    town = gaz["TOWN"].to_numpy()[idx]
    kind = gaz["kind"].to_numpy()[idx] if "kind" in gaz else np.full(len(idx), "", object)
    street_full = gaz["STREET"].to_numpy()[idx]
    abbrev = {t[0]: t[1] for t in vocab.places()["street_types"]}
    n = len(idx)
    r = rng.random((n, 6))
    vary = rng.random(n) < variant_rate
    q = style.rng.random((n, 3)) if style is not None else np.ones((n, 3))
    out: list[str] = []
    forms, amb = [_KIND_FORM.get(k, "house") for k in kind], [False] * n
    rivals: list[tuple[str, ...]] = [()] * n
    fits = style.fits(gaz) if style is not None else FitIndex(gaz)
    for i in range(n):
        v = vary[i]
        street = f"{base[i]} {abbrev[typ[i]] if v and r[i, 0] < 0.6 else typ[i]}"
        parts: list[str] = []
        flat = sub[i]
        as_number, glued = "", False  # a flat label that reads as a house number: "19, Fenton Rd", "61A Kings Way"
        if flat and kind[i] in ("floor_flat", "flat_above", "block_flat"):
            flat, forms[i] = _flat_form(kind[i], flat, flat.split(" ", 1)[-1], v, q[i], style)
        if flat and forms[i] in ("flat_number", "flat_letter", "flat"):
            f = flat.split(" ", 1)[1]
            if v and r[i, 1] < 0.25:
                flat = f"APARTMENT {f}" if r[i, 1] < 0.08 else f"APT {f}"
            elif v and r[i, 1] < 0.5:
                flat, as_number = f, f
            if f.isalpha() and not bld[i] and v and r[i, 1] > 0.8:
                parts.append(f"{num[i]}{f}")
                flat, as_number, glued = "", f"{num[i]}{f}", True
        if org[i] and style is not None and q[i, 1] < style.premises_name:  # premises by name, no number
            scope = int(q[i, 2] * 3)
            area = [f"{street}, {loc[i]}", loc[i], town[i]][scope]
            key = (org[i], *([street_full[i], loc[i]], [loc[i]], [town[i]])[scope])
            forms[i], amb[i] = "premises_name", style.premises_count(gaz, scope, key) > 1
            text = f"{org[i]}, {area}" + (f", {town[i]}" if scope < 2 and (not v or r[i, 5] < 0.75) else "")
            out.append(text if upper else _title(text))
            continue
        written: dict[str, str] = {}
        if org[i] and (not v or r[i, 2] < 0.7):
            parts.append(org[i])
            written["ORGANISATION"] = org[i]
        elif org[i]:
            forms[i] = "shop_number_only"
        if flat:
            parts.append(flat)
        drop_building = bool(bld[i] and num[i] and v and r[i, 2] > 0.85)
        drop_number = bool(bld[i] and num[i] and v and not drop_building and r[i, 3] < 0.3)
        if bld[i] and not drop_building:
            parts.append(bld[i])
            written["PAO_TEXT"] = bld[i]
        if num[i] and parts and parts[-1] == f"{num[i]}{sub[i][-1:]}":
            parts.append(street)
            if glued:  # "61A": the number is written; a bare "17" for flat 17 of number 1 writes no number
                written["PAO_NUMBER"] = num[i]
        elif num[i] and not drop_number:
            parts.append(f"{num[i]} {street}")
            written["PAO_NUMBER"] = num[i]
        else:
            parts.append(street)
        if not v or r[i, 4] < 0.6:
            parts.append(loc[i])
            written["LOCALITY"] = loc[i]
        if not v or r[i, 5] < 0.75:
            parts.append(town[i])
            written["TOWN"] = town[i]
        rivals[i] = fits.postcodes(street_full[i], sub[i] if sub[i] else "", written)
        if as_number and (glued or not {"PAO_NUMBER", "PAO_TEXT"} & set(written)):
            # the label read as the number of a house of this street fits it too
            alt = {k: w for k, w in written.items() if k not in ("PAO_NUMBER", "PAO_TEXT")}
            rivals[i] += fits.postcodes(street_full[i], "", {**alt, "PAO_NUMBER": as_number})
        amb[i] = len(rivals[i]) > 1
        sep = " " if v and r[i, 3] > 0.9 else ", "
        text = sep.join(parts)
        out.append(text if upper else _title(text))
    return Rendered(out, forms, amb, rivals)


def render_location(rng: np.random.Generator, gaz: pd.DataFrame, uprns: np.ndarray,
                    style: FormStyle | None = None) -> Rendered:
    """Police-style free-text locations: 'O/S 12 High St', 'Rear of ...', premises names (form
    ``position_words`` where a position word is written before the address)."""
    got = render_addresses(rng, gaz, uprns, variant_rate=0.9, upper=False, style=style)
    prefixes = np.array(["", "", "", "O/S ", "Outside ", "Rear of ", "Near ", "In ", "Junction near "], object)
    pick = prefixes[rng.integers(0, len(prefixes), size=len(got.texts))]
    forms = [f if p in ("", "In ") else "position_words" for p, f in zip(pick, got.forms, strict=True)]
    return Rendered([p + t for p, t in zip(pick, got.texts, strict=True)], forms, got.ambiguous, got.rivals)
