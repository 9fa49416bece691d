"""Accuracy of address resolution on unseen address-forms towns, through a project file and ``ecins-link run``.

For each seed, ``ecins_link.synth.address_extracts.generate_address_town`` writes a town no rule was tuned on (its
own town, locality and street names): a BS7666 LLPG with flats above numbered shops, shops with organisation
names, suffixed numbers, floor flats, blocks under parent shells, several branches of one chain; homes and event
locations written as agencies write them, with truth.  ``python -m ecins_link run project.toml`` resolves them;
``addresses.parquet`` is scored by address class, form and match level, with a calibration table (stated
confidence vs share right) and the count of homes put on commercial UPRNs.

Targets (issue 16), on unambiguous records: overall >= 97 % right and <= 0.5 % wrong; residential >= 99 % right and
<= 0.2 % wrong; 0 homes on commercial UPRNs.  Writes ``benchmarks/results/address_forms.json``.

Run: ``nice .venv/bin/python benchmarks/bench_address_forms.py [--seeds 101 202 303] [--homes 3000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _address_score import rates, score, summary  # noqa: E402
from _measure import write_results  # noqa: E402

from ecins_link.synth.address_extracts import generate_address_town  # noqa: E402


def run_town(folder: Path, seed: int, homes: int, events: int) -> pd.DataFrame:
    """Generate, run through the CLI, score; the scored truth rows (with ``seed``)."""
    counts = generate_address_town(folder, seed, homes=homes, events=events)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ecins_link", "run", str(folder / "project.toml"), "--out",
                    str(folder / "out")], check=True, capture_output=True)
    print(f"seed {seed}: {counts}, run {time.perf_counter() - started:.1f} s", file=sys.stderr)
    truth = pd.read_csv(folder / "truth" / "addresses.csv", dtype=str, keep_default_na=False)
    gaz = pd.read_csv(folder / "gazetteer" / "llpg.csv", dtype=str, keep_default_na=False)
    scored = score(str(folder / "out" / "addresses.parquet"), truth, gaz)
    scored["seed"] = seed
    return scored


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 202, 303])
    ap.add_argument("--homes", type=int, default=3000)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--keep", type=Path, help="keep the towns in this folder")
    ap.add_argument("--name", default="address_forms", help="results file name (benchmarks/results/NAME.json)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        scored = pd.concat([run_town(root / f"town_{s}", s, args.homes, args.events) for s in args.seeds])
    record = {"seeds": args.seeds, **summary(scored),
              "by_seed": {int(s): rates(v[v["ambiguous"].astype(int) == 0]) for s, v in scored.groupby("seed")}}
    path = write_results(args.name, record)
    print(json.dumps({k: record[k] for k in ("all", "unambiguous", "by_class", "homes_on_commercial",
                                             "calibration")}, indent=1))
    print(f"written {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
