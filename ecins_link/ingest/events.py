"""Event rows -> ``event_records``: one row per (source row, produced signal).

A code that maps to nothing keeps one row with ``signal`` NULL; each true flag column gives one row; a
row of a flags-only source with no true flag keeps one NULL-signal row (the contact happened).
"""

from __future__ import annotations

from ecins_link.config import Source
from ecins_link.ingest.sql import KEY, PKEY, PSRC, ROW, dcol, lit, ok_col, q, tcol, val
from ecins_link.store import Store

R = "_ingest_rows"
_KEY, _ROW = q(KEY), q(ROW)


def _ref(src: Source) -> tuple[str, str]:
    """(person_source SQL, person_record_key SQL): the row itself, or the reference resolved by
    :func:`ecins_link.ingest.refs.resolve_references`."""
    if src.person:
        return lit(src.name), _KEY
    ref = src.event.person_ref if src.event else None
    if ref is None:
        return "CAST(NULL AS VARCHAR)", "CAST(NULL AS VARCHAR)"
    if ref.source == src.name:
        return lit(src.name), _KEY
    return q(PSRC), q(PKEY)


def insert_events(store: Store, src: Source) -> None:
    """Append the event rows of the accepted rows in the ingest working table."""
    con = store.con
    psrc, pkey = _ref(src)
    e = src.event
    null = "CAST(NULL AS VARCHAR)"
    location = val(e.location) if e and e.location else null
    loc_pc = (f"CASE WHEN {ok_col(e.location_postcode, 'pc')} THEN {val(e.location_postcode)} END"
              if e and e.location_postcode else null)
    selects = []
    if e:
        code = f"upper({val(e.code)})" if e.code else null
        role = f"upper({val(e.role)})" if e.role else null
        d = dcol(e.date)
        ts = f"CASE WHEN {tcol(e.date)} THEN {d} END"
        codes = [(c.code.strip().upper(), c.role.strip().upper() if c.role else None, c.signal) for c in e.codes]
        values = ", ".join(f"({lit(c)}, {lit(r) if r else 'NULL'}, {lit(s)})" for c, r, s in codes)
        code_table = (f"(VALUES {values}) m(code, role, signal)" if codes
                      else "(SELECT NULL::VARCHAR AS code, NULL::VARCHAR AS role, NULL::VARCHAR AS signal WHERE FALSE) m")
        if not src.flags:  # one row per (row, matched signal): event_seq ranked once per distinct (code, role)
            con.execute(f"""INSERT INTO event_records
                WITH x AS (SELECT {_KEY} AS _key, {code} AS raw_code, {role} AS role, CAST({d} AS DATE) AS d,
                                  CAST({ts} AS TIMESTAMP) AS ts, {location} AS loc, {loc_pc} AS loc_pc,
                                  {psrc} AS psrc, {pkey} AS pkey FROM {R}),
                pm AS (SELECT p.raw_code, p.role, m.signal, CAST(row_number() OVER (
                               PARTITION BY p.raw_code, p.role ORDER BY m.signal NULLS LAST) AS INT) AS seq
                       FROM (SELECT DISTINCT raw_code, role FROM x) p
                       LEFT JOIN {code_table} ON m.code = p.raw_code AND (m.role IS NULL OR m.role = p.role))
                SELECT {lit(src.name)}, {lit(src.agency)}, x._key, pm.seq, pm.signal, x.raw_code, x.role, x.d, x.ts,
                       x.loc, x.loc_pc, x.psrc, x.pkey
                FROM x JOIN pm ON pm.raw_code IS NOT DISTINCT FROM x.raw_code AND pm.role IS NOT DISTINCT FROM x.role""")
            return
        selects.append(f"""SELECT x._key, 0 AS kind, m.signal, x.raw_code, x.role, x.d, x.ts, x._row FROM
            (SELECT {_KEY} AS _key, {_ROW} AS _row, {code} AS raw_code, {role} AS role, CAST({d} AS DATE) AS d, CAST({ts} AS TIMESTAMP) AS ts
             FROM {R}) x LEFT JOIN {code_table} ON m.code = x.raw_code AND (m.role IS NULL OR m.role = x.role)""")
    if src.flags:
        f = src.flags
        fdate = (f"CAST({dcol(f.date)} AS DATE)" if f.date
                 else (f"CAST({dcol(e.date)} AS DATE)" if e else "CAST(NULL AS DATE)"))
        trues = ", ".join(lit(t.strip().upper()) for t in f.true_values)
        for col, signal in f.columns.items():
            selects.append(f"""SELECT {_KEY}, 1, {lit(signal)}, {lit(col)}, CAST(NULL AS VARCHAR), {fdate},
                CAST(NULL AS TIMESTAMP), {_ROW} FROM {R} WHERE upper({val(col)}) IN ({trues})""")
        if not e:  # a visit with no true flag still happened
            cond = " OR ".join(f"upper({val(c)}) IN ({trues})" for c in f.columns) or "FALSE"
            selects.append(f"""SELECT {_KEY}, 1, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
                {fdate}, CAST(NULL AS TIMESTAMP), {_ROW} FROM {R} WHERE NOT coalesce({cond}, FALSE)""")
    union = " UNION ALL ".join(selects)
    con.execute(f"""INSERT INTO event_records
        SELECT {lit(src.name)}, {lit(src.agency)}, u._key,
               CAST(row_number() OVER (PARTITION BY u._row ORDER BY u.kind, u.signal NULLS LAST, u.raw_code) AS INT),
               u.signal, u.raw_code, u.role, u.d, u.ts, r.loc, r.loc_pc, r.psrc, r.pkey
        FROM ({union}) u(_key, kind, signal, raw_code, role, d, ts, _row)
        JOIN (SELECT {_ROW} AS _row, {location} AS loc, {loc_pc} AS loc_pc, {psrc} AS psrc, {pkey} AS pkey FROM {R}) r
          ON r._row = u._row""")
