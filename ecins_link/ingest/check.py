"""``ecins-link check PROJECT.toml``: validate a project file and open every source before a run does.

Per source: the encoding and delimiter detected, header against mapping (missing and renamed columns), a
parse of every date column with the declared formats (the share that parses, unparsed examples, and any
common format that would do better), key uniqueness, foreign-key coverage of ``person_ref``, and codes in
the extract with no mapping (with counts).  Problems that would make a run fail or silently lose rows are
*errors* (exit code 1); the rest are *warnings*.  Nothing is written anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ecins_link.config import ConfigError, ProjectConfig, Source, load_config
from ecins_link.ingest.readers import ReadError, data_columns, read_info, read_source
from ecins_link.ingest.source import date_columns, mapped_columns
from ecins_link.ingest.sql import ISSUE, date_sql, lit, q, val

# shares below these are errors / warnings
DATE_ERROR, DATE_WARN = 0.5, 0.98
REF_ERROR, REF_WARN = 0.5, 0.98
# formats tried when the declared ones parse poorly, to suggest a fix
CANDIDATE_FORMATS = ["%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%d", "%d-%b-%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y%m%d", "%d/%m/%y",
                     "%m/%d/%y", "%d %b %Y", "%d %B %Y", "%Y/%m/%d", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M",
                     "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M:%S", "%d-%b-%Y %H:%M"]


def check_project(path: str | Path) -> dict[str, Any]:
    """The check report of a project file (see the module docstring); ``report["errors"]`` empty = fine."""
    report: dict[str, Any] = {"project": str(path), "errors": [], "warnings": [], "sources": []}
    try:
        config = load_config(path)
    except ConfigError as err:
        report["errors"].append(str(err))
        return report
    report["errors"] += _unknown_signals(config)
    con = duckdb.connect()
    tables: dict[str, pa.Table] = {}
    try:
        for src in config.sources:
            entry, table = _check_source(con, config, src)
            report["sources"].append(entry)
            if table is not None:
                tables[src.name] = table
        for src, entry in zip(config.sources, report["sources"], strict=True):
            _check_reference(con, config, src, entry, tables)
    finally:
        con.close()
    for entry in report["sources"]:
        report["errors"] += [f"{entry['source']}: {e}" for e in entry["errors"]]
        report["warnings"] += [f"{entry['source']}: {w}" for w in entry["warnings"]]
    return report


def _unknown_signals(config: ProjectConfig) -> list[str]:
    """Code and flag mappings naming a signal the project's taxonomy does not have (they would never count)."""
    from ecins_link.scoring import load_taxonomy

    try:
        known = {s.code for s in load_taxonomy(config.path_of(config.project.taxonomy)
                                               if config.project.taxonomy else None).signals}
    except ConfigError as err:
        return [str(err)]
    out = []
    for src in config.sources:
        used = [c.signal for c in src.event.codes] if src.event else []
        used += list(src.flags.columns.values()) if src.flags else []
        unknown = sorted(set(used) - known)
        if unknown:
            out.append(f"{src.name}: signal(s) {unknown} are not in the taxonomy (those rows would never count)")
    return out


def _check_source(con: duckdb.DuckDBPyConnection, config: ProjectConfig,
                  src: Source) -> tuple[dict[str, Any], pa.Table | None]:
    path = config.path_of(src.path)
    entry: dict[str, Any] = {"source": src.name, "path": str(path), "format": src.format, "errors": [],
                             "warnings": []}
    wanted = set(mapped_columns(src))
    try:
        table = read_source(path, src.format, src.encoding, src.delimiter, src.sheet, wanted)
    except ReadError as err:
        entry["errors"].append(f"cannot read {path}: {err}")
        return entry, None
    info = read_info(table)
    cols = data_columns(table)
    entry.update(encoding=info.get("encoding"), delimiter=info.get("delimiter"), rows=table.num_rows,
                 header=cols, header_notes=[n["problem"] for n in info.get("header_notes", [])],
                 ignored_columns=info.get("ignored", []))
    entry["warnings"] += [f"header: {n}" for n in entry["header_notes"]]
    entry["warnings"] += [f"column {i['column']!r}: {i['problem']}" for i in entry["ignored_columns"]]
    missing = [c for c in mapped_columns(src) if c not in cols]
    entry["missing_columns"] = missing
    entry["unmapped_columns"] = [c for c in cols if c not in wanted]
    if missing:
        near = {m: [c for c in cols if c.casefold() == m.casefold() or c.strip("_ ").casefold() == m.casefold()]
                for m in missing}
        hint = "; ".join(f"{m!r} -> did you mean {n[0]!r}?" for m, n in near.items() if n)
        entry["errors"].append(f"mapped column(s) not in the file: {missing}" + (f" ({hint})" if hint else ""))
        return entry, table
    con.register("_check_src", table)
    try:
        _read_problems(con, entry)
        _dates(con, src, entry)
        _key(con, src, entry)
        _codes(con, src, entry)
    finally:
        con.unregister("_check_src")
    return entry, table


