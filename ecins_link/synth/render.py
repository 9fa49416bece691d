"""Turn people, events and visits into each agency's own extract layout (DataFrames of text columns).

Every table carries hidden ``_person`` / ``_uprn`` / ``_tag`` helper columns used for the truth files; the writer
drops columns starting with ``_`` before writing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecins_link.synth import noise, vocab
from ecins_link.synth.places import FormStyle, Rendered, render_addresses, render_location
from ecins_link.synth.written_fits import narrowed_by_postcode


def _ids(rng: np.random.Generator, prefix: str, n: int, digits: int) -> np.ndarray:
    nums = rng.choice(10 ** digits - 10 ** (digits - 1), size=n, replace=False) + 10 ** (digits - 1)
    return np.array([f"{prefix}{x}" for x in nums], dtype=object)


class Town:
    """Shared state for rendering one town."""

    def __init__(self, rng: np.random.Generator, people: pd.DataFrame, gaz: pd.DataFrame,
                 as_of: np.datetime64, style: FormStyle | None = None) -> None:
        self.rng, self.people, self.gaz, self.as_of, self.style = rng, people, gaz, as_of, style
        self.rates = vocab.town()["noise"]
        self.cov = vocab.town()["coverage"]
        n = len(people)
        mobile = np.array([f"07700{x:06d}" for x in rng.integers(900000, 901000, n)], dtype=object)
        land = np.array([f"01632{x:06d}" for x in rng.integers(960000, 961000, n)], dtype=object)
        has = (people["age"].to_numpy() >= 14) & (rng.random(n) < 0.85)
        self.phone = np.where(has, np.where(rng.random(n) < 0.75, mobile, land), "")

    def person_records(self, who: np.ndarray, dup_rate: float, stale_rate: float,
                       force_dup: np.ndarray | None = None) -> pd.DataFrame:
        """One record per person (plus within-agency duplicates) with the address the agency holds.

        ``force_dup``: people who certainly have a second record (e.g. a victim known under two nominals).
        """
        rng, p = self.rng, self.people
        who = np.unique(who)
        dup = rng.random(len(who)) < dup_rate
        if force_dup is not None:
            dup |= np.isin(who, force_dup)
        extra = who[dup]
        idx = np.sort(np.concatenate([who, extra]), kind="stable")
        moved = p["prev_uprn"].to_numpy()[idx] != ""
        stale = moved & (rng.random(len(idx)) < stale_rate)
        uprn = np.where(stale, p["prev_uprn"].to_numpy()[idx], p["uprn"].to_numpy()[idx])
        fo, mi, su = noise.names(rng, p["forenames"].to_numpy()[idx], p["middle"].to_numpy()[idx],
                                 p["surname"].to_numpy()[idx], p["maiden"].to_numpy()[idx],
                                 stale | (rng.random(len(idx)) < 0.3), self.rates)
        return pd.DataFrame({"_person": idx, "_uprn": uprn, "_stale": stale, "fore": fo, "middle": mi,
                             "sur": su, "dob": noise.dobs(rng, p["dob"].to_numpy()[idx], self.rates)})

    def attach(self, recs: pd.DataFrame, person: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """For each event's person, one of that person's records (duplicates share the events)."""
        order = recs["_person"].to_numpy()
        start = np.searchsorted(order, person, side="left")
        count = np.searchsorted(order, person, side="right") - start
        if (count == 0).any():
            raise AssertionError("event for a person without a record")
        return keys[start + (self.rng.random(len(person)) * count).astype(int)]

    def address(self, uprns: np.ndarray, upper: bool) -> Rendered:
        """Address texts for ``uprns`` with their written forms (:func:`render_addresses`)."""
        return render_addresses(self.rng, self.gaz, uprns, self.rates["address_variant"], upper, self.style)

    def postcode(self, uprns: np.ndarray) -> np.ndarray:
        pc = self.gaz["POSTCODE"].to_numpy()[self.gaz.index.get_indexer(uprns)]
        return noise.postcodes(self.rng, pc, self.rates)


def form_columns(got: Rendered, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The truth helper columns ``_aform`` / ``_aamb`` / ``_arivals`` of rendered addresses (placed at ``mask``
    when given); :func:`narrow_by_postcode` then lets the record's postcode settle ``_aamb``."""
    n = len(got.texts) if mask is None else len(mask)
    rivals = np.empty(n, dtype=object)
    rivals[:] = [()] * n
    at = np.arange(n) if mask is None else np.flatnonzero(mask)
    for i, r in zip(at, got.rivals or [()] * len(at), strict=True):
        rivals[i] = r
    if mask is None:
        return {"_aform": np.array(got.forms, dtype=object), "_aamb": np.array(got.ambiguous, dtype=bool),
                "_arivals": rivals}
    form, amb = np.full(len(mask), "", dtype=object), np.zeros(len(mask), dtype=bool)
    form[mask], amb[mask] = got.forms, got.ambiguous
    return {"_aform": form, "_aamb": amb, "_arivals": rivals}


