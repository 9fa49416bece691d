"""Clerical review of uncertain person matches.

``export_review`` writes the uncertain band of ``person_pairs`` to a CSV an analyst fills in (both records
side by side, the per-field evidence, an empty ``decision`` column); ``import_review`` validates the filled
file and appends to ``clerical_decisions``; ``load_constraints`` turns the latest decision per pair into
must-link / cannot-link constraints that every later persons run applies.

The CSV is spreadsheet-safe: any text cell starting with ``= + - @`` (or a tab / carriage return) is
prefixed with a single quote so that Excel or LibreOffice shows it as text instead of running a formula.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from ecins_link.config import LinkageSettings
from ecins_link.matching.stable_ids import atomic
from ecins_link.store import Store, StoreError

DECISIONS = ("match", "non_match")
_DECISION_ALIASES = {
    "match": "match",
    "non_match": "non_match",
    "non-match": "non_match",
    "nonmatch": "non_match",
    "non match": "non_match",
    "no_match": "non_match",
    "no match": "non_match",
}
_DDL = """CREATE TABLE IF NOT EXISTS clerical_decisions (
    unique_id_l VARCHAR, unique_id_r VARCHAR, decision VARCHAR, reviewer VARCHAR, decided_at TIMESTAMP,
    note VARCHAR)"""
_RECORD_FIELDS = {
    "source": "source",
    "record_key": "record_key",
    "forename": "forename",
    "middle_names": "middle_names",
    "surname": "surname",
    "dob": "dob",
    "sex": "sex",
    "postcode": "postcode",
    "address": "address_norm",
}
_FORMULA_START = r"^[=+\-@\t\r]"
_QUOTED_FORMULA = r"^'(?=[=+\-@\t\r])"


def latest_decisions_sql() -> str:
    """SQL over ``clerical_decisions``: the latest decision per unordered pair, as
    ``(unique_id_l, unique_id_r, decision)`` with the lower id on the left (for set-based joins)."""
    return """
        SELECT least(unique_id_l, unique_id_r) AS unique_id_l, greatest(unique_id_l, unique_id_r) AS unique_id_r,
               decision
        FROM clerical_decisions
        WHERE unique_id_l IS NOT NULL AND unique_id_r IS NOT NULL AND unique_id_l <> unique_id_r
          AND decision IN ('match', 'non_match')
        QUALIFY row_number() OVER (
            PARTITION BY least(unique_id_l, unique_id_r), greatest(unique_id_l, unique_id_r)
            ORDER BY decided_at DESC, rowid DESC) = 1"""


def load_constraints(store: Store) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Must-link and cannot-link ``(unique_id, unique_id)`` pairs (lower id first) from the latest clerical
    decision per pair; two empty lists when nobody has reviewed anything yet."""
    if not store.has_table("clerical_decisions"):
        return [], []
    rows = store.con.execute(f"SELECT * FROM ({latest_decisions_sql()}) ORDER BY 1, 2").fetchall()
    must = [(a, b) for a, b, d in rows if d == "match"]
    cannot = [(a, b) for a, b, d in rows if d == "non_match"]
    return must, cannot


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` whose text cells cannot be read as formulas (leading ``= + - @ tab CR`` quoted)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            s = out[col]
            is_text = s.map(lambda v: isinstance(v, str))
            risky = is_text & s.astype(str).str.contains(_FORMULA_START, regex=True)
            out[col] = s.where(~risky, "'" + s.astype(str))
    return out


def _check_band(lower: float | None, upper: float | None) -> tuple[float, float]:
    default_lower, default_upper = LinkageSettings().review_band
    lower = default_lower if lower is None else float(lower)
    upper = default_upper if upper is None else float(upper)
    if not (0.0 <= lower < upper <= 1.0):
        raise ValueError(f"review band must satisfy 0 <= lower < upper <= 1, got ({lower}, {upper})")
    return lower, upper


def export_review(
    store: Store,
    path: str | Path,
    lower: float | None = None,
    upper: float | None = None,
    limit: int | None = None,
) -> int:
    """Write the uncertain pairs (``lower <= match_probability < upper``) to a CSV for clerical review.

    Most uncertain first (match probability nearest 50 %).  Pairs that already carry a clerical decision are
    left out.  Columns: ``rank, unique_id_l, unique_id_r, decision`` (empty: write ``match`` or
    ``non_match``), ``note``, ``match_probability, match_weight``, the two records side by side
    (``l_forename`` ... ``r_address``), ``evidence_<comparison>`` (level reached and its weight) and
    ``breakdown``.  Band defaults to ``config.linkage.review_band``'s default.  Returns the number of pairs.
    """
    store.require("person_pairs", "person_std", stage="review export")
    lower, upper = _check_band(lower, upper)
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    decided = ""
    if store.has_table("clerical_decisions"):
        decided = """AND NOT EXISTS (
                        SELECT 1 FROM clerical_decisions d
                        WHERE least(d.unique_id_l, d.unique_id_r) = least(p.unique_id_l, p.unique_id_r)
                          AND greatest(d.unique_id_l, d.unique_id_r) = greatest(p.unique_id_l, p.unique_id_r))"""
    sides = ", ".join(
        f"CAST({side}.{expr} AS VARCHAR) AS {side}_{name}"
        for side in ("l", "r")
        for name, expr in _RECORD_FIELDS.items()
    )
    pairs = store.df(
        f"""SELECT row_number() OVER (ORDER BY abs(p.match_weight), p.unique_id_l, p.unique_id_r) AS rank,
                   p.unique_id_l, p.unique_id_r, '' AS decision, '' AS note,
                   round(p.match_probability, 4) AS match_probability, round(p.match_weight, 2) AS match_weight,
                   {sides}
            FROM person_pairs p
            JOIN person_std l ON l.unique_id = p.unique_id_l
            JOIN person_std r ON r.unique_id = p.unique_id_r
            WHERE p.match_probability >= ? AND p.match_probability < ? {decided}
            ORDER BY rank {f"LIMIT {int(limit)}" if limit is not None else ""}""",
        [lower, upper],
    )
    pairs = _with_evidence(store, pairs)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    spreadsheet_safe(pairs).to_csv(path, index=False, encoding="utf-8-sig")
    store.audit(
        "disclosure",
        "clerical_review_export",
        {"band": [lower, upper], "limit": limit, "file": Path(path).name},
        {"pairs": len(pairs)},
    )
    return len(pairs)


def _with_evidence(store: Store, pairs: pd.DataFrame) -> pd.DataFrame:
    """Append per-field evidence columns from the saved model (a note column if there is none)."""
    from ecins_link.matching.explain import score_pairs

    if pairs.empty:
        return pairs.assign(breakdown=pd.Series(dtype=object))
    try:
        scored = score_pairs(store, pairs[["unique_id_l", "unique_id_r"]])
    except StoreError:
        return pairs.assign(breakdown="no saved linkage model: per-field evidence unavailable")
    levels = [c[: -len("__level")] for c in scored.columns if c.endswith("__level")]
    evidence = pd.DataFrame({"unique_id_l": scored["unique_id_l"], "unique_id_r": scored["unique_id_r"]})
    for name in levels:
        evidence[f"evidence_{name}"] = (
            scored[f"{name}__level"].astype(str)
            + " ("
            + scored[f"{name}__weight"].map("{:+.1f}".format)
            + ")"
        )
    evidence["breakdown"] = scored["breakdown"]
    # score_pairs orders each pair lower id first; person_pairs does too, but join both ways to be safe
    swapped = evidence.rename(columns={"unique_id_l": "unique_id_r", "unique_id_r": "unique_id_l"})
    both = pd.concat([evidence, swapped], ignore_index=True).drop_duplicates(["unique_id_l", "unique_id_r"])
    return pairs.merge(both, on=["unique_id_l", "unique_id_r"], how="left").sort_values("rank")


def _read_review_csv(path: Path) -> pd.DataFrame:
    """The filled-in file as text columns; tolerates Excel's re-saves (BOM, Windows-1252, ';' or tab)."""
    if not path.exists():
        raise ValueError(f"review file {path} not found")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            with open(path, encoding=encoding, newline="") as fh:
                header = fh.readline()
        except UnicodeDecodeError:
            continue
        sep = max([",", ";", "\t"], key=header.count)
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding, sep=sep)
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise ValueError(f"review file {path.name}: not a readable CSV ({err})") from None
    raise ValueError(f"review file {path.name}: neither UTF-8 nor Windows-1252 text")


def import_review(store: Store, path: str | Path, reviewer: str) -> dict:
    """Validate a filled-in review CSV and append its decisions to ``clerical_decisions``.

    Every row needs ``unique_id_l``, ``unique_id_r`` (records known to the store) and a ``decision`` of
    ``match`` or ``non_match`` (case and ``non-match`` spelling tolerated); blank decisions are skipped and
    counted.  Any problem -> ``ValueError`` listing the file's line numbers (header = line 1) and nothing is
    imported.  Returns counts: rows, imported, match, non_match, skipped_blank.  Audited as one summary row
    and one ``clerical_decision`` row per pair (record ids, decision, reviewer, time; never the free-text note).
    """
    path = Path(path)
    df = _read_review_csv(path)
    missing = [c for c in ("unique_id_l", "unique_id_r", "decision") if c not in df.columns]
    if missing:
        raise ValueError(f"review file {path.name}: missing column(s) {missing}")
    if "note" not in df.columns:
        df["note"] = ""
    df = df[["unique_id_l", "unique_id_r", "decision", "note"]].copy()
    df["line"] = range(2, len(df) + 2)
    for col in ("unique_id_l", "unique_id_r", "decision", "note"):
        df[col] = df[col].str.strip().str.replace(_QUOTED_FORMULA, "", regex=True)  # undo spreadsheet_safe
    df["decision_norm"] = df["decision"].str.lower().map(_DECISION_ALIASES)
    blank = df["decision"] == ""
    todo = df[~blank].copy()

    problems: list[str] = []
    bad = todo[todo["decision_norm"].isna()]
    problems += [f"line {r.line}: decision must be match or non_match" for r in bad.itertuples()]
    same = todo[todo["unique_id_l"] == todo["unique_id_r"]]
    problems += [f"line {r.line}: a record cannot be paired with itself" for r in same.itertuples()]
    problems += _unknown_ids(store, todo)
    todo["a"] = todo[["unique_id_l", "unique_id_r"]].min(axis=1)
    todo["b"] = todo[["unique_id_l", "unique_id_r"]].max(axis=1)
    clash = todo[todo.groupby(["a", "b"])["decision_norm"].transform("nunique") > 1]
    problems += [
        f"line {r.line}: conflicting decisions for the same pair in this file" for r in clash.itertuples()
    ]
    if problems:
        problems.sort(key=lambda p: int(p.split(":")[0].split()[1]))
        shown = "; ".join(problems[:20]) + (f"; ... {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ValueError(f"review file {path.name}: {len(problems)} problem(s), nothing imported: {shown}")

    todo = todo.drop_duplicates(["a", "b"], keep="last")
    now = dt.datetime.now()
    rows = pd.DataFrame(
        {
            "unique_id_l": todo["unique_id_l"],
            "unique_id_r": todo["unique_id_r"],
            "decision": todo["decision_norm"],
            "reviewer": reviewer,
            "decided_at": now,
            "note": todo["note"].where(todo["note"] != "", None),
        }
    )
    counts = {
        "rows": int(len(df)),
        "imported": int(len(rows)),
        "match": int((rows["decision"] == "match").sum()),
        "non_match": int((rows["decision"] == "non_match").sum()),
        "skipped_blank": int(blank.sum()),
    }
    with atomic(store.con):
        store.con.execute(_DDL)
        store.con.register("__review_rows", rows)
        try:
            store.con.execute(
                """INSERT INTO clerical_decisions
                   SELECT unique_id_l, unique_id_r, decision, reviewer, decided_at, note FROM __review_rows"""
            )
        finally:
            store.con.unregister("__review_rows")
        store.audit("alteration", "clerical_review_import", {"file": path.name}, counts)
        for r in rows.itertuples():  # pair by pair: who decided what about which two records, and when
            store.audit("alteration", "clerical_decision",
                        {"unique_id_l": r.unique_id_l, "unique_id_r": r.unique_id_r, "decision": r.decision,
                         "reviewer": r.reviewer, "decided_at": r.decided_at.isoformat(timespec="seconds"),
                         "file": path.name, "note_given": r.note is not None},
                        {"pairs": 1})
    return counts


def _unknown_ids(store: Store, todo: pd.DataFrame) -> list[str]:
    """Problems for rows naming a record id the store does not know."""
    table = next((t for t in ("person_std", "person_clusters") if store.has_table(t)), None)
    if table is None:
        raise StoreError("review import needs person_std; run the earlier stages first")
    if todo.empty:
        return []
    ids = pd.DataFrame({"uid": pd.concat([todo["unique_id_l"], todo["unique_id_r"]]).unique()})
    store.con.register("__review_ids", ids)
    try:
        unknown = {
            r[0]
            for r in store.con.execute(
                f'SELECT uid FROM __review_ids WHERE uid NOT IN (SELECT unique_id FROM "{table}")'
            ).fetchall()
        }
    finally:
        store.con.unregister("__review_ids")
    rows = todo[todo["unique_id_l"].isin(unknown) | todo["unique_id_r"].isin(unknown)]
    return [f"line {r.line}: unknown record id" for r in rows.itertuples()]
