"""historical_50k (Splink's demo data: 50,578 records of 5,156 historical people from Wikidata, with typos,
nicknames, missing values and postcode noise) through the public interface, as a new user would run it.

The parquet file is given to ``python -m ecins_link run`` through a project file: first name, surname, date
of birth (centuries back: ``dob_earliest``; an impossible date such as ``1836-81-01`` is kept as missing with
``invalid_dob = "null"``), gender, the (UK-format) fake postcode, and birth place and occupation as extra
attributes.  The output ``persons.parquet`` is scored against ``cluster``.  Target (issue 15): B-cubed
P >= 0.99 and R >= 0.90 (plain Splink, its own demo settings: P 0.987, R 0.684).  Writes
``benchmarks/results/historical_50k.json``.  Skips cleanly when the data set is absent.

Run: ``nice .venv/bin/python benchmarks/bench_historical.py [--model FILE] [--sample N] [--threshold P]``
(the issue-15 figure: ``--model benchmarks/historical_model.toml --threshold 0.7``: P 0.9916, R 0.9047)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from _measure import write_results  # noqa: E402
from _project_bench import diagnostics, run_project, score, write_project  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "historical_figures_with_errors_50k.parquet"
if not DATA.exists():
    DATA = Path("/work/shared/datasets/historical_figures_with_errors_50k.parquet")
STAGES = ["ingest", "standardise", "persons", "report"]
PERSON = {"forenames": "first_name", "surname": "surname", "dob": "dob", "dob_earliest": "0001-01-01",
          "invalid_dob": "null", "sex": "gender", "postcode": "postcode_fake",
          "attributes": {"birth_place": "birth_place", "occupation": "occupation"}}
TARGET = {"bcubed_precision": 0.99, "bcubed_recall": 0.90}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="person model file (default: the packaged one)")
    ap.add_argument("--sample", type=int, default=0, help="only the first N people (clusters), for a quick look")
    ap.add_argument("--threshold", type=float, default=None,
                    help="[linkage] match_threshold of the project (default: the engine's, 0.95)")
    args = ap.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} not found")
        return
    data = pd.read_parquet(DATA)
    if args.sample:
        keep = data["cluster"].drop_duplicates().head(args.sample)
        data = data[data["cluster"].isin(keep)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data.to_parquet(folder / "historical.parquet", index=False)
        if args.model:  # the project file may only name files inside its folder
            (folder / args.model.name).write_bytes(args.model.read_bytes())
        linkage: dict = {"model": args.model.name} if args.model else {}
        if args.threshold is not None:
            linkage["match_threshold"] = args.threshold
        project = write_project(folder, "historical_50k", [
            {"name": "historical", "agency": "wikidata", "path": "historical.parquet", "format": "parquet",
             "key": "unique_id", "date_formats": ["%Y-%m-%d"], "person": PERSON}], linkage)
        res: dict = {"records": len(data), "people": int(data["cluster"].nunique()), "target": TARGET,
                     "match_threshold": args.threshold if args.threshold is not None else "engine default (0.95)",
                     "model": str(args.model or "packaged"), "run": run_project(project, STAGES)}
        if res["run"]["exit_code"] == 0:
            truth = pd.DataFrame({"source": "historical", "record_key": data["unique_id"], "true_id": data["cluster"]})
            res.update(score(project, truth))
            res["diagnostics"] = diagnostics(project)
            res["target_met"] = (res["bcubed"]["precision"] >= TARGET["bcubed_precision"]
                                 and res["bcubed"]["recall"] >= TARGET["bcubed_recall"])
            print(f"historical_50k: B-cubed P {res['bcubed']['precision']:.4f} R {res['bcubed']['recall']:.4f}; "
                  f"pairwise P {res['pairwise']['precision']:.4f} R {res['pairwise']['recall']:.4f}; "
                  f"{res['run']['seconds']} s; untrained {res['diagnostics']['untrained_comparisons']}")
        else:
            print(f"run failed (exit {res['run']['exit_code']}): {res['run']['stderr_tail'][-800:]}")
    name = "historical_50k" + (f"-{args.model.stem}" if args.model else "") + (f"-{args.sample}" if args.sample else "")
    name += f"-threshold{args.threshold}" if args.threshold is not None else ""
    print(write_results(name, res))


if __name__ == "__main__":
    main()
