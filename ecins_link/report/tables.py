"""Tabular outputs of a run: accounting.csv, quarantine.csv, persons/addresses/flags.parquet, worklist.csv.

Everything is a DuckDB query over the store.  CSVs are *spreadsheet-safe*: any text value that a
spreadsheet would read as a formula (starting with ``= + - @``, optionally after spaces, or with a tab or
carriage return) is prefixed with ``'`` in SQL before it is written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ecins_link.config import ProjectConfig
from ecins_link.report.cells import column
from ecins_link.report.views import View
from ecins_link.store import Store

PROFESSIONAL_JUDGEMENT = "professional_judgement"  # flags raised by an override alone (scoring stage)
FORMULA_RE = r"^(\s*[=+\-@]|[\t\r])"
WORKLIST_COLUMNS = ["rank", "case", "rules", "score", "agencies", "invisible_to_single_agency",
                    "entity_type", "entity_id", "n_persons", "first_date", "last_date", "guidance", "page",
                    "status", "first_met", "last_met"]
# a case's status: that of its most pressing flag
STATUS_ORDER = {"escalated": 0, "new": 1, "ongoing": 2, "lapsed": 3}


def neutralise_sql(expr: str) -> str:
    """SQL expression: ``expr`` (VARCHAR) with a leading ``'`` when a spreadsheet would run it as a formula."""
    return f"CASE WHEN regexp_matches({expr}, '{FORMULA_RE}') THEN '''' || {expr} ELSE {expr} END"


def write_safe_csv(store: Store, data: pd.DataFrame | pa.Table, path: Path) -> int:
    """Write ``data`` as a spreadsheet-safe CSV (lists joined with ``;``); returns rows written."""
    name = "__ecins_csv_out"
    store.con.register(name, data)
    try:
        cols = store.con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()
        exprs = []
        for col, ctype, *_ in cols:
            q = '"' + col.replace('"', '""') + '"'
            if ctype.endswith("[]"):
                text = f"array_to_string(list_transform({q}, x -> CAST(x AS VARCHAR)), ';')"
            elif ctype in ("VARCHAR", "JSON") or ctype.startswith("VARCHAR"):
                text = q
            else:
                exprs.append(q)
                continue
            exprs.append(f"{neutralise_sql(text)} AS {q}")
        safe = store.con.execute(f"SELECT {', '.join(exprs)} FROM {name}").to_arrow_table()
        pacsv.write_csv(safe, path)
        return safe.num_rows
    finally:
        store.con.unregister(name)


def source_agencies(store: Store, config: ProjectConfig) -> pd.DataFrame:
    """(source, agency) for every source of the project (and any extra source seen in accounting)."""
    rows = {s.name: s.agency for s in config.sources}
    if store.has_table("accounting"):
        for source, agency in store.con.execute("SELECT DISTINCT source, agency FROM accounting").fetchall():
            rows.setdefault(source, agency)
    return pd.DataFrame({"source": list(rows), "agency": list(rows.values())}, dtype="string")


def _empty(columns: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({k: pa.array([], type=t) for k, t in columns.items()})


def write_basic_tables(store: Store, config: ProjectConfig, view: View, out_dir: Path) -> dict[str, int]:
    """accounting.csv, quarantine.csv, persons.parquet, addresses.parquet; returns row counts."""
    con, counts = store.con, {}
    con.register("__ecins_src", source_agencies(store, config))
    try:
        agency_sql, agency_params = view.sql_agency_filter("s.agency")
        if store.has_table("accounting"):
            acc = con.execute("SELECT a.source, a.agency, a.rows_read, a.rows_accepted, a.rows_quarantined, "
                              "a.duplicates_collapsed FROM accounting a LEFT JOIN __ecins_src s USING (source) "
                              f"WHERE {agency_sql} ORDER BY a.source", agency_params).to_arrow_table()
        else:
            acc = _empty({"source": pa.string(), "agency": pa.string(), "rows_read": pa.int64(),
                          "rows_accepted": pa.int64(), "rows_quarantined": pa.int64()})
        counts["accounting"] = write_safe_csv(store, acc, out_dir / "accounting.csv")
        if store.has_table("quarantine"):
            q = con.execute(
                "SELECT q.source, q.row_number, q.record_key, q.reason, left(q.raw, 1000) AS raw FROM quarantine q "
                f"LEFT JOIN __ecins_src s USING (source) WHERE {agency_sql} ORDER BY q.source, q.row_number",
                agency_params).to_arrow_table()
        else:
            q = _empty({"source": pa.string(), "row_number": pa.int64(), "record_key": pa.string(),
                        "reason": pa.string(), "raw": pa.string()})
        counts["quarantine"] = write_safe_csv(store, q, out_dir / "quarantine.csv")
        specs = [("persons", "person_clusters", "person_id, cluster_confidence",
                  {"person_id": pa.string(), "cluster_confidence": pa.float64()}),
                 ("addresses", "address_matches", "uprn, location_id, match_confidence, match_level, match_reason",
                  {"uprn": pa.string(), "location_id": pa.string(), "match_confidence": pa.float64(),
                   "match_level": pa.string(), "match_reason": pa.string()})]
        for out, table, cols, types in specs:
            if store.has_table(table):
                have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                                  "WHERE table_name = ?", [table]).fetchall()}
                # a store written before a column was added: the column is NULL (re-run the stage to fill it)
                sel = ", ".join(f"t.{c}" if c in have else f"CAST(NULL AS VARCHAR) AS {c}"
                                for c in (c.strip() for c in cols.split(",")))
                data = con.execute(
                    f"SELECT t.source, t.record_key, {sel} "
                    f"FROM {table} t LEFT JOIN __ecins_src s USING (source) WHERE {agency_sql} "
                    "ORDER BY t.source, t.record_key", agency_params).to_arrow_table()
            else:
                data = _empty({"source": pa.string(), "record_key": pa.string(), **types})
            pq.write_table(data, out_dir / f"{out}.parquet")
            counts[out] = data.num_rows
    finally:
        con.unregister("__ecins_src")
    return counts


