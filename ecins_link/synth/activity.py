"""Everyday background activity: which people each agency knows and what it records about them.

Produces *intents* (who, what code, when, where) that the renderers turn into each agency's own rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecins_link.synth import vocab

EVENT_COLUMNS = ["source", "person", "code", "role", "date", "minute", "loc_uprn", "occ", "tag", "signal"]


def home_at(people: pd.DataFrame, idx: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Each person's UPRN on each date (the previous home before a move)."""
    prev = people["prev_uprn"].to_numpy()[idx]
    moved = people["move_date"].to_numpy()[idx]
    before = (prev != "") & (dates < moved)
    return np.where(before, prev, people["uprn"].to_numpy()[idx])


def _events(**cols: object) -> pd.DataFrame:
    n = max(len(v) for v in cols.values() if hasattr(v, "__len__") and not isinstance(v, str))
    data = {}
    for c in EVENT_COLUMNS:
        v = cols.get(c, "" if c in ("tag", "signal", "loc_uprn", "role") else -1)
        data[c] = v if hasattr(v, "__len__") and not isinstance(v, str) else np.full(n, v, dtype=object)
    return pd.DataFrame(data)


def _dates(rng: np.random.Generator, as_of: np.datetime64, n: int, max_days: int | np.ndarray, min_days: int = 0
           ) -> np.ndarray:
    span = np.maximum(np.asarray(max_days) - min_days, 1)
    return as_of - (min_days + (rng.random(n) * span).astype("int64")).astype("timedelta64[D]")


def _since_age(age: np.ndarray, min_age: float, days: int) -> np.ndarray:
    """How far back an event may go so the person was at least ``min_age`` at the time (at most ``days``)."""
    return np.clip(((age - min_age) * 365.25).astype("int64"), 30, days)


def membership(rng: np.random.Generator, people: pd.DataFrame) -> pd.DataFrame:
    """Which agencies know each person in the background (police, council); housing follows the household."""
    c = vocab.town()["coverage"]
    age = people["age"].to_numpy()
    n = len(people)
    p_pol = np.select([age < 12, age < 18, age >= 65], [0.0, c["police_teen"], c["police_older"]], c["police_adult"])
    p_pol = np.where(people["sex"].to_numpy() == "M", p_pol * 1.3, p_pol * 0.75)
    p_cou = np.select([age < 5, age < 18, age >= 65], [0.1, c["council_child"], c["council_older"]], c["council_adult"])
    hard = people["hard_case"].to_numpy() != ""
    return pd.DataFrame({"police": (rng.random(n) < p_pol) | (hard & (age >= 18) & (rng.random(n) < 0.5)),
                         "council": (rng.random(n) < p_cou) | hard, "housing": people["social"].to_numpy()})


