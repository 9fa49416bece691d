"""Ingest one source: read it, decide each row's fate in SQL, append to the ingest tables.

Row fate, checked in this order (the first problem found is the quarantine reason):
read problems (ragged_row, broken_quoting, undecodable) -> field_too_long -> missing_key -> bad_date /
future_date -> unmapped_code -> duplicate_key_conflict -> orphan_reference.
Duplicate keys: rows with identical content are collapsed (first kept, the others counted as accepted and
in ``duplicates_collapsed``); when rows sharing a key differ, ALL of them are quarantined — picking one
would be a silent guess about which record is true.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from ecins_link.config import ConfigError, ProjectConfig, Source
from ecins_link.ingest.readers import ReadError, data_columns, read_info, read_source
from ecins_link.ingest.sql import (
    DUP,
    HASH,
    ISSUE,
    KEY,
    LONGEST,
    RAW,
    REASON,
    ROW,
    date_sql,
    dcol,
    has_time_sql,
    lit,
    ok_col,
    q,
    split_full_name,
    tcol,
    unsafe_sql,
    val,
)
from ecins_link.standardise.fields import email_sql, phone_any_sql, phone_sql, postcode_any_sql, postcode_sql
from ecins_link.store import Store

R = "_ingest_rows"
_ROW, _ISSUE, _RAW, _KEY, _REASON, _LONGEST, _H, _DUP = (q(c) for c in (ROW, ISSUE, RAW, KEY, REASON, LONGEST,
                                                                         HASH, DUP))


def mapped_columns(src: Source) -> list[str]:
    """Every column of the file the source mapping refers to (they must exist)."""
    cols = list(src.key)
    for part in (src.person, src.event, src.gazetteer):
        if part is None:
            continue
        for name, value in part:
            if name in ("name_format", "codes", "unmapped", "occurrence_key", "postcode_format", "phone_format",
                        "invalid_dob"):
                continue
            if isinstance(value, dict):  # person identifiers / attributes: name -> column
                cols += list(value.values())
            elif name == "person_ref" and value is not None:
                cols += value.columns
            elif isinstance(value, str):
                cols.append(value)
            elif isinstance(value, list):
                cols += [v for v in value if isinstance(v, str)]
    if src.flags:
        cols += list(src.flags.columns) + ([src.flags.date] if src.flags.date else [])
    return list(dict.fromkeys(cols))


def file_level_problem(store: Store, src: Source, reason: str) -> None:
    """A source that cannot be read at all: one quarantine entry (row_number 0) and a zero accounting row."""
    store.con.execute("INSERT INTO quarantine VALUES (?, 0, NULL, ?, NULL)", [src.name, f"unreadable_file: {reason}"])
    store.con.execute("INSERT INTO accounting VALUES (?, ?, 0, 0, 0, 0)", [src.name, src.agency])


def _set(store: Store, reason_sql: str, where: str) -> None:
    store.con.execute(f"UPDATE {R} SET {_REASON} = {reason_sql} WHERE {_REASON} IS NULL AND ({where})")


def _missing_message(missing: list[str], data_cols: list[str], info: dict) -> str:
    """'mapped column(s) not in file' with what the file does have and any header renames."""
    shown = [c if len(c) <= 40 else c[:40] + "..." for c in data_cols[:40]]
    msg = f"mapped column(s) not in file: {missing}; the file has {shown}"
    renamed = [n["problem"] for n in info.get("header_notes", [])]
    ignored = [f"{i['column']} ({i['problem']})" for i in info.get("ignored", [])]
    if renamed:
        msg += f"; header cells renamed: {renamed[:10]}"
    if ignored:
        msg += f"; columns ignored: {ignored[:10]}"
    return msg


def ingest_source(store: Store, config: ProjectConfig, src: Source, ref_columns: list[str] | None = None,
                  ) -> pa.Table | None:
    """Read ``src`` and append its rows to accounting, quarantine, field_issues and the record tables.

    ``ref_columns``: the columns other sources' ``person_ref`` name in this source; when given, returns the
    reference index (:func:`ecins_link.ingest.refs.reference_index`) of its accepted and conflicting rows.
    A source whose events refer to another source resolves them against the index registered as
    ``_ingest_ref`` on the connection (see :mod:`ecins_link.ingest.refs`).
    """
    con = store.con
    wanted = set(mapped_columns(src))
    try:
        table = read_source(config.path_of(src.path), src.format, src.encoding, src.delimiter, src.sheet, wanted)
    except (ReadError, ConfigError) as err:  # ConfigError: a path the project may not read
        file_level_problem(store, src, str(err))
        return None
    info = read_info(table)
    data_cols = data_columns(table)
    missing = [c for c in mapped_columns(src) if c not in data_cols]
    if missing:
        file_level_problem(store, src, _missing_message(missing, data_cols, info))
        return None
    for note in info.get("header_notes", []) + info.get("ignored", []):
        field = note.get("renamed") or note.get("column")
        con.execute("INSERT INTO field_issues VALUES (?, 0, NULL, ?, ?)", [src.name, str(field), note["problem"]])
    today = config.project.as_of or dt.date.today()
    key_parts = [val(k) for k in src.key]
    record_key = f"CASE WHEN {' AND '.join(p + ' IS NOT NULL' for p in key_parts)} THEN concat_ws('|', {', '.join(key_parts)}) END"
    longest = (f"greatest({', '.join(f'coalesce(length({q(c)}), 0)' for c in data_cols)})" if data_cols else "0")
    hashed = f"hash({', '.join('s.' + q(c) for c in data_cols)})" if data_cols else "0"
    dates = _date_columns(src)
    con.register("_ingest_src", table)
    try:
        joins, date_exprs = _date_lookups(store, src, dates)
        reason = _row_reason(src, dates, today)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {R} AS SELECT *, {reason} AS {_REASON} FROM (
            SELECT s.*, {record_key} AS {_KEY}, {longest} AS {_LONGEST}, {hashed} AS {_H},
                   FALSE AS {_DUP} {''.join(', ' + e for e in date_exprs + _valid_exprs(src))}
            FROM _ingest_src s {' '.join(joins)}) ORDER BY {_ROW}""")
    finally:
        con.unregister("_ingest_src")
        for k in range(len(dates)):
            con.execute(f"DROP TABLE IF EXISTS _ingest_d{k}")
    _duplicates(store)
    from ecins_link.ingest.refs import reference_index, resolve_references

    resolve_references(store, config, src)
    index = reference_index(store, src, ref_columns) if ref_columns else None

    joined = ", ".join("coalesce(" + q(c) + ", '')" for c in data_cols) or "''"
    raw = f"coalesce({_RAW}, left(concat_ws(',', {joined}), 1000))"
    con.execute(f"INSERT INTO quarantine SELECT {lit(src.name)}, {_ROW}, {_KEY}, {_REASON}, {raw} FROM {R} "
                f"WHERE {_REASON} IS NOT NULL")
    con.execute(f"""INSERT INTO accounting SELECT {lit(src.name)}, {lit(src.agency)}, count(*),
        count(*) FILTER (WHERE {_REASON} IS NULL), count(*) FILTER (WHERE {_REASON} IS NOT NULL),
        count(*) FILTER (WHERE {_DUP}) FROM {R}""")
    con.execute(f"DELETE FROM {R} WHERE {_REASON} IS NOT NULL OR {_DUP}")
    _field_issues(store, src)
    if src.gazetteer:
        _gazetteer(store, src)
        return index
    if src.person:
        _persons(store, src, data_cols)
    if src.event or src.flags:
        from ecins_link.ingest.events import insert_events

        insert_events(store, src)
    _addresses(store, src)
    return index


