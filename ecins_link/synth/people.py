"""Households and people: ages, family surnames, name origins, movers, and the deliberate hard cases."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecins_link.synth import vocab

_REF_AGE = {"single_young": (18, 64), "single_old": (65, 95), "couple": (20, 64), "older_couple": (65, 90),
            "family": (24, 55), "lone_parent": (18, 50), "sharers": (18, 35), "multigen": (28, 50)}
_ADULTS = {"single_young": 1, "single_old": 1, "couple": 2, "older_couple": 2, "family": 2, "lone_parent": 1,
           "sharers": 2, "multigen": 3}


def _days(years: np.ndarray) -> np.ndarray:
    return (np.asarray(years) * 365.25).astype("int64")


def build_households(rng: np.random.Generator, persons: int, gaz: pd.DataFrame, as_of: np.datetime64,
                     names_rng: np.random.Generator | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exactly ``persons`` people in households placed at residential UPRNs.  Returns (households, people).

    ``names_rng``: the stream that re-draws a forename repeated within a family (see
    :func:`_distinct_family_forenames`; ``rng`` draws exactly as without it).  None leaves repeats as drawn."""
    t = vocab.town()
    hh_types = vocab.weighted(t["households"])
    origins = vocab.weighted(t["origins"])
    n_hh = int(persons / 2.0) + 20
    typ = hh_types.sample(rng, n_hh)
    n_adult = np.array([_ADULTS[x] for x in typ])
    n_adult = np.where(typ == "sharers", rng.integers(2, 5, n_hh), n_adult)
    kids = rng.choice([1, 2, 3, 4], p=[0.35, 0.4, 0.18, 0.07], size=n_hh)
    n_kid = np.select([typ == "family", typ == "lone_parent", typ == "multigen"],
                      [kids, np.minimum(kids, 3), np.minimum(kids, 2)], 0)
    size = n_adult + n_kid
    cum = np.cumsum(size)
    keep = int(np.searchsorted(cum, persons) + 1)
    typ, n_adult, n_kid, size = typ[:keep], n_adult[:keep], n_kid[:keep], size[:keep].copy()
    size[-1] -= int(cum[keep - 1] - persons)
    n_kid[-1] = max(0, min(n_kid[-1], size[-1] - 1))
    n_adult[-1] = size[-1] - n_kid[-1]
    res = np.flatnonzero(gaz["residential"].to_numpy())
    if keep > len(res):
        raise ValueError("gazetteer too small for the households")
    home = rng.choice(res, size=keep, replace=False)
    hh = pd.DataFrame({"household_id": [f"H{i + 1:07d}" for i in range(keep)], "hh_type": typ,
                       "uprn": gaz["UPRN"].to_numpy()[home], "origin": origins.sample(rng, keep),
                       "size": size, "n_adult": n_adult})
    lo = np.array([_REF_AGE[x][0] for x in typ])
    hi = np.array([_REF_AGE[x][1] for x in typ])
    hh["ref_age"] = rng.integers(lo, hi + 1)
    hh["surname"] = _sample_by(rng, hh["origin"].to_numpy(), lambda o: vocab.surnames()[o])
    moved = rng.random(keep) < t["people"]["moved_household"]
    prev = rng.choice(res, size=keep)
    hh["prev_uprn"] = np.where(moved, gaz["UPRN"].to_numpy()[prev], "")
    hh["move_date"] = np.where(moved, as_of - rng.integers(30, 3 * 365, keep).astype("timedelta64[D]"),
                               np.datetime64("NaT"))
    hh["social"] = rng.random(keep) < t["coverage"]["housing_households"]
    return hh, _people(rng, hh, as_of, names_rng)


def _sample_by(rng: np.random.Generator, keys: np.ndarray, pool_of) -> np.ndarray:  # noqa: ANN001
    out = np.empty(len(keys), dtype=object)
    for k in sorted(set(keys.tolist())):
        sel = np.flatnonzero(keys == k)
        out[sel] = pool_of(k).sample(rng, len(sel))
    return out