def case_page_name(entity_type: str, entity_id: str) -> str:
    """File name (under panel/cases/) of a case page: a hash of the entity, stable across runs."""
    digest = hashlib.sha256(f"{entity_type}:{entity_id}".encode()).hexdigest()[:16]
    return f"case_{digest}.html"


def _raised_for(evidence: str | None, rules: frozenset[str]) -> bool:
    """Whether a professional-judgement flag's overrides name one of ``rules`` (then the purpose sees it)."""
    try:
        overrides = json.loads(evidence or "{}").get("overrides") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(o, dict) and o.get("rule") in rules for o in overrides)


def load_flags(store: Store, view: View, category_of: dict[str, str]) -> pd.DataFrame:
    """Flags of the view's rules, evidence pruned and agencies limited to what the view may name."""
    if not store.has_table("flags"):
        return pd.DataFrame(columns=["flag_id", "rule", "label", "entity_type", "entity_id", "person_ids", "uprns",
                                     "score", "rank", "agencies", "visible_to_single_agency", "evidence",
                                     "guidance", "first_date", "last_date"])
    params: list = []
    where = "TRUE"
    if view.rules is not None:
        where = f"(list_contains(?::VARCHAR[], rule) OR rule = '{PROFESSIONAL_JUDGEMENT}')"
        params = [sorted(view.rules)]
    flags = store.df(f"SELECT * FROM flags WHERE {where} ORDER BY rank, flag_id", params)
    if view.rules is not None and len(flags):
        keep = [r != PROFESSIONAL_JUDGEMENT or _raised_for(e, view.rules) for r, e in zip(flags["rule"],
                                                                                      flags["evidence"], strict=False)]
        flags = flags.loc[keep].reset_index(drop=True)
    if view.name is not None and len(flags):
        flags["evidence"] = [view.filter_evidence(e, category_of) for e in flags["evidence"]]
        flags["agencies"] = [view.visible_agencies(list(a) if a is not None else []) for a in flags["agencies"]]
    return flags


