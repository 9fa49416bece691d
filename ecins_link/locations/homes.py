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

Then the convention of each source is read from what was settled: a source whose records were settled by reading
"23B" as flat B of 23 at least ``letter_min_confirmed`` times, and whose records still at such a building belong to
people known at *another* of its flats at most ``letter_max_contradicted_share`` as often, writes flats that way.
An event source's way is read from its events at such a building whose people are known at the flat the letter
names (agree) or only at another of its flats (disagree).  A learnt source's other records at a building whose
number carries the letter of exactly one of the building's flats are put at that flat (``match_method =
'source_flat_letters'``, ``letter_confidence``).  A source that adds letters by mistake is contradicted by its own
people and learns nothing; an extract without linked people learns nothing.

A home never lands on a commercial UPRN or on a building that has flats.  An event is never placed where its people
live: where a thing happened is not where the people involved live (only how its source writes flats is read from
them).  Settled rows get ``match_method = 'person_homes'``, level
``flat`` or ``exact``, the confidence of ``[homes] confidence`` (location_rules.toml) and a reason naming how many
of the person's records live there.  Off with ``[homes] enabled = false``.
"""

from __future__ import annotations

from pathlib import Path

from ecins_link.config import ProjectConfig
from ecins_link.store import Store

METHOD = "person_homes"
LETTER_METHOD = "source_flat_letters"


def _flat_letter(g: str) -> str:
    """SQL: the letter of gazetteer row ``g``'s flat ('FLAT B' -> 'B'; '' for a flat that is not one letter)."""
    return f"regexp_extract({g}.flat, '^(?:FLAT )?([A-Z])$', 1)"


# the properties each person's records resolved to exactly (read by the three queries below, before any rewrite):
# the property, the building it is a flat of and that flat's letter
_KNOWN_SQL = f"""
SELECT pc.person_id, m.uprn, m.source, m.record_key, g.parent_uprn, {_flat_letter('g')} AS letter
FROM address_matches m JOIN address_std a USING (source, record_key) JOIN person_clusters pc USING (source, record_key)
JOIN gazetteer_std g ON g.uprn = m.uprn
WHERE a.origin = 'person' AND m.match_level IN ('exact', 'flat') AND m.uprn IS NOT NULL
"""

# person records the locations stage left open, the properties the person's other records resolved to exactly,
# and those of them that fit every part of the open record's text (see the module doc)
_SETTLED_SQL = """
WITH pc AS (SELECT source, record_key, person_id FROM person_clusters),
open AS (
    SELECT m.source, m.record_key, CASE WHEN m.match_level = 'building' THEN m.uprn END AS building_uprn,
           pc.person_id, a.flat, a.number, a.building, a.street, a.town, a.postcode
    FROM address_matches m JOIN address_std a USING (source, record_key) JOIN pc USING (source, record_key)
    WHERE a.origin = 'person' AND m.match_level IN ('building', 'unresolved', 'street') AND a.street IS NOT NULL),
fits AS (
    SELECT o.source, o.record_key, k.uprn, count(*) AS n_records
    FROM open o
    JOIN _homes_known k ON k.person_id = o.person_id AND NOT (k.source = o.source AND k.record_key = o.record_key)
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
               AND o.number = g.number || k.letter))
    GROUP BY ALL)
SELECT f.source, f.record_key, any_value(f.uprn) AS uprn, any_value(f.n_records) AS n_records,
       any_value(g.flat IS NOT NULL) AS is_flat
FROM fits f JOIN gazetteer_std g ON g.uprn = f.uprn
GROUP BY f.source, f.record_key HAVING count(*) = 1
"""


