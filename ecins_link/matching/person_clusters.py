"""Clustering scored person pairs into people, with clerical constraints and an over-merge guard.

1. Edges = scored pairs at or above the match threshold, plus clerical must-link pairs (forced), minus
   clerical cannot-link pairs.  Connected components by SQL label propagation with pointer jumping.
2. Contradictions inside a component (SQL): a cannot-link pair; a directly scored pair whose match weight is
   at or below ``guard.negative_weight``; or two full dates of birth more than ``guard.dob_years_apart``
   years apart that no day-month swap, one-character typo or one wrong part (of day / month / year) explains, between records that are *not* directly
   linked (a direct confident link already weighed the dates; the guard is about chains).
3. Only the (few, small) components holding a contradiction go to Python: for each contradicting pair,
   strongest first, find the minimum-weight set of edges separating it (networkx max-flow / min-cut,
   capacity = match weight, forced edges uncuttable) and cut it if the two sides disagree overall (mean
   direct match weight between them below ``guard.max_side_evidence``, over pairs where both records have a
   date of birth when there are any; an unexplained DOB difference counts as ``guard.negative_weight``) --
   a clerical cannot-link is always cut.  Chains of two people through an
   ambiguous record come apart at the bridge; a well-knit cluster with one noisy record stays whole.  A
   record without a date of birth linked into more than one resulting piece joins the one it links to most
   strongly if that beats the others by ``guard.ambiguity_margin`` bits, else it is left on its own.
4. ``cluster_confidence`` of a record = the highest match probability of its edges to records of its final
   cluster (1.0 for must-link edges and for singletons): how confidently that record belongs.
"""

from __future__ import annotations

from collections import Counter

import duckdb
import networkx as nx
import pandas as pd

from ecins_link.components import label_components
from ecins_link.matching.guard_sources import SourceProfile, break_tie, source_profile

FORCED = 1e9


def _contradictions(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, guard: dict) -> pd.DataFrame:
    """Contradicting pairs inside the same component of ``_pc_lab``: (a, b, reason, strength)."""
    neg, years = float(guard["negative_weight"]), int(guard["dob_years_apart"])
    return con.execute(f"""
        WITH multi AS (SELECT cid FROM _pc_lab GROUP BY cid HAVING count(*) > 1),
        members AS (SELECT n.unique_id, l.cid, n.dob FROM {nodes} n JOIN _pc_lab l USING (unique_id)
                    WHERE l.cid IN (SELECT cid FROM multi)),
        cannot AS (SELECT c.a, c.b, 'cannot_link' AS reason, 1e6 AS strength FROM _pc_cannot c
                   JOIN _pc_lab x ON x.unique_id = c.a JOIN _pc_lab y ON y.unique_id = c.b WHERE x.cid = y.cid),
        negative AS (SELECT p.unique_id_l AS a, p.unique_id_r AS b, 'negative_pair' AS reason,
                            -p.match_weight AS strength
                     FROM {pairs} p JOIN _pc_lab x ON x.unique_id = p.unique_id_l
                     JOIN _pc_lab y ON y.unique_id = p.unique_id_r
                     WHERE x.cid = y.cid AND p.match_weight <= {neg}),
        dob AS (SELECT x.unique_id AS a, y.unique_id AS b, 'dob_contradiction' AS reason,
                       abs(date_diff('day', x.dob, y.dob)) / 365.25 AS strength
                FROM members x JOIN members y ON x.cid = y.cid AND x.unique_id < y.unique_id
                WHERE abs(date_diff('day', x.dob, y.dob)) > {years} * 365.25
                  AND NOT (year(x.dob) = year(y.dob) AND month(x.dob) = day(y.dob) AND day(x.dob) = month(y.dob))
                  AND damerau_levenshtein(strftime(x.dob, '%Y%m%d'), strftime(y.dob, '%Y%m%d')) > 1
                  AND (CAST(year(x.dob) = year(y.dob) AS INT) + CAST(month(x.dob) = month(y.dob) AS INT)
                       + CAST(day(x.dob) = day(y.dob) AS INT)) < 2
                  AND NOT EXISTS (SELECT 1 FROM _pc_edges e WHERE e.a = x.unique_id AND e.b = y.unique_id))
        SELECT a, b, reason, strength FROM cannot UNION ALL SELECT * FROM negative UNION ALL SELECT * FROM dob
        ORDER BY strength DESC, a, b""").df()


