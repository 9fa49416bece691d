"""Why true record pairs were missed, read from a town's store after ``ecins-link run`` (read-only) and its truth.

For each true person split over several clusters, the largest cluster is its main one; every other fragment's
records miss ``fragment x main`` true pairs.  Each fragment gets one cause, the first that applies:

- ``guard_split``: a direct pair to the main cluster is at or above the match threshold (the guard cut it,
  usually an undated record that fits two people of one household);
- ``initial_only_undated`` / ``initial_only_dated``: the fragment gives a bare initial;
- ``undated_other_address`` / ``undated_same_address``: no date of birth, at an address (or postcode) the main
  cluster does not / does share;
- ``forename_variant_same_dob_addr``: forename differs (not the same canonical form), same DOB and address;
- ``forename_differs``, ``surname_differs``, ``dob_differs``, ``address_differs``, ``other``.

Also per true person the true and found pairs, for the permutation test of the gap between name origins
(:func:`permutation_gap`): how large a best-worst gap chance alone gives when origin has no effect.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd


def _frame(town: Path) -> tuple[pd.DataFrame, dict]:
    con = duckdb.connect(str(town / "store.duckdb"), read_only=True)
    try:
        std = con.execute("""SELECT s.unique_id, s.source, s.record_key, s.forename, s.forename_canonical, s.surname,
                                    s.dob, s.address_norm, s.postcode, c.person_id
                             FROM person_std s JOIN person_clusters c USING (unique_id)""").df()
        pairs = con.execute("SELECT unique_id_l, unique_id_r, match_probability FROM person_pairs").fetchall()
    finally:
        con.close()
    truth = pd.read_csv(town / "truth" / "records.csv", dtype=str)
    persons = pd.read_csv(town / "truth" / "persons.csv", dtype=str, keep_default_na=False)
    df = std.merge(truth, on=["source", "record_key"]).merge(
        persons[["true_person_id", "name_origin", "hard_case"]], on="true_person_id")
    prob = {}
    for a, b, p in pairs:
        prob[(a, b)] = prob[(b, a)] = float(p)
    return df, prob


def _cause(f: pd.DataFrame, m: pd.DataFrame, best: float, threshold: float) -> str:
    undated = f.dob.isna().all()
    same_addr = bool(set(f.address_norm.dropna()) & set(m.address_norm.dropna())) or \
        bool(set(f.postcode.dropna()) & set(m.postcode.dropna()))
    names = set(f.forename.dropna())
    initial_only = bool(names) and all(len(x) == 1 for x in names)
    fn_agree = bool(names & set(m.forename.dropna())) or \
        bool(set(f.forename_canonical.dropna()) & set(m.forename_canonical.dropna()))
    checks = [
        (best >= threshold, "guard_split"),
        (initial_only and undated, "initial_only_undated"),
        (initial_only, "initial_only_dated"),
        (undated and not same_addr, "undated_other_address"),
        (undated, "undated_same_address"),
        (not fn_agree and bool(set(f.dob.dropna()) & set(m.dob.dropna())) and same_addr,
         "forename_variant_same_dob_addr"),
        (not fn_agree, "forename_differs"),
        (not set(f.surname.dropna()) & set(m.surname.dropna()), "surname_differs"),
        (not set(f.dob.dropna()) & set(m.dob.dropna()), "dob_differs"),
        (not same_addr, "address_differs"),
    ]
    return next((name for hit, name in checks if hit), "other")


def misses(town: Path, threshold: float = 0.95) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per missed fragment: origin, hard_case, cause, missed pairs; one row per true person: origin,
    true pairs, found pairs)."""
    df, prob = _frame(town)
    rows = []
    for _tid, g in df.groupby("true_person_id"):
        if g.person_id.nunique() < 2:
            continue
        main_id = g.person_id.value_counts().index[0]
        m = g[g.person_id == main_id]
        for _pid, f in g[g.person_id != main_id].groupby("person_id"):
            best = max((prob.get((x, y), 0.0) for x in f.unique_id for y in m.unique_id), default=0.0)
            rows.append({"origin": f.name_origin.iloc[0], "hard_case": f.hard_case.iloc[0] or "",
                         "cause": _cause(f, m, best, threshold), "missed_pairs": len(f) * len(m)})
    sizes = df.groupby(["true_person_id", "person_id"]).size().rename("k").reset_index()
    sizes["found"] = sizes.k * (sizes.k - 1) // 2
    per = sizes.groupby("true_person_id").agg(n=("k", "sum"), found=("found", "sum")).reset_index()
    per["true"] = per.n * (per.n - 1) // 2
    per = per.merge(df.drop_duplicates("true_person_id")[["true_person_id", "name_origin"]], on="true_person_id")
    return pd.DataFrame(rows, columns=["origin", "hard_case", "cause", "missed_pairs"]), per[per["true"] > 0]


