"""Baselines for the end-to-end benchmark: plain Splink 4 (tutorial settings) and recordlinkage (ECM).

Both take the same canonical person records (``person_std`` from a linked store, as a DataFrame) and a truth
mapping ``unique_id -> true_person_id``, and return timings, pair counts and B-cubed accuracy.  Called by
``benchmarks/e2e.py``; runnable alone on an existing store:

    nice .venv/bin/python benchmarks/baselines.py STORE.duckdb TRUTH_DIR [--rl-records 20000]

or on a generated town through the public interface (``ecins-link run --stage persons`` against plain Splink on
the records it linked; writes ``results/persons_vs_splink_<N>.json``):

    nice -n 5 .venv/bin/python benchmarks/baselines.py --town-persons 250000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import PeakRSS, measured  # noqa: E402

from ecins_link.matching.metrics import bcubed, pairwise_metrics  # noqa: E402

COLUMNS = ["unique_id", "forename", "surname", "dob", "sex", "postcode", "postcode_outward", "dob_year"]


def load_person_std(store_path: Path) -> pd.DataFrame:
    """The canonical person records the baselines see (read-only copy of ``person_std``)."""
    con = duckdb.connect(str(store_path), read_only=True)
    try:
        return con.execute(f"SELECT {', '.join(COLUMNS)} FROM person_std").df()
    finally:
        con.close()


def load_truth(truth_dir: Path) -> pd.Series:
    """``unique_id -> true_person_id`` from ``truth/records.csv`` (unique_id = source:record_key)."""
    t = pd.read_csv(truth_dir / "records.csv", dtype="string", keep_default_na=False)
    return pd.Series(t["true_person_id"].values, index=t["source"] + ":" + t["record_key"], dtype="string")


def _accuracy(pred: pd.Series, truth: pd.Series) -> dict:
    b = bcubed(pred, truth)
    p = pairwise_metrics(pred, truth)
    return {"bcubed": {k: round(v, 5) if isinstance(v, float) else v for k, v in b.items()},
            "pairwise": {k: round(v, 5) if isinstance(v, float) else v for k, v in p.items()}}


def splink_baseline(records: pd.DataFrame, truth: pd.Series, threshold: float = 0.95) -> dict:
    """Plain Splink 4 dedupe as in its tutorial: NameComparison (forename, surname with TF), DOB, postcode,
    exact sex; simple blocking; u by random sampling; EM on two blocking rules; predict; cluster at 0.95."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    out: dict = {"records": len(records), "threshold": threshold}
    started = time.perf_counter()
    with PeakRSS() as rss:
        con = duckdb.connect()
        df = records[["unique_id", "forename", "surname", "dob", "sex", "postcode"]].copy()
        con.register("input_df", df)
        con.execute("CREATE TABLE person_input AS SELECT * FROM input_df")
        con.unregister("input_df")
        settings = SettingsCreator(
            link_type="dedupe_only",
            unique_id_column_name="unique_id",
            blocking_rules_to_generate_predictions=[
                block_on("forename", "surname"),
                block_on("surname", "dob"),
                block_on("forename", "dob"),
                block_on("postcode", "surname"),
            ],
            comparisons=[
                cl.NameComparison("forename"),
                cl.NameComparison("surname").configure(term_frequency_adjustments=True),
                cl.DateOfBirthComparison("dob", input_is_string=False),
                cl.PostcodeComparison("postcode"),
                cl.ExactMatch("sex"),
            ],
            retain_intermediate_calculation_columns=False,
        )
        linker = Linker("person_input", settings, db_api=DuckDBAPI(con))
        timings: dict = {}
        with measured(timings, "train"):
            linker.training.estimate_probability_two_random_records_match(
                [block_on("forename", "surname", "dob")], recall=0.7)
            linker.training.estimate_u_using_random_sampling(max_pairs=1e7)
            linker.training.estimate_parameters_using_expectation_maximisation(block_on("forename", "surname"))
            linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
        with measured(timings, "predict"):
            pred = linker.inference.predict(threshold_match_probability=0.5)
            n_pairs = con.execute(f"SELECT count(*) FROM {pred.physical_name}").fetchone()[0]
        with measured(timings, "cluster"):
            clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, threshold)
            cl_df = con.execute(f"SELECT unique_id, cluster_id FROM {clusters.physical_name}").df()
        con.close()
    out["seconds"] = round(time.perf_counter() - started, 3)
    out["peak_rss_mb"] = rss.peak_mb
    out["stages"] = timings
    out["pairs_scored_p_ge_0.5"] = int(n_pairs)
    out.update(_accuracy(cl_df.set_index("unique_id")["cluster_id"], truth))
    return out


