"""Same-home evidence: what a pairwise model cannot see about the people recorded at one address.

A Splink model weighs each pair of records on its own.  Two facts about a home need the other records too:

1. **A misspelt forename** (KEEF / KEITH, ELLNE / HELEN, KZA / KAREN).  Two records with the same full date of
   birth, surname and home whose forenames differ look like twins, and the model's twin level rightly makes that
   near-conclusive evidence *against*.  Twins, though, carry two established names; a keying or hearing error
   leaves a spelling the data hardly knows.  A pair is re-weighted as if its forenames were one typo apart
   (the model's own ``forename.<typo_level>`` weight replaces the weight of the level it fell to) when

   - full date of birth, surname (or its sound) and home (UPRN or normalised address) agree, and the recorded
     sexes do not differ;
   - the forenames are alike (Jaro-Winkler >= ``typo_min_jaro_winkler``) and within ``typo_max_edits``
     character edits (Damerau-Levenshtein: KEEF / KEITH is 3, twins CHARLOTTE / CHANTELLE are 5), neither is a
     bare initial, and they are not one name (same canonical form);
   - or, with ``typo_spelling_edits`` (packaged: 1), the rarer spelling is that many keystrokes from *another*
     spelling of the established name in the extract -- a keying error in a short form or variant (ANNDY is ANDY,
     ANDREW's short form; JAKCIE is JACKIE; WLL is WILL), which is too far from the full name itself;
   - one spelling is *rare in this extract* (at most ``typo_max_count`` records carry it, and the nickname table
     does not list it as a short form) and the other is established (at least ``typo_min_common_count``
     records carry that name in any of its spellings, one canonical form: KHALID and KHALED count together, so a
     name with several romanisations is not held to a higher bar than one English spelling); an extract of
     fewer than ``typo_min_records`` named records is too small to judge;
   - the rare spelling is alike in this sense to one forename only among the records sharing that date of
     birth, surname and home (KZA beside twins KAREN and KATIE is left alone).

2. **The only namesake at home.**  A record without a date of birth (a Fire "Safe and Well" visit to
   "M KHAN", an old tenancy) scores in the review band against the one person at its address whose name it
   fits; the model cannot tell that nobody else there fits.  Such a pair is accepted (its weight raised to the
   match threshold, no further) when

   - the undated record's cluster (after the first clustering) holds no dated record;
   - it fits a record at its home (a bare initial: the first letter of the forename or of its canonical form;
     else the same canonical form or Jaro-Winkler >= the forename threshold), and every record there with the
     same surname sound whose forename fits or merely sounds alike (EMILIA / AMELIA) belongs to that record's
     cluster, no such namesake of another cluster was
     recorded at any postcode that person has lived at (a family with two MARK JONESes moves together), and no
     pair of the record at or above ``unique_min_probability`` points to another cluster;
   - the pair's own match probability is at or above ``unique_min_probability`` (the review band's lower
     bound by default).

   A household with two people of that initial (M KHAN beside MOHAMMED and MARYAM) is left alone.

Both run after the first clustering; the pairs are then clustered again, so the over-merge guard still splits any
contradiction.  Off unless the model file has ``[home] enabled = true``.  Measured on synthetic towns (10k seeds
3 / 7 / 11, 20k seed 5, before this pass existed): 20 of 20 pairs meeting the first set of conditions and 13 of
13 meeting the second were true matches (benchmarks/results/name_misses_*.json).
"""

from __future__ import annotations

import math

import duckdb

from ecins_link.matching.person_fields import table_columns
from ecins_link.matching.person_moves import level_weight

# a bare initial fits the first letter of a name or of its canonical form; a full forename fits the same canonical
# form or a near-identical spelling (Jaro-Winkler >= {jw}, the forename threshold).  A namesake that only *could*
# be the same name (its sound or a looser spelling, {pjw}: EMILIA / AMELIA) does not fit, but makes the record
# ambiguous.  {u}: the undated record, {o}: the other, which must carry a full forename (another bare initial is
# no evidence of a second person).
_FITS = """(CASE WHEN length({o}.forename) = 1 THEN FALSE
                 WHEN length({u}.forename) = 1 THEN left({o}.forename, 1) = {u}.forename
                                              OR left({o}.forename_canonical, 1) = {u}.forename
                 ELSE {o}.forename_canonical = {u}.forename_canonical
                      OR jaro_winkler_similarity({o}.forename, {u}.forename) >= {jw} END)"""