def _iso(value: object) -> str | None:
    """ISO date text of a date/timestamp (None for missing)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return None
    return pd.Timestamp(value).date().isoformat()


def _true(value: object) -> bool:
    """Truth of a nullable boolean cell (None, NaN and NA are false)."""
    try:
        return bool(value) and not pd.isna(value)
    except (TypeError, ValueError):
        return False


def build_cases(flags: pd.DataFrame) -> pd.DataFrame:
    """One row per flagged entity (a *case*), ranked by its best flag rank, then score.

    One pass over the (panel-sized) flags in rank order; a per-group pandas loop cost ~5 s at 8k cases."""
    if flags.empty:
        return pd.DataFrame(columns=WORKLIST_COLUMNS + ["person_ids", "uprns", "flag_ids"])
    cols = ["flag_id", "rule", "entity_type", "entity_id", "person_ids", "uprns", "score", "rank", "agencies",
            "visible_to_single_agency", "guidance", "first_date", "last_date", "status", "first_met", "last_met"]
    flags = flags.assign(**{c: None for c in ("status", "first_met", "last_met") if c not in flags.columns})
    ordered = flags[cols].sort_values("rank", kind="stable")
    acc: dict[tuple, dict] = {}
    for values in zip(*(column(ordered[c]) for c in cols), strict=True):  # (to_dict("records"), faster)
        f = dict(zip(cols, values, strict=True))
        key = (f["entity_type"], f["entity_id"])
        c = acc.get(key)
        if c is None:
            c = acc[key] = {"best_rank": f["rank"], "rules": {}, "score": [], "agencies": set(), "persons": set(),
                            "uprns": set(), "visible": False, "guidance": {}, "first": [], "last": [], "flag_ids": [],
                            "status": [], "met_first": [], "met_last": []}
        c["rules"][f["rule"]] = None
        c["score"].append(f["score"])
        for name, field in (("agencies", "agencies"), ("persons", "person_ids"), ("uprns", "uprns")):
            if f[field] is not None:
                c[name].update(f[field])
        c["visible"] |= _true(f["visible_to_single_agency"])
        if isinstance(f["guidance"], str) and f["guidance"]:
            c["guidance"][f["guidance"]] = None
        c["first"].append(f["first_date"])
        c["last"].append(f["last_date"])
        c["flag_ids"].append(f["flag_id"])
        if isinstance(f["status"], str):
            c["status"].append(f["status"])
        c["met_first"].append(f["first_met"])
        c["met_last"].append(f["last_met"])
    rows = []
    for (etype, eid), c in acc.items():
        first = [d for d in c["first"] if _iso(d) is not None]
        last = [d for d in c["last"] if _iso(d) is not None]
        rows.append({
            "best_rank": c["best_rank"], "case": f"{etype}:{eid}", "rules": ";".join(c["rules"]),
            "score": round(max((float(x) for x in c["score"] if not pd.isna(x)), default=float("nan")), 3),
            "agencies": sorted(c["agencies"]), "invisible_to_single_agency": "no" if c["visible"] else "yes",
            "entity_type": etype, "entity_id": str(eid), "n_persons": len(c["persons"]),
            "first_date": _iso(min(first)) if first else None, "last_date": _iso(max(last)) if last else None,
            "guidance": " | ".join(c["guidance"]), "page": "cases/" + case_page_name(etype, str(eid)),
            "person_ids": sorted(c["persons"]), "uprns": sorted(c["uprns"]), "flag_ids": c["flag_ids"],
            "status": min(c["status"], key=lambda s: STATUS_ORDER.get(s, 9)) if c["status"] else None,
            "first_met": _iso(min(met_first)) if (met_first := [d for d in c["met_first"] if _iso(d)]) else None,
            "last_met": _iso(max(met_last)) if (met_last := [d for d in c["met_last"] if _iso(d)]) else None,
        })
    cases = pd.DataFrame(rows).sort_values(["best_rank", "score", "case"], ascending=[True, False, True])
    cases.insert(0, "rank", range(1, len(cases) + 1))
    return cases.drop(columns=["best_rank"]).reset_index(drop=True)


def write_flag_tables(store: Store, flags: pd.DataFrame, cases: pd.DataFrame, out_dir: Path) -> dict[str, int]:
    """flags.parquet and worklist.csv; returns row counts."""
    flag_cols = ["flag_id", "rule", "label", "entity_type", "entity_id", "person_ids", "uprns", "score", "rank",
                 "agencies", "visible_to_single_agency", "evidence", "guidance", "first_date", "last_date",
                 "first_met", "last_met", "status"]
    ftab = flags[[c for c in flag_cols if c in flags.columns]]
    if ftab.empty:
        table = pa.table({
            "flag_id": pa.array([], pa.string()), "rule": pa.array([], pa.string()),
            "label": pa.array([], pa.string()), "entity_type": pa.array([], pa.string()),
            "entity_id": pa.array([], pa.string()), "person_ids": pa.array([], pa.list_(pa.string())),
            "uprns": pa.array([], pa.list_(pa.string())), "score": pa.array([], pa.float64()),
            "rank": pa.array([], pa.int64()), "agencies": pa.array([], pa.list_(pa.string())),
            "visible_to_single_agency": pa.array([], pa.bool_()), "evidence": pa.array([], pa.string()),
            "guidance": pa.array([], pa.string()), "first_date": pa.array([], pa.date32()),
            "last_date": pa.array([], pa.date32()), "first_met": pa.array([], pa.date32()),
            "last_met": pa.array([], pa.date32()), "status": pa.array([], pa.string())})
    else:
        table = pa.Table.from_pandas(ftab.reset_index(drop=True), preserve_index=False)
        for name, typ in (("first_met", pa.date32()), ("last_met", pa.date32()), ("status", pa.string())):
            if name not in table.column_names:  # a store scored before flags had episodes: the contract's columns
                table = table.append_column(name, pa.nulls(len(table), typ))
    pq.write_table(table, out_dir / "flags.parquet")
    work = cases[WORKLIST_COLUMNS] if not cases.empty else pd.DataFrame(columns=WORKLIST_COLUMNS)
    work = work.astype({"first_date": "string", "last_date": "string", "case": "string", "rules": "string", "guidance": "string", "page": "string",
                        "entity_type": "string", "entity_id": "string", "invisible_to_single_agency": "string",
                        "status": "string", "first_met": "string", "last_met": "string"})
    n = write_safe_csv(store, work, out_dir / "worklist.csv")
    return {"flags": table.num_rows, "worklist": n}