def sample_by_person(records: pd.DataFrame, truth: pd.Series, n_target: int, seed: int = 7) -> pd.DataFrame:
    """Records of a random subset of true persons (whole clusters kept, so recall is meaningful)."""
    df = records.assign(true=records["unique_id"].map(truth))
    persons = df["true"].dropna().drop_duplicates().sample(frac=1.0, random_state=seed)
    per_person = len(df) / max(1, len(persons))
    keep = set(persons.iloc[: int(n_target / per_person)])
    return df[df["true"].isin(keep)].drop(columns="true").reset_index(drop=True)


def sorted_neighbourhood_pairs(values: pd.Series, window: int) -> int:
    """Pairs recordlinkage's ``SortedNeighbourhood(window)`` makes in a dedupe: records whose values are within
    ``(window - 1) // 2`` places in the sorted list of *distinct* values, so every record with a common value
    pairs with every other (quadratic in name frequency, not ``n * (window - 1) / 2``)."""
    import numpy as np

    c = values.dropna().value_counts().sort_index().to_numpy(dtype=np.int64)
    total = int((c * (c - 1) // 2).sum())
    for d in range(1, (window - 1) // 2 + 1):
        total += int((c[:-d] * c[d:]).sum())
    return total


def recordlinkage_baseline(records: pd.DataFrame, truth: pd.Series, sample_records: int = 20000,
                           window: int = 9) -> dict:
    """recordlinkage Index (blocking on DOB + sorted neighbourhood on surname) / Compare / ECM on a subsample of
    whole persons; pairs/s and the time extrapolated to the full record set."""
    import networkx as nx
    import recordlinkage as rl

    sub = sample_by_person(records, truth, sample_records)
    sub = sub.assign(dob=sub["dob"].astype("string")).set_index("unique_id")
    # recordlinkage's block() joins missing keys to each other (pandas merge): every DOB-less record would pair
    # with every other one.  A competent analyst blocks only on known DOBs, so missing DOBs get a key of their own.
    sub["dob_block"] = sub["dob"].fillna(pd.Series("missing:" + sub.index.astype("string"), index=sub.index))
    out: dict = {"sample_records": len(sub), "full_records": len(records), "window": window,
                 "sample": "records of a random subset of true persons"}
    timings: dict = {}
    with measured(timings, "index"):
        indexer = rl.Index()
        indexer.block("dob_block")
        indexer.sortedneighbourhood("surname", window=window)
        pairs = indexer.index(sub)
    with measured(timings, "compare"):
        comp = rl.Compare()
        comp.string("forename", "forename", method="jarowinkler", threshold=0.88, label="forename")
        comp.string("surname", "surname", method="jarowinkler", threshold=0.88, label="surname")
        comp.exact("dob", "dob", label="dob")
        comp.exact("postcode", "postcode", label="postcode")
        comp.exact("sex", "sex", label="sex")
        features = comp.compute(pairs, sub)
    with measured(timings, "classify"):
        ecm = rl.ECMClassifier(binarize=None)
        matches = ecm.fit_predict(features.fillna(0).astype(int))
    g = nx.Graph()
    g.add_nodes_from(sub.index)
    g.add_edges_from(matches)
    pred = pd.Series({n: i for i, comp_ in enumerate(nx.connected_components(g)) for n in comp_}, dtype="string")
    seconds = sum(t["seconds"] for t in timings.values())
    n_pairs = len(pairs)
    # candidate pairs the same index would make on the full set: DOB blocks exactly, plus the sorted
    # neighbourhood's pairs (overlap between the two not subtracted: < 1 % of the total)
    dob_sizes = records["dob"].dropna().value_counts()
    full_pairs = int((dob_sizes * (dob_sizes - 1) // 2).sum()) + sorted_neighbourhood_pairs(records["surname"], window)
    pps = n_pairs / seconds if seconds else float("nan")
    out.update(stages=timings, seconds=round(seconds, 3), candidate_pairs=n_pairs, pairs_per_second=round(pps, 1),
               full_candidate_pairs_estimate=full_pairs,
               full_seconds_extrapolated=round(full_pairs / pps, 1) if pps else None,
               matches=len(matches), peak_rss_mb=max(t["peak_rss_mb"] for t in timings.values()))
    out.update(_accuracy(pred, truth))
    return out


def _cli(town: Path, *args: str) -> dict:
    """``python -m ecins_link ARGS`` in ``town`` (this checkout on the path); wall seconds."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ecins_link", *args], capture_output=True, text=True, env=env,
                          cwd=town)
    if done.returncode:
        raise RuntimeError(f"ecins-link {' '.join(args)} failed: {done.stderr[-2000:]}")
    return {"wall_seconds": round(time.perf_counter() - started, 2)}


def persons_vs_splink(persons: int, seed: int, work: Path) -> dict:
    """The persons stage on a generated town, through the public interface, against plain Splink on the same
    records: ``ecins-link run --stage ingest --stage standardise``, then ``--stage persons`` alone (its stage
    seconds from ``output/run_summary.json``), then :func:`splink_baseline` on the ``person_std`` it linked."""
    import json
    import os

    from ecins_link.synth import generate_town

    town = work / f"town_{persons}_{seed}"
    generate_town(town, persons=persons, seed=seed)
    out: dict = {"persons": persons, "seed": seed, "load_average_before": os.getloadavg()}
    out["ingest_standardise"] = _cli(town, "run", "project.toml", "--stage", "ingest", "--stage", "standardise")
    out["persons_cli"] = _cli(town, "run", "project.toml", "--stage", "persons")
    summary = json.loads((town / "output" / "run_summary.json").read_text(encoding="utf-8"))
    out["persons_stage_seconds"] = next(s["seconds"] for s in summary["stages"] if s["stage"] == "persons")
    out["agency_rows"] = sum(int(s.get("rows_read", 0) or 0) for s in summary.get("sources", []))
    out["candidate_pairs"] = summary.get("candidate_pairs")
    records, truth = load_person_std(town / "store.duckdb"), load_truth(town / "truth")
    out["person_records"] = len(records)
    con = duckdb.connect(str(town / "store.duckdb"), read_only=True)
    try:
        pred = con.execute("SELECT unique_id, person_id FROM person_clusters").df().set_index("unique_id")["person_id"]
    finally:
        con.close()
    out["ecins_link"] = _accuracy(pred, truth[truth.index.isin(pred.index)])
    out["load_average_after_persons"] = os.getloadavg()
    out["splink"] = splink_baseline(records, truth[truth.index.isin(records["unique_id"])])
    out["load_average_after_splink"] = os.getloadavg()
    out["persons_vs_splink_time_ratio"] = round(out["persons_stage_seconds"] / out["splink"]["seconds"], 3)
    return out


def main() -> None:
    """Run both baselines on an existing store and print the results as JSON; or, with ``--town-persons N``,
    the persons stage on a generated town through the CLI against plain Splink (results file written)."""
    import json
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path, nargs="?")
    ap.add_argument("truth_dir", type=Path, nargs="?")
    ap.add_argument("--rl-records", type=int, default=20000)
    ap.add_argument("--town-persons", type=int, default=0,
                    help="generate a town of N persons (250000 ~ 1M agency rows) and time the persons stage "
                         "(ecins-link run --stage persons) against plain Splink; writes "
                         "results/persons_vs_splink_<N>.json")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    if a.town_persons:
        from _measure import write_results

        with tempfile.TemporaryDirectory() as tmp:
            res = persons_vs_splink(a.town_persons, a.seed, Path(tmp))
        print(json.dumps({k: v for k, v in res.items() if k not in ("splink", "ecins_link")}, indent=2, default=str))
        print(write_results(f"persons_vs_splink_{a.town_persons}", res))
        return
    if a.store is None or a.truth_dir is None:
        ap.error("give STORE and TRUTH_DIR, or --town-persons N")
    records, truth = load_person_std(a.store), load_truth(a.truth_dir)
    res = {"splink": splink_baseline(records, truth),
           "recordlinkage": recordlinkage_baseline(records, truth, a.rl_records)}
    print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
