"""Benchmark: stable person IDs over two batches of N records, and link explanation latency.

Run: ``nice .venv/bin/python benchmarks/stable_ids.py [N]`` (default 1,000,000 records).  Writes
``benchmarks/results/stable_ids.json``.  Batch 2 churns the population: 1 % of records and 0.2 % of persons vanish, 2 % arrive,
0.5 % of persons merge pairwise, 0.5 % split in two.  Also times ``explain_pair`` / ``score_pairs`` on a
FEBRL-trained model (10,000 records).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _measure import measured, write_results  # noqa: E402

from ecins_link.matching.stable_ids import assign_stable_ids  # noqa: E402
from ecins_link.store import Store  # noqa: E402

RUN1 = """
SELECT 'src' || (i % 4) || ':' || i AS unique_id, 'src' || (i % 4) AS source, CAST(i AS VARCHAR) AS record_key,
       'c' || (i // 3) AS cluster_id, 0.99 AS cluster_confidence
FROM range({n}) t(i)
"""
# persons = i // 3 (3 records each).  Batch 2, with a fresh arbitrary labelling:
RUN2 = """
WITH base AS (
    SELECT i, i // 3 AS p FROM range({n}) t(i)
    WHERE i % 100 <> 7 AND (i // 3) % 500 <> 3                              -- 1 % of records, 0.2 % of persons vanish
    UNION ALL SELECT i, i // 3 FROM range({n}, {n} + {n} // 50) t(i)        -- 2 % new records
), relabelled AS (
    SELECT i,
           CASE WHEN p % 200 = 1 THEN p - 1                                   -- 0.5 % of persons merge
                WHEN p % 200 = 100 AND i % 3 = 2 THEN -p                      -- 0.5 % split
                ELSE p END AS p2
    FROM base
)
SELECT 'src' || (i % 4) || ':' || i AS unique_id, 'src' || (i % 4) AS source, CAST(i AS VARCHAR) AS record_key,
       md5(CAST(p2 AS VARCHAR)) AS cluster_id, 0.98 AS cluster_confidence
FROM relabelled
"""


def bench_stable_ids(n: int, folder: Path) -> dict:
    out: dict = {"records": n}
    with Store(folder / "ids.duckdb") as store:
        store.write_table("run_clusters", RUN1.format(n=n))
        with measured(out, "batch1_fresh_store"):
            assign_stable_ids(store, "run_clusters")
        first = store.df("SELECT unique_id, person_id FROM person_clusters")
    with Store(folder / "ids.duckdb") as store:
        store.write_table("run_clusters", RUN2.format(n=n))
        with measured(out, "batch2_with_churn"):
            assign_stable_ids(store, "run_clusters")
        out["batch2_lineage"] = dict(
            store.con.execute(
                "SELECT reason, count(*) FROM person_lineage WHERE run_id = ? GROUP BY ALL", [store.run_id]
            ).fetchall()
        )
        store.con.register("first", first)
        out["batch2_records_keeping_id_pct"] = store.con.execute(
            """SELECT round(100.0 * avg(CAST(f.person_id = p.person_id AS INT)), 2)
               FROM person_clusters p JOIN first f USING (unique_id)"""
        ).fetchone()[0]
    with Store(folder / "ids.duckdb") as store:  # same clusters again: must be a no-op for identities
        store.write_table("run_clusters", RUN2.format(n=n))
        with measured(out, "batch3_unchanged"):
            assign_stable_ids(store, "run_clusters")
        out["batch3_lineage_rows"] = store.con.execute(
            "SELECT count(*) FROM person_lineage WHERE run_id = ?", [store.run_id]
        ).fetchone()[0]
    return out


def bench_explain(folder: Path) -> dict:
    import test_explain
    from test_explain import build_linked_store

    from ecins_link.matching.explain import explain_pair, score_pairs

    test_explain.N_ENTITIES = 5000
    out: dict = {}
    path = build_linked_store(folder / "explain.duckdb")
    with Store(path) as store:
        out["person_std_rows"] = store.count("person_std")
        pairs = store.df("SELECT unique_id_l, unique_id_r FROM person_pairs")
        out["pairs"] = len(pairs)
        left, right = pairs.iloc[0]
        explain_pair(store, left, right)  # warm the term-frequency cache
        started = time.perf_counter()
        for row in pairs.head(20).itertuples():
            explain_pair(store, row.unique_id_l, row.unique_id_r)
        out["explain_pair_mean_seconds"] = round((time.perf_counter() - started) / 20, 3)
        with measured(out, "score_pairs_all"):
            score_pairs(store, pairs)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        result = {"stable_ids": bench_stable_ids(n, Path(tmp)), "explain": bench_explain(Path(tmp))}
    print(write_results("stable_ids", result))
    print(result)


if __name__ == "__main__":
    main()
