"""Score ``address_matches`` against a truth table of (source, record_key, true_uprn)."""

from __future__ import annotations

from pathlib import Path

from ecins_link.store import Store


def _building_sql(store: Store) -> str:
    """SQL: (uprn, building) for every gazetteer flat -- its parent UPRN, else the one entry with no flat at the
    same number, street and postcode."""
    have = {r[0] for r in store.con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'gazetteer_std'").fetchall()}
    if not {"uprn", "flat", "number", "street", "postcode"} <= have:
        return "SELECT NULL::VARCHAR AS uprn, NULL::VARCHAR AS building WHERE false"
    parent = "nullif(trim(CAST(f.parent_uprn AS VARCHAR)), '')" if "parent_uprn" in have else "NULL"
    return f"""
        SELECT CAST(f.uprn AS VARCHAR) AS uprn, coalesce({parent}, min(CAST(s.uprn AS VARCHAR))) AS building
        FROM gazetteer_std f LEFT JOIN gazetteer_std s
          ON s.flat IS NULL AND s.number = f.number AND s.street = f.street AND s.postcode = f.postcode
        WHERE f.flat IS NOT NULL
        GROUP BY f.uprn, {parent} HAVING {parent} IS NOT NULL OR count(DISTINCT s.uprn) = 1"""


def evaluate_locations(store: Store, truth_addresses_csv: str | Path) -> dict:
    """Compare ``address_matches`` with truth ``(source, record_key, true_uprn)``.

    Returns overall and per-``match_method`` rates: ``correct`` (right UPRN), ``wrong`` (another UPRN),
    ``unresolved`` (no UPRN although one was true), plus counts of truth rows without a match row.  ``wrong``
    splits into ``right_building`` (an answer at level ``building`` / ``approximate`` naming the true property's
    building: its parent UPRN, or the one unflatted entry at its number, street and postcode -- "building known,
    flat not", which is not a wrong property) and ``wrong_other`` (any other UPRN).
    """
    store.require("address_matches", stage="evaluate locations")
    path = Path(truth_addresses_csv)
    if not path.exists():
        raise FileNotFoundError(f"truth file not found: {path}")
    con = store.con
    building = _building_sql(store)
    rows = con.execute(f"""
        WITH t AS (SELECT CAST(source AS VARCHAR) AS source, CAST(record_key AS VARCHAR) AS record_key,
                          nullif(trim(CAST(true_uprn AS VARCHAR)), '') AS true_uprn
                   FROM read_csv(?, all_varchar = true, header = true)),
             b AS ({building})
        SELECT coalesce(m.match_method, 'missing') AS method, count(*) AS n,
               count(*) FILTER (WHERE m.uprn IS NOT NULL AND m.uprn = t.true_uprn) AS correct,
               count(*) FILTER (WHERE m.uprn IS NOT NULL AND m.uprn IS DISTINCT FROM t.true_uprn) AS wrong,
               count(*) FILTER (WHERE m.uprn IS NULL AND t.true_uprn IS NOT NULL) AS unresolved,
               count(*) FILTER (WHERE m.uprn IS NULL AND t.true_uprn IS NULL) AS rightly_unresolved,
               count(*) FILTER (WHERE m.uprn IS NOT NULL AND m.uprn IS DISTINCT FROM t.true_uprn
                                AND m.match_level IN ('building', 'approximate') AND m.uprn = b.building)
                   AS right_building
        FROM t LEFT JOIN address_matches m USING (source, record_key) LEFT JOIN b ON b.uprn = t.true_uprn
        GROUP BY 1 ORDER BY 1""", [str(path)]).fetchall()

    def rates(n: int, c: int, w: int, u: int, ru: int, rb: int) -> dict:
        d = max(n, 1)
        return {"n": n, "correct": round(c / d, 4), "wrong": round(w / d, 4), "unresolved": round(u / d, 4),
                "rightly_unresolved": round(ru / d, 4), "right_building": round(rb / d, 4),
                "wrong_other": round((w - rb) / d, 4)}

    tot = [sum(r[i] for r in rows) for i in range(1, 7)]
    out = {"overall": rates(*tot), "by_method": {r[0]: rates(*r[1:]) for r in rows}}
    out["truth_rows_missing_match"] = int(sum(r[1] for r in rows if r[0] == "missing"))
    # location ids as clusters (what the graph uses, resolved or not): purity = share of records whose
    # location id's majority true UPRN is theirs; fragmentation = true UPRNs spread over > 1 location id
    purity, frag = con.execute("""
        WITH t AS (SELECT CAST(source AS VARCHAR) AS source, CAST(record_key AS VARCHAR) AS record_key,
                          nullif(trim(CAST(true_uprn AS VARCHAR)), '') AS true_uprn
                   FROM read_csv(?, all_varchar = true, header = true)),
        j AS (SELECT m.location_id, t.true_uprn FROM t JOIN address_matches m USING (source, record_key)
              WHERE t.true_uprn IS NOT NULL),
        per AS (SELECT location_id, true_uprn, count(*) AS n FROM j GROUP BY ALL)
        SELECT (SELECT sum(mx) FROM (SELECT max(n) AS mx FROM per GROUP BY location_id)) / nullif(count(*), 0),
               (SELECT avg(CASE WHEN k > 1 THEN 1.0 ELSE 0.0 END) FROM
                   (SELECT true_uprn, count(DISTINCT location_id) AS k FROM j GROUP BY true_uprn))
        FROM j""", [str(path)]).fetchone()
    out["location_ids"] = {"purity": round(float(purity or 0), 4), "fragmented_uprns": round(float(frag or 0), 4)}
    out["match_rows_without_truth"] = int(con.execute(
        "SELECT count(*) FROM address_matches m WHERE NOT EXISTS (SELECT 1 FROM read_csv(?, all_varchar = true) t "
        "WHERE t.source = m.source AND t.record_key = m.record_key)", [str(path)]).fetchone()[0])
    return out