def narrow_by_postcode(frame: pd.DataFrame, postcode_column: str) -> pd.DataFrame:
    """``frame`` with ``_aamb`` cleared where the record's postcode names one of the properties its address text
    fits (:func:`~ecins_link.synth.written_fits.narrowed_by_postcode`), and ``_arivals`` dropped."""
    frame["_aamb"] = narrowed_by_postcode(frame["_aamb"].tolist(), frame["_arivals"].tolist(),
                                          frame[postcode_column].to_numpy())
    return frame.drop(columns=["_arivals"])


def _suffix(town: Town, recs: pd.DataFrame) -> np.ndarray:
    """JNR / SNR written by some agencies for a father and son with one name."""
    p = town.people
    hc = p["hard_case"].to_numpy()[recs["_person"].to_numpy()]
    age = p["age"].to_numpy()[recs["_person"].to_numpy()]
    use = (hc == "father_son") & (town.rng.random(len(recs)) < 0.4)
    return np.where(use, np.where(age < 30, " JNR", " SNR"), "")


def police(town: Town, events: pd.DataFrame, force_dup: np.ndarray | None = None
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Police nominals ("SURNAME, Forenames", DOB dd/mm/yyyy, one address line) and occurrences."""
    rng = town.rng
    ev = events[events["source"] == "police_occurrences"].reset_index(drop=True)
    recs = town.person_records(ev["person"].to_numpy(), town.cov["duplicate_police"], town.cov["stale_address"],
                               force_dup)
    keys = _ids(rng, "N", len(recs), 7)
    fore = [noise.fold(" ".join(x for x in (f, m) if x)) for f, m in zip(recs["fore"], recs["middle"], strict=True)]
    sfx = _suffix(town, recs)
    title = rng.random(len(recs)) < 0.5
    names = [f"{noise.fold(s)}, {f.title() if t else f}{x}" for s, f, t, x in zip(recs["sur"], fore, title, sfx,
                                                                                     strict=True)]
    sex = town.people["sex"].to_numpy()[recs["_person"].to_numpy()]
    sex_col = np.where(rng.random(len(recs)) < 0.02, "U", sex)
    home = town.address(recs["_uprn"].to_numpy(), upper=rng.random() < 0.5)
    nominals = pd.DataFrame({"NOMINAL_ID": keys, "NAME": names, "DOB": noise.fmt_dates(recs["dob"].to_numpy(), "dmy"),
                             "SEX": sex_col, "ADDRESS": home.texts,
                             "POSTCODE": town.postcode(recs["_uprn"].to_numpy()),
                             "_person": recs["_person"].to_numpy(), "_uprn": recs["_uprn"].to_numpy(),
                             **form_columns(home)})
    nominals = narrow_by_postcode(nominals, "POSTCODE")
    nominal = town.attach(recs, ev["person"].to_numpy(), keys)
    occ_ref = _ids(rng, "OC", int(ev["occ"].max()) + 1 if len(ev) else 0, 8)
    has_loc = ev["loc_uprn"].to_numpy() != ""
    loc, form, amb = (np.full(len(ev), "", dtype=object), np.full(len(ev), "", dtype=object),
                      np.zeros(len(ev), dtype=bool))
    got = render_location(rng, town.gaz, ev["loc_uprn"].to_numpy()[has_loc], town.style)
    loc[has_loc], form[has_loc], amb[has_loc] = got.texts, got.forms, got.ambiguous
    occ = pd.DataFrame({"OCC_REF": occ_ref[ev["occ"].to_numpy()], "NOMINAL_ID": nominal,
                        "ROLE": ev["role"].to_numpy(), "OCC_TYPE": ev["code"].to_numpy(),
                        "OCC_DATETIME": noise.fmt_datetimes(ev["date"].to_numpy(), ev["minute"].to_numpy(), "dmy"),
                        "LOCATION": loc, "_person": ev["person"].to_numpy(), "_uprn": ev["loc_uprn"].to_numpy(),
                        "_aform": form, "_aamb": amb,
                        "_tag": ev["tag"].to_numpy(), "_signal": ev["signal"].to_numpy(),
                        "_ts": ev["date"].to_numpy() + ev["minute"].to_numpy().astype("timedelta64[m]")})
    occ = occ.drop_duplicates(["OCC_REF", "NOMINAL_ID"]).sort_values(["_ts", "OCC_REF", "NOMINAL_ID"], kind="stable")
    return nominals, occ.drop(columns=["_ts"]).reset_index(drop=True)


def housing(town: Town, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Housing tenancies (compound key tenancy + person, addr1..3, DOB yyyy-mm-dd) and cases."""
    rng, p = town.rng, town.people
    social_hh = np.unique(p["hh"].to_numpy()[p["social"].to_numpy()])
    hh_first = p.groupby("hh").head(1).set_index("hh")
    n_hh = len(social_hh)
    t_cur = _ids(rng, "T", n_hh, 6)
    moved = hh_first.loc[social_hh, "prev_uprn"].to_numpy() != ""
    had_old = moved & (rng.random(n_hh) < 0.5)
    t_old = np.where(had_old, _ids(rng, "T", n_hh, 7), "")
    move = hh_first.loc[social_hh, "move_date"].to_numpy()
    start = np.where(moved, move, town.as_of - rng.integers(400, 9000, n_hh).astype("timedelta64[D]"))
    old_start = move - rng.integers(300, 3000, n_hh).astype("timedelta64[D]")
    members = p.index[p["social"].to_numpy()].to_numpy()
    hh_pos = np.searchsorted(social_hh, p["hh"].to_numpy()[members])
    rows = [pd.DataFrame({"_person": members, "TENANCY_REF": t_cur[hh_pos], "_uprn": p["uprn"].to_numpy()[members],
                          "start": start[hh_pos],
                          "end": np.full(len(members), np.datetime64("NaT"), dtype="datetime64[D]")})]
    old = had_old[hh_pos]
    rows.append(pd.DataFrame({"_person": members[old], "TENANCY_REF": t_old[hh_pos][old],
                              "_uprn": p["prev_uprn"].to_numpy()[members][old], "start": old_start[hh_pos][old],
                              "end": move[hh_pos][old]}))
    ten = pd.concat([r for r in rows if len(r)] or rows[:1], ignore_index=True)
    dup = rng.random(len(ten)) < town.cov["duplicate_housing"]
    ten = pd.concat([ten, ten[dup]], ignore_index=True).sort_values(["_person", "start"], kind="stable")
    ten = ten.reset_index(drop=True)
    pref = dict(zip(np.unique(members), _ids(rng, "HP", len(np.unique(members)), 6), strict=True))
    ten["PERSON_REF"] = [pref[x] for x in ten["_person"]]
    dmask = ten.duplicated(["TENANCY_REF", "PERSON_REF"]).to_numpy()
    ten.loc[dmask, "PERSON_REF"] = _ids(rng, "HQ", int(dmask.sum()), 6)
    fo, mi, su = noise.names(rng, p["forenames"].to_numpy()[ten["_person"]], p["middle"].to_numpy()[ten["_person"]],
                             p["surname"].to_numpy()[ten["_person"]], p["maiden"].to_numpy()[ten["_person"]],
                             ten["end"].notna().to_numpy(), town.rates)
    keep_accents = rng.random(len(ten)) < 0.5
    pos = p["pos"].to_numpy()[ten["_person"]]
    age = p["age"].to_numpy()[ten["_person"]]
    rel = np.select([pos == 0, (pos == 1) & (age >= 18), age < 18], ["LEAD TENANT", "JOINT TENANT", "CHILD"], "OTHER")
    home = town.address(ten["_uprn"].to_numpy(), upper=False)
    lines = [a.split(", ") for a in home.texts]
    sex = p["sex"].to_numpy()[ten["_person"]]
    title = np.where(age < 18, "", np.where(sex == "M", "Mr", np.where(rng.random(len(ten)) < 0.5, "Mrs", "Ms")))
    tenancies = pd.DataFrame({
        "TENANCY_REF": ten["TENANCY_REF"], "PERSON_REF": ten["PERSON_REF"], "RELATIONSHIP": rel, "TITLE": title,
        "FIRST_NAME": [f if k else noise.fold(f) for f, k in zip(fo, keep_accents, strict=True)],
        "LAST_NAME": [s if k else noise.fold(s) for s, k in zip(su, keep_accents, strict=True)],
        "DOB": noise.fmt_dates(noise.dobs(rng, p["dob"].to_numpy()[ten["_person"]], {**town.rates, "dob_missing": 0.06}), "iso"),
        "ADDR1": [x[0] for x in lines], "ADDR2": [x[1] if len(x) > 1 else "" for x in lines],
        "ADDR3": [", ".join(x[2:]) for x in lines], "POSTCODE": town.postcode(ten["_uprn"].to_numpy()),
        "TENANCY_START": noise.fmt_dates(ten["start"].to_numpy(), "iso"),
        "TENANCY_END": noise.fmt_dates(ten["end"].to_numpy(), "iso"),
        "_person": ten["_person"].to_numpy(), "_uprn": ten["_uprn"].to_numpy(), **form_columns(home)})
    tenancies = narrow_by_postcode(tenancies, "POSTCODE")
    ev = events[events["source"] == "housing_cases"].reset_index(drop=True)
    who = ev["person"].to_numpy()
    cur_map = ten[ten["end"].isna()].drop_duplicates("_person").set_index("_person")["TENANCY_REF"]
    old = ten[ten["end"].notna()].drop_duplicates("_person").set_index("_person")
    ten_ref = cur_map.reindex(who).to_numpy()
    old_ref = old["TENANCY_REF"].reindex(who).to_numpy()
    old_end = old["end"].reindex(who).to_numpy()
    use_old = pd.notna(old_ref) & (ev["date"].to_numpy() < old_end)
    ten_ref = np.where(use_old, old_ref, ten_ref)
    pref_ = np.array([pref[x] for x in who], dtype=object)
    cases = pd.DataFrame({"CASE_ID": _ids(rng, "HC", len(ev), 7), "TENANCY_REF": ten_ref, "PERSON_REF": pref_,
                          "CASE_TYPE": ev["code"].to_numpy(), "OPENED_DATE": noise.fmt_dates(ev["date"].to_numpy(), "iso"),
                          "STATUS": np.where(rng.random(len(ev)) < 0.7, "CLOSED", "OPEN"),
                          "_person": ev["person"].to_numpy(), "_tag": ev["tag"].to_numpy(),
                          "_signal": ev["signal"].to_numpy()})
    return tenancies, cases.sort_values("OPENED_DATE", kind="stable").reset_index(drop=True)
