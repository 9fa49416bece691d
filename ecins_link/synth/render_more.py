"""Council (people + contacts) and fire (incidents + Safe and Well visits) extract layouts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecins_link.synth import noise, vocab
from ecins_link.synth.render import Town, _ids, form_columns, narrow_by_postcode


def council(town: Town, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Council people (forename/surname, DOB dd-Mon-yyyy, phone, email) and service contacts."""
    rng, p = town.rng, town.people
    ev = events[events["source"] == "council_contacts"].reset_index(drop=True)
    recs = town.person_records(ev["person"].to_numpy(), town.cov["duplicate_council"], town.cov["stale_address"])
    keys = _ids(rng, "C", len(recs), 7)
    folded = rng.random(len(recs)) < town.rates["diacritics_folded_council"]
    fore = [noise.fold(f) if k else f for f, k in zip(recs["fore"], folded, strict=True)]
    sur = [noise.fold(s) if k else s for s, k in zip(recs["sur"], folded, strict=True)]
    mixed = rng.random(len(recs)) < 0.7
    fore = [f.title() if m else f for f, m in zip(fore, mixed, strict=True)]
    sur = [s.title() if m else s for s, m in zip(sur, mixed, strict=True)]
    idx = recs["_person"].to_numpy()
    sex = p["sex"].to_numpy()[idx]
    gender = np.where(rng.random(len(recs)) < 0.03, "Not known", np.where(sex == "M", "Male", "Female"))
    adult = p["age"].to_numpy()[idx] >= 16
    em = rng.random(len(recs)) < 0.5
    email = [f"{noise.fold(f).lower()}.{noise.fold(s).lower().replace(' ', '').replace(chr(39), '')}{n}@example.com"
             if a and e else "" for f, s, n, a, e in zip(recs["fore"], recs["sur"], rng.integers(1, 99, len(recs)),
                                                       adult, em, strict=True)]
    people = pd.DataFrame({
        "PERSON_ID": keys, "FORENAME": fore, "SURNAME": sur,
        "DOB": noise.fmt_dates(recs["dob"].to_numpy(), "dmon"), "GENDER": gender,
        "ADDRESS": (home := town.address(recs["_uprn"].to_numpy(), upper=False)).texts,
        "POSTCODE": town.postcode(recs["_uprn"].to_numpy()),
        "PHONE": noise.phones(rng, town.phone[idx]), "EMAIL": email,
        "_person": idx, "_uprn": recs["_uprn"].to_numpy(), **form_columns(home)})
    people = narrow_by_postcode(people, "POSTCODE")
    services = vocab.agencies()["council_contacts"]["services"]
    subject = ev["loc_uprn"].to_numpy()
    has = subject != ""
    subj_text = np.full(len(ev), "", dtype=object)
    subj = town.address(subject[has], upper=True)
    subj_text[has] = subj.texts
    subj_pc = np.full(len(ev), "", dtype=object)
    subj_pc[has] = town.postcode(subject[has])
    contacts = pd.DataFrame({
        "CONTACT_ID": _ids(rng, "CT", len(ev), 8), "PERSON_ID": town.attach(recs, ev["person"].to_numpy(), keys),
        "SERVICE": [services.get(c, "OTHER") for c in ev["code"]], "CONTACT_TYPE": ev["code"].to_numpy(),
        "CONTACT_DATE": noise.fmt_dates(ev["date"].to_numpy(), "dmon"), "SUBJECT_ADDRESS": subj_text,
        "SUBJECT_POSTCODE": subj_pc, "_person": ev["person"].to_numpy(), "_uprn": subject,
        "_tag": ev["tag"].to_numpy(), "_signal": ev["signal"].to_numpy(), "_date": ev["date"].to_numpy(),
        **form_columns(subj, has)})
    contacts = narrow_by_postcode(contacts, "SUBJECT_POSTCODE")
    contacts = contacts.sort_values(["_date", "CONTACT_ID"], kind="stable").drop(columns=["_date"])
    return people, contacts.reset_index(drop=True)


def fire(town: Town, events: pd.DataFrame, visits: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fire incidents (address only, no person) and Safe and Well visits (occupant, no person key, Y/N flags)."""
    rng, p = town.rng, town.people
    ev = events[events["source"] == "fire_incidents"].reset_index(drop=True)
    uprn = ev["loc_uprn"].to_numpy()
    incidents = pd.DataFrame({
        "INCIDENT_NO": _ids(rng, "FI", len(ev), 8), "INCIDENT_TYPE": ev["code"].to_numpy(),
        "CALL_DATETIME": noise.fmt_datetimes(ev["date"].to_numpy(), ev["minute"].to_numpy(), "iso"),
        "ADDRESS": (at := town.address(uprn, upper=True)).texts, "POSTCODE": town.postcode(uprn), "_uprn": uprn,
        "_tag": ev["tag"].to_numpy(), "_signal": ev["signal"].to_numpy(), "_date": ev["date"].to_numpy(),
        **form_columns(at)})
    incidents = narrow_by_postcode(incidents, "POSTCODE")
    incidents = incidents.sort_values(["_date", "INCIDENT_NO"], kind="stable").drop(columns=["_date"])
    who = visits["person"].to_numpy()
    dates = visits["date"].to_numpy()
    from ecins_link.synth.activity import home_at

    home = home_at(p, who, dates)
    fo, _mi, su = noise.names(rng, p["forenames"].to_numpy()[who], p["middle"].to_numpy()[who],
                              p["surname"].to_numpy()[who], p["maiden"].to_numpy()[who],
                              np.zeros(len(who), bool), town.rates)
    initial = rng.random(len(who)) < town.rates["initial_only_fire"]
    sex = p["sex"].to_numpy()[who]
    title = np.where(sex == "M", "Mr", np.where(p["age"].to_numpy()[who] >= 60, "Mrs", "Ms"))
    with_title = rng.random(len(who)) < 0.6
    occupant = [f"{t + ' ' if w else ''}{noise.fold(f)[0] if i else noise.fold(f).title()} {noise.fold(s).title()}"
                for t, w, f, i, s in zip(title, with_title, fo, initial, su, strict=True)]
    dob = noise.dobs(rng, p["dob"].to_numpy()[who], {**town.rates, "dob_missing": 0.5})
    out = pd.DataFrame({"VISIT_ID": _ids(rng, "SW", len(who), 7),
                        "VISIT_DATE": noise.fmt_dates(dates, "dmy"), "OCCUPANT": occupant,
                        "DOB": noise.fmt_dates(dob, "dmy"),
                        "ADDRESS": (at := town.address(home, upper=True)).texts, "POSTCODE": town.postcode(home),
                        **form_columns(at)})
    out = narrow_by_postcode(out, "POSTCODE")
    unknown = rng.random((len(who), 8)) < 0.03
    for j, col in enumerate(vocab.agencies()["fire_safe_well"]["flags"]):
        flag = visits[col].to_numpy().astype(bool)
        out[col] = np.where(flag, "Y", np.where(unknown[:, j], "", "N"))
    out["_person"], out["_uprn"], out["_tag"] = who, home, visits["tag"].to_numpy()
    out["_date"] = dates
    out = out.sort_values(["_date", "VISIT_ID"], kind="stable").drop(columns=["_date"])
    return incidents.reset_index(drop=True), out.reset_index(drop=True)
