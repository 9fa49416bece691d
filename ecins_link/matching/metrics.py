"""Linkage quality metrics: pairwise precision / recall / F1, B-cubed, recall by group; person evaluation.

The plain functions take two mappings ``record -> cluster`` (predicted) and ``record -> true id`` (truth) as
pandas Series (or two-column DataFrames ``(record, id)``) and work on cluster-size counts, never on the
pair list, so a million records cost a few group-bys.  Only records present in both mappings count.
:func:`evaluate_persons` compares a store's ``person_clusters`` with the synthetic town's truth files; the CLI
``ecins-link evaluate`` calls it on a read-only store.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ecins_link.store import Store


def _as_series(m: pd.Series | pd.DataFrame) -> pd.Series:
    if isinstance(m, pd.DataFrame):
        if m.shape[1] != 2:
            raise ValueError("a mapping DataFrame needs exactly two columns: record, id")
        m = m.set_index(m.columns[0])[m.columns[1]]
    return m.astype("string")


def _joined(pred: pd.Series | pd.DataFrame, truth: pd.Series | pd.DataFrame) -> pd.DataFrame:
    p, t = _as_series(pred), _as_series(truth)
    if p.index.has_duplicates or t.index.has_duplicates:
        raise ValueError("each record must appear once in a mapping")
    df = pd.DataFrame({"pred": p}).join(pd.DataFrame({"true": t}), how="inner")
    return df.dropna()


def _pairs(sizes: pd.Series) -> int:
    return int((sizes * (sizes - 1) // 2).sum())


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 1.0


def pairwise_metrics(pred: pd.Series | pd.DataFrame, truth: pd.Series | pd.DataFrame) -> dict:
    """Pairwise precision, recall and F1 (a pair = two records put in one cluster)."""
    df = _joined(pred, truth)
    tp = _pairs(df.groupby(["pred", "true"]).size())
    predicted = _pairs(df.groupby("pred").size())
    actual = _pairs(df.groupby("true").size())
    p, r = _ratio(tp, predicted), _ratio(tp, actual)
    return {"precision": p, "recall": r, "f1": _ratio(2 * p * r, p + r) if (p + r) else 0.0,
            "true_positive_pairs": tp, "predicted_pairs": predicted, "true_pairs": actual, "records": len(df)}


def _bcubed_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Per record: B-cubed precision and recall."""
    both = df.groupby(["pred", "true"])["pred"].transform("size")
    return df.assign(bc_precision=both / df.groupby("pred")["pred"].transform("size"),
                     bc_recall=both / df.groupby("true")["true"].transform("size"))


def bcubed(pred: pd.Series | pd.DataFrame, truth: pd.Series | pd.DataFrame) -> dict:
    """B-cubed precision, recall and F1 (per-record averages)."""
    f = _bcubed_frame(_joined(pred, truth))
    p, r = float(f.bc_precision.mean()) if len(f) else 1.0, float(f.bc_recall.mean()) if len(f) else 1.0
    return {"precision": p, "recall": r, "f1": _ratio(2 * p * r, p + r) if (p + r) else 0.0}


def recall_by_group(pred: pd.Series | pd.DataFrame, truth: pd.Series | pd.DataFrame,
                    group: pd.Series | pd.DataFrame) -> pd.DataFrame:
    """Pairwise and B-cubed recall per group of true ids (e.g. name origin).

    ``group`` maps true id -> group label.  Returns one row per group: group, true_ids, records,
    true_pairs, found_pairs, pairwise_recall, bcubed_recall.
    """
    f = _bcubed_frame(_joined(pred, truth))
    f["group"] = f["true"].map(_as_series(group)).fillna("(unknown)")
    rows = []
    for g, part in f.groupby("group", sort=True):
        actual, found = _pairs(part.groupby("true").size()), _pairs(part.groupby(["pred", "true"]).size())
        rows.append({"group": g, "true_ids": part["true"].nunique(), "records": len(part), "true_pairs": actual,
                     "found_pairs": found, "pairwise_recall": _ratio(found, actual),
                     "bcubed_recall": float(part.bc_recall.mean())})
    return pd.DataFrame(rows)


