"""Scoring shared by the address benchmarks: ``addresses.parquet`` of a run against a truth table.

Truth columns: ``source, record_key, true_uprn, address_class, form, ambiguous``.  An answer is *right* (the
true UPRN), *building* (match_level ``building`` and the true UPRN's building: right building, flat not
known; or position words placed at the true flat's building), *wrong* (any other UPRN), or *unresolved*.  ``gazetteer`` (UPRN, PARENT_UPRN, CLASSIFICATION) gives
buildings and classes.
"""

from __future__ import annotations

import duckdb
import pandas as pd


def score(addresses_parquet: str, truth: pd.DataFrame, gazetteer: pd.DataFrame) -> pd.DataFrame:
    """One row per truth record: truth columns + uprn, match_level, match_confidence, outcome, home_on_commercial."""
    con = duckdb.connect()
    con.register("t", truth.astype({"true_uprn": str, "record_key": str}))
    con.register("g", gazetteer[["UPRN", "PARENT_UPRN", "CLASSIFICATION"]].astype(str))
    return con.execute(f"""
        SELECT t.*, m.uprn, m.match_level, coalesce(m.match_confidence, 0) AS match_confidence, m.match_reason,
               CASE WHEN m.uprn IS NOT NULL AND m.uprn = nullif(t.true_uprn, '') THEN 'right'
                    WHEN m.uprn IS NOT NULL AND m.match_level IN ('building', 'approximate')
                         AND m.uprn = (SELECT nullif(PARENT_UPRN, '') FROM g WHERE g.UPRN = t.true_uprn) THEN 'building'
                    WHEN m.uprn IS NOT NULL THEN 'wrong'
                    ELSE 'unresolved' END AS outcome,
               t.source = 'homes' AND coalesce((SELECT starts_with(CLASSIFICATION, 'C') FROM g WHERE g.UPRN = m.uprn),
                                               false) AS home_on_commercial
        FROM t LEFT JOIN '{addresses_parquet}' m
          ON m.source = t.source AND CAST(m.record_key AS VARCHAR) = t.record_key""").df()


def rates(df: pd.DataFrame) -> dict:
    """n and right / wrong / building / unresolved shares (percent, 2 dp)."""
    n = len(df)
    out = {"n": n}
    for k in ("right", "wrong", "building", "unresolved"):
        out[k] = round(100 * float((df["outcome"] == k).sum()) / max(n, 1), 2)
    return out


def summary(scored: pd.DataFrame) -> dict:
    """Overall, unambiguous, by address class, by form, by match level, calibration and homes on commercial."""
    clear = scored[scored["ambiguous"].astype(int) == 0]
    out = {"all": rates(scored), "unambiguous": rates(clear),
           "by_class": {k: rates(v) for k, v in clear.groupby("address_class")},
           "by_form": {k: rates(v) for k, v in scored.groupby("form")},
           "by_level": {k: rates(v) for k, v in scored.groupby(scored["match_level"].fillna("missing"))},
           "homes_on_commercial": int(scored["home_on_commercial"].sum())}
    res = scored[scored["uprn"].notna()]
    bins = [(0.99, 1.01), (0.95, 0.99), (0.9, 0.95), (0.8, 0.9), (0.0, 0.8)]
    out["calibration"] = {f"{lo:.2f}-{hi:.2f}": {"n": int(len(b)), "right": round(100 * float(
        (b["outcome"] == "right").mean()), 2) if len(b) else None, "mean_confidence": round(float(
            b["match_confidence"].mean()), 4) if len(b) else None}
        for lo, hi in bins for b in [res[(res["match_confidence"] >= lo) & (res["match_confidence"] < hi)]]}
    return out