def _side_evidence(known: dict[tuple[str, str], float], side_a: set[str], side_b: set[str],
                   dated: set[str]) -> float | None:
    """Mean direct evidence (match weight) between two sides; None if no cross pair was scored.

    Pairs of records that both carry a date of birth are preferred: a record without one agrees with
    everybody of the same name and would otherwise vouch for the bridge it forms.
    """
    vals = [(w, u in dated and v in dated) for (u, v), w in known.items()
            if (u in side_a and v in side_b) or (u in side_b and v in side_a)]
    informed = [w for w, both in vals if both]
    use = informed or [w for w, _ in vals]
    return sum(use) / len(use) if use else None


def _detach_ambiguous(g: nx.Graph, g0: nx.Graph, dated: set[str], margin: float,
                      profile: SourceProfile | None = None) -> None:
    """After cuts: a record without a date of birth that was linked into several of the resulting pieces
    joins the piece it links to most strongly when that link beats every other piece's by ``margin`` bits;
    otherwise it cannot say whose it is and is left on its own rather than guessed.  Forced edges stay.

    Tie-break (``profile``, see ``guard_sources``): when the record's source leaves exactly one of the pieces
    within ``margin`` of the best -- the others are too young for what the source holds, or already have their
    one record there -- the record joins that piece."""
    comp_of = {n: i for i, comp in enumerate(nx.connected_components(g)) for n in comp}
    members: dict[int, list[str]] = {}
    if profile:
        for node, i in comp_of.items():
            members.setdefault(i, []).append(node)
    for n in list(g0.nodes):
        if n in dated or any(d["capacity"] >= FORCED for d in g0[n].values()):
            continue
        best: dict[int, float] = {}
        for m, d in g0[n].items():
            best[comp_of[m]] = max(best.get(comp_of[m], 0.0), d["capacity"])
        if len(best) < 2:
            continue
        ranked = sorted(best.items(), key=lambda kv: -kv[1])
        g.remove_edges_from(list(g.edges(n)))
        chosen = ranked[0][0] if ranked[0][1] - ranked[1][1] >= margin else None
        if chosen is None and profile:
            chosen = break_tie(n, [i for i, w in ranked if ranked[0][1] - w < margin], members, profile)
        if chosen is not None:
            g.add_edges_from((n, m, d) for m, d in g0[n].items() if comp_of[m] == chosen)


def _rejoin_isolated(g: nx.Graph, g0: nx.Graph, keep_apart: set[str], only: set[str] | None = None) -> None:
    """(``guard.rejoin_isolated``, off by default) A record the cuts left on its own whose links above the
    threshold all go to one piece rejoins that piece: it contradicted a member (a mistyped date, a strongly
    negative pair) but is claimed by nobody else, so no chain of two people runs through it.  For registers
    without relatives (no twins, fathers and sons); a record in a clerical cannot-link is never rejoined.
    ``only`` limits it to those records (``guard.rejoin_isolated_undated``: records without a date of birth, which
    no date can set apart from a namesake relative -- so a father's record never rejoins his son's piece)."""
    comp_of = {n: i for i, comp in enumerate(nx.connected_components(g)) for n in comp}
    for n in list(g0.nodes):
        if n in keep_apart or g.degree(n) > 0 or g0.degree(n) == 0 or (only is not None and n not in only):
            continue
        if len({comp_of[m] for m in g0[n]}) == 1:
            g.add_edges_from((n, m, d) for m, d in g0[n].items())