def wrongly_merged_pairs(pred: pd.Series | pd.DataFrame, truth: pd.Series | pd.DataFrame,
                         ids: set[str]) -> int:
    """Record pairs of *different* true ids, at least one of them in ``ids``, put in one predicted cluster."""
    df = _joined(pred, truth)
    df = df[df["pred"].isin(df.loc[df["true"].isin(ids), "pred"])]
    cells = df.groupby(["pred", "true"]).size().rename("n").reset_index()
    cells["flag"] = cells["true"].isin(ids)
    total = cells.groupby("pred")["n"].sum()
    # pairs across true ids in a cluster = all pairs - within-true pairs; keep those touching a flagged id
    across = _pairs(total) - _pairs(cells.n)
    unflagged = cells[~cells.flag].groupby("pred")["n"]
    across_unflagged = _pairs(unflagged.sum()) - _pairs(cells[~cells.flag].n)
    return int(across - across_unflagged)


def _records(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype="string", keep_default_na=False, na_values=[""])


def evaluate_persons(store: Store, truth_records_csv: str | Path, truth_persons_csv: str | Path) -> dict:
    """Compare ``person_clusters`` with the truth: pairwise and B-cubed metrics, recall per source and per
    name origin, and hard cases (per ``hard_case`` value: records, recall, pairs wrongly merged)."""
    truth = _records(Path(truth_records_csv))
    persons = _records(Path(truth_persons_csv))
    pc = store.df("SELECT source, record_key, person_id FROM person_clusters")
    df = pc.merge(truth, on=["source", "record_key"], how="inner")
    df["rid"] = df["source"] + ":" + df["record_key"]
    pred, true = df.set_index("rid")["person_id"], df.set_index("rid")["true_person_id"]
    # truth also lists rows of event-only sources (occurrences, contacts) under their person; those are attached
    # by foreign key, not linked, so only rows of person-bearing sources count as missing from the clusters
    person_sources = set(pc["source"])
    is_person_source = truth["source"].isin(person_sources)
    missing = int(is_person_source.sum()) - len(df)
    out: dict = {"records_in_clusters": len(pc), "truth_records": len(truth), "records_evaluated": len(df),
                 "truth_person_records_not_in_clusters": missing,
                 "truth_event_rows_not_evaluated": int((~is_person_source).sum()),
                 "pairwise": pairwise_metrics(pred, true), "bcubed": bcubed(pred, true)}
    f = _bcubed_frame(_joined(pred, true))
    f["source"] = f.index.str.split(":", n=1).str[0]
    out["bcubed_recall_by_source"] = {s: round(float(v), 5) for s, v in f.groupby("source").bc_recall.mean().items()}
    if "name_origin" in persons:
        by = recall_by_group(pred, true, persons.set_index("true_person_id")["name_origin"])
        out["recall_by_name_origin"] = by.set_index("group").round(5).to_dict(orient="index")
    if "hard_case" in persons:
        hard = persons.dropna(subset=["hard_case"])
        cases = {}
        for kind, part in hard.groupby("hard_case"):
            ids = set(part["true_person_id"])
            sub = f[f["true"].isin(ids)]
            cases[kind] = {"persons": len(ids), "records": len(sub),
                           "bcubed_recall": round(float(sub.bc_recall.mean()), 5) if len(sub) else None,
                           "wrongly_merged_pairs": wrongly_merged_pairs(pred, true, ids)}
        out["hard_cases"] = cases
    return out


def blocking_reach(store: Store, truth: pd.Series | pd.DataFrame, rules: list[str],
                   table: str = "person_std") -> dict:
    """Share of true record pairs that at least one blocking rule (SQL over ``l.``/``r.``) would generate.

    ``truth`` maps unique_id -> true id.  Returns true_pairs, reachable, share and per-rule counts.
    """
    t = _as_series(truth).rename("true_id").rename_axis("unique_id").reset_index()
    store.con.register("__reach_truth", t)
    try:
        conds = [f"coalesce(({r}), FALSE)" for r in rules]
        per_rule = ", ".join(f"count(*) FILTER (WHERE {c})" for c in conds)
        row = store.con.execute(f"""
            WITH tp AS (SELECT a.unique_id AS ul, b.unique_id AS ur FROM __reach_truth a JOIN __reach_truth b
                        ON a.true_id = b.true_id AND a.unique_id < b.unique_id)
            SELECT count(*), count(*) FILTER (WHERE {' OR '.join(conds) or 'FALSE'}), {per_rule or '0'}
            FROM tp JOIN "{table}" l ON l.unique_id = tp.ul JOIN "{table}" r ON r.unique_id = tp.ur""").fetchone()
    finally:
        store.con.unregister("__reach_truth")
    total, reach = int(row[0]), int(row[1])
    return {"true_pairs": total, "reachable": reach, "share": _ratio(reach, total),
            "per_rule": {r: int(n) for r, n in zip(rules, row[2:], strict=False)}}