def _read_problems(con: duckdb.DuckDBPyConnection, entry: dict) -> None:
    rows = con.execute(f"""SELECT split_part({q(ISSUE)}, ':', 1) AS k, count(*) FROM _check_src
        WHERE {q(ISSUE)} IS NOT NULL GROUP BY k ORDER BY k""").fetchall()
    entry["read_problems"] = {k: int(n) for k, n in rows}
    if rows:
        entry["warnings"].append(f"rows that will be quarantined while reading: {entry['read_problems']}")


def _dates(con: duckdb.DuckDBPyConnection, src: Source, entry: dict) -> None:
    entry["dates"] = []
    for col in date_columns(src):
        parsed = date_sql("v", src.date_formats, src.datetime_formats)
        n, ok, bad = con.execute(f"""WITH d AS (SELECT {val(col)} AS v FROM _check_src)
            SELECT count(v), count(v) FILTER (WHERE {parsed} IS NOT NULL),
                   list(DISTINCT v) FILTER (WHERE v IS NOT NULL AND {parsed} IS NULL) FROM d""").fetchone()
        share = ok / n if n else 1.0
        got = {"column": col, "values": int(n), "parsed": int(ok), "parsed_share": round(share, 4),
               "unparsed_examples": sorted(bad or [])[:5], "declared": src.datetime_formats + src.date_formats}
        if n and share < DATE_WARN:
            got["better_formats"] = _suggest(con, col, share)
            hint = f" ({got['better_formats'][0]['format']!r} parses {got['better_formats'][0]['share']:.0%})" \
                if got["better_formats"] else ""
            msg = (f"date column {col!r}: only {ok} of {n} values ({share:.1%}) parse with the declared formats; "
                   f"e.g. {got['unparsed_examples'][:3]}{hint}")
            entry["errors" if share < DATE_ERROR else "warnings"].append(msg)
        entry["dates"].append(got)


def _suggest(con: duckdb.DuckDBPyConnection, col: str, current: float) -> list[dict]:
    """Candidate formats that parse more of the column than the declared ones, best first."""
    parts = ", ".join(f"count(v) FILTER (WHERE try_strptime(v, {lit(f)}) IS NOT NULL)" for f in CANDIDATE_FORMATS)
    row = con.execute(f"SELECT count(v), {parts} FROM (SELECT {val(col)} AS v FROM _check_src)").fetchone()
    n = row[0] or 1
    better = [{"format": f, "share": round(k / n, 4)} for f, k in zip(CANDIDATE_FORMATS, row[1:], strict=True)
              if k / n > current]
    return sorted(better, key=lambda b: -b["share"])[:3]


def _key(con: duckdb.DuckDBPyConnection, src: Source, entry: dict) -> None:
    parts = [val(k) for k in src.key]
    key = f"CASE WHEN {' AND '.join(p + ' IS NOT NULL' for p in parts)} THEN concat_ws('|', {', '.join(parts)}) END"
    n, missing, distinct = con.execute(f"""SELECT count(*), count(*) FILTER (WHERE k IS NULL), count(DISTINCT k)
        FROM (SELECT {key} AS k FROM _check_src)""").fetchone()
    repeated = (n - missing) - distinct
    entry["key"] = {"columns": src.key, "rows": int(n), "missing": int(missing), "distinct": int(distinct),
                    "repeated_rows": int(repeated)}
    if missing:
        entry["warnings"].append(f"key {src.key}: {missing} rows have no key (they will be quarantined)")
    if repeated:
        entry["warnings"].append(f"key {src.key}: {repeated} rows repeat an earlier key (identical rows collapse; "
                                 "differing ones are quarantined as duplicate_key_conflict)")
    if n and (missing + repeated) / n > src.max_quarantine_share:
        entry["errors"].append(f"key {src.key} is missing or repeated on {(missing + repeated) / n:.1%} of rows, "
                               f"more than max_quarantine_share {src.max_quarantine_share:.1%}: is it the key?")


