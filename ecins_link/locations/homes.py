"""The ``homes`` stage: a person's address the locations stage could not settle, settled by the person's other records.

The locations stage reads each address on its own.  Some texts name more than one property, or a building but not
its flat, and it rightly refuses to guess:

- "17 East Street, Northtown" where Northtown has an East Street in two localities;
- "Flat 2, St Johns Court, Ashfield Road" where two blocks of that name stand on one street;
- "23B High Street" where the gazetteer has no 23B but flats A and B at 23 (some agencies write flat B that way;
  others add a letter to a house by mistake, so the text alone does not say which);
- "23 High Street" for someone living in one of its flats.

Once persons are linked, the same person's other records often say where they live.  For each **person record**
whose address the locations stage left at the building (``match_level`` building), unresolved or at the street,
this stage looks at the properties that person's *other* records resolved to exactly (level exact or flat).  When
exactly one of them fits every part the text gives, the record is settled there:

- the street (as the gazetteer has it), and the town or locality and postcode where the text gives them;
- the building name where given, and the building the locations stage found (its flats only);
- the flat the text names (and its number), or, with no flat, the number -- as the property's own number
  ("17 East Street" is 17) or as the number of the building it is a flat of ("23 High Street" holds flat B), or
  with the flat's letter after it ("23B" is flat B of 23).

A home never lands on a commercial UPRN or on a building that has flats.  Event addresses are left alone: where a
thing happened is not where the people involved live.  Settled rows get ``match_method = 'person_homes'``, level
``flat`` or ``exact``, the confidence of ``[homes] confidence`` (location_rules.toml) and a reason naming how many
of the person's records live there.  Off with ``[homes] enabled = false``.
"""

from __future__ import annotations

from pathlib import Path

from ecins_link.config import ProjectConfig
from ecins_link.store import Store

METHOD = "person_homes"

# person records the locations stage left open, the properties the person's other records resolved to exactly,
# and those of them that fit every part of the open record's text (see the module doc)
_SETTLED_SQL = """
WITH pc AS (SELECT source, record_key, person_id FROM person_clusters),
open AS (
    SELECT m.source, m.record_key, CASE WHEN m.match_level = 'building' THEN m.uprn END AS building_uprn,
           pc.person_id, a.flat, a.number, a.building, a.street, a.town, a.postcode
    FROM address_matches m JOIN address_std a USING (source, record_key) JOIN pc USING (source, record_key)
    WHERE a.origin = 'person' AND m.match_level IN ('building', 'unresolved', 'street') AND a.street IS NOT NULL),
known AS (
    SELECT pc.person_id, m.uprn, m.source, m.record_key
    FROM address_matches m JOIN address_std a USING (source, record_key) JOIN pc USING (source, record_key)
    WHERE a.origin = 'person' AND m.match_level IN ('exact', 'flat') AND m.uprn IS NOT NULL
      AND pc.person_id IN (SELECT person_id FROM open)),
fits AS (
    SELECT o.source, o.record_key, k.uprn, count(*) AS n_records
    FROM open o
    JOIN known k ON k.person_id = o.person_id AND NOT (k.source = o.source AND k.record_key = o.record_key)
    JOIN gazetteer_std g ON g.uprn = k.uprn
    WHERE g.street = o.street AND coalesce(g.address_class, 'other') <> 'commercial'
      AND NOT EXISTS (SELECT 1 FROM gazetteer_std c WHERE c.parent_uprn = g.uprn)
      AND (o.postcode IS NULL OR replace(o.postcode, ' ', '') = replace(g.postcode, ' ', ''))
      AND (o.town IS NULL OR o.town = g.town OR o.town = g.locality)
      AND (o.building IS NULL OR o.building = g.building)
      AND (o.building_uprn IS NULL OR g.parent_uprn = o.building_uprn)
      AND ((o.flat IS NOT NULL AND o.flat = g.flat AND (o.number IS NULL OR o.number = g.number))
           OR (o.flat IS NULL AND o.number = g.number)
           OR (o.flat IS NULL AND o.number IS NULL AND o.building IS NOT NULL)
           OR (o.flat IS NULL AND g.flat IS NOT NULL
               AND o.number = g.number || regexp_extract(g.flat, '^(?:FLAT )?([A-Z])$', 1)))
    GROUP BY ALL)
SELECT f.source, f.record_key, any_value(f.uprn) AS uprn, any_value(f.n_records) AS n_records,
       any_value(g.flat IS NOT NULL) AS is_flat
FROM fits f JOIN gazetteer_std g ON g.uprn = f.uprn
GROUP BY f.source, f.record_key HAVING count(*) = 1
"""


def settle_homes(store: Store, config: ProjectConfig, rules_path: str | Path | None = None) -> None:
    """The ``homes`` stage: rewrite the ``address_matches`` rows of person records that the person's other
    records settle (module doc).  Needs the persons and locations stages' tables; a project without a gazetteer
    has nothing to settle."""
    from ecins_link.locations.stage import load_location_rules

    store.require("address_matches", "address_std", "person_clusters", stage="homes")
    rules = load_location_rules(rules_path)
    cfg = rules.get("homes", {})
    enabled = bool(cfg.get("enabled", True)) and store.has_table("gazetteer_std")
    confidence = float(cfg.get("confidence", 0.9))
    with store.stage("homes"):
        settled = 0
        if enabled:
            store.con.execute(f"CREATE OR REPLACE TEMP TABLE _homes AS {_SETTLED_SQL}")
            settled = store.con.execute("SELECT count(*) FROM _homes").fetchone()[0]
            store.con.execute(
                """UPDATE address_matches SET uprn = h.uprn, location_id = 'U' || h.uprn, match_confidence = ?,
                          match_method = ?, match_level = CASE WHEN h.is_flat THEN 'flat' ELSE 'exact' END,
                          match_reason = ? || ' (' || h.n_records || CASE WHEN h.n_records = 1 THEN ' record' ELSE ' records' END
                                         || '); before: ' || coalesce(match_reason, '')
                   FROM _homes h
                   WHERE address_matches.source = h.source AND address_matches.record_key = h.record_key""",
                [confidence, METHOD, rules.get("reasons", {}).get(METHOD, METHOD)])
            store.con.execute("DROP TABLE _homes")
        store.audit("combination", "settle_homes", details={"enabled": enabled, "confidence": confidence},
                    row_counts={"settled": int(settled)})