# per source: its records the step above settled by reading "23B" as flat B of 23 (agree), and its records still at
# a building whose person is known at another flat of that building (disagree)
_LETTER_EVIDENCE_SQL = f"""
WITH settled AS (
    SELECT a.source FROM _homes h JOIN address_std a USING (source, record_key) JOIN gazetteer_std g ON g.uprn = h.uprn
    WHERE a.flat IS NULL AND regexp_matches(a.number, '^[0-9]+[A-Z]$')
      AND a.number = g.number || {_flat_letter('g')}),
contradicted AS (
    SELECT DISTINCT m.source, m.record_key
    FROM address_matches m JOIN address_std a USING (source, record_key) JOIN person_clusters pc USING (source, record_key)
    JOIN _homes_known k ON k.person_id = pc.person_id
    WHERE a.origin = 'person' AND m.match_level = 'building' AND a.flat IS NULL
      AND regexp_matches(a.number, '^[0-9]+[A-Z]$')
      AND k.parent_uprn = m.uprn AND k.letter <> regexp_extract(a.number, '([A-Z])$', 1)
      AND NOT EXISTS (SELECT 1 FROM _homes h WHERE h.source = m.source AND h.record_key = m.record_key))
SELECT source, sum(agree)::INT AS agree, sum(disagree)::INT AS disagree FROM (
    SELECT source, 1 AS agree, 0 AS disagree FROM settled
    UNION ALL SELECT source, 0, 1 FROM contradicted"""
_LETTER_EVIDENCE_END = ") GROUP BY source"

# an event source: its events at such a building whose people are known at the flat the letter names (agree), or
# only at other flats of that building (disagree).  Only the source's way of writing flats is read from them: an
# event is never placed where its people live
_EVENT_LETTER_VOTES = """
    UNION ALL SELECT source, (agree AND NOT disagree)::INT, (disagree AND NOT agree)::INT FROM (
        SELECT o.source, o.record_key, bool_or(k.letter = o.letter) AS agree, bool_or(k.letter <> o.letter) AS disagree
        FROM (SELECT DISTINCT m.source, m.record_key, m.uprn AS building_uprn, pc.person_id,
                     regexp_extract(a.number, '([A-Z])$', 1) AS letter
              FROM address_matches m JOIN address_std a USING (source, record_key)
              JOIN event_records e ON e.source = m.source AND e.record_key = m.record_key
              JOIN person_clusters pc ON pc.source = e.person_source AND pc.record_key = e.person_record_key
              WHERE a.origin = 'event' AND m.match_level = 'building' AND a.flat IS NULL
                AND regexp_matches(a.number, '^[0-9]+[A-Z]$')) o
        JOIN _homes_known k ON k.person_id = o.person_id AND k.parent_uprn = o.building_uprn
        GROUP BY ALL)"""

# the learnt sources' records (of people or events) still at a building whose number carries the letter of exactly
# one of its flats
_LETTER_SETTLED_SQL = f"""
SELECT m.source, m.record_key, any_value(g.uprn) AS uprn, 0 AS n_records, true AS is_flat
FROM address_matches m JOIN address_std a USING (source, record_key) JOIN _letter_sources s USING (source)
JOIN gazetteer_std g ON g.parent_uprn = m.uprn
WHERE m.match_level = 'building' AND a.flat IS NULL
  AND regexp_matches(a.number, '^[0-9]+[A-Z]$') AND coalesce(g.address_class, 'other') <> 'commercial'
  AND a.number = g.number || {_flat_letter('g')}
GROUP BY m.source, m.record_key HAVING count(*) = 1
"""