def _codes(con: duckdb.DuckDBPyConnection, src: Source, entry: dict) -> None:
    e = src.event
    if not (e and e.code):
        return
    known = [c.code.strip().upper() for c in e.codes]
    rows = con.execute(f"""SELECT coalesce(upper({val(e.code)}), '(empty)') AS c, count(*) AS n FROM _check_src
        GROUP BY c ORDER BY n DESC, c""").fetchall()
    unmapped = [{"code": c, "rows": int(n)} for c, n in rows if c not in known]
    entry["codes"] = {"column": e.code, "distinct": len(rows), "unmapped": unmapped[:50]}
    if unmapped:
        total = sum(u["rows"] for u in unmapped)
        what = "quarantined" if e.unmapped == "quarantine" else "kept with no signal"
        entry["warnings"].append(f"{len(unmapped)} code(s) in {e.code!r} have no mapping ({total} rows, {what}): "
                                 + ", ".join(f"{u['code']} x{u['rows']}" for u in unmapped[:8]))


def _check_reference(con: duckdb.DuckDBPyConnection, config: ProjectConfig, src: Source, entry: dict,
                     tables: dict[str, pa.Table]) -> None:
    ref = src.event.person_ref if src.event else None
    if ref is None or ref.source == src.name or src.name not in tables or entry.get("missing_columns"):
        return
    target = config.source(ref.source)
    on = ref.on_columns or target.key
    if not target.person:
        entry["errors"].append(f"person_ref: '{ref.source}' has no [person] mapping, so no reference can find a "
                               "person (every row would be an orphan_reference)")
        return
    if ref.source not in tables:
        entry["warnings"].append(f"person_ref: '{ref.source}' could not be read, so every reference is an orphan")
        return
    have = data_columns(tables[ref.source])
    absent = [c for c in on if c not in have]
    if absent:
        entry["errors"].append(f"person_ref.on: column(s) {absent} not in '{ref.source}'")
        return
    mine = " AND ".join(f"{val(c)} IS NOT NULL" for c in ref.columns)
    join = " AND ".join(f"t.{q(f'k{i}')} = s.{q(f'k{i}')}" for i in range(len(on)))
    con.register("_check_src", tables[src.name])
    con.register("_check_ref", tables[ref.source])
    try:
        n, found, multi = con.execute(f"""
            WITH s AS (SELECT {', '.join(f'{val(c)} AS k{i}' for i, c in enumerate(ref.columns))} FROM _check_src
                       WHERE {mine}),
                 t AS (SELECT {', '.join(f'{val(c)} AS k{i}' for i, c in enumerate(on))}, count(*) AS m
                       FROM _check_ref GROUP BY ALL)
            SELECT count(*), count(t.m), count(*) FILTER (WHERE t.m > 1) FROM s LEFT JOIN t ON {join}""").fetchone()
    finally:
        con.unregister("_check_src")
        con.unregister("_check_ref")
    share = found / n if n else 1.0
    entry["reference"] = {"source": ref.source, "columns": ref.columns, "on": on, "references": int(n),
                          "found": int(found), "coverage": round(share, 4), "one_to_many": int(multi)}
    if n and share < REF_WARN:
        msg = (f"person_ref {ref.columns} -> {ref.source} {on}: only {found} of {n} references ({share:.1%}) "
               "find a row (the rest will be quarantined as orphan_reference)")
        entry["errors" if share < REF_ERROR else "warnings"].append(msg)
    if multi and ref.on_columns and ref.on_columns != target.key:  # repeated keys are reported under 'key'
        entry["warnings"].append(f"person_ref: {multi} references match several rows of '{ref.source}'; the row in "
                                 "force on the event date is used, else the reference is marked ambiguous")
