"""Reading the published snapshot: the worklist of one purpose (cached per snapshot) with sort, filter,
search and paging.

One read-only DuckDB connection per snapshot; each request works on its own cursor.  A purpose's cases are
built once per snapshot with the report's own functions (``load_flags``: the purpose's rules, evidence
pruned, agencies limited; ``build_cases``: one row per entity), then every worklist request is a few
vectorised pandas masks over that frame (~10k rows at 250k persons) and a slice.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ecins_link.config import ProjectConfig
from ecins_link.report.labels import entity_label
from ecins_link.report.tables import build_cases, load_flags
from ecins_link.report.views import View
from ecins_link.web.snapshot import current_pointer, publish_snapshot

PAGE_SIZE = 50
SORTS = {"rank": ("rank", True), "score": ("score", False), "last_date": ("last_date", False),
         "first_date": ("first_date", True), "label": ("label", True)}


def case_id_of(entity_type: str, entity_id: str) -> str:
    """The case's id in URLs: a hash of the entity (the same as the static pack's page name)."""
    return hashlib.sha256(f"{entity_type}:{entity_id}".encode()).hexdigest()[:16]


class _SnapStore:
    """The two Store methods the report's ``load_flags`` uses, over a snapshot cursor."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def has_table(self, name: str) -> bool:
        return bool(self.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()[0])

    def df(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()


@dataclass
class Snapshot:
    """An open published snapshot and its per-purpose worklists."""

    run_id: str
    path: Path
    finished_at: str
    con: duckdb.DuckDBPyConnection
    _cases: dict = field(default_factory=dict)
    _flags: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for one request (its own transaction on the shared read-only database)."""
        return self.con.cursor()

    def has(self, table: str) -> bool:
        """Whether the snapshot holds ``table`` (the list read once per snapshot)."""
        tables = self._cases.get("__tables__")
        if tables is None:
            tables = self._cases["__tables__"] = {r[0] for r in self.cursor().execute(
                "SELECT table_name FROM duckdb_tables()").fetchall()}
        return table in tables

    def flag_columns(self) -> set[str]:
        cur = self.cursor()
        return {r[0] for r in cur.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'flags'").fetchall()}

    def category_of(self) -> dict[str, str]:
        """signal code -> category (read once per snapshot)."""
        hit = self._cases.get("__category_of__")
        if hit is None:
            hit = {}
            if self.has("signals"):
                hit = {str(s): str(c) for s, c in self.cursor().execute(
                    "SELECT DISTINCT signal, category FROM signals WHERE signal IS NOT NULL AND category IS NOT NULL"
                ).fetchall()}
            self._cases["__category_of__"] = hit
        return hit

    def flags(self, view: View) -> pd.DataFrame:
        """The view's flags (report's ``load_flags``: its rules only, evidence pruned, agencies limited)."""
        self.cases(view)
        return self._flags[view.name]

    def cases(self, view: View) -> pd.DataFrame:
        """The view's cases, one row per entity, with labels and search keys (built once per snapshot)."""
        key = ("view", view.name)
        with self._lock:
            if key not in self._cases:
                flags = load_flags(_SnapStore(self.cursor()), view, self.category_of())
                self._flags[view.name] = flags
                self._cases[key] = self._decorate(build_cases(flags), flags, view)
            return self._cases[key]

    def _decorate(self, cases: pd.DataFrame, flags: pd.DataFrame, view: View) -> pd.DataFrame:
        """Add case_id, status, rule labels, a label (who / where, as the view's fields allow) and search keys."""
        if cases.empty:
            return cases.assign(case_id=[], status=[], rule_labels=[], label=[], names=[], dobs=[], addresses=[],
                                lead_flag=[])
        cases = cases.copy()
        cases["case_id"] = [case_id_of(t, i) for t, i in zip(cases["entity_type"], cases["entity_id"], strict=True)]
        cases["lead_flag"] = [ids[0] if len(ids) else "" for ids in cases["flag_ids"]]
        label_of = dict(zip(flags["rule"], flags["label"].fillna(flags["rule"]), strict=False))
        cases["rule_labels"] = [[label_of.get(r, r) for r in str(rs).split(";") if r] for rs in cases["rules"]]
        if "status" in flags.columns:
            status_of = dict(zip(flags["flag_id"], flags["status"], strict=False))
            cases["status"] = [status_of.get(ids[0]) if len(ids) else None for ids in cases["flag_ids"]]
        else:  # a store before flag histories: every flag is as new as the run
            cases["status"] = None
        cur = self.cursor()
        persons = cases[["case_id", "person_ids", "entity_type", "entity_id"]].copy()
        persons["pid"] = [list(p) + ([e] if t == "person" else []) for p, t, e in
                          zip(persons["person_ids"], persons["entity_type"], persons["entity_id"], strict=True)]
        long = persons[["case_id", "pid"]].explode("pid").dropna()
        long["pid"] = long["pid"].astype(str)
        cur.register("__w_persons", long)
        locs = cases[["case_id", "uprns", "entity_type", "entity_id"]].copy()
        locs["lid"] = [["U" + str(u) for u in (us if us is not None else [])] + ([e] if t == "location" else [])
                       for us, t, e in zip(locs["uprns"], locs["entity_type"], locs["entity_id"], strict=True)]
        long_l = locs[["case_id", "lid"]].explode("lid").dropna()
        long_l["lid"] = long_l["lid"].astype(str)
        cur.register("__w_locs", long_l)
        agencies = sorted(view.agencies) if view.agencies is not None else None
        # a person is named only when a record of theirs comes from an agency the view details
        per = cur.execute("""
            SELECT w.case_id, list(p.display_name ORDER BY p.is_child DESC NULLS LAST, w.pid) FILTER (WHERE p.display_name IS NOT NULL) AS names,
                   list(CAST(p.dob AS VARCHAR) ORDER BY w.pid) FILTER (WHERE p.dob IS NOT NULL) AS dobs
            FROM __w_persons w JOIN persons p ON p.person_id = w.pid
            WHERE ?::VARCHAR[] IS NULL OR len(list_intersect(p.agencies, ?::VARCHAR[])) > 0
            GROUP BY w.case_id""", [agencies, agencies]).df() if self.has("persons") else pd.DataFrame(
            columns=["case_id", "names", "dobs"])
        addr = cur.execute("""
            SELECT w.case_id, list(DISTINCT l.label) AS addresses FROM __w_locs w JOIN loc_labels l ON l.location_id = w.lid
            WHERE l.agency IS NULL OR ?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], lower(l.agency))
            GROUP BY w.case_id""", [agencies, agencies]).df() if self.has("loc_labels") else pd.DataFrame(
            columns=["case_id", "addresses"])
        cur.unregister("__w_persons")
        cur.unregister("__w_locs")
        cases = cases.merge(per, on="case_id", how="left").merge(addr, on="case_id", how="left")
        for c in ("names", "dobs", "addresses"):
            cases[c] = [list(v) if isinstance(v, list | tuple) or hasattr(v, "tolist") and v is not None
                        else [] for v in cases[c]]
        if not view.field("name"):
            cases["names"] = [[] for _ in range(len(cases))]
        if not view.field("dob"):
            cases["dobs"] = [[] for _ in range(len(cases))]
        if not view.field("address"):
            cases["addresses"] = [[] for _ in range(len(cases))]
        cases["label"] = [_label(t, e, n, a) for t, e, n, a in
                          zip(cases["entity_type"], cases["entity_id"], cases["names"], cases["addresses"], strict=True)]
        # one upper-case text per case for search (names | dobs | addresses): a substring test per request
        cases["_names"] = ["|".join(n).upper() for n in cases["names"]]
        cases["_dobs"] = ["|".join(d) for d in cases["dobs"]]
        cases["_addresses"] = ["|".join(a).upper() for a in cases["addresses"]]
        # the fields this view may search, as one text per case (one pass per search request)
        cases["_search"] = ["\x1f".join(parts) for parts in zip(cases["_names"], cases["_dobs"], cases["_addresses"],
                                                                 strict=True)]
        cases["_agencies"] = ["|" + "|".join(a) + "|" for a in cases["agencies"]]
        cases["_rules"] = ["|" + str(r).replace(";", "|") + "|" for r in cases["rules"]]
        return cases.sort_values("rank").reset_index(drop=True)


