"""What ~200 clerical labels buy, through the public interface: a synthetic town is generated and run
(``python -m ecins_link synth`` / ``run``), the review band is exported (``review export --limit 200``),
decided from the town's truth as a careful reviewer would, imported (``review import``) and the persons stage
run again twice: with the labels feeding the model (m from labels + calibration, the packaged model) and
with the labels acting only as must-link / cannot-link constraints (the same model file with ``[labels]``
switched off), and with m from labels only.  Each run is scored with ``python -m ecins_link evaluate``.  The difference between the two
reruns is the gain from the labels feeding back; the difference to the first run includes the constraints.

Writes ``benchmarks/results/labels_<persons>_<seed>.json``.
Run: ``nice .venv/bin/python benchmarks/bench_labels.py [--persons 10000] [--seed 11] [--labels 200]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from _measure import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "ecins_link" / "matching" / "person_model.toml"


def cli(*args: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "ecins_link", *args], capture_output=True, text=True, env=env, cwd=cwd)
    if done.returncode:
        raise RuntimeError(f"ecins-link {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def evaluate(town: Path) -> dict:
    e = json.loads(cli("evaluate", "project.toml", "--truth", "truth", cwd=town))["persons"]
    return {"bcubed": e["bcubed"], "pairwise": e["pairwise"],
            "recall_by_name_origin": {k: v["pairwise_recall"] for k, v in e["recall_by_name_origin"].items()}}


def label(town: Path, review: Path) -> dict:
    """Fill the review CSV's decisions from the truth (records of one true person: match)."""
    truth = pd.read_csv(town / "truth" / "records.csv", dtype=str)
    who = dict(zip(truth["source"] + ":" + truth["record_key"], truth["true_person_id"], strict=True))
    df = pd.read_csv(review, dtype=str, keep_default_na=False)
    df["decision"] = ["match" if who.get(a) and who.get(a) == who.get(b) else "non_match"
                      for a, b in zip(df["unique_id_l"], df["unique_id_r"], strict=True)]
    df.to_csv(review, index=False)
    return df["decision"].value_counts().to_dict()


def set_model(town: Path, model: Path | None) -> None:
    """Point the project's ``[linkage] model`` at ``model`` (None: the packaged model)."""
    lines = [ln for ln in (town / "project.toml").read_text(encoding="utf-8").splitlines()
             if not ln.startswith("model = ")]
    if model:
        if "[linkage]" in lines:
            lines.insert(lines.index("[linkage]") + 1, f'model = "{model}"')
        else:
            lines += ["", "[linkage]", f'model = "{model}"']
    (town / "project.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--labels", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        town = Path(tmp) / "town"
        cli("synth", "--out", str(town), "--persons", str(args.persons), "--seed", str(args.seed), cwd=Path(tmp))
        cli("run", "project.toml", cwd=town)
        res: dict = {"persons": args.persons, "seed": args.seed, "before": evaluate(town)}
        review = town / "review.csv"
        cli("review", "export", "project.toml", "--out", str(review), "--limit", str(args.labels), cwd=town)
        res["labels"] = label(town, review)
        cli("review", "import", "project.toml", str(review), cwd=town)
        variants = {"constraints_only": (False, False), "m_from_labels": (True, False),
                    "m_from_labels_and_calibration": (True, True)}
        for name, (m_on, cal_on) in variants.items():
            model = Path(tmp) / f"model_{name}.toml"
            model.write_text(MODEL.read_text(encoding="utf-8")
                             .replace("m_from_labels = true", f"m_from_labels = {str(m_on).lower()}")
                             .replace("m_from_labels = false", f"m_from_labels = {str(m_on).lower()}")
                             .replace("calibrate = true", f"calibrate = {str(cal_on).lower()}")
                             .replace("calibrate = false", f"calibrate = {str(cal_on).lower()}"), encoding="utf-8")
            set_model(town, model)
            cli("run", "project.toml", "--stage", "persons", cwd=town)
            res[name] = evaluate(town)
        import duckdb

        con = duckdb.connect(str(town / "store.duckdb"), read_only=True)
        s = json.loads(con.execute("SELECT summary_json FROM linkage_models ORDER BY created_at DESC LIMIT 1").fetchone()[0])
        con.close()
        res["model_summary"] = {k: s.get(k) for k in ("labels", "calibration", "prior")}
    for k in ("before", "constraints_only", "m_from_labels", "m_from_labels_and_calibration"):
        b = res[k]["bcubed"]
        print(f"{k:>18}: B-cubed P {b['precision']:.4f} R {b['recall']:.4f}  pairwise F1 {res[k]['pairwise']['f1']:.4f}")
    print(res["model_summary"])
    print(write_results(f"labels_{args.persons}_{args.seed}", res))


if __name__ == "__main__":
    main()
