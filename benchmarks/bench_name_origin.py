"""Person linkage by name origin, through the public interface: synthetic towns of several seeds are generated
(``python -m ecins_link synth``), run (``python -m ecins_link run project.toml``) and scored (``python -m ecins_link evaluate``).  Per town: B-cubed and pairwise
quality, pairwise recall per name origin, hard cases, and the missed pairs by cause (benchmarks/_name_misses.py,
reading the store after the run).  Pooled over the towns: each origin's found / true pairs
and its recall with a 95 % Wilson interval, and the gap between the best and worst origin (issue #15 asks for
1 point or less).  A small origin holds few true pairs (about 60 per 10k persons), so one town's gap is mostly
sampling noise: read the pooled figure and the intervals, and the permutation test (the gap chance alone
gives when origin labels are shuffled among the true persons of each town).

``--root`` runs another checkout's code on the same towns (a before / after comparison).

Writes ``benchmarks/results/name_origin_<persons>_<seeds>[_<label>].json``.
Run: ``nice .venv/bin/python benchmarks/bench_name_origin.py --persons 10000 --seeds 3 7 11``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from _measure import write_results  # noqa: E402
from _name_misses import by_cause, misses, permutation_gap  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def cli(root: Path, *args: str, cwd: Path) -> str:
    """``python -m ecins_link ARGS`` with ``root`` on the path; raises with stderr on failure."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "ecins_link", *args], capture_output=True, text=True, env=env,
                          cwd=cwd)
    if done.returncode:
        raise RuntimeError(f"ecins-link {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def wilson(found: int, total: int, z: float = 1.96) -> list[float]:
    """95 % Wilson score interval of a proportion."""
    if total == 0:
        return [0.0, 1.0]
    p = found / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return [round(centre - half, 4), round(centre + half, 4)]


def town_figures(root: Path, persons: int, seed: int, tmp: Path) -> dict:
    """Generate, run and evaluate one town."""
    town = tmp / f"town_{persons}_{seed}"
    cli(root, "synth", "--out", str(town), "--persons", str(persons), "--seed", str(seed), cwd=tmp)
    started = time.perf_counter()
    cli(root, "run", "project.toml", cwd=town)
    seconds = round(time.perf_counter() - started, 1)
    e = json.loads(cli(root, "evaluate", "project.toml", "--truth", "truth", cwd=town))["persons"]
    missed, per_person = misses(town)  # read-only, after the run
    return {"_missed": missed.assign(town=seed), "_per_person": per_person.assign(town=seed),
            "missed_by_cause": by_cause(missed), "seed": seed, "persons": persons, "run_seconds": seconds, "bcubed": e["bcubed"], "pairwise": e["pairwise"],
            "by_origin": {k: {"true_pairs": v["true_pairs"], "found_pairs": v["found_pairs"],
                              "pairwise_recall": v["pairwise_recall"]} for k, v in e["recall_by_name_origin"].items()},
            "hard_cases": e.get("hard_cases", {})}


def pooled(towns: list[dict]) -> dict:
    """Found / true pairs per origin summed over the towns, recall, interval, and the best-worst gap."""
    sums: dict[str, list[int]] = {}
    for t in towns:
        for origin, v in t["by_origin"].items():
            s = sums.setdefault(origin, [0, 0])
            s[0] += v["found_pairs"]
            s[1] += v["true_pairs"]
    by = {o: {"found_pairs": f, "true_pairs": n, "pairwise_recall": round(f / n, 4) if n else None,
              "ci95": wilson(f, n)} for o, (f, n) in sorted(sums.items())}
    recalls = [v["pairwise_recall"] for v in by.values() if v["pairwise_recall"] is not None]
    found, total = sum(f for f, _ in sums.values()), sum(n for _, n in sums.values())
    return {"by_origin": by, "all_pairwise_recall": round(found / total, 4) if total else None,
            "gap_points": round(100 * (max(recalls) - min(recalls)), 2) if recalls else None,
            "per_town_gap_points": [round(100 * (max(r) - min(r)), 2) for r in
                                    ([v["pairwise_recall"] for v in t["by_origin"].values()] for t in towns)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 7, 11])
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose code runs (default: this one)")
    ap.add_argument("--label", default="", help="suffix of the results file name")
    ap.add_argument("--keep", type=Path, default=None,
                    help="generate and run the towns in this folder and keep them (default: a temporary folder)")
    args = ap.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        towns = [town_figures(args.root.resolve(), args.persons, s, args.keep.resolve()) for s in args.seeds]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            towns = [town_figures(args.root.resolve(), args.persons, s, Path(tmp)) for s in args.seeds]
    missed = pd.concat([t.pop("_missed") for t in towns])
    per_person = pd.concat([t.pop("_per_person") for t in towns])
    res = {"persons": args.persons, "seeds": args.seeds, "root": str(args.root),
           "towns": towns, "pooled": pooled(towns),
           # missed true pairs by cause and name origin, summed over the towns (benchmarks/_name_misses.py)
           "pooled_missed_by_cause": by_cause(missed) if len(missed) else {},
           # the gap chance alone gives: origin labels shuffled among the true persons of each town
           "gap_permutation_test": permutation_gap(per_person),
           "bcubed_precision_min": min(t["bcubed"]["precision"] for t in towns),
           "bcubed_recall_min": min(t["bcubed"]["recall"] for t in towns)}
    name = f"name_origin_{args.persons}_{'-'.join(map(str, args.seeds))}{'_' + args.label if args.label else ''}"
    print(json.dumps(res["pooled"], indent=1))
    write_results(name, res)


if __name__ == "__main__":
    main()