def _duplicates(store: Store) -> None:
    """Conflicting duplicate keys -> quarantined (all rows); identical ones -> ``_dup`` after the first."""
    con = store.con
    repeated = con.execute(f"SELECT count({_KEY}) > count(DISTINCT {_KEY}) FROM {R} "
                           f"WHERE {_REASON} IS NULL").fetchone()[0]
    if not repeated:  # the usual case: every accepted key is unique, nothing to do
        return
    con.execute(f"""UPDATE {R} SET {_REASON} = 'duplicate_key_conflict: ' || n || ' rows share this key with different content'
        FROM (SELECT {_KEY} AS k, count(*) AS n FROM {R} WHERE {_REASON} IS NULL GROUP BY {_KEY}
              HAVING count(DISTINCT {_H}) > 1) c
        WHERE {_REASON} IS NULL AND {_KEY} = c.k""")
    con.execute(f"""UPDATE {R} SET {_DUP} = TRUE FROM (SELECT {_ROW} AS r,
        row_number() OVER (PARTITION BY {_KEY} ORDER BY {_ROW}) AS rn
        FROM {R} WHERE {_REASON} IS NULL) d WHERE {_ROW} = d.r AND d.rn > 1""")


def _date_lookups(store: Store, src: Source, dates: dict[str, bool]) -> tuple[list[str], list[str]]:
    """Parse each DISTINCT value of every date column once (a failed format attempt is costly per row).

    Returns (LEFT JOIN clauses onto ``_ingest_src s``, select expressions ``_d_<col>`` (TIMESTAMP or NULL) and
    ``_t_<col>`` (the value carries a time of day)).
    """
    joins, exprs = [], []
    for k, col in enumerate(dates):
        t = f"_ingest_d{k}"
        store.con.execute(f"""CREATE OR REPLACE TEMP TABLE {t} AS
            SELECT v AS _lk_v, {date_sql('v', src.date_formats, src.datetime_formats)} AS _lk_d,
                   {has_time_sql('v', src.datetime_formats)} AS _lk_t
            FROM (SELECT DISTINCT {val(col)} AS v FROM _ingest_src) WHERE v IS NOT NULL""")
        joins.append(f"LEFT JOIN {t} ON {t}._lk_v = {_val_s(col)}")
        exprs += [f"{t}._lk_d AS {dcol(col)}", f"coalesce({t}._lk_t, FALSE) AS {tcol(col)}"]
    return joins, exprs


