"""Linkage benchmarks as a new user runs them: extracts written to files, a project file describing them,
``python -m ecins_link run`` in a subprocess, and the output ``persons.parquet`` scored against the truth.

Nothing here touches the store's internal tables except to *read* the run diagnostics the persons stage
records (``linkage_models.summary_json``: trained / untrained comparisons, dropped fields, warnings).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd

from ecins_link.matching import metrics

ROOT = Path(__file__).resolve().parents[1]


def toml_value(v: object) -> str:
    """A TOML literal for a str / number / bool / list / dict (enough for project files)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def write_project(folder: Path, name: str, sources: list[dict], linkage: dict | None = None) -> Path:
    """Write ``project.toml`` in ``folder``: each source dict holds its keys plus a ``person`` dict."""
    lines = ["[project]", f"name = {toml_value(name)}", 'store = "store.duckdb"', ""]
    if linkage:
        lines += ["[linkage]"] + [f"{k} = {toml_value(v)}" for k, v in linkage.items()] + [""]
    for src in sources:
        lines.append("[[sources]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in src.items() if k != "person"]
        lines.append("[sources.person]")
        lines += [f"{k} = {toml_value(v)}" for k, v in src["person"].items()]
        lines.append("")
    path = folder / "project.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def run_project(project: Path, stages: list[str] | None = None) -> dict:
    """``python -m ecins_link run PROJECT`` (optionally ``--stage`` ...); wall seconds, exit code, stderr tail."""
    cmd = [sys.executable, "-m", "ecins_link", "run", str(project)]
    for s in stages or []:
        cmd += ["--stage", s]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=project.parent)
    return {"seconds": round(time.perf_counter() - started, 2), "exit_code": done.returncode,
            "stderr_tail": done.stderr[-3000:]}


def diagnostics(project: Path) -> dict:
    """The persons stage's run diagnostics from the store (read-only)."""
    con = duckdb.connect(str(project.parent / "store.duckdb"), read_only=True)
    try:
        row = con.execute("SELECT summary_json FROM linkage_models ORDER BY created_at DESC LIMIT 1").fetchone()
        quarantined = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    finally:
        con.close()
    s = json.loads(row[0])
    keys = ("trained_comparisons", "untrained_comparisons", "dropped_fields", "candidate_pairs", "clusters",
            "warnings", "prior", "fallback_passes")
    return {**{k: s.get(k) for k in keys}, "quarantined_rows": int(quarantined),
            "em_passes": [{k: p.get(k) for k in ("rule", "ok", "trained", "error")} for p in s.get("em_passes", [])],
            "seconds": s.get("seconds")}


def score(project: Path, truth: pd.DataFrame) -> dict:
    """Pairwise and B-cubed quality of ``output/persons.parquet`` against ``truth`` (source, record_key,
    true_id).  A truth record missing from the output (quarantined) counts as a singleton."""
    out = pd.read_parquet(project.parent / "output" / "persons.parquet")
    t = truth.assign(uid=truth["source"] + ":" + truth["record_key"].astype(str)).set_index("uid")["true_id"]
    pred = out.assign(uid=out["source"] + ":" + out["record_key"].astype(str)).set_index("uid")["person_id"]
    missing = t.index.difference(pred.index)
    pred = pd.concat([pred, pd.Series("missing:" + missing, index=missing)]).reindex(t.index)
    pw, b3 = metrics.pairwise_metrics(pred, t), metrics.bcubed(pred, t)
    return {"records": int(len(t)), "missing_from_output": int(len(missing)),
            "pairwise": {k: round(float(v), 5) if isinstance(v, float) else v for k, v in pw.items()},
            "bcubed": {k: round(float(v), 5) if isinstance(v, float) else v for k, v in b3.items()}}
