"""Whole towns through the public interface: ``ecins-link synth`` (or a town folder copied), then ``ecins-link run
project.toml`` on a fresh store and ``ecins-link evaluate``, one town per seed.  Per town it keeps the figures a
closing note quotes: persons B-cubed / pairwise precision and recall, pairwise recall by name origin and the
best-worst gap with a permutation test (the gap chance alone gives at that size), hard cases, locations, scenario detection, each stage's seconds, the process's wall and CPU
seconds and peak RSS, and the box's load average before and after.

Run: ``nice .venv/bin/python benchmarks/bench_town_run.py --persons 250000 --seeds 1 2 [--town-dir DIR]``
(``--town-dir`` holds towns already generated as ``DIR/seed<N>``; they are copied, never written).
Writes ``benchmarks/results/town_run_<persons>_<seeds>[_<label>].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import write_results  # noqa: E402
from _name_misses import pairs_per_person, permutation_gap  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path) -> dict:
    """Run ``python -m ecins_link ARGS`` in ``cwd``; wall / CPU seconds and peak RSS of the child, or raise."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ecins_link", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"ecins-link {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"seconds": round(wall, 2),
            "cpu_seconds": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2),
            "max_rss_kb": after.ru_maxrss}


def run_town(town: Path, work: Path) -> dict:
    """Copy ``town`` into ``work``, run it on a fresh store and evaluate it; the figures of one town."""
    shutil.copytree(town, work, ignore=shutil.ignore_patterns("store.duckdb*", "output"))
    load_before = os.getloadavg()
    run = _cli("run", "project.toml", cwd=work)
    load_after = os.getloadavg()
    _cli("evaluate", "project.toml", "--truth", "truth", "--out", "evaluate.json", cwd=work)
    e = json.loads((work / "evaluate.json").read_text(encoding="utf-8"))
    per_person = pairs_per_person(work)  # read-only, after the run
    summary = json.loads((work / "output" / "run_summary.json").read_text(encoding="utf-8"))
    p = e["persons"]
    by_origin = {k: v["pairwise_recall"] for k, v in p.get("recall_by_name_origin", {}).items()}
    s = e["scenarios"]
    return {
        "run": {**run, "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in load_after]},
        "stage_seconds": {st["stage"]: st["seconds"] for st in summary["stages"]},
        "records": p["pairwise"]["records"],
        "persons_bcubed": {k: round(v, 6) for k, v in p["bcubed"].items()},
        "persons_pairwise": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in p["pairwise"].items()},
        "pairwise_recall_by_name_origin": by_origin,
        "name_origin_gap_points": round(100 * (max(by_origin.values()) - min(by_origin.values())), 2)
        if by_origin else None,
        # the gap chance alone gives at this size: origin labels shuffled among the town's true persons
        "name_origin_gap_permutation_test": permutation_gap(per_person.assign(town=0), rounds=500),
        "_per_person": per_person,
        "hard_cases": p.get("hard_cases"),
        "locations_overall": e["locations"].get("overall"),
        "scenarios": {k: v for k, v in s.items() if not isinstance(v, (dict, list))},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--persons", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[3])
    ap.add_argument("--town-dir", type=Path, help="towns already generated, as DIR/seed<N>")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    towns = {}
    with tempfile.TemporaryDirectory(prefix="town_run_") as tmp:
        for seed in args.seeds:
            town = args.town_dir / f"seed{seed}" if args.town_dir else Path(tmp) / f"town{seed}"
            if not args.town_dir:
                _cli("synth", "--out", str(town), "--persons", str(args.persons), "--seed", str(seed), cwd=ROOT)
            towns[str(seed)] = run_town(town, Path(tmp) / f"run{seed}")
            print(seed, json.dumps({k: towns[str(seed)][k] for k in ("persons_bcubed", "name_origin_gap_points")}),
                  flush=True)
    frames = [towns[k].pop("_per_person").assign(town=int(k)) for k in towns]
    pooled = None
    if len(frames) > 1:  # the towns together: recall by origin over all their true pairs, and its permutation test
        both = pd.concat(frames)
        by = both.groupby("name_origin")[["found", "true"]].sum()
        pooled = {"pairwise_recall_by_name_origin": {o: round(float(r.found / r.true), 6) for o, r in by.iterrows()},
                  "name_origin_gap_permutation_test": permutation_gap(both, rounds=500)}
    name = f"town_run_{args.persons}_{'-'.join(map(str, args.seeds))}{'_' + args.label if args.label else ''}"
    write_results(name, {"how": "ecins-link synth; ecins-link run project.toml on a fresh store; ecins-link "
                                "evaluate project.toml --truth truth (each a child process)",
                         "persons": args.persons, "seeds": args.seeds, "towns": towns, "pooled": pooled})


if __name__ == "__main__":
    main()