def _distinct_family_forenames(rng: np.random.Generator, fore: np.ndarray, key: np.ndarray, h: np.ndarray,
                               typ: np.ndarray, tries: int = 25) -> np.ndarray:
    """A forename drawn twice in one family household is drawn again from its pool until the family's forenames
    differ (``tries`` rounds; sharers, unrelated adults, keep what they drew).  Drawing each member independently
    gave about one person in twelve of Chinese origin a household member of the same forename (the pools of some
    origins are small), and one in fifty of English origin; parents do not give two children one name, and a son
    named after his father is the deliberate ``father_son`` hard case, made after this."""
    fore = fore.copy()
    family = typ != "sharers"
    fpool = vocab.forenames()
    for _ in range(tries):
        again = pd.DataFrame({"h": h, "f": fore}).duplicated(["h", "f"]).to_numpy() & family
        if not again.any():
            break
        idx = np.flatnonzero(again)
        fore[idx] = _sample_by(rng, key[idx], lambda k: fpool[tuple(k.split("|"))])
    return fore


def _people(rng: np.random.Generator, hh: pd.DataFrame, as_of: np.datetime64,
            names_rng: np.random.Generator | None = None) -> pd.DataFrame:
    t = vocab.town()["people"]
    h = np.repeat(np.arange(len(hh)), hh["size"].to_numpy())
    first = np.repeat(np.cumsum(hh["size"].to_numpy()) - hh["size"].to_numpy(), hh["size"].to_numpy())
    pos = np.arange(len(h)) - first
    typ = hh["hh_type"].to_numpy()[h]
    is_adult = pos < hh["n_adult"].to_numpy()[h]
    ref = hh["ref_age"].to_numpy()[h]
    n = len(h)
    age = np.where(pos == 0, ref, 0)
    partner = is_adult & (pos == 1) & (typ != "sharers")
    age = np.where(partner, np.clip(ref + np.round(rng.normal(0, 3.5, n)), 18, 100), age)
    age = np.where(is_adult & (typ == "sharers"), rng.integers(18, 36, n), age)
    grand = is_adult & (pos == 2) & (typ == "multigen")
    age = np.where(grand, np.minimum(ref + rng.integers(22, 36, n), 99), age)
    kid_hi = np.clip(ref - 18, 0, 17)
    age = np.where(~is_adult, np.floor(rng.random(n) * (kid_hi + 1)), age).astype(int)
    couple_like = np.isin(typ, ["couple", "older_couple", "family", "multigen"])
    sex = np.where(rng.random(n) < 0.5, "M", "F")
    sex = np.where((pos == 0) & couple_like, np.where(rng.random(n) < 0.95, "M", "F"), sex)
    ref_sex = sex[first]
    sex = np.where(partner & couple_like, np.where(rng.random(n) < 0.95, np.where(ref_sex == "M", "F", "M"),
                                                   ref_sex), sex)
    sex = np.where((pos == 0) & (typ == "lone_parent"), np.where(rng.random(n) < 0.85, "F", "M"), sex)
    origins = vocab.weighted(vocab.town()["origins"])
    origin = hh["origin"].to_numpy()[h].copy()
    own_origin = (typ == "sharers") | (partner & (rng.random(n) < t["mixed_origin_partner"]))
    origin = np.where(own_origin, origins.sample(rng, n), origin)
    surname = hh["surname"].to_numpy()[h].copy()
    own_surname = (typ == "sharers") & (pos > 0)
    own_surname |= partner & (rng.random(n) < t["partner_other_surname"])
    own_surname |= own_origin | (grand & (rng.random(n) < 0.5))
    other = _sample_by(rng, origin, lambda o: vocab.surnames()[o])
    surname = np.where(own_surname, other, surname)
    maiden = np.where(partner & (sex == "F") & ~own_surname & (rng.random(n) < t["maiden_name_recent"]),
                      _sample_by(rng, origin, lambda o: vocab.surnames()[o]), "")
    key = np.array([f"{o}|{s}" for o, s in zip(origin, sex, strict=True)], dtype=object)
    fpool = vocab.forenames()
    fore = _sample_by(rng, key, lambda k: fpool[tuple(k.split("|"))])
    mid = _sample_by(rng, key, lambda k: fpool[tuple(k.split("|"))])
    mid = np.where((rng.random(n) < t["middle_name"]) & (mid != fore), mid, "")
    if names_rng is not None:
        fore = _distinct_family_forenames(names_rng, fore, key, h, typ)
        mid = np.where(mid == fore, "", mid)
    dob = as_of - _days(age).astype("timedelta64[D]") - rng.integers(1, 365, n).astype("timedelta64[D]")
    p = pd.DataFrame({"true_person_id": [f"T{i + 1:07d}" for i in range(n)], "hh": h, "pos": pos,
                      "household_id": hh["household_id"].to_numpy()[h], "forenames": fore, "middle": mid,
                      "surname": surname, "maiden": maiden, "sex": sex, "dob": dob, "age": age,
                      "name_origin": origin, "hard_case": "", "uprn": hh["uprn"].to_numpy()[h],
                      "prev_uprn": hh["prev_uprn"].to_numpy()[h], "move_date": hh["move_date"].to_numpy()[h],
                      "social": hh["social"].to_numpy()[h], "hh_size": hh["size"].to_numpy()[h],
                      "hh_type": typ})
    _hard_cases(rng, p, as_of)
    return p


