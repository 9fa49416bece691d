"""Decoys: isolated single signals, and same-name strangers each holding part of a cocktail."""

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
