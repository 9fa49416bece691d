"""Which gazetteer properties an address text fits, judged from the parts the synthetic agency wrote.

The truth's ``ambiguous`` flag (``truth/addresses.csv``) marks a text that cannot name one property: no matcher,
human or machine, could tell which was meant.  A text fits a property when every part it writes agrees with it:

- the street always (the name as the gazetteer has it; abbreviations do not matter),
- the sub-building (flat) it names, or none -- a text without a flat does not fit the flats of a building,
- the house number, building name and organisation when written,
- the locality and town when written,
- the postcode when the record carries one (:func:`narrowed_by_postcode`).

"17 East Street, Northtown" fits two houses where Northtown has an East Street in two localities; "Flat 2, St
Johns Court, Ashfield Road" fits two flats where two blocks of that name stand on one street.  Neither is a
matcher's failure, so the benchmarks report them apart, as ``address-errors`` reports its collisions apart.

The judgement is the generator's own (what it wrote, against the gazetteer it wrote from); it draws no random
numbers, so a town's texts do not change with it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OPTIONAL_PARTS = ("PAO_NUMBER", "PAO_TEXT", "ORGANISATION", "LOCALITY", "TOWN")


class FitIndex:
    """The postcodes of the gazetteer properties agreeing with a set of written parts, one lookup table per
    combination of parts written (built when first needed)."""

    def __init__(self, gaz: pd.DataFrame, shells: pd.DataFrame | None = None) -> None:
        """``gaz``: the properties (columns STREET, SAO_TEXT, POSTCODE and :data:`OPTIONAL_PARTS`); ``shells``:
        the gazetteer's building shells (parents of flats, no sub-building), which a text without a flat fits."""
        self.gaz = gaz
        cols = ["STREET", "SAO_TEXT", *OPTIONAL_PARTS, "POSTCODE"]
        frames = [gaz[cols]]
        if shells is not None and len(shells):
            frames.append(shells.reindex(columns=cols))
        self._all = pd.concat(frames, ignore_index=True).fillna("")
        self._tables: dict[tuple[str, ...], dict[tuple, tuple[str, ...]]] = {}

    def postcodes(self, street: str, sub_building: str, written: dict[str, str]) -> tuple[str, ...]:
        """Postcodes of every property on ``street`` with this ``sub_building`` ("" for none) agreeing with each
        part in ``written`` (column of :data:`OPTIONAL_PARTS` -> value); one entry per property."""
        cols = tuple(c for c in OPTIONAL_PARTS if c in written)
        table = self._tables.get(cols)
        if table is None:
            keys = ["STREET", "SAO_TEXT", *cols]
            table = self._all.groupby(keys, sort=False)["POSTCODE"].agg(tuple).to_dict()
            self._tables[cols] = table
        key = (street, sub_building, *(written[c] for c in cols))
        return table.get(key, ())


def _norm_postcode(pc: object) -> str:
    return str(pc or "").upper().replace(" ", "")


def narrowed_by_postcode(ambiguous: list[bool], rivals: list[tuple[str, ...]],
                         postcodes: np.ndarray | list | None) -> np.ndarray:
    """``ambiguous`` with each text whose record's postcode is the postcode of exactly one of its ``rivals``
    (the properties its written parts fit) made unambiguous; a missing or mistyped postcode narrows nothing."""
    out = np.array(ambiguous, dtype=bool)
    if postcodes is None:
        return out
    for i in np.flatnonzero(out):
        if len(rivals[i]) < 2:
            continue
        pc = _norm_postcode(postcodes[i])
        if pc and sum(_norm_postcode(r) == pc for r in rivals[i]) == 1:
            out[i] = False
    return out