def pairs_per_person(town: Path) -> pd.DataFrame:
    """Per true person of a finished run (read-only): ``true`` record pairs, those ``found`` in one cluster, and
    ``name_origin`` -- the input of :func:`permutation_gap`, in SQL (no pair scores read: fit for 250k towns)."""
    con = duckdb.connect(str(town / "store.duckdb"), read_only=True)
    try:
        con.execute("CREATE TEMP TABLE t AS SELECT * FROM read_csv(?, all_varchar = true)",
                    [str(town / "truth" / "records.csv")])
        con.execute("CREATE TEMP TABLE tp AS SELECT * FROM read_csv(?, all_varchar = true)",
                    [str(town / "truth" / "persons.csv")])
        return con.execute("""
            WITH x AS (SELECT t.true_person_id, c.person_id FROM person_clusters c JOIN t USING (source, record_key)),
                 frag AS (SELECT true_person_id, count(*) AS k FROM x GROUP BY true_person_id, person_id),
                 per AS (SELECT true_person_id, sum(k) AS n, sum(k * (k - 1) // 2) AS found FROM frag GROUP BY 1)
            SELECT per.true_person_id, per.n * (per.n - 1) // 2 AS "true", per.found, tp.name_origin
            FROM per JOIN tp USING (true_person_id) WHERE per.n > 1""").df()
    finally:
        con.close()


def by_cause(missed: pd.DataFrame) -> dict:
    """Missed pairs per cause and origin (with totals), largest cause first."""
    table = missed.pivot_table(index="cause", columns="origin", values="missed_pairs", aggfunc="sum", fill_value=0)
    table["all"] = table.sum(axis=1)
    table = table.sort_values("all", ascending=False)
    return {cause: {k: int(v) for k, v in row.items()} for cause, row in table.iterrows()}


def _gap(found: np.ndarray, true: np.ndarray, labels: np.ndarray, groups: list) -> float:
    recalls = [found[labels == g].sum() / true[labels == g].sum() for g in groups]
    return 100 * (max(recalls) - min(recalls))


def permutation_gap(per_person: pd.DataFrame, rounds: int = 2000, seed: int = 0) -> dict:
    """Observed best-worst gap (points) and its distribution when origin labels are shuffled among true persons
    (of each town separately, column ``town``): median and 95th percentile, and the share at or above the
    observed gap (p-value)."""
    rng = np.random.default_rng(seed)
    found, true = per_person["found"].to_numpy(float), per_person["true"].to_numpy(float)
    labels, towns = per_person["name_origin"].to_numpy(), per_person["town"].to_numpy()
    groups = sorted(set(labels))
    observed = _gap(found, true, labels, groups)
    idx = [np.flatnonzero(towns == t) for t in sorted(set(towns))]
    sims = []
    for _ in range(rounds):
        shuffled = labels.copy()
        for i in idx:
            shuffled[i] = rng.permutation(labels[i])
        sims.append(_gap(found, true, shuffled, groups))
    sims_arr = np.array(sims)
    return {"observed_gap_points": round(float(observed), 2), "rounds": rounds,
            "chance_gap_median_points": round(float(np.median(sims_arr)), 2),
            "chance_gap_p95_points": round(float(np.percentile(sims_arr, 95)), 2),
            "p_value": round(float((sims_arr >= observed - 1e-12).mean()), 4)}