def _split_component(edges: pd.DataFrame, contra: pd.DataFrame, known: dict[tuple[str, str], float],
                     max_side_evidence: float, dated: set[str], margin: float,
                     rejoin: bool = False, profile: SourceProfile | None = None,
                     rejoin_undated: bool = False) -> tuple[dict[str, str], bool]:
    """Min-cut a component until no contradicting pair shares a piece; returns (node -> piece id, resolved).

    A cut for a scored contradiction is made only when the two sides it creates disagree overall (mean direct
    evidence between them below ``max_side_evidence``); a clerical cannot-link is always cut.  So a chain of
    two people joined through an ambiguous record comes apart, while a well-knit cluster with one noisy
    record (one bad pair among many good ones) stays whole.
    """
    edges = edges.sort_values(["a", "b"])  # min cuts tie: a graph built in one order makes the same cut every run
    g = nx.Graph()
    g.add_weighted_edges_from(zip(edges["a"].tolist(), edges["b"].tolist(), edges["weight"].clip(lower=0.001).tolist(),
                                  strict=True), weight="capacity")
    g0 = g.copy()
    resolved = True
    for a, b, reason in zip(contra["a"].tolist(), contra["b"].tolist(), contra["reason"].tolist(), strict=True):
        if a not in g or b not in g or not nx.has_path(g, a, b):
            continue
        value, (side_a, side_b) = nx.minimum_cut(g, a, b, capacity="capacity")
        if value >= FORCED:
            resolved = False
            continue
        side_a, side_b = set(side_a), set(side_b)
        if reason != "cannot_link":
            comp = nx.node_connected_component(g, a)
            evidence = _side_evidence(known, side_a & comp, side_b & comp, dated)
            if evidence is not None and evidence >= max_side_evidence:
                continue
        g.remove_edges_from([(u, v) for u, v in list(g.edges()) if (u in side_b) != (v in side_b)])
    _detach_ambiguous(g, g0, dated, margin, profile)
    if rejoin or rejoin_undated:
        cannot = contra["reason"] == "cannot_link"
        _rejoin_isolated(g, g0, set(contra.loc[cannot, "a"]) | set(contra.loc[cannot, "b"]),
                         None if rejoin else set(g0.nodes) - dated)
    piece = {}
    for comp in nx.connected_components(g):
        cid = min(comp)
        piece.update({n: cid for n in comp})
    return piece, resolved


split_component = _split_component  # public name for the Spark path (spark_clusters' applyInPandas)


