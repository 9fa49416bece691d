"""Clustering scored person pairs on Spark: the same rules as ``person_clusters.cluster``, distributed.

1. Edges (Spark): pairs at or above the threshold, plus clerical must-links (forced), minus cannot-links.
2. Connected components: Splink's backend-agnostic ``cluster_pairwise_predictions_at_threshold``.
3. Contradictions inside a component (Spark SQL): the same three kinds as the DuckDB path (a cannot-link, a
   scored pair at or below ``guard.negative_weight``, two dates of birth no typo explains between records
   not directly linked).
4. Only the few components holding a contradiction are split, each by the DuckDB path's own min-cut code
   (``person_clusters.split_component``, networkx) in a grouped ``applyInPandas``: one task per component,
   so the work spreads over the executors and no component leaves its task.
5. ``cluster_confidence``: a record's strongest edge inside its final cluster (1.0 for singletons / forced).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from ecins_link.matching.person_clusters import FORCED, split_component

_PIECE_SCHEMA = "cid string, unique_id string, piece string, reason string, resolved boolean"


def _constraints(spark: Any, rows: list[tuple[str, str]], name: str) -> None:
    pdf = pd.DataFrame([(min(a, b), max(a, b)) for a, b in rows if a != b], columns=["a", "b"], dtype="string")
    schema = "a string, b string"
    spark.createDataFrame(pdf if len(pdf) else [], schema).createOrReplaceTempView(name)


def _split_group(guard: dict) -> Any:
    """The function ``applyInPandas`` runs once per contradicting component."""
    max_side, margin = float(guard["max_side_evidence"]), float(guard.get("ambiguity_margin", 4.0))
    dob_weight = float(guard["negative_weight"])

    def split(group: pd.DataFrame) -> pd.DataFrame:
        cid = str(group["cid"].iloc[0])
        edges = group[group.kind == "edge"][["a", "b", "weight"]]
        contra = group[group.kind == "contra"].sort_values(["strength", "a", "b"], ascending=[False, True, True])
        known = {(a, b): float(w) for a, b, w in group[group.kind == "scored"][["a", "b", "weight"]]
                 .itertuples(index=False)}
        for a, b in contra.loc[contra.reason == "dob_contradiction", ["a", "b"]].itertuples(index=False):
            known[(a, b)] = min(known.get((a, b), dob_weight), dob_weight)
        dated = set(group.loc[group.kind == "dated", "a"])
        piece, resolved = split_component(edges, contra[["a", "b", "reason"]].reset_index(drop=True), known,
                                           max_side, dated, margin, bool(guard.get("rejoin_isolated", False)))
        reasons = Counter(contra.reason)
        reason = ", ".join(f"{k}={v}" for k, v in sorted(reasons.items()))
        return pd.DataFrame({"cid": cid, "unique_id": list(piece), "piece": list(piece.values()),
                             "reason": reason, "resolved": resolved})

    return split


def cluster_on_spark(spark: Any, persons: Any, pairs: Any, threshold: float, must_link: list[tuple[str, str]],
                     cannot_link: list[tuple[str, str]], guard: dict,
                     break_lineage: str = "parquet") -> tuple[Any, list[dict]]:
    """Cluster ``persons`` (Spark DataFrame of person_std) with scored ``pairs`` (Splink's predictions).
    Returns (Spark DataFrame ``unique_id, source, record_key, cluster_id, cluster_confidence``, splits) --
    each split ``{cluster_id, reason, n_records}`` as ``person_clusters.cluster`` returns them."""
    from splink import SparkAPI
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    neg, years = float(guard["negative_weight"]), int(guard["dob_years_apart"])
    persons.select("unique_id", "source", "record_key", "dob").createOrReplaceTempView("_sc_nodes")
    pairs.select("unique_id_l", "unique_id_r", "match_weight", "match_probability").createOrReplaceTempView("_sc_pairs")
    _constraints(spark, must_link, "_sc_must")
    _constraints(spark, cannot_link, "_sc_cannot")
    edges = spark.sql(f"""
        WITH scored AS (
            SELECT least(unique_id_l, unique_id_r) AS a, greatest(unique_id_l, unique_id_r) AS b,
                   match_weight AS weight, match_probability AS prob
            FROM _sc_pairs WHERE match_probability >= {float(threshold)})
        SELECT a, b, max(weight) AS weight, max(prob) AS prob FROM (
            SELECT * FROM scored s LEFT ANTI JOIN _sc_cannot c ON c.a = s.a AND c.b = s.b
            UNION ALL
            SELECT m.a, m.b, CAST({FORCED} AS DOUBLE), CAST(1.0 AS DOUBLE) FROM _sc_must m
            LEFT SEMI JOIN _sc_nodes x ON x.unique_id = m.a LEFT SEMI JOIN _sc_nodes y ON y.unique_id = m.b)
        GROUP BY a, b""").localCheckpoint()
    edges.createOrReplaceTempView("_sc_edges")
    api = SparkAPI(spark_session=spark, break_lineage_method=break_lineage, register_udfs_automatically=False)
    cc = cluster_pairwise_predictions_at_threshold(
        spark.sql("SELECT unique_id FROM _sc_nodes"), edges.select("a", "b"), db_api=api,
        node_id_column_name="unique_id", edge_id_column_name_left="a", edge_id_column_name_right="b")
    cc.as_spark_dataframe().select("unique_id", "cluster_id").withColumnRenamed("cluster_id", "cid") \
        .localCheckpoint().createOrReplaceTempView("_sc_lab")
    contra = spark.sql(f"""
        WITH multi AS (SELECT cid FROM _sc_lab GROUP BY cid HAVING count(*) > 1),
        members AS (SELECT n.unique_id, l.cid, n.dob FROM _sc_nodes n JOIN _sc_lab l ON l.unique_id = n.unique_id
                    LEFT SEMI JOIN multi m ON m.cid = l.cid),
        cannot AS (SELECT c.a, c.b, 'cannot_link' AS reason, CAST(1e6 AS DOUBLE) AS strength, x.cid FROM _sc_cannot c
                   JOIN _sc_lab x ON x.unique_id = c.a JOIN _sc_lab y ON y.unique_id = c.b WHERE x.cid = y.cid),
        negative AS (SELECT p.unique_id_l AS a, p.unique_id_r AS b, 'negative_pair' AS reason,
                            -p.match_weight AS strength, x.cid
                     FROM _sc_pairs p JOIN _sc_lab x ON x.unique_id = p.unique_id_l
                     JOIN _sc_lab y ON y.unique_id = p.unique_id_r
                     WHERE x.cid = y.cid AND p.match_weight <= {neg}),
        dob AS (SELECT x.unique_id AS a, y.unique_id AS b, 'dob_contradiction' AS reason,
                       abs(datediff(y.dob, x.dob)) / 365.25 AS strength, x.cid
                FROM members x JOIN members y ON x.cid = y.cid AND x.unique_id < y.unique_id
                LEFT ANTI JOIN _sc_edges e ON e.a = x.unique_id AND e.b = y.unique_id
                WHERE abs(datediff(y.dob, x.dob)) > {years} * 365.25
                  AND NOT (year(x.dob) = year(y.dob) AND month(x.dob) = day(y.dob) AND day(x.dob) = month(y.dob))
                  AND damerau_levenshtein(date_format(x.dob, 'yyyyMMdd'), date_format(y.dob, 'yyyyMMdd')) > 1
                  AND (CAST(year(x.dob) = year(y.dob) AS INT) + CAST(month(x.dob) = month(y.dob) AS INT)
                       + CAST(day(x.dob) = day(y.dob) AS INT)) < 2)
        SELECT * FROM cannot UNION ALL SELECT * FROM negative UNION ALL SELECT * FROM dob""").localCheckpoint()
    contra.createOrReplaceTempView("_sc_contra")
    guarded = spark.sql("""
        WITH bad AS (SELECT DISTINCT cid FROM _sc_contra)
        SELECT l.cid, 'edge' AS kind, e.a, e.b, e.weight, CAST(NULL AS STRING) AS reason,
               CAST(NULL AS DOUBLE) AS strength
            FROM _sc_edges e JOIN _sc_lab l ON l.unique_id = e.a JOIN bad USING (cid)
        UNION ALL SELECT cid, 'contra', a, b, NULL, reason, strength FROM _sc_contra
        UNION ALL SELECT x.cid, 'scored', p.unique_id_l, p.unique_id_r, p.match_weight, NULL, NULL FROM _sc_pairs p
            JOIN _sc_lab x ON x.unique_id = p.unique_id_l JOIN _sc_lab y ON y.unique_id = p.unique_id_r
            JOIN bad b ON b.cid = x.cid WHERE x.cid = y.cid
        UNION ALL SELECT l.cid, 'dated', n.unique_id, NULL, NULL, NULL, NULL FROM _sc_nodes n
            JOIN _sc_lab l ON l.unique_id = n.unique_id JOIN bad b ON b.cid = l.cid WHERE n.dob IS NOT NULL""")
    # the pieces stay on the executors (checkpointed: the min-cut runs once); the driver collects one row per piece
    pieces = guarded.groupBy("cid").applyInPandas(_split_group(guard), schema=_PIECE_SCHEMA).localCheckpoint()
    pieces.createOrReplaceTempView("_sc_remap")
    per_piece = spark.sql("""SELECT cid, piece, first(reason) AS reason, first(resolved) AS resolved, count(*) AS n
                             FROM _sc_remap GROUP BY cid, piece ORDER BY cid, piece""").collect()
    by_cid: dict[str, list] = {}
    for row in per_piece:
        by_cid.setdefault(row["cid"], []).append(row)
    splits: list[dict] = []
    for rows in by_cid.values():
        resolved = bool(rows[0]["resolved"])
        reason = str(rows[0]["reason"]) + ("" if resolved else "; unresolved: must-link chain joins a contradiction")
        if len(rows) > 1 or not resolved:
            splits.extend({"cluster_id": r["piece"], "reason": reason, "n_records": int(r["n"])} for r in rows)
    clusters = spark.sql("""
        WITH final AS (SELECT l.unique_id, coalesce(r.piece, l.cid) AS cid FROM _sc_lab l
                       LEFT JOIN _sc_remap r ON r.unique_id = l.unique_id),
        inside AS (
            SELECT e.a AS uid, e.prob FROM _sc_edges e JOIN final x ON x.unique_id = e.a
                JOIN final y ON y.unique_id = e.b WHERE x.cid = y.cid
            UNION ALL
            SELECT e.b, e.prob FROM _sc_edges e JOIN final x ON x.unique_id = e.a
                JOIN final y ON y.unique_id = e.b WHERE x.cid = y.cid),
        best AS (SELECT uid, max(prob) AS conf FROM inside GROUP BY uid)
        SELECT n.unique_id, n.source, n.record_key, f.cid AS cluster_id,
               CAST(coalesce(b.conf, 1.0) AS DOUBLE) AS cluster_confidence
        FROM _sc_nodes n JOIN final f ON f.unique_id = n.unique_id LEFT JOIN best b ON b.uid = n.unique_id""")
    return clusters, splits