def _val_s(col: str) -> str:
    return f"NULLIF(trim(CAST(s.{q(col)} AS VARCHAR)), '')"


def _row_reason(src: Source, dates: dict[str, bool], today: dt.date) -> str:
    """One CASE giving the first per-row problem, in the order of the module docstring (NULL = none)."""
    whens = [f"WHEN {_ISSUE} IS NOT NULL THEN CAST({_ISSUE} AS VARCHAR)",
             f"WHEN {_LONGEST} > {src.max_field_chars} THEN 'field_too_long: a field has ' || {_LONGEST} || "
             f"' characters (max {src.max_field_chars})'",
             f"WHEN {_KEY} IS NULL THEN 'missing_key: no value in ' || {lit(', '.join(src.key))}"]
    earliest = {src.person.dob: src.person.dob_earliest} if src.person and src.person.dob else {}
    nulled = {src.person.dob} if src.person and src.person.dob and src.person.invalid_dob == "null" else set()
    for col, required in dates.items():
        d = dcol(col)
        first = earliest.get(col, dt.date(1880, 1, 1))
        if required:
            whens.append(f"WHEN {val(col)} IS NULL THEN {lit(f'bad_date: no date in {col}')}")
        invalid = lit(f"bad_date: {col} is not a valid date in the source's formats")
        if col not in nulled:
            whens.append(f"WHEN {val(col)} IS NOT NULL AND {d} IS NULL THEN {invalid}")
        whens += [
                  f"WHEN {d} < TIMESTAMP '{first}' THEN {lit(f'bad_date: {col} before {first}')}",
                  f"WHEN CAST({d} AS DATE) > DATE '{today}' THEN {lit(f'future_date: {col} after {today}')}"]
    if src.event and src.event.code and src.event.unmapped == "quarantine":
        known = ", ".join(lit(c.code.strip().upper()) for c in src.event.codes) or "NULL"
        code = val(src.event.code)
        whens.append(f"WHEN coalesce(upper({code}), '') NOT IN ({known}) "
                     f"THEN 'unmapped_code: ' || coalesce(upper({code}), '(empty)')")
    return "CASE " + " ".join(whens) + " END"


def _date_columns(src: Source) -> dict[str, bool]:
    """Date columns -> whether a value is required (event/flag dates are; DOB and tenancy dates are not)."""
    out: dict[str, bool] = {}
    if src.person:
        for c in (src.person.dob, src.person.resident_from, src.person.resident_to):
            if c:
                out[c] = False
    if src.event:
        out[src.event.date] = True
    if src.flags and src.flags.date:
        out[src.flags.date] = True
    return out


date_columns = _date_columns  # public name (used by ``ecins-link check``)


def _checks(src: Source) -> list[tuple[str, str, str]]:
    """(column, field name, normalising SQL builder name) for optional contact fields that are validated."""
    out = []
    p = src.person
    if p:
        pc, ph = ("pc" if p.postcode_format == "uk" else "pca"), ("ph" if p.phone_format == "uk" else "pha")
        out += [(c, f, fn) for c, f, fn in ((p.postcode, "postcode", pc), (p.phone, "phone", ph),
                                            (p.email, "email", "em")) if c]
    if src.event and src.event.location_postcode:
        out.append((src.event.location_postcode, "location_postcode", "pc"))
    return out