def _label(entity_type: str, entity_id: str, names: list, addresses: list) -> str:
    if entity_type == "person" and names:
        return str(names[0])
    if entity_type in ("household", "location") and addresses:
        prefix = "household at " if entity_type == "household" else ""
        return prefix + str(addresses[0])
    if names:
        return f"{entity_label(entity_type)} of {names[0]}"
    return f"{entity_label(entity_type)} {entity_id}"


class SnapshotHolder:
    """The snapshot in service: re-reads ``current.json`` at most every ``check_seconds`` and swaps to a newly
    published run (old readers finish on the old connection)."""

    def __init__(self, config: ProjectConfig, web_dir: Path, check_seconds: float = 2.0) -> None:
        self.config, self.web_dir, self.check_seconds = config, Path(web_dir), check_seconds
        self._snap: Snapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def publish(self) -> Snapshot | None:
        """Publish the store's latest completed run if it is new (and the store free), then return the current."""
        publish_snapshot(self.config.store_path, self.web_dir, tuple(self.config.linkage.review_band))
        self._checked = 0.0
        snap = self.get()
        if snap is not None:  # build every purpose's worklist now, not on its first user's request
            from ecins_link.report.views import full_view, view_for

            for view in [full_view(), *(view_for(self.config, p) for p in sorted(self.config.purposes))]:
                snap.cases(view)
        return snap

    def get(self) -> Snapshot | None:
        now = time.monotonic()
        if self._snap is not None and now - self._checked < self.check_seconds:
            return self._snap
        with self._lock:
            self._checked = now
            pointer = current_pointer(self.web_dir)
            if pointer is None:
                return self._snap
            if self._snap is None or self._snap.path != pointer.file:
                # one thread per query: a page's queries are small point look-ups (zone maps); concurrency
                # comes from the request threads, and a 2-core box loses more to thread scheduling than it gains
                con = duckdb.connect(str(pointer.file), read_only=True, config={"threads": 1})
                self._snap = Snapshot(run_id=pointer.run_id, path=pointer.file, finished_at=pointer.finished_at,
                                      con=con)
            return self._snap


