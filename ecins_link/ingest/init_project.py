"""``ecins-link init EXTRACT...``: a project-file skeleton guessed from the extracts' headers and values.

Each extract is read as ``run`` would read it (encoding and delimiter sniffed).  Column roles are guessed
from header names (``data/init_guesses.toml``) and sampled values (unique keys, date-like columns and the
formats that parse them, yes/no flag columns, code columns with few distinct values), references from a
column named like another extract's key.  Every guessed line carries a ``# GUESS`` comment saying what it
rests on; codes are listed with their counts, for the analyst to map to taxonomy signals.  The file
loads as a project (``ecins-link check`` is the next step).
"""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa

from ecins_link.ingest.check import CANDIDATE_FORMATS
from ecins_link.ingest.readers import ReadError, data_columns, read_info, read_source
from ecins_link.ingest.sql import lit, val

SAMPLE = 5000
_FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".psv": "csv", ".xlsx": "xlsx", ".parquet": "parquet",
            ".pq": "parquet"}


@cache
def _patterns() -> dict[str, list[str]]:
    path = Path(__file__).with_name("data") / "init_guesses.toml"
    return tomllib.loads(path.read_text(encoding="utf-8"))["roles"]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.casefold())


def _role_columns(cols: list[str]) -> dict[str, list[str]]:
    """Role -> header names that match its patterns (regexes on the lower-cased alphanumeric name)."""
    out: dict[str, list[str]] = {}
    for role, pats in _patterns().items():
        out[role] = [c for c in cols if any(re.fullmatch(p, _norm(c)) for p in pats)]
    return out


def _profile(con: duckdb.DuckDBPyConnection, table: pa.Table) -> dict[str, dict]:
    """Per column: values, distinct values, share parsing with each candidate date format, yes/no share."""
    con.register("_init_src", table.slice(0, SAMPLE))
    prof = {}
    try:
        for c in data_columns(table):
            v = val(c)
            fmts = ", ".join(f"count(*) FILTER (WHERE try_strptime(v, {lit(f)}) IS NOT NULL)" for f in CANDIDATE_FORMATS)
            row = con.execute(f"""SELECT count(v), count(DISTINCT v), {fmts},
                    count(*) FILTER (WHERE upper(v) IN ('Y', 'N', 'YES', 'NO', 'TRUE', 'FALSE', '1', '0')),
                    max(length(v))
                FROM (SELECT {v} AS v FROM _init_src) WHERE v IS NOT NULL""").fetchone()
            n = row[0]
            shares = {f: (k / n if n else 0.0) for f, k in zip(CANDIDATE_FORMATS, row[2:-2], strict=True)}
            prof[c] = {"values": n, "distinct": row[1], "formats": shares, "yes_no": row[-2] / n if n else 0.0,
                       "longest": row[-1] or 0}
    finally:
        con.unregister("_init_src")
    return prof


def _date_formats(prof: dict, cols: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(date formats, datetime formats, notes) that parse the date columns' sampled values."""
    dates, times, notes = [], [], []
    for c in cols:
        good = [f for f, s in prof[c]["formats"].items() if s >= 0.95]
        if not good:
            notes.append(f"no common format parses {c!r}")
            continue
        best = max(good, key=lambda f: prof[c]["formats"][f])
        (times if "%H" in best else dates).append(best)
        if "%d/%m" in best and best.replace("%d/%m", "%m/%d") in good:
            notes.append(f"{c!r}: day/month order cannot be told from the values (all days <= 12)")
    return list(dict.fromkeys(dates)), list(dict.fromkeys(times)), notes


def _guess_source(con: duckdb.DuckDBPyConnection, path: Path, root: Path, name: str) -> dict:
    fmt = _FORMATS.get(path.suffix.lower(), "csv")
    table = read_source(path, fmt)
    info = read_info(table)
    cols = data_columns(table)
    prof = _profile(con, table)
    roles = _role_columns(cols)
    n = min(table.num_rows, SAMPLE)
    dated = [c for c in cols if prof[c]["values"] and max(prof[c]["formats"].values()) >= 0.95]
    unique = [c for c in cols if prof[c]["values"] == n and prof[c]["distinct"] == n and c not in dated]
    keyish = [c for c in roles["key"] if c in unique] or unique[:1]
    src: dict = {"name": name, "agency": path.parent.name if path.parent != root else "TODO", "fmt": fmt,
                 "path": path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path),
                 "cols": cols, "info": info, "table": table, "prof": prof, "roles": roles, "dated": dated, "rows": table.num_rows}
    if keyish:
        src["key"], src["key_note"] = keyish[:1], f"unique and present in the {n} rows sampled"
    else:
        pair = roles["key"][:2] or cols[:2]
        src["key"], src["key_note"] = pair, "no single column is unique in the sample: a compound key?"
    return src


