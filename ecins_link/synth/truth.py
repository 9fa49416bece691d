"""The truth folder: records, persons, addresses, scenarios, decoys, bad rows (docs/contracts.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecins_link.synth import vocab
from ecins_link.synth.writer import write_json

KEYS = {"police_nominals": ["NOMINAL_ID"], "police_occurrences": ["OCC_REF", "NOMINAL_ID"],
        "housing_tenancies": ["TENANCY_REF", "PERSON_REF"], "housing_cases": ["CASE_ID"],
        "fire_incidents": ["INCIDENT_NO"], "fire_safe_well": ["VISIT_ID"], "council_people": ["PERSON_ID"],
        "council_contacts": ["CONTACT_ID"]}
AGENCY = {"police_nominals": "police", "police_occurrences": "police", "housing_tenancies": "housing",
          "housing_cases": "housing", "fire_incidents": "fire", "fire_safe_well": "fire",
          "council_people": "council", "council_contacts": "council"}
ADDRESS_COL = {"police_nominals": "ADDRESS", "police_occurrences": "LOCATION", "housing_tenancies": "ADDR1",
               "fire_incidents": "ADDRESS", "fire_safe_well": "ADDRESS", "council_people": "ADDRESS",
               "council_contacts": "SUBJECT_ADDRESS"}


def record_key(df: pd.DataFrame, source: str) -> pd.Series:
    """``record_key`` as the contract defines it (compound key parts joined with '|')."""
    cols = KEYS[source]
    key = df[cols[0]].astype(str)
    for c in cols[1:]:
        key = key + "|" + df[c].astype(str)
    return key


def write_truth(truth: Path, tables: dict[str, pd.DataFrame], people: pd.DataFrame, planner, bad) -> dict:  # noqa: ANN001
    """Write every truth file; returns scenario counts by kind and the number of decoys."""
    truth.mkdir(parents=True, exist_ok=True)
    tid = people["true_person_id"].to_numpy()
    recs, addrs = [], []
    for source in KEYS:
        df = tables[source]
        df = df[~df.get("_bad", pd.Series(False, index=df.index)).astype(bool)] if "_bad" in df else df
        key = record_key(df, source)
        if "_person" in df:
            pidx = df["_person"].to_numpy().astype(int)
            ok = pidx >= 0
            recs.append(pd.DataFrame({"source": source, "record_key": key[ok], "true_person_id": tid[pidx[ok]]}))
        col = ADDRESS_COL.get(source)
        if col:
            has = (df[col].astype(str) != "").to_numpy() & (df["_uprn"].astype(str) != "").to_numpy()
            addrs.append(pd.DataFrame({"source": source, "record_key": key[has], "true_uprn": df["_uprn"][has],
                                       "form": df["_aform"][has] if "_aform" in df else "",
                                       "ambiguous": df["_aamb"][has].astype(int) if "_aamb" in df else 0}))
    if bad is not None:
        extra = pd.DataFrame(bad.extra_records, columns=["source", "record_key", "true_person_id"])
        extra["true_person_id"] = tid[extra["true_person_id"].to_numpy().astype(int)]
        recs.append(extra)
        addrs.append(pd.DataFrame(bad.extra_addresses, columns=["source", "record_key", "true_uprn"]))
    pd.concat(recs).drop_duplicates(["source", "record_key"]).to_csv(truth / "records.csv", index=False,
                                                                      lineterminator="\n")
    addr = pd.concat(addrs).drop_duplicates(["source", "record_key"])
    addr["address_class"] = address_classes(tables["llpg"], addr["true_uprn"])
    addr["form"], addr["ambiguous"] = addr["form"].fillna(""), addr["ambiguous"].fillna(0).astype(int)
    addr[["source", "record_key", "true_uprn", "address_class", "form", "ambiguous"]].to_csv(
        truth / "addresses.csv", index=False, lineterminator="\n")
    pcols = people.assign(forenames=(people["forenames"] + " " + people["middle"]).str.strip(),
                          dob=np.datetime_as_string(people["dob"].to_numpy().astype("datetime64[D]"), unit="D"))
    pcols[["true_person_id", "forenames", "surname", "dob", "sex", "name_origin", "household_id",
           "hard_case"]].to_csv(truth / "persons.csv", index=False, lineterminator="\n")
    pieces = _pieces(tables)
    dates = planner.tag_dates()
    scen = []
    for s in planner.scenarios:
        scen.append({"scenario_id": s["scenario_id"], "kind": s["kind"],
                     "true_person_ids": [str(tid[i]) for i in s["persons"]], "uprns": list(s["uprns"]),
                     "pieces": pieces.get(s["scenario_id"], []), **_span(dates, s["scenario_id"]),
                     **({"child_now_adult": bool(s["child_now_adult"])} if "child_now_adult" in s else {})})
    write_json(scen, truth / "scenarios.json")
    dec = [{"decoy_id": d["decoy_id"], "kind": d["kind"], "true_person_ids": [str(tid[i]) for i in d["persons"]],
            "uprns": list(d["uprns"]), "would_fire": d["would_fire"], "pieces": pieces.get(d["decoy_id"], []),
            **_span(dates, d["decoy_id"])}
           for d in planner.decoys]
    write_json(dec, truth / "decoys.json")
    bad_rows = bad.truth if bad is not None else pd.DataFrame(columns=["source", "row_number", "record_key",
                                                                       "expected"])
    bad_rows.to_csv(truth / "bad_rows.csv", index=False, lineterminator="\n")
    counts: dict[str, int] = {}
    for s in scen:
        counts[s["kind"]] = counts.get(s["kind"], 0) + 1
    return {"scenarios": counts, "decoys": len(dec)}


def address_classes(llpg: pd.DataFrame, uprns: pd.Series) -> np.ndarray:
    """``residential`` / ``commercial`` / ``other`` of each UPRN, from the gazetteer's AddressBase class."""
    if "CLASSIFICATION" not in llpg:
        return np.full(len(uprns), "", dtype=object)
    code = pd.Series(llpg["CLASSIFICATION"].astype(str).to_numpy(), index=llpg["UPRN"].astype(str).to_numpy())
    c = code.reindex(uprns.astype(str).to_numpy()).fillna("").str[:1].to_numpy()
    return np.select([c == "R", c == "C"], ["residential", "commercial"], "other").astype(object)


def _span(dates: dict, tag: str) -> dict:
    """``first_event`` / ``last_event`` (ISO dates) of a scenario or decoy, when it planted any dated row."""
    if tag not in dates:
        return {}
    lo, hi = dates[tag]
    return {"first_event": str(lo), "last_event": str(hi)}


def _pieces(tables: dict[str, pd.DataFrame]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for source in ("police_occurrences", "housing_cases", "council_contacts", "fire_incidents"):
        df = tables[source]
        sel = df[(df["_tag"] != "") & (df["_signal"] != "")]
        for tag, key, sig in zip(sel["_tag"], record_key(sel, source), sel["_signal"], strict=True):
            out.setdefault(tag, []).append({"agency": AGENCY[source], "source": source, "record_key": key,
                                            "signal": sig})
    sw = tables["fire_safe_well"]
    flags = vocab.agencies()["fire_safe_well"]["flags"]
    sel = sw[sw["_tag"] != ""]
    for _i, row in sel.iterrows():
        for col, sig in flags.items():
            if row[col] == "Y":
                out.setdefault(row["_tag"], []).append({"agency": "fire", "source": "fire_safe_well",
                                                        "record_key": row["VISIT_ID"], "signal": sig})
    return out
