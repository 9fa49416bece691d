"""A source's own duplicate rate as the prior of a pair of its records: within-source pairs weighed down.

Splink's model has one prior for every pair: the chance that two records drawn at random are one person, estimated
over the whole extract.  A partnership's sources differ in how often they hold one person twice.  A council's
people register or a police nominal index is kept to one record per person, so two of its records are one person
far less often than a record of it and a record of another agency (a tenancy file holding each tenancy, a contacts
log).  With one prior, a pair inside such a register that agrees on name and date of birth at two addresses scores
as if it were a cross-agency pair, and two namesakes the register rightly holds apart are merged.

This step measures, per source, the prior of a pair of its own records the way the model's prior is measured: the
expected number of matches among the scored pairs (the sum of their match probabilities) over the number of pairs
the source's records make, against the same figure for the whole extract.  Where a source's own prior is lower, its
within-source pairs are weighed down by the difference in bits (log2 of the two prior odds), at most
``max_penalty_bits``; a source's pairs are never weighed *up*, and cross-source pairs are left as scored: the step
only ever withholds a merge, never makes one.  Sources with fewer than ``min_records`` records (too few pairs for
a stable rate) are left alone.

The identity and variants passes (``person_identity``, ``person_variants``: an exact or variant identity at another
address, accepted at the threshold) rest on "most such pairs are one person".  That holds across sources and within
a source that holds people twice, not within a register: on the 250,000-person town (seed 1) the pairs they accepted
inside the council register were one person 49 times in 105, inside the police index 60 in 92, inside the tenancy
file 1,924 in 1,939.  So they leave alone the within-source pairs of a source where such pairs are estimated to be
one person less often than ``hold_passes_below_accuracy`` (:func:`identity_pass_accuracy`: namesakes counted at
placebo dates of birth), or, where the extract gives no estimate for it, whose own prior is at least
``hold_passes_below_bits`` below the extract's (:func:`withhold_within_source`).  The prior alone was a cliff: the
tenancy file's sat 0.42-0.57 bits below across four 250k towns, around the 0.5 cutoff.

Measured on the 250,000-person towns (persons stage only, on one standardised store per seed): the council
register's within-source prior was 1.9 bits below the extract's, the police index's 0.8, the tenancy file's 0.5
(seed 1).  B-cubed precision 0.996789 -> 0.997012 (seed 1) and 0.996986 -> 0.997243 (seed 2), recall 0.990801 ->
0.990452 and 0.990566 -> 0.990169.

Switched on by ``[source_priors] enabled`` in the model file (on in the packaged model; off where a file has no
such section).  What it did per source is in the run summary (``source_priors``).
"""

from __future__ import annotations

import math

import duckdb


def _log2_odds(p: float) -> float:
    return math.log2(p / (1.0 - p))


def identity_pass_accuracy(con: duckdb.DuckDBPyConnection, nodes: str, clusters: str, sources: list[str],
                           offsets: list[int], max_dob_share: float) -> dict[str, dict]:
    """Per source of ``sources``: how often a pair of its own records with one forename, surname and full date of
    birth at two addresses, kept apart by the first clustering ``clusters``, is one person -- estimated from the
    extract alone.  Two people of one name are as likely to be born on one day as ``d`` days apart for a ``d`` no
    keying error makes (``offsets``: not 1-9, 10, 20 or a month), so the pairs of one name whose dates differ by such
    an offset, per offset, estimate the namesakes among the pairs of one date.  Returns ``{source: {"pairs_apart",
    "namesakes_expected", "accuracy_at_least"}}`` (None where no such pair is apart).  The namesakes are counted over
    all such pairs, as if the model had merged none of them: the accuracy is a lower bound.  (On a 250k town the
    council register's pairs apart were one person 25 times in 46 and the police index's 36 in 41, both bounded at
    0.0; the tenancy file's 19 in 20, bounded at 0.98.)"""
    from ecins_link.matching.person_identity import PLACEHOLDER_DOBS

    if not sources or not offsets:
        return {}
    rows = con.execute(f"""
        WITH n AS (SELECT x.unique_id, x.source, x.forename, x.surname, x.dob, x.address_norm, x.uprn, c.cluster_id
                   FROM "{nodes}" x JOIN "{clusters}" c USING (unique_id)
                   WHERE x.dob IS NOT NULL AND length(x.forename) > 1 AND x.surname IS NOT NULL
                     AND list_contains(?, x.source)),
        {PLACEHOLDER_DOBS},
        pr AS (SELECT l.source, abs(date_diff('day', l.dob, r.dob)) AS d, l.cluster_id <> r.cluster_id AS apart
               FROM n l JOIN n r ON l.source = r.source AND l.forename = r.forename AND l.surname = r.surname
                                AND l.unique_id < r.unique_id
               WHERE NOT coalesce(l.address_norm = r.address_norm, false) AND NOT coalesce(l.uprn = r.uprn, false)
                 AND list_contains(?, abs(date_diff('day', l.dob, r.dob)))
                 AND l.dob NOT IN (SELECT dob FROM common_dob) AND r.dob NOT IN (SELECT dob FROM common_dob))
        SELECT source, count(*) FILTER (WHERE d = 0 AND apart), count(*) FILTER (WHERE d > 0) FROM pr GROUP BY 1""",
        [list(sources), float(max_dob_share), [0, *[int(d) for d in offsets]]]).fetchall()
    out = {}
    for source, apart, placebo in rows:
        namesakes = float(placebo) / (2.0 * len(offsets))  # |d| = offset counts both signs: two offsets' worth
        out[source] = {"pairs_apart": int(apart), "namesakes_expected": round(namesakes, 1),
                       "accuracy_at_least": round(max(0.0, 1.0 - namesakes / apart), 3) if apart else None}
    return out


