"""Rows an explanation adds to Splink's waterfall from the run's own steps after scoring: the bits a source's own
prior took off a pair (``person_source_priors``) and the steps after the first clustering that accepted the pair at
the match threshold or added or took off weight (``person_pairs.link_rule``, ``person_passes.RULE_TEXT``).  Each
goes before the final score, and the final score becomes the one the pair was clustered on."""

from __future__ import annotations

import json

import pandas as pd

from ecins_link.matching.person_fields import table_columns
from ecins_link.store import Store

DEFAULT_INPUT_TABLE = "person_std"


def with_source_prior(store: Store, out: pd.DataFrame, unique_id_l: str, unique_id_r: str,
                      summary: dict | None = None) -> pd.DataFrame:
    """Add the bits a source's own prior took off the pair (person_source_priors) before the final score.

    ``summary``: the latest model's summary, when the caller has read it with the model (else it is read here)."""
    from ecins_link.matching.person_source_priors import explanation_row

    if summary is None:
        row = store.con.execute("SELECT summary_json FROM linkage_models ORDER BY created_at DESC LIMIT 1").fetchone()
        summary = json.loads(row[0]) if row and isinstance(row[0], str) and row[0] else {}
    extra = explanation_row(store.con, summary.get("input_table") or DEFAULT_INPUT_TABLE, summary, unique_id_l,
                            unique_id_r)
    final = out["comparison"] == "Final score"
    if extra is None or not final.any():
        return out
    out.loc[final, "log2_weight"] = out.loc[final, "log2_weight"] + extra["log2_weight"]
    out.loc[final, "bayes_factor"] = 2.0 ** out.loc[final, "log2_weight"]
    at = int(final.to_numpy().nonzero()[0][0])
    return pd.concat([out.iloc[:at], pd.DataFrame([extra]), out.iloc[at:]], ignore_index=True)


def pairs_name_their_rule(store: Store) -> bool:
    """Whether ``person_pairs`` records the steps that changed a pair's score (``link_rule``; not in older stores)."""
    return "link_rule" in table_columns(store.con, "person_pairs")


def describe_rules(link_rule: str) -> str:
    """A sentence per step named in a pair's ``link_rule`` (``matching.person_passes.RULE_TEXT``), in run order."""
    from ecins_link.matching.person_passes import ACCEPTING, RULE_TEXT

    steps = [r.strip() for r in link_rule.split(",") if r.strip()]
    return "; ".join(f"{'accepted at the match threshold' if r in ACCEPTING else 're-weighed'}: {RULE_TEXT.get(r, r)}"
                     for r in steps)


def _stored_pair(store: Store, unique_id_l: str, unique_id_r: str) -> tuple[float, str | None] | None:
    """The stored score (match weight) and ``link_rule`` of a pair of ``person_pairs`` (either orientation); None
    when the pair is not stored, or was stored by a version before ``link_rule``."""
    if not store.has_table("person_pairs") or not pairs_name_their_rule(store):
        return None
    row = store.con.execute(
        """SELECT match_weight, link_rule FROM person_pairs
           WHERE (unique_id_l = ? AND unique_id_r = ?) OR (unique_id_l = ? AND unique_id_r = ?) LIMIT 1""",
        [unique_id_l, unique_id_r, unique_id_r, unique_id_l],
    ).fetchone()
    return None if row is None else (float(row[0]), row[1])


def with_link_rule(store: Store, out: pd.DataFrame, unique_id_l: str, unique_id_r: str) -> pd.DataFrame:
    """Add a row for the steps after the first clustering that changed the pair's score (``person_pairs.link_rule``:
    raised to the match threshold, or weight added or taken off) before the final score, so the final score is the
    one the pair was clustered on."""
    stored = _stored_pair(store, unique_id_l, unique_id_r)
    final = out["comparison"] == "Final score"
    if stored is None or not stored[1] or not final.any():
        return out
    weight, rule = stored
    change = weight - float(out.loc[final, "log2_weight"].iloc[0])
    extra = {"comparison": "Link rule", "level": rule, "bayes_factor": 2.0 ** change, "log2_weight": change,
             "value_l": "", "value_r": "", "m_probability": None, "u_probability": None,
             "description": describe_rules(rule)}
    out.loc[final, "log2_weight"] = weight
    out.loc[final, "bayes_factor"] = 2.0 ** weight
    at = int(final.to_numpy().nonzero()[0][0])
    return pd.concat([out.iloc[:at], pd.DataFrame([extra]), out.iloc[at:]], ignore_index=True)


def link_rule_texts(store: Store, pairs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """For pairs (``unique_id_l``, ``unique_id_r``; either orientation) whose score a step after the first clustering
    changed, the sentences saying which (:func:`describe_rules`; keyed by the sorted pair); pairs scored by the model
    alone are left out."""
    if pairs.empty or not store.has_table("person_pairs") or not pairs_name_their_rule(store):
        return {}
    store.con.register("_why_pairs", pairs[["unique_id_l", "unique_id_r"]].astype(str))
    try:
        rows = store.con.execute("""WITH w AS (SELECT unique_id_l AS a, unique_id_r AS b FROM _why_pairs
                                               UNION SELECT unique_id_r, unique_id_l FROM _why_pairs)
                                    SELECT least(w.a, w.b), greatest(w.a, w.b), any_value(p.link_rule)
                                    FROM w JOIN person_pairs p ON p.unique_id_l = w.a AND p.unique_id_r = w.b
                                    WHERE p.link_rule IS NOT NULL GROUP BY 1, 2""").fetchall()
    finally:
        store.con.unregister("_why_pairs")
    return {(a, b): describe_rules(r) for a, b, r in rows}
