"""Which different people were put in one cluster, and why: read from a town's store after ``ecins-link run``
(read-only) and its truth files.

Every predicted cluster holding records of several true persons contributes, for each two of them (A, B), the
``n_A x n_B`` wrongly merged record pairs, and ``2 n_A n_B / |cluster|`` to the B-cubed precision loss summed over
records (divide by the records evaluated: ``1 - P`` is exactly the sum over all such pairs).  Each (A, B) gets

- a **relation** from the truth: ``twins`` (one household, one date of birth, both marked twins),
  ``father_son``, ``household_same_dob`` / ``household_other`` (other members of one household),
  ``namesakes_same_dob`` (different households, the same forename, surname and date of birth),
  ``namesakes_other_dob`` (same forename and surname), ``same_dob_other_name``, ``other``;
- a **link**: ``direct`` when a pair of A's and B's records is scored at or above the threshold, else
  ``chained`` (A and B meet only through a third person's records);
- for a direct link, the **evidence** of its strongest pair, read from the records: ``accepted_at_threshold``
  pairs (exactly the threshold: a post-clustering pass) as ``identity_pass`` (forename, surname and date of birth
  agree exactly) or ``undated_pass`` (one record undated: the only-namesake-at-home or household-moves pass);
  otherwise ``model: <what agrees>`` (e.g. ``model: forename 1 edit, dob, surname, home``).

Run: ``python benchmarks/_false_merges.py TOWN_DIR [--threshold 0.95] [--out results.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb
import pandas as pd


def _load(town: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    con = duckdb.connect(str(town / "store.duckdb"), read_only=True)
    try:
        std = con.execute("""SELECT s.unique_id, s.source, s.record_key, s.forename, s.forename_canonical,
                                    s.surname, s.dob, s.sex, s.uprn, s.address_norm, s.postcode, c.person_id
                             FROM person_std s JOIN person_clusters c USING (unique_id)""").df()
        multi = std.groupby("person_id").unique_id.transform("size") > 1
        con.register("_fm_ids", std.loc[multi, ["unique_id"]])
        pairs = con.execute("""SELECT unique_id_l, unique_id_r, match_weight, match_probability FROM person_pairs
                               WHERE unique_id_l IN (SELECT unique_id FROM _fm_ids)
                                 AND unique_id_r IN (SELECT unique_id FROM _fm_ids)""").df()
    finally:
        con.close()
    truth = pd.read_csv(town / "truth" / "records.csv", dtype=str)
    persons = pd.read_csv(town / "truth" / "persons.csv", dtype=str, keep_default_na=False)
    df = std.merge(truth, on=["source", "record_key"])
    return df, pairs, persons.set_index("true_person_id")


def _relation(a: pd.Series, b: pd.Series) -> str:
    """How two different true persons relate (first forename compared: a middle name is often left out)."""
    same_name = a.forenames.split(" ")[0] == b.forenames.split(" ")[0] and a.surname == b.surname
    if a.household_id == b.household_id:
        if a.hard_case == b.hard_case == "twin" and a.dob == b.dob:
            return "twins"
        if a.hard_case == b.hard_case == "father_son":
            return "father_son"
        return "household_same_dob" if a.dob == b.dob else "household_other"
    if same_name:
        return "namesakes_same_dob" if a.dob == b.dob else "namesakes_other_dob"
    return "same_dob_other_name" if a.dob == b.dob else "other"


def _damerau(x: str, y: str) -> int:
    d = [[i + j if i * j == 0 else 0 for j in range(len(y) + 1)] for i in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (x[i - 1] != y[j - 1]))
            if i > 1 and j > 1 and x[i - 1] == y[j - 2] and x[i - 2] == y[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def _evidence(x: pd.Series, y: pd.Series, prob: float, threshold: float) -> str:
    """What the strongest direct pair of two wrongly merged people agrees on."""
    undated = pd.isna(x.dob) or pd.isna(y.dob)
    exact = (x.forename == y.forename and x.surname == y.surname and not undated and x.dob == y.dob)
    if abs(prob - threshold) < 1e-9:
        if exact:
            return "identity_pass"
        return "undated_pass" if undated else "accepted_at_threshold_other"
    parts = []
    fx, fy = str(x.forename or ""), str(y.forename or "")
    if fx == fy:
        parts.append("forename exact")
    elif x.forename_canonical == y.forename_canonical:
        parts.append("forename nickname")
    elif min(len(fx), len(fy)) == 1:
        parts.append("forename initial")
    else:
        parts.append(f"forename {min(_damerau(fx, fy), 3)}{'+' if _damerau(fx, fy) >= 3 else ''} edit")
    parts.append("no dob" if undated else ("dob" if x.dob == y.dob else "dob differs"))
    parts.append("surname" if x.surname == y.surname else "surname differs")
    home = (pd.notna(x.uprn) and x.uprn == y.uprn) or (pd.notna(x.address_norm) and x.address_norm == y.address_norm)
    parts.append("home" if home else ("postcode" if pd.notna(x.postcode) and x.postcode == y.postcode else "elsewhere"))
    return "model: " + ", ".join(parts)


def _show(x: pd.Series) -> str:
    dob = "-" if pd.isna(x.dob) else str(x.dob)[:10]
    return f"[{x.source} {x.forename} {x.surname} {dob} {x.sex} {x.address_norm} {x.postcode}]"


def false_merges(town: Path, threshold: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """One row per two true persons in one predicted cluster (relation, link, evidence, false pairs, B-cubed loss
    share), and headline figures (records evaluated, false pairs, B-cubed precision)."""
    df, pairs, persons = _load(town)
    n_records = len(df)
    cells = df.groupby(["person_id", "true_person_id"]).size().rename("n").reset_index()
    size = cells.groupby("person_id").n.sum()
    k_true = cells.groupby("person_id").size()
    bad = k_true[k_true > 1].index
    sub = df[df.person_id.isin(bad)].set_index("unique_id")
    tid = sub.true_person_id.to_dict()
    strong = pairs[(pairs.match_probability >= threshold) & pairs.unique_id_l.isin(tid) & pairs.unique_id_r.isin(tid)]
    strong = strong[[tid[a] != tid[b] for a, b in zip(strong.unique_id_l, strong.unique_id_r, strict=True)]]
    best: dict[tuple[str, str], tuple[float, str, str]] = {}
    for a, b, p in zip(strong.unique_id_l, strong.unique_id_r, strong.match_probability, strict=True):
        key = tuple(sorted((tid[a], tid[b])))
        if key not in best or p > best[key][0]:
            best[key] = (float(p), a, b)
    rows = []
    for pid, part in cells[cells.person_id.isin(bad)].groupby("person_id"):
        ts, ns = part.true_person_id.tolist(), part.n.tolist()
        for i in range(len(ts)):
            for j in range(i + 1, len(ts)):
                a, b = sorted((ts[i], ts[j]))
                na, nb = (ns[i], ns[j]) if a == ts[i] else (ns[j], ns[i])
                pa, pb = persons.loc[a], persons.loc[b]
                hit = best.get((a, b))
                evidence = _evidence(sub.loc[hit[1]], sub.loc[hit[2]], hit[0], threshold) if hit else ""
                pair = (f"{_show(sub.loc[hit[1]])} ~ {_show(sub.loc[hit[2]])} p={hit[0]:.4f}") if hit else ""
                rows.append({"cluster": pid, "cluster_records": int(size[pid]), "cluster_people": int(k_true[pid]),
                             "a": a, "b": b, "name_a": f"{pa.forenames} {pa.surname} {pa.dob}",
                             "name_b": f"{pb.forenames} {pb.surname} {pb.dob}", "relation": _relation(pa, pb),
                             "link": "direct" if hit else "chained", "evidence": evidence,
                             "pair": pair, "false_pairs": na * nb, "bcubed_loss": 2 * na * nb / size[pid] / n_records})
    out = pd.DataFrame(rows, columns=["cluster", "cluster_records", "cluster_people", "a", "b", "name_a", "name_b",
                                      "relation", "link", "evidence", "pair", "false_pairs", "bcubed_loss"])
    head = {"records_evaluated": n_records, "false_pairs": int(out.false_pairs.sum()),
            "bcubed_precision": round(1 - float(out.bcubed_loss.sum()), 6),
            "clusters_with_several_people": len(bad),
            "false_pairs_in_clusters_of_3plus_people": int(out.loc[out.cluster_people >= 3, "false_pairs"].sum())}
    return out, head


def summary(out: pd.DataFrame, head: dict, examples: int = 8) -> dict:
    """False pairs and B-cubed loss by relation, by link, by relation x evidence, with a few examples each."""
    def table(keys: list[str]) -> list[dict]:
        g = out.groupby(keys).agg(people_pairs=("a", "size"), false_pairs=("false_pairs", "sum"),
                                  bcubed_loss=("bcubed_loss", "sum")).reset_index()
        g = g.sort_values("false_pairs", ascending=False)
        g["bcubed_loss"] = g.bcubed_loss.round(6)
        return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
                for r in g.to_dict(orient="records")]

    ex = {}
    for rel, part in out.sort_values("false_pairs", ascending=False).groupby("relation"):
        ex[rel] = [f"{r.name_a} | {r.name_b} ({r.link}; {r.evidence or '-'}; {r.false_pairs} pairs)"
                   for r in part.head(examples).itertuples()]
    return {**head, "by_relation": table(["relation"]), "by_link": table(["link"]),
            "by_relation_and_evidence": table(["relation", "link", "evidence"]), "examples": ex}


def persons_evaluation(town: Path) -> dict:
    """``ecins-link evaluate``'s persons part on the store (read-only), usable after a persons-only run."""
    from ecins_link.matching.metrics import evaluate_persons
    from ecins_link.store import Store

    store = Store(town / "store.duckdb", read_only=True)
    try:
        return evaluate_persons(store, town / "truth" / "records.csv", town / "truth" / "persons.csv")
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("town", type=Path)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--evaluate", action="store_true", help="add the persons evaluation (B-cubed, per origin)")
    ap.add_argument("--csv", type=Path, help="also write one row per two wrongly merged people")
    args = ap.parse_args(argv)
    out, head = false_merges(args.town, args.threshold)
    res = summary(out, head)
    if args.evaluate:
        e = persons_evaluation(args.town)
        res = {"bcubed": e["bcubed"], "pairwise": e["pairwise"], "hard_cases": e.get("hard_cases"),
               "pairwise_recall_by_name_origin": {k: v["pairwise_recall"]
                                                  for k, v in e.get("recall_by_name_origin", {}).items()}, **res}
    if args.csv:
        out.to_csv(args.csv, index=False)
    text = json.dumps(res, indent=1, default=str)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