_FN = {"pc": postcode_sql, "ph": phone_sql, "em": email_sql, "pca": postcode_any_sql, "pha": phone_any_sql}


def _valid_exprs(src: Source) -> list[str]:
    return [f"{_FN[fn](val(col))} IS NOT NULL AS {ok_col(col, fn)}"
            for col, fn in dict.fromkeys((c, fn) for c, _f, fn in _checks(src))]


def _field_issues(store: Store, src: Source) -> None:
    p = src.person
    if p and p.dob and p.invalid_dob == "null":  # kept without a date of birth
        store.con.execute(f"""INSERT INTO field_issues SELECT {lit(src.name)}, {_ROW}, {_KEY}, 'dob',
            'dob not a valid date; nulled' FROM {R} WHERE {val(p.dob)} IS NOT NULL AND {dcol(p.dob)} IS NULL""")
    for col, field, fn in _checks(src):
        store.con.execute(f"""INSERT INTO field_issues SELECT {lit(src.name)}, {_ROW}, {_KEY}, {lit(field)},
            {lit(f'{field} not valid; nulled')} FROM {R} WHERE {val(col)} IS NOT NULL AND NOT {ok_col(col, fn)}""")


def _opt(col: str | None, fn: str | None = None) -> str:
    if not col:
        return "CAST(NULL AS VARCHAR)"
    if fn:
        return f"CASE WHEN {ok_col(col, fn)} THEN {val(col)} END"
    return val(col)


def _date(col: str | None) -> str:
    return f"CAST({dcol(col)} AS DATE)" if col else "CAST(NULL AS DATE)"


def _persons(store: Store, src: Source, data_cols: list[str]) -> None:
    p = src.person
    if p.full_name:
        fore, sur = split_full_name(p.full_name, p.name_format)
        full = val(p.full_name)
    else:
        fore, sur, full = _opt(p.forenames), _opt(p.surname), "CAST(NULL AS VARCHAR)"
    if p.address:
        addr = val(p.address)
    elif p.address_lines:
        addr = f"NULLIF(concat_ws(', ', {', '.join(val(c) for c in p.address_lines)}), '')"
    else:
        addr = "CAST(NULL AS VARCHAR)"
    pc, ph = ("pc" if p.postcode_format == "uk" else "pca"), ("ph" if p.phone_format == "uk" else "pha")
    # identifiers and attributes travel as one map ('id:<name>' / 'attr:<name>' -> text) to standardise
    extras = [(f"id:{k}", c) for k, c in p.identifiers.items()] + [(f"attr:{k}", c) for k, c in p.attributes.items()]
    if p.source_person_id:
        extras.append(("sid", p.source_person_id))
    extra_map = (f"MAP {{{', '.join(f'{lit(k)}: {val(c)}' for k, c in extras)}}}" if extras
                 else "CAST(NULL AS MAP(VARCHAR, VARCHAR))")
    store.con.execute(f"""INSERT INTO person_records SELECT {lit(src.name)}, {lit(src.agency)}, {_KEY}, {_ROW},
        {_opt(p.title)}, {fore}, {sur}, {full}, {_date(p.dob)}, {_opt(p.dob)}, {_opt(p.sex)}, {addr},
        {_opt(p.postcode, pc)}, {_opt(p.uprn)}, {_opt(p.phone, ph)}, {_opt(p.email, 'em')},
        {_date(p.resident_from)}, {_date(p.resident_to)}, {unsafe_sql(data_cols)}, {extra_map} FROM {R}""")


def _addresses(store: Store, src: Source) -> None:
    if src.person:
        sel = f"""SELECT source, agency, record_key, 'person', address_text, postcode, uprn FROM person_records
            WHERE source = {lit(src.name)} AND (address_text IS NOT NULL OR postcode IS NOT NULL)"""
    elif src.event and (src.event.location or src.event.location_postcode):
        e = src.event
        sel = f"""SELECT {lit(src.name)}, {lit(src.agency)}, {_KEY}, 'event', {_opt(e.location)},
            {_opt(e.location_postcode, 'pc')}, CAST(NULL AS VARCHAR) FROM {R}
            WHERE {_opt(e.location)} IS NOT NULL OR {_opt(e.location_postcode, 'pc')} IS NOT NULL"""
    else:
        return
    store.con.execute(f"INSERT INTO address_records {sel}")


def _gazetteer(store: Store, src: Source) -> None:
    from ecins_link.ingest.gazetteer import gazetteer_select

    store.con.execute(f"INSERT INTO gazetteer {gazetteer_select(src.gazetteer, R)}")