@dataclass
class WorklistQuery:
    """What the worklist form asks for (all optional)."""

    rule: str = ""
    status: str = ""
    agency: str = ""
    date_from: str = ""
    date_to: str = ""
    decision: str = ""
    q: str = ""
    sort: str = "rank"
    page: int = 1


def worklist_page(cases: pd.DataFrame, query: WorklistQuery, decisions: dict[str, str], view: View,
                  page_size: int = PAGE_SIZE) -> tuple[pd.DataFrame, int]:
    """The cases matching ``query`` (``decisions``: case_key -> latest decision) sorted, one page of them,
    and the number matching.  Search looks only at the fields the view may display.

    Works on row positions (numpy) and copies only the page's rows: a boolean-indexed copy of a 10k-case
    frame per request cost more than the filtering itself."""
    if cases.empty:
        return cases, 0
    mask = np.ones(len(cases), dtype=bool)

    # plain list comprehensions over the column's Python strings (pandas' str methods and generators fed to
    # np.fromiter cost several times more per row); missing values are None or NaN, never str
    def contains(col: str, text: str) -> np.ndarray:
        return np.array([text in v if v.__class__ is str else False for v in cases[col].tolist()], dtype=bool)

    def compare(col: str, op: str, bound: str) -> np.ndarray:
        values = cases[col].tolist()
        if op == ">=":
            return np.array([v >= bound if v.__class__ is str else False for v in values], dtype=bool)
        return np.array([v <= bound if v.__class__ is str else False for v in values], dtype=bool)

    if query.rule:
        mask &= contains("_rules", "|" + query.rule + "|")
    if query.status:
        mask &= np.array([v == query.status for v in cases["status"].tolist()], dtype=bool)
    if query.agency:
        mask &= contains("_agencies", "|" + query.agency + "|")
    if query.date_from:
        mask &= compare("last_date", ">=", query.date_from)
    if query.date_to:
        mask &= compare("first_date", "<=", query.date_to)
    if query.decision:
        current = np.array([decisions.get(k, "") for k in cases["case"].tolist()], dtype=object) if decisions \
            else np.full(len(cases), "", dtype=object)
        mask &= (current == "") if query.decision == "none" else (current == query.decision)
    text = query.q.strip().upper()
    if text and "\x1f" not in text:
        # _search holds only the fields the view may display (the others were emptied when the cases were built)
        mask &= contains("_search", text)
    elif text:
        mask[:] = False
    rows = np.flatnonzero(mask)  # cases are in rank order already
    col, ascending = SORTS.get(query.sort, SORTS["rank"])
    if col != "rank" and len(rows):
        values = cases[col].tolist()
        present = [i for i in rows.tolist() if values[i] is not None and values[i] == values[i]]
        missing = [i for i in rows.tolist() if not (values[i] is not None and values[i] == values[i])]
        present.sort(key=values.__getitem__, reverse=not ascending)  # stable (reverse too): rank order in ties
        rows = np.array(present + missing, dtype=np.int64)
    start = (max(query.page, 1) - 1) * page_size
    return cases.iloc[rows[start:start + page_size]], int(len(rows))
