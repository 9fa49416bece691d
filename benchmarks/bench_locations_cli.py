"""The locations stage through the CLI, cold and warm: ``python -m ecins_link run project.toml --stage locations``.

A town (generated, or ``--town`` copied) goes through ``ingest`` + ``standardise`` once; its store is then kept
aside, and each round runs the locations stage three ways, each in a fresh process:

* ``cold`` -- the standardised store as it was (no matcher answers kept) and no prepared gazetteer next to it: what
  the first run on a project costs;
* ``gazetteer_kept`` -- the same store, with the prepared gazetteer the cold run left (``<store>.ukam-gazetteer``):
  a run on a gazetteer already prepared whose extracts are all new (the matcher gets every text);
* ``all_kept`` -- the store the run before left, with its kept matcher answers too: a weekly re-run on the same
  extracts and gazetteer.

Each run records wall seconds, CPU seconds (user + sys of the child process, so Python start-up and imports count),
the stage's own seconds (``run_summary.json``), its per-step wall and CPU seconds (the ``link_locations`` audit row),
and an MD5 of ``address_matches``: every run of every round must give the same one.  Only files are copied or
removed between runs (the store file, the prepared-gazetteer folder); no table is written.  The box's load average
around each run is recorded: on a shared machine compare CPU seconds, and alternate rounds.

Run: ``nice .venv/bin/python benchmarks/bench_locations_cli.py --persons 10000 --seed 3 --repeat 2``, or
``--town /path/to/generated/town`` (copied first).  Writes ``benchmarks/results/locations_cli_<persons>_<seed>.json``.
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

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import write_results  # noqa: E402

STORE_FILES = ("store.duckdb", "store.duckdb.audit-heads")
PREPARED = "store.duckdb.ukam-gazetteer"


def _cli(town: Path, stages: list[str]) -> dict:
    """Run the CLI on ``town``'s project; wall and child CPU seconds, exit code."""
    cmd = [sys.executable, "-m", "ecins_link", "run", str(town / "project.toml")]
    for s in stages:
        cmd += ["--stage", s]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    # from the town's folder: ``-m`` puts the working directory first on sys.path, and the code measured is the one
    # on PYTHONPATH (or installed), not a checkout the script happens to be started from
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, check=False,
                          cwd=town)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 2), "load_before": load,
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def _read_run(town: Path) -> dict:
    """The stage's seconds (run_summary.json), its audit row's steps, and an MD5 of address_matches (read only)."""
    summary = json.loads((town / "output" / "run_summary.json").read_text(encoding="utf-8"))
    stage = next(s["seconds"] for s in summary["stages"] if s["stage"] == "locations")
    con = duckdb.connect(str(town / "store.duckdb"), read_only=True)
    try:
        steps = json.loads(con.execute("SELECT details FROM audit_log WHERE action = 'link_locations' "
                                       "ORDER BY seq DESC LIMIT 1").fetchone()[0])["steps"]
        digest, rows = con.execute("""
            SELECT md5(string_agg(concat_ws('|', source, record_key, uprn, location_id, match_confidence,
                                            match_method, match_level, match_reason), chr(10)
                                  ORDER BY source, record_key)), count(*) FROM address_matches""").fetchone()
    finally:
        con.close()
    keep = ("seconds", "cpu_seconds", "uk_address_matcher_sent", "uk_address_matcher_texts",
            "uk_address_matcher_texts_cached", "uk_address_matcher_gazetteer_cached",
            "uk_address_matcher_gazetteer_seconds", "uk_address_matcher_waited_seconds")
    return {"stage_seconds": stage, "steps": {k: steps.get(k) for k in keep}, "address_matches_md5": digest,
            "address_matches_rows": rows}


def _restore(town: Path, kept: Path, prepared: bool) -> None:
    for name in STORE_FILES:
        shutil.copy2(kept / name, town / name)
    wal = town / "store.duckdb.wal"
    if wal.exists():
        wal.unlink()
    if not prepared:
        shutil.rmtree(town / PREPARED, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--town", type=Path, help="a generated town folder to copy instead of generating one")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of cold / gazetteer_kept / all_kept")
    parser.add_argument("--tag", default="", help="suffix for the results file name")
    args = parser.parse_args()
    record: dict = {"persons": args.persons, "seed": args.seed, "town": str(args.town) if args.town else None,
                    "command": "python -m ecins_link run project.toml --stage locations"}
    with tempfile.TemporaryDirectory() as tmp:
        town, kept = Path(tmp) / "town", Path(tmp) / "kept"
        if args.town:
            shutil.copytree(args.town, town, ignore=shutil.ignore_patterns("store.duckdb*", "output"))
        else:
            from ecins_link.synth import generate_town

            generate_town(town, args.persons, args.seed)
        record["ingest_standardise"] = _cli(town, ["ingest", "standardise"])
        kept.mkdir()
        for name in STORE_FILES:
            shutil.copy2(town / name, kept / name)
        rounds = []
        for i in range(args.repeat):
            runs = {}
            for scenario in ("cold", "gazetteer_kept", "all_kept"):
                if scenario != "all_kept":
                    _restore(town, kept, prepared=scenario == "gazetteer_kept")
                runs[scenario] = {**_cli(town, ["locations"]), **_read_run(town)}
                r = runs[scenario]
                print(f"round {i + 1} {scenario}: {r['seconds']} s wall, {r['cpu_seconds']} s CPU, stage "
                      f"{r['stage_seconds']} s, load {r['load_before'][0]}", flush=True)
            rounds.append(runs)
    record["rounds"] = rounds
    digests = {r[s]["address_matches_md5"] for r in rounds for s in r}
    record["answers_identical"] = len(digests) == 1
    record["summary"] = {s: {"cpu_seconds_min": min(r[s]["cpu_seconds"] for r in rounds),
                             "seconds_min": min(r[s]["seconds"] for r in rounds),
                             "stage_seconds_min": min(r[s]["stage_seconds"] for r in rounds)}
                         for s in ("cold", "gazetteer_kept", "all_kept")}
    print(json.dumps(record["summary"]), "answers identical:", record["answers_identical"])
    print(write_results(f"locations_cli_{args.persons}_{args.seed}{args.tag}", record))


if __name__ == "__main__":
    main()