def background(rng: np.random.Generator, people: pd.DataFrame, gaz: pd.DataFrame, members: pd.DataFrame,
               as_of: np.datetime64, reserved: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Background events (police, housing, council, fire incidents) and Safe and Well visits.

    ``reserved`` people (scenario and decoy persons) get no background events so planted evidence is exact.
    """
    a = vocab.agencies()
    c = vocab.town()["coverage"]
    days = int(vocab.town()["history_years"] * 365)
    free = ~np.isin(np.arange(len(people)), reserved)
    frames = []
    # police
    pol = np.flatnonzero(members["police"].to_numpy() & free)
    n_occ = 1 + rng.poisson(c["police_occurrences_mean"] - 1, len(pol))
    who = np.repeat(pol, n_occ)
    types = vocab.weighted(a["police_occurrences"]["background"]).sample(rng, len(who))
    roles = vocab.weighted(a["police_occurrences"]["role_mix"]).sample(rng, len(who))
    roles = np.where(np.isin(types, ["MISPER", "S136", "SUDDEN", "CONCERN"]), "P", roles)
    kids = people["age"].to_numpy()[who] < 18
    types = np.where(kids & (types == "DA"), "CONCERN", types)
    dates = _dates(rng, as_of, len(who), _since_age(people["age"].to_numpy()[who], 10, days))
    home = home_at(people, who, dates)
    other = gaz["UPRN"].to_numpy()[rng.integers(0, len(gaz), len(who))]
    at_home = np.isin(types, ["DA", "S136", "MISPER", "SUDDEN", "CONCERN"]) | (rng.random(len(who)) < 0.35)
    loc = np.where(at_home, home, other)
    loc = np.where(rng.random(len(who)) < 0.04, "", loc)
    occ = np.arange(len(who))
    frames.append(_events(source="police_occurrences", person=who, code=types, role=roles, date=dates,
                          minute=rng.integers(0, 1440, len(who)), loc_uprn=loc, occ=occ))
    # DA incidents name both partners when both live in the household and neither is reserved
    da = np.flatnonzero(types == "DA")
    partner = _partner_index(people)
    pw = partner[who[da]]
    ok = (pw >= 0) & free[np.maximum(pw, 0)]
    da, pw = da[ok], pw[ok]
    if len(da):
        frames.append(_events(source="police_occurrences", person=pw, code="DA",
                              role=np.where(roles[da] == "V", "S", "V"), date=dates[da],
                              minute=frames[0]["minute"].to_numpy()[da], loc_uprn=loc[da], occ=occ[da]))
    # housing cases against the lead tenant (sometimes the joint tenant)
    hhs = people[(people["pos"] <= 1) & people["social"] & (people["age"] >= 18) & free]
    lead = hhs.index.to_numpy()
    n_cases = rng.poisson(c["housing_cases_mean"], len(lead))
    who = np.repeat(lead, n_cases)
    frames.append(_events(source="housing_cases", person=who,
                          code=vocab.weighted(a["housing_cases"]["background"]).sample(rng, len(who)),
                          date=_dates(rng, as_of, len(who), days), minute=0))
    # council contacts by age group
    cou = np.flatnonzero(members["council"].to_numpy() & free)
    n_con = 1 + rng.poisson(c["council_contacts_mean"] - 1, len(cou))
    who = np.repeat(cou, n_con)
    age = people["age"].to_numpy()[who]
    code = np.empty(len(who), dtype=object)
    for name, sel in (("background_under5", age < 5), ("background_child", (age >= 5) & (age < 18)),
                      ("background_adult", (age >= 18) & (age < 65)),
                      ("background_older", age >= 65)):
        code[sel] = vocab.weighted(a["council_contacts"][name]).sample(rng, int(sel.sum()))
    school = np.char.startswith(code.astype(str), "EDU-")
    dates = _dates(rng, as_of, len(who), np.where(school, _since_age(age, 4.5, days), days))
    home_idx = gaz.index.get_indexer(home_at(people, who, dates))
    neighbour = gaz["UPRN"].to_numpy()[np.clip(home_idx + rng.choice([-2, -1, 1, 2], len(who)), 0, len(gaz) - 1)]
    frames.append(_events(source="council_contacts", person=who, code=code, date=dates, minute=0,
                          loc_uprn=np.where(code == "EH-NOISE", neighbour, "")))
    # fire incidents at addresses (no person)
    n_fi = max(3, int(len(gaz) * c["fire_incidents_per_1000_uprns"] / 1000))
    frames.append(_events(source="fire_incidents", person=np.full(n_fi, -1),
                          code=vocab.weighted(a["fire_incidents"]["background"]).sample(rng, n_fi),
                          date=_dates(rng, as_of, n_fi, days), minute=rng.integers(0, 1440, n_fi),
                          loc_uprn=gaz["UPRN"].to_numpy()[rng.integers(0, len(gaz), n_fi)]))
    events = pd.concat(frames, ignore_index=True)
    return events, _safe_and_well(rng, people, as_of, free)


def _partner_index(people: pd.DataFrame) -> np.ndarray:
    """Index of the other adult of a couple household (pos 0 <-> pos 1), else -1."""
    out = np.full(len(people), -1)
    couple = people["hh_type"].isin(["couple", "older_couple", "family", "multigen"]).to_numpy()
    pos = people["pos"].to_numpy()
    hh = people["hh"].to_numpy()
    i0 = np.flatnonzero(couple & (pos == 0))
    i1 = i0 + 1
    adult = people["age"].to_numpy() >= 18
    j = np.minimum(i1, len(people) - 1)
    ok = (i1 < len(people)) & (hh[j] == hh[i0]) & adult[i0] & adult[j]
    i0, i1 = i0[ok], i1[ok]
    out[i0], out[i1] = i1, i0
    return out


def _safe_and_well(rng: np.random.Generator, people: pd.DataFrame, as_of: np.datetime64, free: np.ndarray
                   ) -> pd.DataFrame:
    """Background Safe and Well visits to the eldest adult of some households (more for older people)."""
    c = vocab.town()["coverage"]
    vocab.agencies()["fire_safe_well"]
    lead = people[(people["pos"] == 0) & free]
    older = lead["age"].to_numpy() >= 65
    p = np.where(older, c["fire_sw_older_households"], c["fire_sw_households"])
    who = lead.index.to_numpy()[rng.random(len(lead)) < p]
    return sw_visits(rng, people, who, _dates(rng, as_of, len(who), 3 * 365), None, "")


def sw_visits(rng: np.random.Generator, people: pd.DataFrame, who: np.ndarray, dates: np.ndarray,
              flags: dict[str, np.ndarray] | None, tag: str) -> pd.DataFrame:
    """Safe and Well visit intents; ``flags`` forces the answers, else they are drawn at background rates."""
    sw = vocab.agencies()["fire_safe_well"]
    v = pd.DataFrame({"person": who, "date": dates, "tag": tag})
    alone = people["hh_size"].to_numpy()[who] == 1
    for col in sw["flags"]:
        if flags is not None:
            v[col] = flags.get(col, np.zeros(len(who), bool))
        elif col == "LIVES_ALONE":
            v[col] = alone & (rng.random(len(who)) < 0.9)
        else:
            rate = sw["rates"][col] * np.where(people["age"].to_numpy()[who] >= 65, 1.5, 1.0)
            v[col] = rng.random(len(who)) < rate
    return v
