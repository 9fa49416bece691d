"""Evaluate a run against ground truth (the synthetic town's ``truth/`` folder).

Collects the stage evaluations into one dictionary: ingest (bad rows quarantined with the right reason,
good rows kept), person linkage, locations and scenario detection.  ``ecins-link evaluate`` prints it as JSON.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ecins_link.config import load_config
from ecins_link.pipeline import open_store
from ecins_link.store import Store


def evaluate_ingest(store: Store, truth_dir: Path) -> dict:
    """Check accounting balances and that every injected bad row got its expected quarantine reason."""
    acc = store.df("SELECT * FROM accounting ORDER BY source")
    balanced = bool((acc.rows_read == acc.rows_accepted + acc.rows_quarantined).all())
    out: dict = {
        "sources": len(acc),
        "rows_read": int(acc.rows_read.sum()),
        "rows_accepted": int(acc.rows_accepted.sum()),
        "rows_quarantined": int(acc.rows_quarantined.sum()),
        "accounting_balanced": balanced,
    }
    bad_file = truth_dir / "bad_rows.csv"
    if bad_file.exists():
        with bad_file.open(newline="", encoding="utf-8") as fh:
            expected = list(csv.DictReader(fh))
        q = store.df("SELECT source, row_number, split_part(reason, ':', 1) AS code FROM quarantine")
        got = {(r.source, int(r.row_number)): r.code for r in q.itertuples()}
        to_quarantine = [e for e in expected if not e["expected"].startswith("accepted")]
        right = sum(1 for e in to_quarantine if got.get((e["source"], int(e["row_number"]))) == e["expected"])
        out["bad_rows_expected_quarantined"] = len(to_quarantine)
        out["bad_rows_right_reason"] = right
    return out


def _call(module: str, func: str, *args: object) -> dict:
    import importlib

    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as err:
        return {"error": f"not available: {err}"}
    return fn(*args)


def evaluate_project(config_path: str | Path, truth_dir: str | Path, user: str | None = None) -> dict:
    """All evaluations of the project's store against ``truth_dir``."""
    config = load_config(config_path)
    truth = Path(truth_dir)
    if not truth.is_dir():
        raise FileNotFoundError(f"truth folder not found: {truth}")
    with open_store(config, user=user, command="evaluate", read_only=True) as store:
        return {
            "ingest": evaluate_ingest(store, truth),
            "persons": _call("ecins_link.matching.metrics", "evaluate_persons", store,
                             truth / "records.csv", truth / "persons.csv"),
            "locations": _call("ecins_link.locations.stage", "evaluate_locations", store,
                               truth / "addresses.csv"),
            "scenarios": _call("ecins_link.scoring", "evaluate_scenarios", store, truth),
        }