def within_source_priors(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, threshold: float,
                         mc: dict, clusters: str | None = None) -> dict:
    """Weigh down the within-source pairs of ``pairs`` (on ``con``; ``nodes`` holds the records and their
    ``source``) as the module doc says; returns what was done (``reweighted`` = pairs weighed down, ``sources`` =
    per source: records, expected matches among its own pairs, the bits taken off).  ``clusters`` (the first
    clustering) lets ``hold_passes_below_accuracy`` decide which sources the passes hold off
    (:func:`identity_pass_accuracy`); without it, or without that setting, ``hold_passes_below_bits`` does."""
    cfg = mc.get("source_priors") or {}
    if not cfg.get("enabled", False):
        return {"enabled": False}
    min_records = int(cfg.get("min_records", 1000))
    most = float(cfg.get("max_penalty_bits", 4.0))
    sizes = dict(con.execute(f'SELECT source, count(*) FROM "{nodes}" GROUP BY 1').fetchall())
    total = sum(sizes.values())
    expected = con.execute(f"""
        SELECT a.source = b.source, CASE WHEN a.source = b.source THEN a.source END, sum(p.match_probability)
        FROM "{pairs}" p JOIN "{nodes}" a ON a.unique_id = p.unique_id_l JOIN "{nodes}" b ON b.unique_id = p.unique_id_r
        GROUP BY 1, 2""").fetchall()
    overall = sum(float(e or 0.0) for _, _, e in expected)
    done: dict = {"enabled": True, "reweighted": 0, "moved_below_threshold": 0, "sources": []}
    if total < 2 or overall <= 0:
        return done
    base = _log2_odds(min(overall / (total * (total - 1) / 2), 0.5))
    within = {s: float(e or 0.0) for same, s, e in expected if same}
    penalties = []
    for source, n in sorted(sizes.items(), key=lambda kv: str(kv[0])):
        if n < min_records:
            continue
        own = (within.get(source, 0.0) + 1.0) / (n * (n - 1) / 2 + 1.0)  # one expected match added: never zero
        bits = max(min(_log2_odds(min(own, 0.5)) - base, 0.0), -most)
        done["sources"].append({"source": source, "records": n, "expected_matches": round(within.get(source, 0.0), 1),
                                "bits": round(bits, 3)})
        if bits < 0:
            penalties.append((source, bits))
    # sources where the identity, variants and keystroke passes (an identity at another address, accepted at the
    # threshold) would mostly join namesakes: those passes hold off their within-source pairs
    hold = float(cfg.get("hold_passes_below_bits", 0.5))
    if clusters is not None and cfg.get("hold_passes_below_accuracy") is not None:
        least = float(cfg["hold_passes_below_accuracy"])
        estimate = identity_pass_accuracy(
            con, nodes, clusters, [s["source"] for s in done["sources"]],
            list(cfg.get("placebo_offsets_days", [43, 47, 53, 67, 71, 79])),
            float((mc.get("identity") or {}).get("max_dob_share", 0.001)))
        for row in done["sources"]:
            row.update(estimate.get(row["source"], {"pairs_apart": 0, "namesakes_expected": 0.0, "accuracy_at_least": None}))
        # a source with no such pair apart gives no estimate: its prior decides, as without the setting
        done["passes_hold_off"] = [r["source"] for r in done["sources"]
                                   if (r["accuracy_at_least"] < least if r["accuracy_at_least"] is not None else r["bits"] <= -hold)]
    else:
        done["passes_hold_off"] = [s for s, bits in penalties if bits <= -hold]
    if not penalties:
        return done
    con.execute("CREATE OR REPLACE TEMP TABLE _sp_bits (source VARCHAR, bits DOUBLE)")
    con.executemany("INSERT INTO _sp_bits VALUES (?, ?)", penalties)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _sp_pairs AS
        SELECT p.unique_id_l, p.unique_id_r, p.match_weight + d.bits AS w, p.match_probability AS before
        FROM "{pairs}" p JOIN "{nodes}" a ON a.unique_id = p.unique_id_l JOIN "{nodes}" b ON b.unique_id = p.unique_id_r
        JOIN _sp_bits d ON d.source = a.source WHERE a.source = b.source""")
    con.execute(f"""UPDATE "{pairs}" AS p SET match_weight = s.w, match_probability = 1 / (1 + pow(2, -s.w))
                    FROM _sp_pairs s WHERE p.unique_id_l = s.unique_id_l AND p.unique_id_r = s.unique_id_r""")
    done["reweighted"], done["moved_below_threshold"] = (int(x or 0) for x in con.execute(
        "SELECT count(*), sum(CAST(before >= ? AND 1 / (1 + pow(2, -w)) < ? AS INT)) FROM _sp_pairs",
        [float(threshold), float(threshold)]).fetchone())
    con.execute("DROP TABLE IF EXISTS _sp_pairs")
    con.execute("DROP TABLE IF EXISTS _sp_bits")
    return done


def withhold_within_source(con: duckdb.DuckDBPyConnection, nodes: str, accepted: str, held: list[str]) -> int:
    """Drop from table ``accepted`` (unique_id_l, unique_id_r) the pairs of two records of one source listed in
    ``held`` (:func:`within_source_priors`' ``passes_hold_off``: its own pairs clearly rarer one person than the
    extract's); returns how many were dropped (0 when none is held)."""
    if not held:
        return 0
    before = int(con.execute(f'SELECT count(*) FROM "{accepted}"').fetchone()[0])
    con.execute(f"""DELETE FROM "{accepted}" x USING "{nodes}" a, "{nodes}" b
                    WHERE a.unique_id = x.unique_id_l AND b.unique_id = x.unique_id_r
                      AND a.source = b.source AND list_contains(?, a.source)""", [list(held)])
    return before - int(con.execute(f'SELECT count(*) FROM "{accepted}"').fetchone()[0])


def explanation_row(con: duckdb.DuckDBPyConnection, input_table: str, summary: dict, unique_id_l: str,
                    unique_id_r: str) -> dict | None:
    """The explanation row (``explain_pair``'s columns) of the bits this step took off a pair of records of one
    source, per the run's ``summary["source_priors"]``; None when the records' sources differ or the step took
    nothing off that source."""
    bits = {s["source"]: float(s["bits"]) for s in (summary.get("source_priors") or {}).get("sources", [])}
    rows = con.execute(f'SELECT unique_id, source FROM "{input_table}" WHERE unique_id IN (?, ?)',
                       [unique_id_l, unique_id_r]).fetchall()
    sources = {uid: src for uid, src in rows}
    source = sources.get(unique_id_l)
    if source is None or source != sources.get(unique_id_r) or bits.get(source, 0.0) >= 0:
        return None
    b = bits[source]
    return {"comparison": "Source prior", "level": "both records from one source", "bayes_factor": 2.0 ** b,
            "log2_weight": b, "value_l": source, "value_r": source, "m_probability": None, "u_probability": None,
            "description": (f"{source} holds one person twice less often than the extract as a whole: its own pairs "
                            f"weigh {-b:.2f} bits less (person_source_priors)")}
