"""Decoys: isolated single signals, same-name strangers each holding part of a cocktail, and near misses.

Near misses (``kind = "near_miss"``) hold a whole cocktail whose dates fall just outside the rule's window
(three domestic-abuse incidents over 13 months; ASB reports at one address over 7 months) or whose
"child" was already 18 at every event; a rule that sees the whole history must still not flag them.
"""

from __future__ import annotations

import numpy as np

from ecins_link.synth.scenarios import Planner

_ISOLATED = [("police_occurrences", "DA", "V", "DA_VICTIM"), ("police_occurrences", "MISPER", "P", "MISSING_EPISODE"),
             ("council_contacts", "EDU-PA", "", "SCHOOL_ABSENCE"), ("council_contacts", "ASC-CARE", "", "VULNERABLE_ADULT"),
             ("police_occurrences", "ASB", "V", "ASB_REPORT"), ("council_contacts", "ASC-MH", "", "MH_CONCERN")]


def plant_decoys(pl: Planner, n: int) -> None:
    """``n`` isolated-signal decoys and up to ``n`` same-name-stranger decoys (recorded in ``pl.decoys``)."""
    for k in range(n):
        src, code, role, sig = _ISOLATED[k % len(_ISOLATED)]
        child = code in ("MISPER", "EDU-PA")
        i = pl.pick(f"iso{child}", lambda c=child: ((pl.age >= 10) & (pl.age < 18) if c else pl.adult(18, 80))
                    & pl.settled())
        if i is None:
            continue
        did = f"D{len(pl.decoys) + 1:04d}"
        pl.ev(src, i, code, pl.day(5, 340), did, sig, role, pl.home(i) if src == "police_occurrences" else "")
        pl.decoys.append({"decoy_id": did, "kind": "isolated_signal", "persons": [i], "uprns": [pl.home(i)],
                          "would_fire": None})
    p = pl.p
    names = p["forenames"].to_numpy() + "|" + p["surname"].to_numpy()
    sn = np.flatnonzero(pl.same_name & ~pl.used)
    groups: dict[str, list[int]] = {}
    for i in sn:
        groups.setdefault(names[i], []).append(int(i))
    pairs = [g[:2] for _k, g in sorted(groups.items()) if len(g) >= 2][:n]
    for k, (a, b) in enumerate(pairs):
        if pl.used[a] or pl.used[b] or pl.age[a] < 18 or pl.age[b] < 18:
            continue
        pl.used[[a, b]] = True
        did = f"D{len(pl.decoys) + 1:04d}"
        kind = ["marac_potential_escalation", "multi_agency_concern", "iom_rfg"][k % 3]
        if kind == "marac_potential_escalation":
            for _ in range(2):
                pl.ev("police_occurrences", a, "DA", pl.day(5, 340), did, "DA_VICTIM", "V", pl.home(a))
            pl.ev("council_contacts", b, "DA-IDVA", pl.day(5, 340), did, "DA_CONCERN")
        elif kind == "multi_agency_concern":
            pl.ev("police_occurrences", a, "ASB", pl.day(5, 340), did, "ASB_REPORT", "S", pl.home(a))
            pl.ev("council_contacts", a, "ASC-CARE", pl.day(5, 340), did, "VULNERABLE_ADULT")
            pl.visit(b, pl.day(5, 340), ["SMOKER"], did)
        else:
            for code, sig in (("THEFT", "ACQUISITIVE"), ("VAP", "VIOLENCE")):
                pl.ev("police_occurrences", a, code, pl.day(3, 200), did, sig, "S", pl.home(a))
            pl.ev("police_occurrences", b, "BURG", pl.day(3, 200), did, "ACQUISITIVE", "S", pl.home(b))
        pl.decoys.append({"decoy_id": did, "kind": "same_name_strangers", "persons": [a, b],
                          "uprns": [pl.home(a), pl.home(b)], "would_fire": kind})
    for k in range(n):
        pl.set_era(k % 3)
        try:
            _NEAR_MISSES[k % len(_NEAR_MISSES)](pl)
        finally:
            pl.set_era(0)


def _near_miss(pl: Planner, persons: list[int], uprns: list[str], would_fire: str) -> str:
    did = f"D{len(pl.decoys) + 1:04d}"
    pl.decoys.append({"decoy_id": did, "kind": "near_miss", "persons": persons, "uprns": uprns,
                      "would_fire": would_fire})
    return did


def _marac_spread(pl: Planner) -> None:
    """Three DA incidents from two agencies, the first and last 380-420 days apart (any 365 days hold two)."""
    v = pl.pick("nm_marac", lambda: pl.adult(18, 60) & (pl.p["sex"].to_numpy() == "F") & pl.settled())
    if v is None:
        return
    did = _near_miss(pl, [v], [pl.home(v)], "marac_potential_escalation")
    last = pl.day(5, 200)
    gap = int(pl.rng.integers(380, 421))
    mid = int(pl.rng.integers(120, gap - 120))
    pl.ev("police_occurrences", v, "DA", last - np.timedelta64(gap, "D"), did, "DA_VICTIM", "V", pl.home(v))
    pl.ev("council_contacts", v, "DA-IDVA", last - np.timedelta64(gap - mid, "D"), did, "DA_CONCERN")
    pl.ev("police_occurrences", v, "DA", last, did, "DA_VICTIM", "V", pl.home(v))


def _asb_spread(pl: Planner) -> None:
    """Three ASB reports at one home from two agencies, the first and last 200-240 days apart (window 183)."""
    t = pl.pick("nm_asb", lambda: pl.adult(18, 64) & pl.settled() & (pl.p["pos"].to_numpy() == 0))
    who = [pl.pick("adult", lambda: pl.adult(18, 80)) for _ in range(2)]
    if t is None or None in who:
        return
    loc = pl.home(t)
    did = _near_miss(pl, [t, *who], [loc], "asb_hotspot")
    last = pl.day(5, 150)
    gap = int(pl.rng.integers(200, 241))
    pl.ev("police_occurrences", who[0], "ASB", last - np.timedelta64(gap, "D"), did, "ASB_REPORT", "V", loc)
    pl.ev("council_contacts", who[1], "EH-NOISE", last - np.timedelta64(gap // 2, "D"), did, "ASB_NOISE", loc=loc)
    pl.ev("police_occurrences", who[0], "ASB", last, did, "ASB_REPORT", "V", loc)


def _cse_adult(pl: Planner) -> None:
    """Missing episodes, school absence and an exploitation concern, all after the person's 18th birthday."""
    c = pl.pick("nm_cse", lambda: pl.aged(18, 20, 5, 340) & pl.settled() & ~pl.same_name)
    if c is None:
        return
    did = _near_miss(pl, [c], [pl.home(c)], "cse_risk")
    for _ in range(2):
        pl.ev("police_occurrences", c, "MISPER", pl.day(5, 340), did, "MISSING_EPISODE", "P", pl.home(c))
    pl.ev("council_contacts", c, "EDU-PA", pl.day(5, 340), did, "SCHOOL_ABSENCE")
    pl.ev("council_contacts", c, "CSC-CSE", pl.day(5, 340), did, "EXPLOITATION_CONCERN")


_NEAR_MISSES = (_marac_spread, _asb_spread, _cse_adult)
