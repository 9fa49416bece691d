"""Person-linkage benchmark on the synthetic town: the real pipeline (ingest -> standardise -> persons).

* default: the committed 2k-person sample ``data/samples/town`` (copied to a temp folder, so its store is
  never written into the repository);
* ``--persons N``: a fresh town of N persons from ``ecins_link.synth.generate_town`` (seed ``--seed``).

Prints and writes ``benchmarks/results/linkage.json`` (``linkage-<N>.json`` with ``--persons``): B-cubed and
pairwise quality, recall per source and per name origin, hard cases (twins, father/son, same-name
strangers), blocking pairs generated and the share of true pairs reachable, persons-stage wall time and
peak memory, seconds per persons-stage step (pair count, prior, u sampling, each EM pass, predict, clustering,
stable ids, writes) and candidate pairs per blocking rule (added after the earlier rules).  Targets: B-cubed
precision >= 0.995, recall >= 0.97, true pairs reachable >= 99.5 %.

``--incremental N`` goes through the public interface: the town is run with ``ecins-link run --stage ingest
--stage standardise --stage persons`` (trained), then N people of ``council/people.csv`` move to a new address,
the project file gets ``[linkage] retrain = false`` and the same command runs again (predict-only for the
changed records); both persons-stage times come from ``output/run_summary.json``.

Run: ``nice .venv/bin/python benchmarks/bench_linkage.py [--persons 20000] [--seed 7] [--model FILE] [--town DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from _measure import measured, write_results  # noqa: E402

from ecins_link.config import load_config  # noqa: E402
from ecins_link.matching import metrics  # noqa: E402
from ecins_link.matching.person_model import load_model_config  # noqa: E402
from ecins_link.matching.persons import link_persons  # noqa: E402
from ecins_link.pipeline import open_store, stage_function  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "town"
TARGETS = {"bcubed_precision": 0.995, "bcubed_recall": 0.97, "reachable_share": 0.995}


def _town(tmp: Path, persons: int | None, seed: int, town: Path | None = None) -> Path:
    if persons is None or town is not None:
        shutil.copytree(town or SAMPLE, tmp / "town", ignore=shutil.ignore_patterns("store.duckdb*", "output"))
    else:
        from ecins_link.synth import generate_town

        generate_town(tmp / "town", persons=persons, seed=seed)
    return tmp / "town"


INCREMENTAL_STAGES = ("ingest", "standardise", "persons")
# the person extract a weekly batch changes: its rows move house (a new address and postcode)
BATCH_FILE, BATCH_ADDRESS, BATCH_POSTCODE = Path("council") / "people.csv", "ADDRESS", "POSTCODE"


def _cli_run(town: Path) -> dict:
    """``python -m ecins_link run project.toml --stage ...`` in ``town``; the persons stage's seconds from the
    run summary and its mode and changed-record count from the model summary (read-only)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "ecins_link", "run", "project.toml", *[a for s in INCREMENTAL_STAGES
                                                                       for a in ("--stage", s)]]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=town)
    if done.returncode:
        raise RuntimeError(f"ecins-link run failed: {done.stderr[-2000:]}")
    summary = json.loads((town / "output" / "run_summary.json").read_text(encoding="utf-8"))
    with open_store(load_config(town / "project.toml"), command="bench_linkage (read)") as store:
        model = json.loads(store.con.execute(
            "SELECT summary_json FROM linkage_models ORDER BY created_at DESC LIMIT 1").fetchone()[0])
    return {"seconds": next(s["seconds"] for s in summary["stages"] if s["stage"] == "persons"),
            "mode": model.get("mode"), "new_or_changed_records": model.get("new_or_changed_records"),
            "candidate_pairs": model.get("candidate_pairs")}


def _link_incremental(town: Path, model: Path | None, out: dict, n_new: int) -> None:
    """A weekly batch through the public interface: link the town as extracted (trained), then move ``n_new``
    people of one extract to a new address, set ``[linkage] retrain = false`` in the project file and run
    again (predict-only for the changed records)."""
    if model is not None:  # the project file may only name files inside its folder
        (town / model.name).write_bytes(model.read_bytes())
        _set_linkage(town, "model", json.dumps(model.name))
    out["persons_trained_base"] = _cli_run(town)
    people = pd.read_csv(town / BATCH_FILE, dtype=str, keep_default_na=False)
    moved = people.sample(n=min(int(n_new), len(people)), random_state=7).index
    people.loc[moved, BATCH_ADDRESS] = [f"{100 + i} New Road, Northtown" for i in range(len(moved))]
    people.loc[moved, BATCH_POSTCODE] = "NT99 9ZZ"
    people.to_csv(town / BATCH_FILE, index=False)
    _set_linkage(town, "retrain", "false")
    out["persons"] = _cli_run(town)
    out["incremental_new_records"] = len(moved)