_ALIKE = """(CASE WHEN length({o}.forename) = 1 THEN FALSE
                  WHEN length({u}.forename) = 1 THEN left({o}.forename, 1) = {u}.forename
                                               OR left({o}.forename_canonical, 1) = {u}.forename
                  ELSE {o}.forename_canonical = {u}.forename_canonical OR {o}.forename_dm = {u}.forename_dm
                       OR jaro_winkler_similarity({o}.forename, {u}.forename) >= {pjw} END)"""
# one dwelling: the same UPRN or normalised address, or the same house number and flat in one postcode (in
# near-identical address text where a record lacks the postcode).  "127A" is flat A of 127 ("FLAT A 127"), and a
# flat in a named building may be written without the building's street number ("FLAT 14 REGENT HOUSE").
_NUM = "nullif(regexp_extract(coalesce({s}.address_number, ''), '^([0-9]+)', 1), '')"
_SUB = ("nullif(coalesce(nullif(regexp_extract(coalesce({s}.address_number, ''), '^[0-9]+([A-Z])$', 1), ''), "
        "regexp_replace(coalesce({s}.address_flat, ''), '^(FLAT|APARTMENT|APT|UNIT|ROOM) *', '')), '')")


def _same_home(a: str, b: str, address_jw: float) -> str:
    """SQL: records ``a`` and ``b`` (table aliases) were recorded at one dwelling."""
    na, nb, sa, sb = _NUM.format(s=a), _NUM.format(s=b), _SUB.format(s=a), _SUB.format(s=b)
    return (f"({a}.uprn = {b}.uprn OR {a}.address_norm = {b}.address_norm OR "
            f"(coalesce({a}.postcode = {b}.postcode, jaro_winkler_similarity({a}.address_norm, {b}.address_norm) >= "
            f"{float(address_jw)}) AND coalesce({sa}, '') = coalesce({sb}, '') AND "
            f"({na} = {nb} OR ({sa} IS NOT NULL AND ({na} IS NULL OR {nb} IS NULL)))))")


def _comparison(settings: dict, name: str) -> dict | None:
    return next((c for c in settings.get("comparisons", []) if c.get("output_column_name") == name), None)


def _level_case(comparison: dict) -> str:
    """SQL CASE giving the label of the level a pair falls to (columns ``<col>_l`` / ``<col>_r``)."""
    whens = []
    for lvl in comparison.get("comparison_levels", []):
        cond, label = lvl.get("sql_condition"), str(lvl.get("label_for_charts", "")).replace("'", "''")
        if cond is None:
            continue
        if cond.strip().upper() == "ELSE":
            whens.append(f"ELSE '{label}'")
            break
        whens.append(f"WHEN ({cond}) THEN '{label}'")
    return "CASE " + " ".join(whens) + " END"


def _weights(comparison: dict) -> dict[str, float]:
    out = {}
    for lvl in comparison.get("comparison_levels", []):
        m, u = lvl.get("m_probability"), lvl.get("u_probability")
        if isinstance(m, (int, float)) and isinstance(u, (int, float)) and m > 0 and u > 0:
            out[str(lvl.get("label_for_charts"))] = math.log2(m / u)
    return out