def cluster(con: duckdb.DuckDBPyConnection, nodes: str, pairs: str, threshold: float,
            must_link: list[tuple[str, str]], cannot_link: list[tuple[str, str]], guard: dict,
            out: str = "person_clusters_raw") -> list[dict]:
    """Cluster ``nodes`` (person_std-like) using scored ``pairs``; writes ``out`` and returns the splits.

    ``out(unique_id, source, record_key, cluster_id, cluster_confidence)`` covers every node.  Each split
    is ``{cluster_id, reason, n_records}`` for every piece of a component the guard cut up.
    """
    con.register("_pc_must_df", pd.DataFrame(must_link, columns=["a", "b"], dtype="string"))
    con.register("_pc_cannot_df", pd.DataFrame(cannot_link, columns=["a", "b"], dtype="string"))
    con.execute("""CREATE OR REPLACE TEMP TABLE _pc_must AS SELECT least(a, b) AS a, greatest(a, b) AS b
                   FROM _pc_must_df WHERE a <> b""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _pc_cannot AS SELECT least(a, b) AS a, greatest(a, b) AS b
                   FROM _pc_cannot_df WHERE a <> b""")
    con.unregister("_pc_must_df")
    con.unregister("_pc_cannot_df")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _pc_edges AS
        WITH scored AS (
            SELECT least(unique_id_l, unique_id_r)::VARCHAR AS a, greatest(unique_id_l, unique_id_r)::VARCHAR AS b,
                   match_weight AS weight, match_probability AS prob
            FROM {pairs} WHERE match_probability >= {float(threshold)}),
        known AS (SELECT unique_id FROM {nodes})
        SELECT a, b, max(weight) AS weight, max(prob) AS prob FROM (
            SELECT * FROM scored s
            WHERE NOT EXISTS (SELECT 1 FROM _pc_cannot c WHERE c.a = s.a AND c.b = s.b)
            UNION ALL SELECT a, b, {FORCED}, 1.0 FROM _pc_must
            WHERE a IN (SELECT unique_id FROM known) AND b IN (SELECT unique_id FROM known))
        GROUP BY a, b""")
    label_components(con, f"SELECT unique_id AS node FROM {nodes}", "SELECT a, b FROM _pc_edges", "_pc_lab0")
    con.execute("CREATE OR REPLACE TEMP TABLE _pc_lab AS SELECT node AS unique_id, cid FROM _pc_lab0; DROP TABLE _pc_lab0")
    contra = _contradictions(con, nodes, pairs, guard)
    splits: list[dict] = []
    con.execute("CREATE OR REPLACE TEMP TABLE _pc_final AS SELECT unique_id, cid FROM _pc_lab")
    if len(contra):
        con.register("_pc_contra", contra)
        cid_of = dict(con.execute("""SELECT unique_id, cid FROM _pc_lab WHERE unique_id IN
                                     (SELECT a FROM _pc_contra)""").fetchall())
        edges = con.execute("""SELECT e.a, e.b, e.weight, l.cid FROM _pc_edges e JOIN _pc_lab l ON l.unique_id = e.a
                               WHERE l.cid IN (SELECT l2.cid FROM _pc_contra c
                                               JOIN _pc_lab l2 ON l2.unique_id = c.a)""").df()
        scored = con.execute(f"""SELECT x.cid, p.unique_id_l, p.unique_id_r, p.match_weight FROM {pairs} p
            JOIN _pc_lab x ON x.unique_id = p.unique_id_l JOIN _pc_lab y ON y.unique_id = p.unique_id_r
            WHERE x.cid = y.cid AND x.cid IN (SELECT l2.cid FROM _pc_contra c JOIN _pc_lab l2 ON l2.unique_id = c.a)
            """).fetchall()
        dated = {r[0] for r in con.execute(f"""SELECT n.unique_id FROM {nodes} n JOIN _pc_lab l USING (unique_id)
            WHERE n.dob IS NOT NULL AND l.cid IN (SELECT l2.cid FROM _pc_contra c JOIN _pc_lab l2
                                                  ON l2.unique_id = c.a)""").fetchall()}
        profile = source_profile(con, nodes, "_pc_lab", "SELECT l2.cid FROM _pc_contra c JOIN _pc_lab l2 "
                                 "ON l2.unique_id = c.a", guard)
        con.unregister("_pc_contra")
        known: dict[str, dict[tuple[str, str], float]] = {}  # per component: scored pairs inside it
        for cid, a, b, w in scored:
            known.setdefault(cid, {})[(a, b)] = float(w)
        dob_weight = float(guard["negative_weight"])
        for a, b in contra.loc[contra.reason == "dob_contradiction", ["a", "b"]].itertuples(index=False):
            comp_known = known.setdefault(cid_of[a], {})
            comp_known[(a, b)] = min(comp_known.get((a, b), dob_weight), dob_weight)
        contra["cid"] = contra["a"].map(cid_of)
        remap = []
        edges_of = dict(tuple(edges.groupby("cid", sort=False)))
        for cid, comp_contra in contra.groupby("cid", sort=True):
            piece, resolved = _split_component(edges_of.get(cid, edges.iloc[:0]), comp_contra, known.get(cid, {}),
                                               float(guard["max_side_evidence"]), dated,
                                               float(guard.get("ambiguity_margin", 4.0)),
                                               bool(guard.get("rejoin_isolated", False)), profile,
                                               bool(guard.get("rejoin_isolated_undated", False)))
            reasons = Counter(comp_contra.reason)
            reason = ", ".join(f"{k}={v}" for k, v in sorted(reasons.items()))
            if not resolved:
                reason += "; unresolved: must-link chain joins a contradiction"
            sizes = Counter(piece.values())
            if len(sizes) > 1 or not resolved:
                splits.extend({"cluster_id": p, "reason": reason, "n_records": n} for p, n in sorted(sizes.items()))
            remap.extend(piece.items())
        if remap:
            con.register("_pc_remap", pd.DataFrame(remap, columns=["unique_id", "cid"], dtype="string"))
            con.execute("""CREATE OR REPLACE TEMP TABLE _pc_final AS
                SELECT l.unique_id, coalesce(r.cid, l.cid) AS cid FROM _pc_lab l LEFT JOIN _pc_remap r USING (unique_id)""")
            con.unregister("_pc_remap")
    con.execute(f"""CREATE OR REPLACE TABLE "{out}" AS
        WITH inside AS (
            SELECT e.a AS uid, e.prob FROM _pc_edges e JOIN _pc_final x ON x.unique_id = e.a
                JOIN _pc_final y ON y.unique_id = e.b WHERE x.cid = y.cid
            UNION ALL
            SELECT e.b, e.prob FROM _pc_edges e JOIN _pc_final x ON x.unique_id = e.a
                JOIN _pc_final y ON y.unique_id = e.b WHERE x.cid = y.cid),
        best AS (SELECT uid, max(prob) AS conf FROM inside GROUP BY uid)
        SELECT n.unique_id, n.source, n.record_key, f.cid AS cluster_id,
               coalesce(b.conf, 1.0)::DOUBLE AS cluster_confidence
        FROM {nodes} n JOIN _pc_final f USING (unique_id) LEFT JOIN best b ON b.uid = n.unique_id
        ORDER BY n.unique_id""")
    for t in ("_pc_must", "_pc_cannot", "_pc_edges", "_pc_lab", "_pc_final"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return splits
