"""External benchmark: an unseen gazetteer corrupted by ``address-errors``, the engine vs uk_address_matcher alone.

``address-errors`` (PyPI, stdlib only; the ``dev`` extra) applies recording errors learned from six UK councils'
address registers to any gazetteer and keeps a truth table.  For each setting (house style, seed, prevalence,
noise, commas/postcodes) this script:

1. builds an unseen BS7666 gazetteer (``ecins_link.synth.address_forms.build_llpg``: flats above numbered shops,
   floor flats, suffixed numbers, parent shells, chains) and hands it to address-errors as components;
2. writes the corrupted strings as agency extracts -- residential records as person records (homes), the rest as
   event locations -- with a project file, and runs ``python -m ecins_link run`` on it;
3. matches the same strings with uk_address_matcher alone (default acceptance, and its strict setting: match
   weight >= 10 and distinguishability >= 5) against the same gazetteer, in the same run;
4. scores all three: right / wrong / building / unresolved, for unambiguous records (address-errors' collision
   check says the string equals its own label only, or nothing) apart from the rest, by address class and by
   dwelling type.

Done-when (issue 16): on every setting the engine's right share >= the matcher's and its wrong share <= the
matcher's.  Writes ``benchmarks/results/address_errors.json``.

Run: ``nice .venv/bin/python benchmarks/bench_address_errors.py [--streets 120] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _address_score import rates, score  # noqa: E402
from _measure import write_results  # noqa: E402

from ecins_link.synth.address_extracts import PROJECT  # noqa: E402
from ecins_link.synth.address_forms import COLUMNS, build_llpg  # noqa: E402

# (label, style or None for pooled rates, seed, controls)
SETTINGS = [
    ("leeds", "leeds", 1, {}),
    ("leeds_prevalence2_noise", "leeds", 2, {"prevalence": 2.0, "noise": 0.1}),
    ("pooled_commas_postcodes", None, 3, {"commas": True, "postcode": "with_errors"}),
    ("bradford", "bradford", 4, {}),
]


def components(g: pd.DataFrame) -> pd.DataFrame:
    """The gazetteer as address-errors components (record id = UPRN)."""
    sao = (g["SAO_TEXT"] + " " + g["SAO_START_NUMBER"]).str.strip()
    return pd.DataFrame({"uprn": g["UPRN"], "subname": sao, "name": g["PAO_TEXT"],
                         "number": g["PAO_START_NUMBER"] + g["PAO_START_SUFFIX"], "streetname": g["STREET"],
                         "townname": g["TOWN"], "locality": g["LOCALITY"], "postcode": g["POSTCODE"],
                         "parentuprn": g["PARENT_UPRN"], "usrn": g.groupby(["STREET", "LOCALITY"]).ngroup().astype(str),
                         "classificationcode": g["CLASSIFICATION"], "organisationname": g["ORGANISATION"]})


def corrupt(comp_csv: Path, ids: list[str], style: str | None, seed: int, ctl: dict) -> pd.DataFrame:
    """address-errors output rows for ``ids``."""
    from address_errors import Controls, Corruptor, Noise, Profile, load_components

    kw = {k: v for k, v in ctl.items() if k in ("prevalence", "commas", "postcode")}
    if "noise" in ctl:
        kw["noise"] = Noise(rate=ctl["noise"])
    gen = Corruptor(Profile.load(), style=style, seed=seed, controls=Controls(**kw),
                    **({} if style else {"rates": "pooled"}))
    gen.index(load_components(str(comp_csv)))
    return pd.DataFrame(gen.generate(ids))


def run_engine(folder: Path, g: pd.DataFrame, rec: pd.DataFrame) -> pd.DataFrame:
    """Write extracts + project, ``ecins_link run``; the scored truth rows."""
    rng = np.random.default_rng(7)
    res = rec["source_uprn"].isin(set(g.loc[g["CLASSIFICATION"].str.startswith("R"), "UPRN"]))
    text = rec["recorded_address"].fillna("")
    pc = rec["recorded_postcode"].fillna("")
    keys = list(rec["record_key"])
    homes = pd.DataFrame({"ID": keys, "NAME": [f"P{i} {s}" for i, s in enumerate(rng.choice(
        ["SMITH", "JONES", "KHAN", "TAYLOR", "PATEL", "EVANS"], len(rec)))], "DOB": "1980-01-01", "ADDRESS": text,
                          "POSTCODE": pc})[res.to_numpy()]
    events = pd.DataFrame({"ID": keys, "DATE": "2026-01-05", "CODE": "ASB",
                           "LOCATION": (text + " " + pc).str.strip()})[~res.to_numpy()]
    (folder / "gazetteer").mkdir(parents=True, exist_ok=True)
    g[COLUMNS].to_csv(folder / "gazetteer" / "llpg.csv", index=False)
    homes.to_csv(folder / "homes.csv", index=False)
    events.to_csv(folder / "events.csv", index=False)
    (folder / "project.toml").write_text(PROJECT.format(seed=0))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ecins_link", "run", str(folder / "project.toml"), "--out",
                    str(folder / "out")], check=True, capture_output=True)
    seconds = round(time.perf_counter() - started, 1)
    truth = pd.DataFrame({"source": np.where(res, "homes", "incidents"), "record_key": keys,
                          "true_uprn": rec["source_uprn"].astype(str), "ambiguous": (~rec["unambiguous"]).astype(int),
                          "address_class": _classes(g, rec["source_uprn"]), "form": rec["stratum"].fillna(""),
                          "text_class": _text_classes(g, rec)})
    scored = score(str(folder / "out" / "addresses.parquet"), truth, g)
    scored.attrs["run_seconds"] = seconds
    return scored


def _classes(g: pd.DataFrame, uprns: pd.Series) -> list[str]:
    cls = dict(zip(g["UPRN"], g["CLASSIFICATION"], strict=True))
    return ["residential" if cls[u].startswith("R") else "commercial" if cls[u].startswith("C") else "other"
            for u in uprns]


def _text_classes(g: pd.DataFrame, rec: pd.DataFrame) -> list[str]:
    """What the text names: ``position`` (position words added), ``flat`` (the true UPRN is a flat / sub-unit),
    ``premises_name`` (an organisation, or a building known by name alone), or ``house``."""
    by = g.set_index("UPRN")
    out = []
    for uprn, rules in zip(rec["source_uprn"], rec["applied_rules"].fillna(""), strict=True):
        r = by.loc[uprn]
        if "DQ1" in rules:
            out.append("position")
        elif r["SAO_TEXT"] or r["SAO_START_NUMBER"]:
            out.append("flat")
        elif r["ORGANISATION"] or (r["PAO_TEXT"] and not r["PAO_START_NUMBER"]):
            out.append("premises_name")
        else:
            out.append("house")
    return out


def run_matcher(g: pd.DataFrame, rec: pd.DataFrame, truth: pd.DataFrame, keep: Path | None = None
                ) -> dict[str, pd.DataFrame]:
    """uk_address_matcher alone on the same strings: scored rows at its default and strict acceptance."""
    from uk_address_matcher import AddressMatcher

    con = duckdb.connect()
    canon = pd.DataFrame({"unique_id": g["UPRN"], "postcode": g["POSTCODE"], "address_concat": [
        ", ".join(x for x in (r.SAO_TEXT + (" " + r.SAO_START_NUMBER if r.SAO_START_NUMBER else ""), r.ORGANISATION,
                             r.PAO_TEXT, f"{r.PAO_START_NUMBER}{r.PAO_START_SUFFIX} {r.STREET}".strip(), r.LOCALITY,
                             r.TOWN) if x) for r in g.itertuples()]})
    messy = pd.DataFrame({"unique_id": rec["record_key"], "address_concat": rec["recorded_address"].fillna(""),
                          "postcode": rec["recorded_postcode"].replace("", None)})
    con.register("c_in", canon)
    con.register("m_in", messy)
    con.execute("CREATE TABLE c AS SELECT * FROM c_in")
    con.execute("CREATE TABLE m AS SELECT * FROM m_in")
    started = time.perf_counter()
    out = AddressMatcher(canonical_addresses=con.table("c"), addresses_to_match=con.table("m"), con=con,
                         show_progress="off").match().matches().df()
    seconds = round(time.perf_counter() - started, 1)
    out = out.rename(columns={"unique_id": "record_key"})[["record_key", "resolved_canonical_id", "match_weight",
                                                            "distinguishability", "match_reason"]]
    cols = ["source", "record_key", "true_uprn", "ambiguous", "address_class", "form", "text_class"]
    j = truth[cols].merge(
        out, on="record_key", how="left")
    if keep is not None:
        j.to_csv(keep, index=False)
    strict_ok = j["match_reason"].fillna("").str.startswith("exact") | (
        (j["match_weight"] >= 10) & (j["distinguishability"].fillna(99) >= 5))
    res = {}
    for name, ok in (("default", j["resolved_canonical_id"].notna()), ("strict", strict_ok)):
        uprn = j["resolved_canonical_id"].where(ok).astype(object)
        s = j[cols].copy()
        s["outcome"] = np.where(uprn.isna(), "unresolved", np.where(uprn == s["true_uprn"], "right", "wrong"))
        res[name] = s
    res["default"].attrs["run_seconds"] = seconds
    return res


def report(scored: pd.DataFrame) -> dict:
    clear = scored[scored["ambiguous"].astype(int) == 0]
    return {"unambiguous": rates(clear), "ambiguous": rates(scored[scored["ambiguous"].astype(int) == 1]),
            "all": rates(scored), "by_class": {k: rates(v) for k, v in clear.groupby("address_class")},
            "by_text_class": {k: rates(v) for k, v in clear.groupby("text_class")},
            "by_dwelling": {k: rates(v) for k, v in clear.groupby("form")}}


def versus(engine: pd.DataFrame, uam: pd.DataFrame) -> dict:
    """Unambiguous records one side gets right and the other not, counted by the engine's answer (its level and
    its reason with UPRNs blanked): where the engine loses to the matcher alone, and where it wins."""
    j = engine.merge(uam[["record_key", "outcome"]].rename(columns={"outcome": "uam"}), on="record_key")
    j = j[j["ambiguous"].astype(int) == 0]
    why = (j["outcome"] + " | " + j["match_level"].fillna("none") + " | "
           + j["match_reason"].fillna("").str.replace(r"\d{6,}", "#", regex=True).str.slice(0, 110))

    def top(mask: pd.Series) -> dict:
        return {k: int(v) for k, v in why[mask].value_counts().head(15).items()}

    return {"matcher_right_engine_not": int(((j["uam"] == "right") & (j["outcome"] != "right")).sum()),
            "engine_right_matcher_not": int(((j["outcome"] == "right") & (j["uam"] != "right")).sum()),
            "losses": top((j["uam"] == "right") & (j["outcome"] != "right")),
            "wins": top((j["outcome"] == "right") & (j["uam"] != "right")),
            "engine_wrong": top(j["outcome"] == "wrong"),
            "by_level": {k: rates(v) for k, v in j.groupby(j["match_level"].fillna("none"))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streets", type=int, default=120)
    ap.add_argument("--gazetteer-seed", type=int, default=404)
    ap.add_argument("--quick", action="store_true", help="first setting only")
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--name", default="address_errors", help="results file name (benchmarks/results/NAME.json)")
    ap.add_argument("--settings", nargs="+", choices=[s[0] for s in SETTINGS], help="only these settings")
    ap.add_argument("--tag", default="", help="suffix for the results file name")
    args = ap.parse_args()
    g = build_llpg(np.random.default_rng(args.gazetteer_seed), args.streets)
    record: dict = {"gazetteer_seed": args.gazetteer_seed, "gazetteer_rows": len(g), "settings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        comp_csv = root / "components.csv"
        components(g).to_csv(comp_csv, index=False)
        chosen = [s for s in SETTINGS if s[0] in args.settings] if args.settings else SETTINGS
        for label, style, seed, ctl in chosen[:1] if args.quick else chosen:
            rec = corrupt(comp_csv, list(g["UPRN"]), style, seed, ctl)
            rec["unambiguous"] = rec["collision"].isin(["matches_label_only", "no_match"])
            rec["record_key"] = [f"R{i:06d}" for i in range(len(rec))]
            (root / label).mkdir(parents=True, exist_ok=True)
            rec.to_csv(root / label / "address_errors_output.csv", index=False)
            engine = run_engine(root / label, g, rec)
            uam = run_matcher(g, rec, engine, root / label / "uam_alone.csv")
            out = {"records": len(rec), "touched": int((rec["applied_rules"].fillna("") != "").sum()),
                   "engine_run_seconds": engine.attrs["run_seconds"],
                   "uk_address_matcher_seconds": uam["default"].attrs["run_seconds"],
                   "engine": report(engine), "uam_default": report(uam["default"]),
                   "uam_strict": report(uam["strict"]),
                   "engine_homes_on_commercial": int(engine["home_on_commercial"].sum())}
            out["engine_vs_matcher"] = versus(engine, uam["default"])
            hit = set(rec.loc[(rec["applied_rules"].fillna("") != "") & rec["unambiguous"], "record_key"])
            out["engine_touched_unambiguous"] = rates(engine[engine["record_key"].isin(hit)])
            out["uam_touched_unambiguous"] = rates(uam["default"][uam["default"]["record_key"].isin(hit)])
            record["settings"][label] = out
            print(label, json.dumps({k: out[k]["unambiguous"] for k in ("engine", "uam_default", "uam_strict")}),
                  file=sys.stderr)
    path = write_results(f"{args.name}{args.tag}", record)
    print(f"written {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