def _misspelt_forenames(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, threshold: float,
                        settings: dict, cfg: dict) -> dict:
    target = str(cfg.get("typo_level", "one typo"))
    comp = _comparison(settings, "forename")
    w_target = level_weight(settings, "forename", target)
    if comp is None or w_target is None:
        return {"reweighted": 0, "note": f"forename comparison or its level {target!r} untrained or absent"}
    jw, most = float(cfg.get("typo_min_jaro_winkler", 0.6)), int(cfg.get("typo_max_count", 2))
    common, ajw = int(cfg.get("typo_min_common_count", 5)), float(cfg.get("home_address_jaro_winkler", 0.9))
    edits, spelling_edits = int(cfg.get("typo_max_edits", 3)), int(cfg.get("typo_spelling_edits", 0) or 0)
    n_records = int(con.execute(f'SELECT count(forename) FROM "{nodes}"').fetchone()[0])
    if n_records < int(cfg.get("typo_min_records", 1000)):  # frequencies of a small extract say nothing
        return {"reweighted": 0, "to_level": f"forename.{target}", "note": "too few records to judge a spelling rare"}
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _hm_typo AS
        WITH f AS (SELECT forename, count(*) AS n FROM "{nodes}" WHERE forename IS NOT NULL GROUP BY 1),
        -- the established name counted over all its spellings (one canonical form): a name with several
        -- romanisations (KHALID / KHALED) is split among them, each rarer than one English spelling
        c AS (SELECT forename_canonical, count(*) AS n FROM "{nodes}" WHERE forename IS NOT NULL GROUP BY 1),
        -- every spelling of each name in the extract (a short form is a spelling of its full name: ANDY, ANDREW)
        sp AS (SELECT DISTINCT forename AS spelling, forename_canonical AS canon FROM "{nodes}"
               WHERE forename IS NOT NULL AND forename_canonical IS NOT NULL),
        q0 AS (SELECT p.unique_id_l, p.unique_id_r, p.match_probability AS prob,
                     CASE WHEN fl.n < fr.n THEN l.unique_id ELSE r.unique_id END AS rare_id,
                     CASE WHEN fl.n < fr.n THEN l.forename ELSE r.forename END AS rare_name,
                     CASE WHEN fl.n < fr.n THEN r.forename_canonical ELSE l.forename_canonical END AS partner,
                     jaro_winkler_similarity(l.forename, r.forename) >= ?
                         AND damerau_levenshtein(l.forename, r.forename) <= ? AS alike
              FROM "{pairs}" p JOIN "{nodes}" l ON l.unique_id = p.unique_id_l
              JOIN "{nodes}" r ON r.unique_id = p.unique_id_r
              JOIN f fl ON fl.forename = l.forename JOIN f fr ON fr.forename = r.forename
              JOIN c cl ON cl.forename_canonical = l.forename_canonical
              JOIN c cr ON cr.forename_canonical = r.forename_canonical
              WHERE l.dob = r.dob AND (l.surname = r.surname OR l.surname_dm = r.surname_dm)
                AND {_same_home("l", "r", ajw)} AND coalesce(l.sex = r.sex, TRUE)
                AND length(l.forename) > 1 AND length(r.forename) > 1
                AND l.forename_canonical <> r.forename_canonical
                AND least(fl.n, fr.n) <= ? AND fl.n <> fr.n
                AND (CASE WHEN fl.n < fr.n THEN cr.n ELSE cl.n END) >= ?
                -- a spelling the nickname table lists as a short form (JENNY) is an established name
                AND (CASE WHEN fl.n < fr.n THEN l.forename_canonical = l.forename
                          ELSE r.forename_canonical = r.forename END)),
        -- alike: the two spellings themselves, or (typo_spelling_edits) the rare one is a keystroke or so from
        -- another spelling of the established name (ANNDY: ANDY, ANDREW's short form; WLL: WILL)
        q AS (SELECT * FROM q0 WHERE alike OR (? > 0 AND EXISTS (
                  SELECT 1 FROM sp WHERE sp.canon = q0.partner AND sp.spelling <> q0.rare_name
                  AND damerau_levenshtein(sp.spelling, q0.rare_name) <= ?))),
        single AS (SELECT rare_id FROM q GROUP BY 1 HAVING count(DISTINCT partner) = 1)
        SELECT unique_id_l, unique_id_r FROM q SEMI JOIN single USING (rare_id) WHERE prob < ?""",
                [jw, edits, most, common, spelling_edits, spelling_edits, float(threshold)])
    n = int(con.execute("SELECT count(*) FROM _hm_typo").fetchone()[0])
    if not n:
        return {"reweighted": 0, "to_level": f"forename.{target}"}
    cols = [r[0] for r in con.execute(f'DESCRIBE "{nodes}"').fetchall()]
    sides = ", ".join(f'l."{c}" AS "{c}_l", r."{c}" AS "{c}_r"' for c in cols)
    rows = con.execute(f"""SELECT unique_id_l, unique_id_r, {_level_case(comp)} AS level FROM (
        SELECT {sides} FROM _hm_typo t
        JOIN "{nodes}" l ON l.unique_id = t.unique_id_l JOIN "{nodes}" r ON r.unique_id = t.unique_id_r)""").fetchall()
    weights = _weights(comp)
    deltas = [(a, b, w_target - weights[lvl]) for a, b, lvl in rows
              if lvl in weights and w_target - weights[lvl] > 0]
    _add(con, pairs, deltas, "same_home_typo")
    con.execute("DROP TABLE IF EXISTS _hm_typo")
    return {"reweighted": len(deltas), "to_level": f"forename.{target}"}


# one dwelling as a key: the UPRN, else the postcode with the house number and flat (as in _same_home), else the
# normalised address
_DWELLING = ("coalesce({s}.uprn, CASE WHEN {s}.postcode IS NOT NULL THEN {s}.postcode || '|' || "
             "coalesce({num}, {s}.address_norm, '') || '|' || coalesce({sub}, '') END, {s}.address_norm)")


def _established_names(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, settings: dict, cfg: dict) -> dict:
    """Twins with alike forenames (AIDAN / AIDEN, ELLA / ELLIE): at one dwelling, records with one full date of birth
    and surname carry two forenames that are not one name (different canonical forms), each spelling is carried by at
    least ``twin_min_records`` records there, and one source holds records of both spellings.  A keying error is not
    repeated and filed as a second person in the same system; two children are.  Their pairs are weighed as if the
    forenames had fallen to the twin level, whatever level (one typo, sound, spelling) they reached."""
    least = int(cfg.get("twin_min_records", 0) or 0)
    target = "different, same surname and dob"  # the model's twin level (person_comparisons._forename)
    comp = _comparison(settings, "forename")
    weights = _weights(comp) if comp else {}
    if least <= 0 or target not in weights:
        return {"reweighted": 0, **({} if least <= 0 else {"note": f"forename level {target!r} absent"})}
    key = _DWELLING.format(s="x", num=_NUM.format(s="x"), sub=_SUB.format(s="x"))
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _hm_twin AS
        WITH n AS (SELECT unique_id, source, forename, forename_canonical, dob, surname_compact, {key} AS home
                   FROM "{nodes}" x WHERE dob IS NOT NULL AND length(forename) > 1 AND surname_compact IS NOT NULL),
        spelling AS (SELECT home, dob, surname_compact, forename, count(*) AS n, list(DISTINCT source) AS sources
                     FROM n WHERE home IS NOT NULL GROUP BY ALL)
        SELECT p.unique_id_l, p.unique_id_r FROM "{pairs}" p
        JOIN n l ON l.unique_id = p.unique_id_l JOIN n r ON r.unique_id = p.unique_id_r
        JOIN spelling a ON a.home = l.home AND a.dob = l.dob AND a.surname_compact = l.surname_compact
                       AND a.forename = l.forename
        JOIN spelling b ON b.home = r.home AND b.dob = r.dob AND b.surname_compact = r.surname_compact
                       AND b.forename = r.forename
        WHERE l.home = r.home AND l.dob = r.dob AND l.surname_compact = r.surname_compact
          AND l.forename <> r.forename AND l.forename_canonical <> r.forename_canonical AND a.n >= ? AND b.n >= ?
          AND list_has_any(a.sources, b.sources)""", [least, least])
    cols = [r[0] for r in con.execute(f'DESCRIBE "{nodes}"').fetchall()]
    sides = ", ".join(f'l."{c}" AS "{c}_l", r."{c}" AS "{c}_r"' for c in cols)
    rows = con.execute(f"""SELECT unique_id_l, unique_id_r, {_level_case(comp)} AS level FROM (
        SELECT {sides} FROM _hm_twin t
        JOIN "{nodes}" l ON l.unique_id = t.unique_id_l JOIN "{nodes}" r ON r.unique_id = t.unique_id_r)""").fetchall()
    con.execute("DROP TABLE IF EXISTS _hm_twin")
    deltas = [(a, b, weights[target] - weights[lvl]) for a, b, lvl in rows
              if lvl in weights and weights[target] - weights[lvl] < 0]
    _add(con, pairs, deltas, "same_home_twins")
    return {"reweighted": len(deltas), "to_level": f"forename.{target}", "min_records_each": least}


