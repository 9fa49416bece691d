"""Filter the worklist for a listing: by flag status (new / ongoing / escalated / lapsed, or ``current`` = not
lapsed) and by rule.  Used by ``ecins-link worklist``; the panel workspace filters the same way.

A case's status is that of its most pressing flag (``worklist.csv``'s ``status`` column, see
:mod:`ecins_link.report.tables`): a lapsed case is one whose every flag has lapsed.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

STATUSES = ("new", "ongoing", "escalated", "lapsed")
ALIASES = {"current": ("new", "ongoing", "escalated")}


def wanted_statuses(statuses: Iterable[str]) -> set[str]:
    """The statuses asked for (``current`` expanded); a clear error for a status that does not exist."""
    out: set[str] = set()
    for s in statuses:
        key = s.strip().lower()
        if key in ALIASES:
            out |= set(ALIASES[key])
        elif key in STATUSES:
            out.add(key)
        else:
            raise ValueError(f"unknown status {s!r}: use one of {', '.join((*STATUSES, *ALIASES))}")
    return out


def filter_cases(cases: pd.DataFrame, statuses: Iterable[str] = (), rule: str | None = None) -> pd.DataFrame:
    """The worklist rows whose status is one of ``statuses`` (all when none) and whose rules include ``rule``."""
    wanted = wanted_statuses(statuses)
    mask = pd.Series(True, index=cases.index)
    if wanted:
        if "status" not in cases.columns:
            raise ValueError("this worklist has no status column: re-run the score and report stages")
        mask &= cases["status"].isin(wanted)
    if rule:
        rules = cases["rules"].fillna("").astype(str).str.split(";")
        mask &= rules.map(lambda rs: rule in rs)
    return cases[mask]
