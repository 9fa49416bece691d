"""Detection of planted scenarios by scenario age and seed, before and after a change (issue 14).

For each seed: a synthetic town whose scenarios span three years of history (this checkout's synth; as-of =
the extract date), the whole pipeline run through the CLI (``python -m ecins_link run PROJECT.toml``) with the
BEFORE code (``--before-code``: a checkout of the earlier code, optional) and with THIS checkout, each on a
fresh store, then ``python -m ecins_link evaluate``.  Per run: detection in the top 2N of the worklist,
detection by scenario age (under 12, 12-24, over 24 months), decoys flagged, the share of correct flags
invisible to any single agency, and (this checkout) the cause of every miss
(:mod:`history_misses`: person linkage, location, rule).  Writes
``benchmarks/results/history_detection_<persons>.json``.

Run: ``nice python benchmarks/history_eval.py --persons 10000 --seeds 11 12 13 --before-code /tmp/before
--work /tmp/history_eval`` (``--reuse`` keeps towns and before-runs already in ``--work``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import write_results  # noqa: E402
from history_misses import diagnose  # noqa: E402

HERE = Path(__file__).resolve().parents[1]
KEYS = ("scenarios_planted", "top_n", "scenarios_detected_in_top_n", "detection_rate", "scenarios_flagged_any_rank",
        "by_age", "child_now_adult", "correct_flags_by_status", "decoys_with_would_fire", "decoys_flagged",
        "decoy_flag_rate", "correct_flags", "invisible_share", "flags_total", "targets_met")


def _cli(code: Path, *args: str) -> tuple[float, str]:
    """Run ``python -m ecins_link ARGS`` with the package of checkout ``code``; (seconds, stdout)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ecins_link", *args], cwd=code, env=env, check=True,
                          capture_output=True, text=True)
    return round(time.perf_counter() - started, 1), done.stdout


def _run_and_evaluate(code: Path, town: Path, tag: str) -> dict:
    """A whole pipeline run of the town's project on a fresh store with ``code``, then its evaluation."""
    project = town / "project.toml"
    for p in town.glob("store.duckdb*"):
        p.unlink()
    seconds, _ = _cli(code, "run", str(project), "--out", str(town / f"output_{tag}"))
    _, text = _cli(code, "evaluate", str(project), "--truth", str(town / "truth"))
    scen = json.loads(text)["scenarios"]
    for p in town.glob("store.duckdb*"):
        shutil.copy(p, town / p.name.replace("store", f"store_{tag}", 1))
    return {"run_seconds": seconds, **{k: scen.get(k) for k in KEYS},
            "missed": len(scen.get("missed") or []), "ranked_below_top_n": len(scen.get("ranked_below_top_n") or [])}


def run_seed(seed: int, persons: int, work: Path, before: Path | None, reuse: bool) -> dict:
    """Town, before run + evaluation (if asked), after run + evaluation and the causes of its misses."""
    from ecins_link.synth import generate_town

    town = work / f"town_{persons}_{seed}"
    rec: dict = {"seed": seed, "persons": persons}
    if not (reuse and (town / "project.toml").exists()):
        shutil.rmtree(town, ignore_errors=True)
        generate_town(town, persons=persons, seed=seed)
    saved = town / "before.json"
    if before is not None:
        if reuse and saved.exists():
            rec["before"] = json.loads(saved.read_text())
        else:
            rec["before"] = _run_and_evaluate(before, town, "before")
            saved.write_text(json.dumps(rec["before"]))
    rec["after"] = _run_and_evaluate(HERE, town, "after")
    why = diagnose(town, town / "store_after.duckdb")
    rec["after"]["miss_causes"] = why["causes"]
    rec["after"]["misses"] = [{k: m[k] for k in ("scenario_id", "kind", "last_event", "causes")}
                              for m in why["scenarios"]]
    return rec


def main() -> None:
    """Every seed, then the results file."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--before-code", type=Path, help="checkout of the code before the change")
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--work", type=Path, default=Path("history_eval"))
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--name", help="results file name (default history_detection_<persons>)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    before = args.before_code.resolve() if args.before_code else None
    runs = [run_seed(s, args.persons, args.work.resolve(), before, args.reuse) for s in args.seeds]
    summary = {str(r["seed"]): {side: {"detection_rate": r[side]["detection_rate"],
                                       **{b: v["detection_rate"] for b, v in (r[side]["by_age"] or {}).items()},
                                       "decoy_flag_rate": r[side]["decoy_flag_rate"],
                                       "invisible_share": r[side]["invisible_share"]}
                                for side in ("before", "after") if side in r} for r in runs}
    path = write_results(args.name or f"history_detection_{args.persons}",
                         {"persons": args.persons, "seeds": args.seeds, "before_code": str(before) if before else None,
                          "load_average": os.getloadavg(), "summary": summary, "runs": runs})
    print(json.dumps(summary, indent=1))
    print(path)


if __name__ == "__main__":
    main()