def _hard_cases(rng: np.random.Generator, p: pd.DataFrame, as_of: np.datetime64) -> None:
    """Father and son with one name at one address, twins, and same-name strangers (in place)."""
    t = vocab.town()["people"]
    fam = p[(p.hh_type == "family") & (p.pos == 0) & (p.sex == "M") & (p.age >= 40)]
    kid = p[(p.pos == 2) & (p.hh_type == "family")].set_index("hh")
    fam = fam[fam.hh.isin(kid.index)]
    n_fs = min(len(fam), max(2, int(round(t["father_son_same_name"] * (p.hh_type == "family").sum() / 3))))
    for i in rng.choice(len(fam), size=n_fs, replace=False) if n_fs else []:
        dad = fam.iloc[int(i)]
        son = p.index[(p.hh == dad.hh) & (p.pos == 2)][0]
        age = int(rng.integers(18, min(26, dad.age - 17)))
        p.loc[son, ["forenames", "middle", "sex", "age", "hard_case"]] = [dad.forenames, dad.middle, "M", age,
                                                                          "father_son"]
        p.loc[son, "dob"] = as_of - np.timedelta64(int(age * 365.25 + rng.integers(1, 365)), "D")
        p.loc[dad.name, "hard_case"] = "father_son"
    kids = p[(p.age < 18) & (p.pos >= 1) & (p.hard_case == "")]
    first_kid = kids.groupby("hh").head(2)
    counts = first_kid.groupby("hh").size()
    two = counts.index[counts == 2].to_numpy()
    n_tw = min(len(two), max(2, int(round(t["twins"] * len(two)))))
    for h in rng.choice(two, size=n_tw, replace=False) if n_tw else []:
        a, b = first_kid.index[first_kid.hh == h][:2]
        p.loc[b, ["dob", "age"]] = [p.loc[a, "dob"], p.loc[a, "age"]]
        if rng.random() < 0.4:
            pool = vocab.forenames()[(p.loc[a, "name_origin"], p.loc[b, "sex"])]
            same = [v for v in pool.values if v[0] == p.loc[a, "forenames"][0] and v != p.loc[a, "forenames"]]
            if same:
                p.loc[b, "forenames"] = same[int(rng.integers(len(same)))]
        if p.loc[b, "forenames"] == p.loc[a, "forenames"]:
            p.loc[b, "forenames"] = p.loc[b, "forenames"] + "A" if p.loc[b, "sex"] == "F" else "J" + p.loc[b, "forenames"]
        p.loc[[a, b], "hard_case"] = "twin"
    adults = p[(p.age >= 18) & (p.hard_case == "") & (p.name_origin == "english")]
    singles = adults[adults.hh_type.isin(["single_young", "single_old", "sharers"])]
    n_sn = min(len(singles) // 2, max(3, int(round(t["same_name_pairs_per_1000"] * len(p) / 1000))))
    b_idx = rng.choice(singles.index.to_numpy(), size=n_sn, replace=False)
    taken = set(b_idx.tolist())
    by_sex = {sx: [i for i in rng.permutation(adults.index[adults.sex == sx].to_numpy()) if i not in taken]
              for sx in ("M", "F")}
    hh = p["hh"].to_numpy()
    rows_a, rows_b = [], []
    for b in b_idx:
        pool = by_sex[p.at[b, "sex"]]
        while pool and (hh[pool[-1]] == hh[b]):
            pool.pop()
        if not pool:
            continue
        rows_a.append(pool.pop())
        rows_b.append(b)
    if rows_b:
        p.loc[rows_b, "forenames"] = p.loc[rows_a, "forenames"].to_numpy()
        p.loc[rows_b, "surname"] = p.loc[rows_a, "surname"].to_numpy()
        p.loc[rows_b, "middle"] = p.loc[rows_a, "middle"].to_numpy()
        p.loc[rows_b, "maiden"] = ""
        p.loc[rows_a + rows_b, "hard_case"] = "same_name"
