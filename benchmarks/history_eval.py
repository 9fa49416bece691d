"""Detection by scenario age, before and after "rules that see the whole history" (issue 14).

For each seed: a synthetic town whose scenarios span the history (this checkout's synth), the whole pipeline
run with the BEFORE code (``--before-code``, a checkout of the earlier main, run as ``python -m ecins_link run``
from that folder) and evaluated; then the score and report stages re-run with THIS checkout on the same store
(the graph, score and report stages; ``--full-after`` re-runs every stage) and evaluated.  Both
evaluations use this checkout's ``evaluate`` (detection in the top 2N, decoys flagged, invisible share,
detection by scenario age: under 12, 12-24, over 24 months).  Writes ``benchmarks/results/history_detection_<persons>.json``.

Run: ``nice .venv/bin/python benchmarks/history_eval.py --before-code /work/main --persons 10000 --seeds 11 12 13
--work /tmp/history_eval`` (``--reuse`` keeps towns and before-stores already in ``--work``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import write_results  # noqa: E402

HERE = Path(__file__).resolve().parents[1]
KEYS = ("scenarios_planted", "detection_rate", "decoy_flag_rate", "invisible_share", "flags_total",
        "scenarios_flagged_any_rank")


def _cli(code: Path, *args: str) -> float:
    """Run ``python -m ecins_link ARGS`` with the package of checkout ``code``; returns seconds."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ecins_link", *args], cwd=code, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - started, 1)


def _evaluate(store_path: Path, truth: Path) -> dict:
    from ecins_link.scoring import evaluate_scenarios
    from ecins_link.store import Store

    with Store(store_path) as store:
        ev = evaluate_scenarios(store, truth)
    out = {k: ev.get(k) for k in KEYS}
    out.update(by_age=ev.get("by_age"), child_now_adult=ev.get("child_now_adult"),
               correct_flags_by_status=ev.get("correct_flags_by_status"), missed=len(ev.get("missed") or []),
               ranked_below_top_n=len(ev.get("ranked_below_top_n") or []), targets_met=ev.get("targets_met"))
    return out


def run_seed(seed: int, persons: int, work: Path, before: Path, reuse: bool, full_after: bool) -> dict:
    """Town, before run + evaluation, after run + evaluation for one seed."""
    from ecins_link.synth import generate_town

    town = work / f"town_{persons}_{seed}"
    project, truth = town / "project.toml", town / "truth"
    rec: dict = {"seed": seed, "persons": persons}
    if not (reuse and (town / "store_before.duckdb").exists()):
        shutil.rmtree(town, ignore_errors=True)
        generate_town(town, persons=persons, seed=seed)
        rec["before_run_seconds"] = _cli(before, "run", str(project), "--out", str(town / "output_before"))
        shutil.copy(town / "store.duckdb", town / "store_before.duckdb")
    rec["before"] = _evaluate(town / "store_before.duckdb", truth)
    shutil.copy(town / "store_before.duckdb", town / "store.duckdb")
    stages = [] if full_after else ["--stage", "graph", "--stage", "score", "--stage", "report"]
    rec["after_run_seconds"] = _cli(HERE, "run", str(project), "--out", str(town / "output_after"), *stages)
    rec["after"] = _evaluate(town / "store.duckdb", truth)
    return rec


def main() -> None:
    """Every seed, then the results file."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--before-code", type=Path, required=True, help="checkout of the code before the change")
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--work", type=Path, default=Path("history_eval"))
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--full-after", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    runs = [run_seed(s, args.persons, args.work, args.before_code.resolve(), args.reuse, args.full_after)
            for s in args.seeds]
    path = write_results(f"history_detection_{args.persons}", {"persons": args.persons, "seeds": args.seeds,
                                               "load_average": os.getloadavg(), "runs": runs})
    print(path.read_text())


if __name__ == "__main__":
    main()
