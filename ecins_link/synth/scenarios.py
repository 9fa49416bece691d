"""Planted cross-agency scenarios (one kind per rule) and decoys.

Each scenario's evidence is split so that no single agency holds enough to flag it; the pieces are recorded
through the normal renderers, so they carry the same name / address noise as everything else.

Scenarios are spread over the whole history: each is planted in an *era* (recent, 12-24 months ago, more than
24 months ago; :data:`ERAS`), i.e. all its dates are shifted back by the era's offset.  People are chosen by
their age *at the time of the events* (a child of a shifted ``cse_risk`` scenario may be 18 or more today).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ecins_link.synth.activity import EVENT_COLUMNS

KINDS = ["toxic_trio", "marac_potential_escalation", "fire_safe_and_well", "cuckooing", "cse_risk",
         "asb_hotspot", "multi_agency_concern", "iom_rfg"]
# (share of scenarios, base shift in days, jitter in days): recent, 12-24 months ago, more than 24 months ago
ERAS = ((0.4, 0, 1), (0.3, 400, 120), (0.3, 800, 160))
ERA_CYCLE = (0, 1, 2, 1, 2, 0, 2, 0, 1, 0)  # deterministic era order: 40 % recent, 60 % older than 12 months
SW_FLAGS = ["SMOKER", "LIMITED_MOBILITY", "LIVES_ALONE", "ALCOHOL", "DRUGS", "MENTAL_HEALTH", "HOARDING",
            "NO_SMOKE_ALARM"]


class Planner:
    """Chooses people and places for scenarios and decoys and records their event intents."""

    def __init__(self, rng: np.random.Generator, people: pd.DataFrame, gaz: pd.DataFrame,
                 as_of: np.datetime64) -> None:
        self.rng, self.p, self.gaz, self.as_of = rng, people, gaz, as_of
        self.used = people["hard_case"].to_numpy() == "father_son"
        self.rows: list[dict] = []
        self.scenarios: list[dict] = []
        self.decoys: list[dict] = []
        self.occ = 0
        self.age = people["age"].to_numpy()
        self.same_name = people["hard_case"].to_numpy() == "same_name"
        self._cands: dict[str, list[int]] = {}
        self._masks: dict[tuple, np.ndarray] = {}
        self._settled = people["prev_uprn"].to_numpy() == ""
        self._visits: list[dict] = []
        self.police_dups: list[int] = []
        dob = people["dob"].to_numpy().astype("datetime64[D]")
        self.age_days = (as_of - dob).astype("int64")  # age in days at as-of
        self.era = 0                                      # era of the scenario being planted (ERAS index)
        self.shift = 0                                    # its dates are shifted back by this many days

    # -- helpers ---------------------------------------------------------------------------------------------
    def pick(self, key: str, mask: Callable[[], np.ndarray]) -> int | None:
        """A random unused person satisfying ``mask()`` (cached under ``key``; now marked used), or None."""
        key = f"{key}@{self.era}"
        cand = self._cands.get(key)
        if cand is None:
            cand = list(self.rng.permutation(np.flatnonzero(mask())))
            self._cands[key] = cand
        while cand:
            i = int(cand.pop())
            if not self.used[i]:
                self.used[i] = True
                return i
        return None

    def day(self, lo: int, hi: int) -> np.datetime64:
        """A date ``lo``..``hi`` days before as-of, shifted back by the current era's offset."""
        return self.as_of - np.timedelta64(self.shift + int(self.rng.integers(lo, hi)), "D")

    def set_era(self, era: int) -> None:
        """Plant what follows in era ``era`` (0 = recent) with a jittered shift."""
        _share, base, jitter = ERAS[era]
        self.era = era
        self.shift = base + int(self.rng.integers(0, jitter))

    def aged(self, lo: float, hi: float, back_lo: int = 0, back_hi: int = 0) -> np.ndarray:
        """People aged at least ``lo`` years on the earliest possible date of the current era's events
        (``back_hi`` days before as-of plus the largest shift) and under ``hi + 1`` on the latest
        (``back_lo`` days plus the smallest shift)."""
        _share, base, jitter = ERAS[self.era]
        oldest = self.age_days - (base + jitter + back_hi)
        newest = self.age_days - (base + back_lo)
        return (oldest >= lo * 365.25) & (newest < (hi + 1) * 365.25 - 1)

    def home(self, i: int) -> str:
        return str(self.p["uprn"].iat[i])

    def ev(self, source: str, person: int, code: str, date: np.datetime64, tag: str, signal: str = "",
           role: str = "", loc: str = "", occ: int | None = None) -> None:
        if occ is None and source == "police_occurrences":
            occ = self.new_occ()
        self.rows.append({"source": source, "person": person, "code": code, "role": role, "date": date,
                          "minute": int(self.rng.integers(0, 1440)), "loc_uprn": loc,
                          "occ": -1 if occ is None else occ, "tag": tag, "signal": signal})

    def new_occ(self) -> int:
        self.occ += 1
        return self.occ - 1

    def visit(self, person: int, date: np.datetime64, flags: list[str], tag: str) -> None:
        self._visits.append({"person": person, "date": date, "tag": tag, **{c: c in flags for c in SW_FLAGS}})

    def visits_frame(self) -> pd.DataFrame:
        """All planted Safe and Well visits."""
        return pd.DataFrame(self._visits, columns=["person", "date", "tag", *SW_FLAGS])

    def adult(self, lo: int = 18, hi: int = 64) -> np.ndarray:
        """Not a same-name hard case, aged ``lo``..``hi`` throughout the current era (see :meth:`aged`)."""
        key = ("adult", lo, hi, self.era)
        if key not in self._masks:
            self._masks[key] = self.aged(lo, hi, 0, 730) & ~self.same_name
        return self._masks[key]

    def settled(self) -> np.ndarray:
        return self._settled

    def add(self, kind: str, persons: list[int], uprns: list[str]) -> str:
        sid = f"S{len(self.scenarios) + 1:04d}"
        self.scenarios.append({"scenario_id": sid, "kind": kind, "persons": persons, "uprns": uprns})
        return sid

    def events(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=EVENT_COLUMNS)

    # -- scenario kinds ----------------------------------------------------------------------------------------
    def plant(self, kind: str, era: int = 0) -> None:
        """Plant one scenario of ``kind`` in era ``era`` (see :data:`ERAS`)."""
        self.set_era(era)
        try:
            getattr(self, f"_{kind}")()
        finally:
            self.set_era(0)

    def plant_all(self, per_kind: int, kinds: list[str]) -> None:
        """``per_kind`` scenarios of every kind, their eras cycling through :data:`ERA_CYCLE`."""
        n = 0
        for _ in range(per_kind):
            for kind in kinds:
                self.plant(kind, ERA_CYCLE[n % len(ERA_CYCLE)])
                n += 1

    def tag_dates(self) -> dict[str, tuple[np.datetime64, np.datetime64]]:
        """First and last planted date of every scenario / decoy tag (events and Safe and Well visits)."""
        out: dict[str, tuple[np.datetime64, np.datetime64]] = {}
        for row in [*self.rows, *self._visits]:
            tag, d = row["tag"], np.datetime64(row["date"], "D")
            lo, hi = out.get(tag, (d, d))
            out[tag] = (min(lo, d), max(hi, d))
        return out

    def _toxic_trio(self) -> None:
        p = self.p
        a1 = self.pick("trio", lambda: (p["hh_type"].to_numpy() == "family") & (p["pos"].to_numpy() == 0)
                       & self.settled() & ~self.same_name & (p["hh_size"].to_numpy() >= 3))
        if a1 is None:
            return
        a2, kid = a1 + 1, a1 + 2
        child_then = self.aged(0.5, 17, 0, 900)  # born before, and under 18 at, every planted date
        if self.used[a2] or self.used[kid] or not child_then[kid] or not self.aged(18, 120, 0, 900)[a2]:
            return
        self.used[[a2, kid]] = True
        social = bool(p["social"].iat[a1])
        men, women = (a1, a2) if p["sex"].iat[a1] == "M" else (a2, a1)
        sid = self.add("toxic_trio", [a1, a2, kid], [self.home(a1)])
        da = self.rng.choice(["police", "council"] + (["housing"] if social else []))
        mh = self.rng.choice(["council", "police", "fire"])
        sub = self.rng.choice(["council", "police", "fire"])
        while da == mh == sub:
            sub = self.rng.choice(["council", "fire"])
        d = lambda: self.day(5, 330)  # noqa: E731
        if da == "police":
            o, when = self.new_occ(), d()
            self.ev("police_occurrences", women, "DA", when, sid, "DA_VICTIM", "V", self.home(a1), o)
            self.ev("police_occurrences", men, "DA", when, sid, "DA_SUSPECT", "S", self.home(a1), o)
        elif da == "housing":
            self.ev("housing_cases", women, "DV", d(), sid, "DA_CONCERN")
        else:
            self.ev("council_contacts", women, "DA-IDVA", d(), sid, "DA_CONCERN")
        flags: list[str] = []
        who_mh = int(self.rng.choice([a1, a2]))
        if mh == "council":
            self.ev("council_contacts", who_mh, "ASC-MH", d(), sid, "MH_CONCERN")
        elif mh == "police":
            self.ev("police_occurrences", who_mh, "S136", d(), sid, "MH_CONCERN", "P", self.home(a1))
        else:
            flags.append("MENTAL_HEALTH")
        if sub == "council":
            self.ev("council_contacts", men, "SMS-REF", d(), sid, "SUBSTANCE_MISUSE")
        elif sub == "police":
            self.ev("police_occurrences", men, "DRUGPOSS", d(), sid, "DRUG_POSSESSION", "S", self.home(a1))
        else:
            flags.append(str(self.rng.choice(["ALCOHOL", "DRUGS"])))
        if flags:
            self.visit(a1, d(), flags, sid)
        when = self.day(30, 900)
        at_school = (self.age_days[kid] - (self.as_of - when).astype("int64")) >= 5 * 365.25  # age on that date
        self.ev("council_contacts", kid, "EDU-ADM" if at_school else "INFO", when, sid)

    def _marac_potential_escalation(self) -> None:
        p = self.p
        v = self.pick("marac", lambda: self.adult(18, 60) & (p["sex"].to_numpy() == "F") & self.settled())
        if v is None:
            return
        pos = int(p["pos"].iat[v])
        partner = v - 1 if pos == 1 and p["hh_type"].iat[v] in ("couple", "family") else -1
        if partner >= 0:
            self.used[partner] = True
        sid = self.add("marac_potential_escalation", [v], [self.home(v)])
        if self.rng.random() < 0.5:  # the victim is known to police under two nominal records
            self.police_dups.append(v)
        n_pol = int(self.rng.integers(1, 3))
        others = ["council", "council"] + (["housing", "housing"] if p["social"].iat[v] else [])
        n_other = int(self.rng.integers(max(1, 3 - n_pol), 3))
        for _ in range(n_pol):
            o, when = self.new_occ(), self.day(5, 340)
            self.ev("police_occurrences", v, "DA", when, sid, "DA_VICTIM", "V", self.home(v), o)
            if partner >= 0:
                self.ev("police_occurrences", partner, "DA", when, sid, "", "S", self.home(v), o)
        for src in self.rng.permutation(others)[:n_other]:
            if src == "council":
                self.ev("council_contacts", v, "DA-IDVA", self.day(5, 340), sid, "DA_CONCERN")
            else:
                self.ev("housing_cases", v, "DV", self.day(5, 340), sid, "DA_CONCERN")

    def _fire_safe_and_well(self) -> None:
        p = self.p
        older = self.rng.random() < 0.6
        i = self.pick(f"fire{older}", lambda: (self.adult(65, 99) if older else self.adult(30, 64))
                      & (p["hh_size"].to_numpy() >= 2) & self.settled())
        if i is None:
            return
        sid = self.add("fire_safe_and_well", [i], [self.home(i)])
        self.visit(i, self.day(10, 700), [str(self.rng.choice(["SMOKER", "LIMITED_MOBILITY", "NO_SMOKE_ALARM"]))],
                   sid)
        options = [("council", "ASC-MH", "MH_CONCERN"), ("police", "DRUGPOSS", "DRUG_POSSESSION")]
        if p["social"].iat[i]:
            options.append(("housing", "HRD", "HOARDING"))
        for j in self.rng.permutation(len(options))[:2]:
            src, code, sig = options[int(j)]
            source = {"council": "council_contacts", "police": "police_occurrences", "housing": "housing_cases"}[src]
            self.ev(source, i, code, self.day(10, 700), sid, sig, "S" if src == "police" else "",
                    self.home(i) if src == "police" else "")

    def _cuckooing(self) -> None:
        p = self.p
        r = self.pick("cuckoo", lambda: np.isin(p["hh_type"].to_numpy(), ["single_young", "single_old"])
                      & self.settled() & self.adult(25, 85))
        if r is None:
            return
        loc = self.home(r)
        n_vis = int(self.rng.integers(4, 7))
        young = lambda: self.adult(17, 35) & (p["sex"].to_numpy() == "M")  # noqa: E731
        visitors = [self.pick("young_m", young) for _ in range(n_vis)]
        visitors = [v for v in visitors if v is not None]
        sid = self.add("cuckooing", [r, *visitors], [loc])
        if p["social"].iat[r] and self.rng.random() < 0.4:
            self.ev("housing_cases", r, "WEL", self.day(5, 85), sid, "WELFARE_CONCERN")
        else:
            code = str(self.rng.choice(["ASC-CARE", "ASC-SG"]))
            self.ev("council_contacts", r, code, self.day(5, 85), sid,
                    "VULNERABLE_ADULT" if code == "ASC-CARE" else "ADULT_SAFEGUARDING")
        for k, v in enumerate(visitors):
            code = "DRUGSUP" if k == 0 else str(self.rng.choice(["DRUGPOSS", "ASB", "WEAP", "VAP", "DRUGSUP"]))
            sig = {"DRUGSUP": "DRUG_SUPPLY", "DRUGPOSS": "DRUG_POSSESSION", "ASB": "ASB_REPORT",
                   "WEAP": "WEAPONS", "VAP": "VIOLENCE"}[code]
            o, when = self.new_occ(), self.day(3, 85)
            self.ev("police_occurrences", v, code, when, sid, sig, "S", loc, o)
            if k == 0 and self.rng.random() < 0.5:
                self.ev("police_occurrences", r, code, when, sid, "", "W", loc, o)

    def _cse_risk(self) -> None:
        p = self.p
        c = self.pick("teen", lambda: self.aged(12, 17, 5, 340) & self.settled() & ~self.same_name)
        if c is None:
            return
        sid = self.add("cse_risk", [c], [self.home(c)])
        self.scenarios[-1]["child_now_adult"] = bool(self.age_days[c] >= 18 * 365.25)
        for _ in range(int(self.rng.integers(2, 4))):
            self.ev("police_occurrences", c, "MISPER", self.day(5, 340), sid, "MISSING_EPISODE", "P", self.home(c))
        code = str(self.rng.choice(["EDU-PA", "EDU-PA", "EDU-EXC"]))
        self.ev("council_contacts", c, code, self.day(5, 340), sid,
                "SCHOOL_ABSENCE" if code == "EDU-PA" else "SCHOOL_EXCLUSION")
        older = lambda: self.adult(19, 35) & (p["sex"].to_numpy() == "M")  # noqa: E731
        adult = self.pick("young_m19", older) if self.rng.random() < 0.5 else None
        if adult is None:
            self.ev("council_contacts", c, "CSC-CSE", self.day(5, 340), sid, "EXPLOITATION_CONCERN")
            return
        self.scenarios[-1]["persons"].append(adult)
        o, when = self.new_occ(), self.day(5, 340)
        code = str(self.rng.choice(["DRUGSUP", "WEAP"]))
        loc = self.gaz["UPRN"].iat[int(self.rng.integers(len(self.gaz)))]
        self.ev("police_occurrences", adult, code, when, sid, "DRUG_SUPPLY" if code == "DRUGSUP" else "WEAPONS",
                "S", loc, o)
        self.ev("police_occurrences", c, code, when, sid, "", "W", loc, o)

    def _asb_hotspot(self) -> None:
        p = self.p
        gaz = self.gaz
        if self.rng.random() < 0.35:
            orgs = np.flatnonzero(gaz["ORGANISATION"].to_numpy() != "")
            loc = gaz["UPRN"].iat[int(orgs[int(self.rng.integers(len(orgs)))])] if len(orgs) else None
            tenant = None
        else:
            tenant = self.pick("tenant", lambda: self.adult(18, 64) & p["social"].to_numpy()
                               & (p["pos"].to_numpy() == 0) & self.settled())
            loc = self.home(tenant) if tenant is not None else None
        if loc is None:
            return
        sid = self.add("asb_hotspot", [] if tenant is None else [tenant], [loc])
        plan = ["police", "police", "council"] if tenant is None else \
            list(self.rng.permutation(["police", "housing", "council", "police", "housing"]))[: int(self.rng.integers(3, 5))]
        if len(set(plan)) < 2:
            plan = ["police", "housing", "council"]
        for src in plan:
            when = self.day(3, 175)
            if src == "housing":
                code = str(self.rng.choice(["ASBN", "ASBH"]))
                self.ev("housing_cases", tenant, code, when, sid, "ASB_NOISE" if code == "ASBN" else "ASB_HARASSMENT")
                continue
            who = self.pick("adult", lambda: self.adult(18, 80))
            if who is None:
                continue
            self.scenarios[-1]["persons"].append(who)
            if src == "police":
                self.ev("police_occurrences", who, "ASB", when, sid, "ASB_REPORT", str(self.rng.choice(["V", "W"])), loc)
            else:
                self.ev("council_contacts", who, "EH-NOISE", when, sid, "ASB_NOISE", loc=loc)

    def _multi_agency_concern(self) -> None:
        p = self.p
        i = self.pick("adult_settled", lambda: self.adult(18, 80) & self.settled())
        if i is None:
            return
        sid = self.add("multi_agency_concern", [i], [self.home(i)])
        code = str(self.rng.choice(["ASB", "THEFT", "DRUGPOSS"]))
        self.ev("police_occurrences", i, code, self.day(5, 340), sid,
                {"ASB": "ASB_REPORT", "THEFT": "ACQUISITIVE", "DRUGPOSS": "DRUG_POSSESSION"}[code], "S",
                self.home(i))
        code = str(self.rng.choice(["ASC-CARE", "SMS-REF", "ASC-MH"]))
        self.ev("council_contacts", i, code, self.day(5, 340), sid,
                {"ASC-CARE": "VULNERABLE_ADULT", "SMS-REF": "SUBSTANCE_MISUSE", "ASC-MH": "MH_CONCERN"}[code])
        if p["social"].iat[i]:
            self.ev("housing_cases", i, "ARR", self.day(5, 340), sid, "RENT_ARREARS")
        else:
            self.visit(i, self.day(5, 340), [str(self.rng.choice(["SMOKER", "NO_SMOKE_ALARM"]))], sid)

    def _iom_rfg(self) -> None:
        p = self.p
        i = self.pick("iom", lambda: self.adult(18, 45) & (p["sex"].to_numpy() == "M") & p["social"].to_numpy()
                      & self.settled())
        if i is None:
            return
        sid = self.add("iom_rfg", [i], [self.home(i)])
        if self.rng.random() < 0.5:
            self.police_dups.append(i)
        sig = {"THEFT": "ACQUISITIVE", "BURG": "ACQUISITIVE", "VAP": "VIOLENCE", "WEAP": "WEAPONS"}
        for k in range(2):
            code = str(self.rng.choice(list(sig)))
            when = self.day(3, 120) if k == 0 else self.day(120, 700)
            loc = self.gaz["UPRN"].iat[int(self.rng.integers(len(self.gaz)))]
            self.ev("police_occurrences", i, code, when, sid, sig[code], "S", loc)
        code = str(self.rng.choice(["DRG", "DAP"]))
        self.ev("housing_cases", i, code, self.day(3, 360), sid, "DRUG_SUPPLY" if code == "DRG" else "DA_SUSPECT")
