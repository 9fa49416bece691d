"""Clerical labels feed back into the person model.

Pairs decided through ``ecins-link review import`` (``clerical_decisions``) already act as must-link /
cannot-link constraints on clustering.  Here they also improve the model for every *other* pair:

1. **m from labels** -- the pairs labelled ``match`` go to Splink's ``estimate_m_from_pairwise_labels``; the
   m probabilities it finds join those of the EM passes (Splink keeps the median of every estimate per
   level).  Like an EM pass it is checked and undone exactly if it fails or changes anything but m.
2. **Calibration** -- a logistic regression (scikit-learn) of the decision on the pair's match weight
   maps match weights to match probabilities as the reviewers' decisions bear them out, replacing Splink's
   probability for every scored pair.  Reviewed pairs are chosen *by* their weight (the review band), which
   does not bias P(match | weight).  It is applied only when both classes have ``min_each`` labels and the
   fitted slope stays within a factor of two of the model's own scale (ln 2 per bit); otherwise it is skipped
   with a warning, and the model's probabilities stand.

Both need ``[labels] min_each`` (model file; default 20) labels of each kind among the records being linked.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import numpy as np
from splink import Linker

from ecins_link.matching.person_model import guard_levels, quiet_splink

LN2 = math.log(2.0)


def _counts(must: list, cannot: list) -> dict[str, int]:
    return {"match": len(must), "non_match": len(cannot)}


def learn_m_from_labels(linker: Linker, con: duckdb.DuckDBPyConnection, must: list[tuple[str, str]],
                        mc: dict, min_each: int) -> dict[str, Any]:
    """Add m estimates from the ``match``-labelled pairs (records both in the linker's input); returns a
    summary ``{used, pairs, error}``."""
    if len(must) < min_each:
        return {"used": False, "pairs": len(must), "reason": f"fewer than {min_each} match labels"}
    con.execute("CREATE OR REPLACE TEMP TABLE _pl_labels (unique_id_l VARCHAR, unique_id_r VARCHAR)")
    con.executemany("INSERT INTO _pl_labels VALUES (?, ?)", [list(p) for p in must])
    snapshot = linker._settings_obj.core_model_settings.copy()
    names = [c.output_column_name for c in snapshot.comparisons]
    try:
        with quiet_splink():
            linker.training.estimate_m_from_pairwise_labels("_pl_labels")
        now = linker._settings_obj.core_model_settings
        if [c.output_column_name for c in now.comparisons] != names or not math.isclose(
                now.probability_two_random_records_match, snapshot.probability_two_random_records_match):
            raise ValueError("the model changed beyond its m probabilities")
    except Exception as err:  # noqa: BLE001 - labels must never damage the model
        linker._settings_obj.core_model_settings = snapshot
        return {"used": False, "pairs": len(must), "error": f"{type(err).__name__}: {err}"[:300]}
    finally:
        con.execute("DROP TABLE IF EXISTS _pl_labels")
    guard_levels(linker, mc)  # the weight bounds hold whatever the labels say
    return {"used": True, "pairs": len(must)}


def calibrate(con: duckdb.DuckDBPyConnection, pairs: str, must: list[tuple[str, str]],
              cannot: list[tuple[str, str]], min_each: int) -> dict[str, Any]:
    """Fit P(match | match weight) on the labelled pairs found in ``pairs`` (``unique_id_l, unique_id_r,
    match_weight, match_probability``) and rewrite every pair's ``match_probability`` with it.  Returns a
    summary: used, labels per class, slope / intercept, log loss of the model's and the calibrated
    probabilities on the labels, or the reason it was not used."""
    from sklearn.linear_model import LogisticRegression

    con.execute("CREATE OR REPLACE TEMP TABLE _pl_dec (a VARCHAR, b VARCHAR, y INTEGER)")
    con.executemany("INSERT INTO _pl_dec VALUES (?, ?, ?)",
                    [[min(a, b), max(a, b), 1] for a, b in must] + [[min(a, b), max(a, b), 0] for a, b in cannot])
    rows = con.execute(f"""SELECT p.match_weight, p.match_probability, d.y FROM "{pairs}" p
        JOIN _pl_dec d ON d.a = least(p.unique_id_l, p.unique_id_r) AND d.b = greatest(p.unique_id_l, p.unique_id_r)
        WHERE p.match_weight IS NOT NULL""").fetchall()
    con.execute("DROP TABLE _pl_dec")
    y = np.array([r[2] for r in rows], dtype=int)
    out: dict[str, Any] = {"used": False, "labels": {"match": int(y.sum()), "non_match": int(len(y) - y.sum())}}
    if min(out["labels"].values()) < min_each:
        out["reason"] = f"fewer than {min_each} labelled scored pairs of each kind"
        return out
    w = np.array([[r[0]] for r in rows], dtype=float)
    model = LogisticRegression(C=1e4, max_iter=1000).fit(w, y)
    slope, intercept = float(model.coef_[0][0]), float(model.intercept_[0])
    out.update(slope=round(slope, 4), intercept=round(intercept, 4))
    if not (0.5 * LN2 <= slope <= 2.0 * LN2):
        out["reason"] = (f"fitted slope {slope:.3f} per bit is outside [{0.5 * LN2:.3f}, {2 * LN2:.3f}]: the labels "
                         "do not support a calibration; the model's probabilities are kept")
        return out
    before = np.clip(np.array([r[1] for r in rows], dtype=float), 1e-9, 1 - 1e-9)
    after = np.clip(model.predict_proba(w)[:, 1], 1e-9, 1 - 1e-9)
    out["log_loss_before"] = round(float(-np.mean(y * np.log(before) + (1 - y) * np.log(1 - before))), 4)
    out["log_loss_after"] = round(float(-np.mean(y * np.log(after) + (1 - y) * np.log(1 - after))), 4)
    con.execute(f'UPDATE "{pairs}" SET match_probability = 1.0 / (1.0 + exp(-(? * match_weight + ?)))',
                [slope, intercept])
    out["used"] = True
    return out


def summary_counts(must: list, cannot: list) -> dict[str, int]:
    """Labels available (latest decision per pair)."""
    return _counts(must, cannot)