def _first(roles: dict, role: str, exclude: set[str]) -> str | None:
    return next((c for c in roles.get(role, []) if c not in exclude), None)


def _line(key: str, value: object, why: str) -> str:
    return f"{key} = {json.dumps(value, ensure_ascii=False)}  # GUESS: {why}"


def _person(src: dict) -> list[str]:
    roles, used = src["roles"], set(src["key"])
    lines = []
    for role in ("title", "forenames", "surname", "full_name", "dob", "sex", "postcode", "uprn", "phone", "email",
                 "resident_from", "resident_to"):
        col = _first(roles, role, used)
        if role == "full_name" and any(ln.startswith("surname") for ln in lines):
            continue
        if role in ("dob", "resident_from", "resident_to") and col not in src["dated"]:
            col = None
        if col:
            used.add(col)
            lines.append(_line(role, col, f"header {col!r} looks like a {role.replace('_', ' ')}"))
    addr = [c for c in roles.get("address", []) if c not in used]
    if len(addr) == 1:
        lines.append(_line("address", addr[0], "header looks like an address"))
    elif addr:
        lines.append(_line("address_lines", addr, "headers look like address lines"))
    return lines


def _event(src: dict, person_ref: tuple[str, list[str], bool] | None) -> list[str]:
    roles, prof = src["roles"], src["prof"]
    dates = [c for c in roles.get("event_date", []) if c in src["dated"]] or \
        [c for c in src["dated"] if c not in roles.get("dob", [])]
    not_codes = set(src["key"]) | set(roles.get("postcode", [])) | set(roles.get("uprn", []))
    codes = [c for c in roles.get("code", []) if c not in not_codes
             and 0 < prof[c]["distinct"] <= max(50, prof[c]["values"] // 20)]
    if not dates or (src.get("person_lines") and not codes):  # a person source's dates are its own, not events
        return []
    lines = [_line("date", dates[0], "values parse as dates")]
    if codes:
        lines.insert(0, _line("code", codes[0], f"{prof[codes[0]]['distinct']} distinct values"))
    role = _first(roles, "role", set())
    if role:
        lines.append(_line("role", role, "header looks like a role"))
    loc = _first(roles, "address", set())
    if loc and not src.get("person_lines"):
        lines.append(_line("location", loc, "header looks like an address"))
    pc = _first(roles, "postcode", set())
    if pc and not src.get("person_lines"):
        lines.append(_line("location_postcode", pc, "header looks like a postcode"))
    if person_ref:
        target, cols, full = person_ref
        column = json.dumps(cols[0] if len(cols) == 1 else cols)
        on = "" if full else f", on = {column}"
        lines.append(f'person_ref = {{ source = "{target}", column = {column}{on} }}  '
                     f"# GUESS: {', '.join(cols)} {'is' if full else 'is part of'} the key of {target}")
    lines.append('unmapped = "ignore"')
    lines.append("codes = [  # map each code to a signal of the taxonomy, e.g. { code = \"DA\", signal = \"DA_VICTIM\" }")
    if codes:
        lines += [f"  # {json.dumps(code)}: {k} rows" for code, k in src.get("code_counts", [])]
    lines.append("]")
    return lines


def _flags(src: dict, used: set[str], with_event: bool) -> list[str]:
    yn = [c for c in src["cols"] if c not in used and src["prof"][c]["values"] and src["prof"][c]["yes_no"] >= 0.99
          and src["prof"][c]["distinct"] <= 4]
    if len(yn) < 2:
        return []
    cols = ", ".join(f'{json.dumps(c)} = "TODO_SIGNAL"' for c in yn)
    out = [f"columns = {{ {cols} }}  # GUESS: columns holding only yes/no values"]
    dates = [c for c in src["roles"].get("event_date", []) if c in src["dated"] and c not in used]
    if dates and not with_event:
        out.insert(0, _line("date", dates[0], "values parse as dates"))
    return out


def skeleton(extracts: list[Path], out: Path) -> str:
    """The project-file text for ``extracts`` (paths written relative to ``out``'s folder when inside it)."""
    root = out.resolve().parent
    con = duckdb.connect()
    sources, problems = [], []
    names: set[str] = set()
    try:
        for path in extracts:
            path = Path(path).resolve()
            name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{path.parent.name}_{path.stem}" if path.parent != root
                          else path.stem).strip("_") or "source"
            while name in names:
                name += "_2"
            names.add(name)
            try:
                src = _guess_source(con, path, root, name)
            except ReadError as err:
                problems.append(f"# {path}: cannot be read ({err}); not included")
                continue
            code = _first(src["roles"], "code", set(src["key"]) | set(src["roles"].get("postcode", [])))
            if code:
                src["code_counts"] = _code_counts(con, src["table"], code)
            sources.append(src)
    finally:
        con.close()
    keys = {s["name"]: s["key"] for s in sources}
    blocks = [_source_block(s, keys) for s in sources]
    head = ["# Project skeleton written by `ecins-link init` from the extracts' headers and values.",
            "# Every line marked GUESS is a guess: check it against the extract, then run `ecins-link check`.",
            "[project]", _line("name", root.name, "the folder's name"), 'store = "store.duckdb"', ""]
    return "\n".join(head + problems + blocks) + "\n"


def _code_counts(con: duckdb.DuckDBPyConnection, table: pa.Table, col: str) -> list[tuple[str, int]]:
    """The column's values with their counts, most frequent first."""
    con.register("_init_codes", table)
    try:
        return con.execute(f"SELECT {val(col)} AS c, count(*) AS n FROM _init_codes WHERE c IS NOT NULL "
                           "GROUP BY c ORDER BY n DESC, c LIMIT 60").fetchall()
    finally:
        con.unregister("_init_codes")


def _source_block(src: dict, keys: dict[str, list[str]]) -> str:
    info = src["info"]
    lines = ["[[sources]]", f'name = "{src["name"]}"', _line("agency", src["agency"], "the extract's folder"),
             f'path = {json.dumps(src["path"])}', f'format = "{src["fmt"]}"']
    if src["fmt"] == "csv":
        lines.append(_line("delimiter", info.get("delimiter") or ",", "sniffed from the header and first records"))
        lines.append(_line("encoding", "auto", f"read as {info.get('encoding')}"))
    key = src["key"]
    lines.append(_line("key", key if len(key) > 1 else key[0], src["key_note"]))
    dates, times, notes = _date_formats(src["prof"], src["dated"])
    if dates:
        lines.append(_line("date_formats", dates, "formats parsing >= 95% of the sampled date values"))
    if times:
        lines.append(_line("datetime_formats", times, "formats parsing >= 95% of the sampled date-time values"))
    lines += [f"# NOTE: {n}" for n in notes + [n["problem"] for n in info.get("header_notes", [])]]
    ref = None
    for other, okey in keys.items():
        if other == src["name"]:
            continue
        if all(c in src["cols"] for c in okey) and okey != key:
            ref = (other, list(okey), True)
            break
        shared = [c for c in src["cols"] if c in okey and c not in key]
        if shared and ref is None:
            ref = (other, shared[:1], False)
    person = _person(src)
    src["person_lines"] = person if any(re.match(r"(surname|full_name)", ln) for ln in person) else []
    body = []
    gaz = _first(src["roles"], "uprn", set()) and _first(src["roles"], "street", set()) and not src["person_lines"]
    if gaz:
        body += ["[sources.gazetteer]", _line("uprn", _first(src["roles"], "uprn", set()), "header 'UPRN'")]
        for role in ("street", "postcode", "town"):
            col = _first(src["roles"], role, set())
            if col:
                body.append(_line(role, col, f"header looks like a {role}"))
        return "\n".join(lines + body) + "\n"
    if src["person_lines"]:
        body += ["[sources.person]"] + src["person_lines"]
    event = _event(src, ref)
    if event:
        body += ["[sources.event]"] + event
    used = set(key) | {c for c in src["cols"] if any(f'"{c}"' in ln for ln in body)}
    flags = _flags(src, used, bool(event))
    if flags and (event or src["person_lines"]) and (event or flags[0].startswith("date")):
        body += ["[sources.flags]"] + flags
    if not body:
        first = next((c for c in src["cols"] if c not in key), key[0])
        body = ["[sources.person]", _line("full_name", first, "no name or date column recognised: map this source")]
    return "\n".join(lines + body) + "\n"


def write_skeleton(extracts: list[Path], out: Path) -> Path:
    """Write the skeleton for ``extracts`` to ``out``; its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(skeleton(extracts, out), encoding="utf-8")
    return out