def _set_linkage(town: Path, key: str, value: str) -> None:
    """Set ``[linkage] key = value`` (a TOML literal) in the town's project file."""
    lines = [ln for ln in (town / "project.toml").read_text(encoding="utf-8").splitlines()
             if not ln.startswith(f"{key} = ")]
    if "[linkage]" not in lines:
        lines += ["", "[linkage]"]
    lines.insert(lines.index("[linkage]") + 1, f"{key} = {value}")
    (town / "project.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def run(persons: int | None, seed: int, model: Path | None, town_dir: Path | None = None,
        incremental: int = 0) -> dict:
    """Ingest, standardise and link one town; evaluate against its truth folder.  ``incremental`` > 0: the
    persons stage runs predict-only for that many new records onto the linked rest (``persons``), after a
    trained run on the rest (``persons_trained_base``)."""
    out: dict = {"town": str(town_dir) if town_dir else "sample" if persons is None
                 else f"generated {persons} persons seed {seed}", "targets": TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        town = _town(Path(tmp), persons, seed, town_dir)
        if incremental:
            _link_incremental(town, model, out, incremental)
        config = load_config(town / "project.toml")
        with open_store(config, command="bench_linkage") as store:
            if not incremental:
                for stage in ("ingest", "standardise"):
                    with measured(out, stage):
                        stage_function(stage)(store, config)
                with measured(out, "persons"):
                    link_persons(store, config, model_file=model)
            truth_dir = town / "truth"
            ev = metrics.evaluate_persons(store, truth_dir / "records.csv", truth_dir / "persons.csv")
            tr = pd.read_csv(truth_dir / "records.csv", dtype="string")
            truth = pd.Series(tr["true_person_id"].array, index=(tr["source"] + ":" + tr["record_key"]).array)
            std_ids = set(store.df("SELECT unique_id FROM person_std").unique_id)
            truth = truth[truth.index.isin(std_ids)]
            out["blocking_reach"] = metrics.blocking_reach(store, truth, load_model_config(model)["blocking"]["predict"])
            summary = json.loads(store.con.execute(
                "SELECT summary_json FROM linkage_models ORDER BY created_at DESC LIMIT 1").fetchone()[0])
    out.update(person_records=summary["records"], persons_found=summary["persons"],
               candidate_pairs=summary["candidate_pairs"], guard_pieces=summary["guard_pieces"],
               prior=summary["prior"], persons_stage_seconds=summary.get("seconds", {}),
               pairs_per_rule={b["rule"]: b["pairs"] for b in summary.get("blocking", [])},
               em_passes=summary.get("em_passes", []), evaluation=ev)
    out["targets_met"] = {
        "bcubed_precision": ev["bcubed"]["precision"] >= TARGETS["bcubed_precision"],
        "bcubed_recall": ev["bcubed"]["recall"] >= TARGETS["bcubed_recall"],
        "reachable_share": out["blocking_reach"]["share"] >= TARGETS["reachable_share"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=None, help="generate a town of N persons (default: sample)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--model", type=Path, default=None, help="a person model TOML instead of the packaged one")
    ap.add_argument("--town", type=Path, default=None,
                    help="an already generated town folder (copied, its store ignored); --persons names the results")
    ap.add_argument("--incremental", type=int, default=0,
                    help="time a predict-only run for N new records onto the linked rest (#8)")
    args = ap.parse_args()
    r = run(args.persons, args.seed, args.model, args.town, args.incremental)
    ev = r["evaluation"]
    print(f"{r['town']}: {r['person_records']} person records -> {r['persons_found']} persons; "
          f"B-cubed P {ev['bcubed']['precision']:.4f} R {ev['bcubed']['recall']:.4f}; pairwise "
          f"P {ev['pairwise']['precision']:.4f} R {ev['pairwise']['recall']:.4f}; reach "
          f"{r['blocking_reach']['share']:.4f} of {r['blocking_reach']['true_pairs']} true pairs with "
          f"{r['candidate_pairs']} candidate pairs; persons stage {r['persons']['seconds']} s "
          f"{r['persons'].get('peak_rss_mb', '-')} MB")
    print("persons stage seconds:", r["persons_stage_seconds"])
    print("recall by name origin:", {k: v["bcubed_recall"] for k, v in ev.get("recall_by_name_origin", {}).items()})
    print("hard cases:", ev.get("hard_cases"))
    name = "linkage" if args.persons is None else f"linkage-{args.persons}"
    name += f"-incremental-{args.incremental}" if args.incremental else ""
    print(write_results(name, r))


if __name__ == "__main__":
    main()