def _unique_namesakes(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, clusters: str, threshold: float,
                      low: float, jw: float, pjw: float, address_jw: float) -> dict:
    fits, alike = _FITS.format(u="u", o="o", jw=jw), _ALIKE.format(u="u", o="o", pjw=pjw)
    home = _same_home("o", "u", address_jw)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _hm_unique AS
        WITH o AS (SELECT n.unique_id, n.forename, n.forename_canonical, n.forename_dm, n.surname_dm, n.dob, n.uprn,
                          n.address_norm, n.postcode, n.address_number, n.address_flat, c.cluster_id AS cid FROM "{nodes}" n JOIN "{clusters}" c USING (unique_id)),
        undated AS (SELECT cid FROM o GROUP BY 1 HAVING count(dob) = 0),
        u AS (SELECT o.* FROM o SEMI JOIN undated USING (cid) WHERE o.forename IS NOT NULL AND o.surname_dm IS NOT NULL
              AND (o.uprn IS NOT NULL OR o.address_norm IS NOT NULL OR o.postcode IS NOT NULL)),
        home AS (SELECT u.unique_id, any_value(o.cid) AS hcid FROM u JOIN o ON o.cid <> u.cid
                 AND o.surname_dm = u.surname_dm AND {home} AND {alike}
                 GROUP BY 1 HAVING count(DISTINCT o.cid) = 1),
        pp AS (SELECT unique_id_l AS a, unique_id_r AS b, match_probability AS prob FROM "{pairs}" WHERE match_probability >= ?
               UNION ALL
               SELECT unique_id_r, unique_id_l, match_probability FROM "{pairs}" WHERE match_probability >= ?),
        elsewhere AS (SELECT DISTINCT h.unique_id FROM home h JOIN u ON u.unique_id = h.unique_id
                      JOIN pp ON pp.a = h.unique_id JOIN o ON o.unique_id = pp.b
                      WHERE o.cid <> h.hcid AND o.cid <> u.cid),
        -- a namesake of another cluster where the candidate person has lived (a family with two MARK JONESes that
        -- moved together: at the old home only one of them left a record) makes the record ambiguous too
        lived AS (SELECT DISTINCT h.unique_id, o.postcode FROM home h JOIN o ON o.cid = h.hcid
                  WHERE o.postcode IS NOT NULL),
        rival AS (SELECT DISTINCT h.unique_id FROM home h JOIN u ON u.unique_id = h.unique_id
                  JOIN lived ON lived.unique_id = h.unique_id JOIN o ON o.postcode = lived.postcode
                  AND o.surname_dm = u.surname_dm
                  WHERE o.cid <> h.hcid AND o.cid <> u.cid AND {alike}),
        best AS (SELECT h.unique_id, pp.b, pp.prob, row_number() OVER (PARTITION BY h.unique_id
                        ORDER BY pp.prob DESC, pp.b) AS k
                 FROM home h JOIN u ON u.unique_id = h.unique_id JOIN pp ON pp.a = h.unique_id
                 JOIN o ON o.unique_id = pp.b AND o.cid = h.hcid
                 WHERE o.surname_dm = u.surname_dm AND {home} AND {fits}
                   AND h.unique_id NOT IN (SELECT unique_id FROM elsewhere UNION ALL SELECT unique_id FROM rival))
        SELECT least(unique_id, b) AS unique_id_l, greatest(unique_id, b) AS unique_id_r FROM best
        WHERE k = 1 AND prob < ?""", [low, low, float(threshold)])
    n = accept_at_threshold(con, pairs, "_hm_unique", threshold, "same_home")
    con.execute("DROP TABLE IF EXISTS _hm_unique")
    return {"accepted": n, "min_probability": low}


def accept_at_threshold(con: duckdb.DuckDBPyConnection, pairs: str, accepted: str, threshold: float,
                        rule: str | None = None) -> int:
    """Raise the pairs of ``pairs`` listed in table ``accepted`` (unique_id_l, unique_id_r; either orientation) to
    the match threshold -- no further, and never lower a pair; returns how many ``accepted`` lists.  Both
    orientations are listed first so the update is an equality (hash) join, not an OR join over every pair.
    ``rule``: the pass's name, written to the pair's ``link_rule`` (when ``pairs`` has that column) where the pass
    is what raised it, so an explanation can say why the pair links although the model scored it lower."""
    n = int(con.execute(f'SELECT count(*) FROM "{accepted}"').fetchone()[0])
    if n:
        t = min(max(float(threshold), 1e-9), 1 - 1e-9)
        named = bool(rule) and "link_rule" in table_columns(con, pairs)
        # every SET expression reads the row as it was before the update
        label = (", link_rule = CASE WHEN p.match_probability < ? THEN concat_ws(', ', p.link_rule, ?) "
                 "ELSE p.link_rule END") if named else ""
        con.execute(f"""UPDATE "{pairs}" p SET match_weight = greatest(p.match_weight, ?),
                            match_probability = greatest(p.match_probability, ?){label}
                        FROM (SELECT unique_id_l AS a, unique_id_r AS b FROM "{accepted}"
                              UNION SELECT unique_id_r, unique_id_l FROM "{accepted}") m
                        WHERE m.a = p.unique_id_l AND m.b = p.unique_id_r""",
                    [math.log2(t / (1 - t)), t, *([t, rule] if named else [])])
    return n


def _add(con: duckdb.DuckDBPyConnection, pairs: str, deltas: list[tuple[str, str, float]],
         rule: str | None = None) -> None:
    """Add a match weight to listed pairs (either orientation) and recompute their probability; ``rule`` (the
    step's name) is appended to their ``link_rule`` when ``pairs`` has that column."""
    if not deltas:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE _hm_delta (a VARCHAR, b VARCHAR, d DOUBLE)")
    con.executemany("INSERT INTO _hm_delta VALUES (?, ?, ?)", deltas)
    named = bool(rule) and "link_rule" in table_columns(con, pairs)
    label = ", link_rule = concat_ws(', ', p.link_rule, ?)" if named else ""
    con.execute(f"""UPDATE "{pairs}" p SET match_weight = p.match_weight + m.d,
                        match_probability = 1.0 / (1.0 + pow(2.0, -(p.match_weight + m.d))){label}
                    FROM _hm_delta m WHERE m.a = p.unique_id_l AND m.b = p.unique_id_r""", [rule] if named else [])
    con.execute("DROP TABLE _hm_delta")


def same_home_evidence(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, clusters: str, threshold: float,
                       review_low: float, settings: dict, mc: dict) -> dict:
    """Re-weight the pairs of ``pairs`` (on ``con``) that a misspelt forename or an only namesake at home explains,
    using the first clustering ``clusters`` (unique_id, cluster_id).  Returns what was done (for the run summary);
    ``reweighted`` = 0 means the caller need not cluster again on this account."""
    cfg = mc.get("home") or {}
    if not cfg.get("enabled", False):
        return {"enabled": False}
    typo = _misspelt_forenames(con, nodes, pairs, threshold, settings, cfg)
    twins = _established_names(con, nodes, pairs, settings, cfg)
    from ecins_link.matching.person_home_chance import household_link_by_chance  # it builds on this module

    chance = household_link_by_chance(con, nodes, pairs, settings, cfg)
    low = float(cfg.get("unique_min_probability", review_low))
    t = mc["thresholds"]
    unique = _unique_namesakes(con, nodes, pairs, clusters, threshold, low, float(t["forename_jaro_winkler"]),
                               float(t["phonetic_min_jaro_winkler"]), float(cfg.get("home_address_jaro_winkler", 0.9)))
    return {"enabled": True, "misspelt_forename": typo, "twins_with_alike_names": twins,
            "household_link_by_chance": chance, "only_namesake_at_home": unique,
            "reweighted": int(typo.get("reweighted", 0)) + int(twins["reweighted"]) + int(chance["reweighted"])
            + int(unique.get("accepted", 0))}