def settle_homes(store: Store, config: ProjectConfig, rules_path: str | Path | None = None) -> None:
    """The ``homes`` stage: rewrite the ``address_matches`` rows of person records that the person's other
    records settle (module doc), then those of sources whose settled records show that they write a flat's
    letter after the building's number.  Needs the persons and locations stages' tables; a project without a
    gazetteer has nothing to settle."""
    from ecins_link.locations.stage import load_location_rules

    store.require("address_matches", "address_std", "person_clusters", stage="homes")
    rules = load_location_rules(rules_path)
    cfg, reasons = rules.get("homes", {}), rules.get("reasons", {})
    enabled = bool(cfg.get("enabled", True)) and store.has_table("gazetteer_std")
    details: dict = {"enabled": enabled, "confidence": float(cfg.get("confidence", 0.9)), "letter_sources": []}
    if enabled and _persons_older_than_standardise(store):
        enabled = details["enabled"] = False
        details["skipped"] = ("the person clusters are older than the standardised records: run the persons "
                              "stage before homes")
    with store.stage("homes"):
        settled = by_letters = 0
        if enabled:
            con = store.con
            con.execute(f"CREATE OR REPLACE TEMP TABLE _homes_known AS {_KNOWN_SQL}")
            con.execute(f"CREATE OR REPLACE TEMP TABLE _homes AS {_SETTLED_SQL}")
            events = _EVENT_LETTER_VOTES if store.has_table("event_records") else ""
            evidence = con.execute(_LETTER_EVIDENCE_SQL + events + _LETTER_EVIDENCE_END).fetchall()
            settled = _rewrite(store, "_homes", details["confidence"], METHOD, reasons.get(METHOD, METHOD))
            details["letter_sources"] = learnt = _letter_sources(evidence, cfg)
            if learnt:
                con.register("_letter_sources_df", _frame(learnt))
                con.execute("CREATE OR REPLACE TEMP TABLE _letter_sources AS SELECT * FROM _letter_sources_df")
                con.unregister("_letter_sources_df")
                con.execute(f"CREATE OR REPLACE TEMP TABLE _letters AS {_LETTER_SETTLED_SQL}")
                con.execute("UPDATE _letters SET n_records = s.agree FROM _letter_sources s "
                            "WHERE _letters.source = s.source")
                by_letters = _rewrite(store, "_letters", float(cfg.get("letter_confidence", 0.85)), LETTER_METHOD,
                                      reasons.get(LETTER_METHOD, LETTER_METHOD))
                con.execute("DROP TABLE _letters; DROP TABLE _letter_sources")
            con.execute("DROP TABLE _homes; DROP TABLE _homes_known")
        store.audit("combination", "settle_homes", details=details,
                    row_counts={"settled": int(settled), "settled_by_source_letters": int(by_letters)})


def _persons_older_than_standardise(store: Store) -> bool:
    """Whether the last persons stage finished before the last standardise stage (its clusters may name records
    that have changed since); False when either never ran here."""
    persons, standardise = store.con.execute(
        "SELECT max(finished_at) FILTER (WHERE stage = 'persons'), max(finished_at) FILTER (WHERE stage = "
        "'standardise') FROM stage_runs").fetchone()
    return persons is not None and standardise is not None and persons < standardise


def _letter_sources(evidence: list[tuple], cfg: dict) -> list[dict]:
    """The sources whose records read "23B" as flat B often enough -- settled by their people's other records,
    or events whose people live at that flat -- and are seldom contradicted (``evidence``: source, agree,
    disagree)."""
    least = int(cfg.get("letter_min_confirmed", 10))
    share = float(cfg.get("letter_max_contradicted_share", 0.05))
    return [{"source": src, "agree": int(agree), "disagree": int(disagree)} for src, agree, disagree in sorted(evidence)
            if agree >= least and disagree <= share * agree]


def _frame(rows: list[dict]):  # noqa: ANN202 - a pandas frame, imported lazily
    import pandas as pd

    return pd.DataFrame(rows, columns=["source", "agree", "disagree"])


def _rewrite(store: Store, table: str, confidence: float, method: str, reason: str) -> int:
    """Point the ``address_matches`` rows listed in temp table ``table`` (source, record_key, uprn, n_records,
    is_flat) at their UPRN; the number of rows."""
    store.con.execute(
        f"""UPDATE address_matches SET uprn = h.uprn, location_id = 'U' || h.uprn, match_confidence = ?,
                  match_method = ?, match_level = CASE WHEN h.is_flat THEN 'flat' ELSE 'exact' END,
                  match_reason = ? || ' (' || h.n_records || CASE WHEN h.n_records = 1 THEN ' record' ELSE ' records' END
                                 || '); before: ' || coalesce(match_reason, '')
           FROM {table} h
           WHERE address_matches.source = h.source AND address_matches.record_key = h.record_key""",
        [confidence, method, reason])
    return int(store.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
