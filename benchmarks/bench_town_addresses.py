"""Addresses and detection on whole synthetic towns (people, events, scenarios) with the address forms of issue 16.

For each seed, ``ecins-link synth`` writes a town whose gazetteer has parent/child UPRNs, flats above numbered
shops, suffixed numbers, floor flats and chain branches, and whose agencies write them as extracts do
(``docs/synth-addresses.md``); ``ecins-link run`` + ``ecins-link evaluate`` run and score it.  Addresses are
scored by group -- houses (``residential``), ``flats``, numbered shops (``commercial``), ``premises_names``,
``position_words`` -- and by written form: right (the true UPRN), building (level building / approximate at the
true property's parent), wrong (any other UPRN), unresolved; ambiguous texts (the truth's ``ambiguous``: a premises name whose area holds another branch, or a text whose
written parts fit several gazetteer entries, ``synth/written_fits.py``) apart.  Detection is the evaluate figure "scenarios in the top 2N".

``--score-only DIR ...`` scores finished runs (a town folder holding ``out/`` and ``store.duckdb``), e.g. towns
generated before the forms existed: their groups are then derived from the gazetteer (flat: a sub-building;
commercial: an organisation) and the text (position words), and their forms are unknown.

Run: ``nice .venv/bin/python benchmarks/bench_town_addresses.py [--seeds 11 12 13] [--random-seeds 14]
[--persons 10000]``.  Writes ``benchmarks/results/town_addresses.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import write_results  # noqa: E402

GROUPS = {"house": "residential", "suffixed_number": "residential", "named_house": "residential",
          "flat_number": "flats", "flat_letter": "flats", "flat_glued": "flats", "floor_descriptor": "flats",
          "flat_above_shop": "flats", "shop_with_name": "commercial", "shop_number_only": "commercial",
          "premises_name": "premises_names", "position_words": "position_words"}
POSITION = r"^(?:O/S|OUTSIDE|REAR OF|NEAR|JUNCTION NEAR|OPP|NR|BEHIND) "


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ecins_link", *args], check=True, capture_output=True)


def score_town(folder: Path) -> tuple[pd.DataFrame, dict]:
    """(one row per truth address: group, form, ambiguous, outcome; the evaluate JSON) of a finished run."""
    ev = json.loads((folder / "eval.json").read_text(encoding="utf-8"))
    truth = pd.read_csv(folder / "truth" / "addresses.csv", dtype=str, keep_default_na=False)
    con = duckdb.connect(str(folder / "store.duckdb"), read_only=True)
    con.register("t", truth)
    have_forms = "form" in truth.columns
    form = "t.form" if have_forms else "CAST(NULL AS VARCHAR)"
    amb = "CAST(t.ambiguous AS INT)" if have_forms else "0"
    df = con.execute(f"""
        WITH txt AS (SELECT source, record_key, any_value(address_text) AS text FROM address_records GROUP BY ALL)
        SELECT t.source, t.record_key, {form} AS form, {amb} AS ambiguous, g.sub_building IS NOT NULL AS flat,
               g.organisation IS NOT NULL AS org, upper(txt.text) AS text, m.uprn, m.match_level,
               CASE WHEN m.uprn IS NOT NULL AND m.uprn = t.true_uprn THEN 'right'
                    WHEN m.uprn IS NOT NULL AND m.match_level IN ('building', 'approximate')
                         AND m.uprn = g.parent_uprn THEN 'building'
                    WHEN m.uprn IS NOT NULL THEN 'wrong' ELSE 'unresolved' END AS outcome,
               coalesce(m.match_level IS NOT NULL AND t.source IN (SELECT DISTINCT source FROM person_records)
                        AND (SELECT address_class FROM gazetteer_std s WHERE s.uprn = m.uprn) = 'commercial',
                        false) AS home_on_commercial
        FROM t LEFT JOIN read_parquet(?) m ON m.source = t.source AND CAST(m.record_key AS VARCHAR) = t.record_key
        LEFT JOIN gazetteer g ON g.uprn = t.true_uprn
        LEFT JOIN txt ON txt.source = t.source AND txt.record_key = t.record_key""",
                     [str(folder / "out" / "addresses.parquet")]).df()
    con.close()
    if have_forms:
        df["group"] = df["form"].map(GROUPS).fillna("other")
    else:
        pos = df["text"].fillna("").str.contains(POSITION)
        df["group"] = [("position_words" if p else "commercial" if o else "flats" if f else "residential")
                       for p, o, f in zip(pos, df["org"], df["flat"], strict=True)]
    return df, ev


def rates(df: pd.DataFrame) -> dict:
    """n and right / building / wrong / unresolved shares (percent, 2 dp)."""
    out = {"n": int(len(df))}
    for k in ("right", "building", "wrong", "unresolved"):
        out[k] = round(100 * float((df["outcome"] == k).sum()) / max(len(df), 1), 2)
    return out


def summarise(df: pd.DataFrame, ev: dict) -> dict:
    """Addresses overall / by group / by form (unambiguous texts), homes on commercial UPRNs, detection."""
    clear = df[df["ambiguous"].astype(int) == 0]
    sc = ev["scenarios"]
    return {"all": rates(df), "unambiguous": rates(clear),
            "by_group": {k: rates(v) for k, v in clear.groupby("group")},
            "by_form": {k: rates(v) for k, v in clear.groupby(clear["form"].fillna("unknown"))},
            "ambiguous": rates(df[df["ambiguous"].astype(int) == 1]),
            "homes_on_commercial": int(df["home_on_commercial"].sum()),
            "detection": {"planted": sc["scenarios_planted"], "in_top_2n": sc["scenarios_detected_in_top_n"],
                          "rate": sc["detection_rate"]},
            "evaluate_locations": ev["locations"]["overall"],
            "persons_pairwise_f1": round(ev["persons"]["pairwise"]["f1"], 4)}


def run_town(folder: Path, seed: int, persons: int, dialect: str) -> None:
    """Generate, run and evaluate one town through the CLI."""
    _cli("synth", "--out", str(folder), "--persons", str(persons), "--seed", str(seed), "--dialect", dialect)
    _cli("run", str(folder / "project.toml"), "--out", str(folder / "out"))
    _cli("evaluate", str(folder / "project.toml"), "--truth", str(folder / "truth"), "--out",
         str(folder / "eval.json"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[11, 12, 13])
    ap.add_argument("--random-seeds", type=int, nargs="*", default=[14], help="towns with --dialect random")
    ap.add_argument("--persons", type=int, default=10_000)
    ap.add_argument("--keep", type=Path, help="keep the towns in this folder")
    ap.add_argument("--score-only", type=Path, nargs="+", help="score these finished town folders instead")
    ap.add_argument("--name", default="town_addresses", help="results file name")
    args = ap.parse_args()
    record: dict = {"persons": args.persons, "towns": {}}
    with tempfile.TemporaryDirectory() as tmp:
        if args.score_only:
            folders = {p.name: p for p in args.score_only}
        else:
            root = args.keep or Path(tmp)
            folders = {}
            for seed, dialect in [(s, "classic") for s in args.seeds] + [(s, "random") for s in args.random_seeds]:
                folders[f"{seed}_{dialect}"] = root / f"town_{seed}_{dialect}"
                run_town(folders[f"{seed}_{dialect}"], seed, args.persons, dialect)
                print(f"town {seed} {dialect} done", file=sys.stderr)
        scored = []
        for name, folder in folders.items():
            df, ev = score_town(folder)
            record["towns"][name] = summarise(df, ev)
            scored.append((df, ev))
    pooled = pd.concat([d for d, _ in scored])
    record["pooled"] = {"all": rates(pooled), "unambiguous": rates(pooled[pooled["ambiguous"].astype(int) == 0]),
                        "by_group": {k: rates(v) for k, v in pooled[pooled["ambiguous"].astype(int) == 0]
                                     .groupby("group")},
                        "detection": {"planted": sum(e["scenarios"]["scenarios_planted"] for _, e in scored),
                                      "in_top_2n": sum(e["scenarios"]["scenarios_detected_in_top_n"]
                                                       for _, e in scored)},
                        "homes_on_commercial": int(pooled["home_on_commercial"].sum())}
    path = write_results(args.name, record)
    print(json.dumps(record["pooled"], indent=1))
    print(f"written {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
