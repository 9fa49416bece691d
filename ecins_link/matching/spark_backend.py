"""The persons stage on Apache Spark (``[engine] backend = "spark"``; docs/spark.md).

Only person linkage moves: ``person_std`` is written to Parquet in ``engine.work_dir``, Spark (through
Splink's ``SparkAPI``) trains or applies the model, scores the candidate pairs and clusters them
(``spark_clusters``), and the pairs and clusters come back to the stage's private DuckDB connection as a
:class:`~ecins_link.matching.persons.ScoredPersons`.  From there the DuckDB path takes over unchanged:
one-to-one links, stable person ids, ``person_pairs``, ``linkage_models``, lineage and the audit log.

The model is always stored canonical (DuckDB SQL, ``model_dialect``): a model trained here is written back
as the DuckDB definition with the parameters trained on Spark, so the next run may apply it on either engine.
With ``linkage.retrain = false`` the last stored model (trained on either engine) scores every candidate
pair (Spark has no incremental mode: at the scale it is for, re-scoring is the cheap part).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from ecins_link.config import EngineSettings, ProjectConfig
from ecins_link.matching.model_dialect import render_settings, with_parameters
from ecins_link.matching.one_to_one import link_one_to_one
from ecins_link.matching.person_fields import column_stats, fit_to_data
from ecins_link.matching.person_model import level_weights, load_model_config, quiet_splink, settings
from ecins_link.matching.person_passes import second_look
from ecins_link.matching.person_training import TrainingError, train
from ecins_link.matching.review import load_constraints
from ecins_link.store import Store

_LATEST_TRAINED = """SELECT settings_json, run_id FROM linkage_models
    WHERE summary_json NOT LIKE '%fewer than two records%' ORDER BY created_at DESC LIMIT 1"""
# defaults for a session this module starts; anything in engine.spark_conf wins
_DEFAULT_CONF = {
    "spark.sql.shuffle.partitions": "8",  # replaced per run from the pairs bound (shuffle_partitions)
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",  # AQE: coalesces small shuffle partitions, splits skewed joins
    "spark.driver.memory": "4g",
    "spark.ui.showConsoleProgress": "false",
}
# on a local master the whole "cluster" is one JVM: the person table fits its memory, so every blocking-rule
# join and the comparison-vector joins broadcast it instead of shuffling both sides (on a real cluster the
# table may be GBs: Spark's 10 MB default stays, and AQE broadcasts only what turns out small)
_LOCAL_CONF = {"spark.sql.autoBroadcastJoinThreshold": "512m", "spark.default.parallelism": "4"}
PAIRS_PER_PARTITION = 2_000_000  # ~100-200 MB of scored pairs per partition (Splink's Spark guidance)


class SparkUnavailable(RuntimeError):
    """pyspark or a Java runtime is missing: the message says what to install."""


def _lap(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def check_spark() -> None:
    """Raise :class:`SparkUnavailable` unless pyspark and a Java runtime are installed."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable("engine.backend = 'spark' needs pyspark: pip install 'ecins-link[spark]'") from None
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and Path(java_home, "bin", "java").exists()):
        raise SparkUnavailable("engine.backend = 'spark' needs a Java 17+ runtime (e.g. apt-get install "
                               "openjdk-17-jre-headless) on the PATH or in JAVA_HOME")


def spark_session(engine: EngineSettings, work_dir: Path) -> Any:
    """The Spark session for ``engine`` (an existing one is reused, e.g. on Databricks), with Splink's
    similarity functions (jaro_winkler, damerau_levenshtein) on its classpath and a checkpoint folder."""
    check_spark()
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location

    active = SparkSession.getActiveSession()
    if active is None:
        if engine.spark_master.startswith("local"):  # Python workers run this interpreter (its packages)
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.master(engine.spark_master).appName("ecins-link persons")
        local = _LOCAL_CONF if engine.spark_master.startswith("local") else {}
        conf = {**_DEFAULT_CONF, **local, "spark.jars": similarity_jar_location(), **engine.spark_conf}
        for key, value in conf.items():
            builder = builder.config(key, value)
        active = builder.getOrCreate()
        active.sparkContext.setLogLevel("ERROR")
    active.sparkContext.setCheckpointDir(str(work_dir / "checkpoints"))
    return active


def shuffle_partitions(spark: Any, engine: EngineSettings, pairs: int) -> int:
    """Shuffle partitions for ``pairs`` candidate pairs: ``spark.sql.shuffle.partitions`` when the project
    sets it, else one per ``PAIRS_PER_PARTITION`` pairs and at least twice ``spark.default.parallelism`` (the
    executors' cores; 4 on a local master): a partition is a task, so on ``local[2]`` a few large ones beat
    Spark's 200 small ones, and on a cluster every core gets work."""
    if "spark.sql.shuffle.partitions" in engine.spark_conf:
        return int(engine.spark_conf["spark.sql.shuffle.partitions"])
    cores = int(spark.sparkContext.defaultParallelism)
    return max(2 * cores, -(-int(pairs) // PAIRS_PER_PARTITION))


def splink_api(spark: Any, engine: EngineSettings, partitions: int | None = None) -> Any:
    """Splink's SparkAPI: lineage broken as ``engine.break_lineage`` says, repartitioned after blocking into
    ``partitions`` (default: the session's ``spark.sql.shuffle.partitions``), which it also sets."""
    from splink import SparkAPI

    if partitions is None:
        partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    return SparkAPI(spark_session=spark, break_lineage_method=engine.break_lineage, repartition_after_blocking=True,
                    num_partitions_on_repartition=partitions)


def export_parquet(store: Store, table: str, path: Path, batch_rows: int = 200_000) -> int:
    """Stream a store table to one Parquet file (no SQL built from the path); returns the rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    reader = store.con.execute(f'SELECT * FROM "{table}"').fetch_record_batch(batch_rows)
    n = 0
    with pq.ParquetWriter(str(path), reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            n += batch.num_rows
    return n


def predict(spark_api: Any, persons: Any, canonical: dict) -> tuple[Any, Any]:
    """Score the candidate pairs of ``persons`` (a Spark DataFrame of person_std) with a canonical (DuckDB)
    model rendered for Spark.  Returns (linker, Spark DataFrame of pairs with match_key and gamma columns)."""
    from splink import Linker

    linker = Linker(persons, render_settings(canonical), spark_api, set_up_basic_logging=False)
    with quiet_splink():
        preds = linker.inference.predict()
    return linker, preds.as_spark_dataframe()


def train_on_spark(spark_api: Any, persons: Any, mc: dict, n_records: int,
                   allow_untrained: list[str] | None = None) -> tuple[dict, dict]:
    """Train the packaged model on Spark (no EM sampling: the rules' pairs are all used), every EM pass
    checked and undone on failure as on DuckDB (``person_training.train``).  Returns the canonical settings
    with the trained parameters, and the training summary; :class:`TrainingError` when a key comparison
    is left untrained and not in ``allow_untrained``."""
    from splink import Linker

    canonical = settings(mc).create_settings_dict("duckdb")
    linker = Linker(persons, render_settings(canonical), spark_api, set_up_basic_logging=False)
    summary = train(linker, mc, n_records=n_records, allow_untrained=allow_untrained)
    trained = linker.misc.save_model_to_json()
    summary["level_weights"] = level_weights(linker)
    return with_parameters(canonical, trained), summary


def _rule_parts(rule: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """A rule's top-level AND split into: left and right columns of its ``l.x = r.y`` conditions, and the
    conditions on one side only (``l.dob IS NULL``) as DuckDB SQL on that side's unqualified columns."""
    tree = sqlglot.parse_one(rule, read="duckdb")
    left, right, only_l, only_r = [], [], [], []
    for cond in tree.flatten() if isinstance(tree, exp.And) else [tree]:
        tables = {c.table for c in cond.find_all(exp.Column)}
        if isinstance(cond, exp.EQ) and all(isinstance(side, exp.Column) for side in (cond.this, cond.expression)) \
                and tables == {"l", "r"}:
            sides = {cond.this.table: cond.this.name, cond.expression.table: cond.expression.name}
            left.append(sides["l"])
            right.append(sides["r"])
        elif tables in ({"l"}, {"r"}):
            bare = cond.transform(lambda n: exp.column(n.name) if isinstance(n, exp.Column) else n)
            (only_l if tables == {"l"} else only_r).append(bare.sql(dialect="duckdb"))
    return left, right, only_l, only_r


def pairs_upper_bound(con: Any, table: str, rules: list[str]) -> int:
    """An upper bound on the candidate pairs, before any is generated, from the store (``con``, DuckDB): per
    rule, the ordered pairs its equality and one-sided conditions allow (group-by counts joined on the keys;
    conditions relating the two sides otherwise are ignored), summed over the rules.  Linear in the records:
    seconds at 10M, where counting the pairs themselves would take longer than Spark scoring them."""
    parts = []
    for i, rule in enumerate(rules):
        left, right, only_l, only_r = _rule_parts(rule)
        bad = [c for c in left + right if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c)]
        if bad:
            raise ValueError(f"blocking rule {rule!r}: column name(s) {bad} are not plain identifiers")
        where_l, where_r = (" AND ".join(f"({c})" for c in conds) or "TRUE" for conds in (only_l, only_r))
        if not left:  # no equality: every pair the one-sided conditions allow
            parts.append(f"""SELECT {i} AS k, (SELECT count(*) FROM "{table}" WHERE {where_l})
                                              * (SELECT count(*) FROM "{table}" WHERE {where_r}) AS n""")
            continue
        keys = ", ".join(f"k{j}" for j in range(len(left)))
        sides = []
        for cols, where in ((left, where_l), (right, where_r)):
            picked = ", ".join(f'"{c}" AS k{j}' for j, c in enumerate(cols))
            sides.append(f'SELECT {keys}, count(*) AS n FROM (SELECT {picked} FROM "{table}" WHERE {where}) '
                         f"GROUP BY ALL")
        on = " AND ".join(f"a.k{j} = b.k{j}" for j in range(len(left)))
        parts.append(f"SELECT {i} AS k, sum(a.n * b.n) AS n FROM ({sides[0]}) a JOIN ({sides[1]}) b ON {on}")
    rows = con.execute(" UNION ALL ".join(parts)).fetchall()
    return sum(int(n or 0) for _, n in rows)


def _stored_model(store: Store) -> tuple[dict, str] | None:
    if not store.has_table("linkage_models"):
        return None
    row = store.con.execute(_LATEST_TRAINED).fetchone()
    return (json.loads(row[0]), row[1]) if row else None


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:/")  # s3://, gs://, abfss://, dbfs:/ (not C:/ or a plain path)


def _nodes_query(store: Store) -> str:
    """The person records the re-weighting passes read, as the DuckDB path copies them (columns an older store
    lacks filled in: ``persons.columns_of_older_stores``)."""
    from ecins_link.matching.persons import INPUT_TABLE, columns_of_older_stores

    have = {r[0] for r in store.con.execute(f'DESCRIBE "{INPUT_TABLE}"').fetchall()}
    return f'SELECT *{columns_of_older_stores(have)} FROM "{INPUT_TABLE}"'


def work_folder(config: ProjectConfig) -> Path:
    """``engine.work_dir`` as a folder path; ``ConfigError`` for an object-store URL, which the driver's
    pyarrow hand-over and clean-up cannot use (docs/spark.md: a shared mount at the same path everywhere)."""
    from ecins_link.config import ConfigError

    if _URL.match(config.engine.work_dir):
        raise ConfigError(f"engine.work_dir = {config.engine.work_dir!r}: object-store URLs are not supported; use a "
                          "folder mounted at the same path on the driver and every executor (e.g. /Volumes/... "
                          "on Databricks, an EFS or Filestore mount on EMR / Dataproc; docs/spark.md)")
    return config.path_of(config.engine.work_dir)


def score_persons_spark(store: Store, config: ProjectConfig, model_file: str | Path | None = None) -> Any:
    """The persons stage's heavy half on Spark; returns the same ``ScoredPersons`` as the DuckDB path."""
    from ecins_link.matching.persons import INPUT_TABLE

    check_spark()
    store.require(INPUT_TABLE, stage="persons")
    if model_file is None and config.linkage.model:
        model_file = config.path_of(config.linkage.model)
    mc = load_model_config(model_file)
    work = work_folder(config) / f"run_{store.run_id}"
    try:  # the Parquet copies hold personal data: removed whatever happens
        return _score(store, config, mc, work, model_file)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _score(store: Store, config: ProjectConfig, mc: dict, work: Path, model_file: str | Path | None) -> Any:
    from ecins_link.matching.persons import INPUT_TABLE, RAW_CLUSTERS, LinkageError, ScoredPersons
    from ecins_link.matching.spark_clusters import cluster_on_spark

    lk, eng = config.linkage, config.engine
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    n_records = export_parquet(store, INPUT_TABLE, work / "person_std.parquet")
    dupes, nulls = store.con.execute(f"""SELECT count(unique_id) - count(DISTINCT unique_id),
        count(*) - count(unique_id) FROM {INPUT_TABLE}""").fetchone()
    if dupes or nulls:
        raise LinkageError(f"persons: {dupes} duplicate and {nulls} missing unique_id value(s) in {INPUT_TABLE}")
    if n_records < 2:  # nothing to distribute: the DuckDB path records an untrained model as usual
        from ecins_link.matching.persons import score_persons

        return score_persons(store, config.model_copy(update={"engine": EngineSettings()}), model_file)
    spark = spark_session(eng, work)
    api = splink_api(spark, eng)
    persons = spark.read.parquet(str(work / "person_std.parquet"))
    seconds["export_and_start"] = _lap(started)
    stored = _stored_model(store) if not lk.retrain else None
    if stored:
        model, model_run = stored
        summary: dict[str, Any] = {"mode": "fixed model", "model_run_id": model_run,
                                   "prior": model.get("probability_two_random_records_match"), "em_passes": []}
    else:
        started = time.perf_counter()
        mc = fit_to_data(mc, column_stats(store.con, INPUT_TABLE), config)  # as the DuckDB path does
        try:
            model, summary = train_on_spark(api, persons, mc, n_records, lk.allow_untrained)
        except TrainingError as err:
            raise LinkageError(str(err)) from None
        summary["mode"] = "full"
        seconds["train"] = _lap(started)
    started = time.perf_counter()
    rules = [r["blocking_rule"] if isinstance(r, dict) else r for r in model["blocking_rules_to_generate_predictions"]]
    bound = pairs_upper_bound(store.con, INPUT_TABLE, rules)
    seconds["count_candidate_pairs"] = _lap(started)
    if bound > lk.max_pairs:
        raise LinkageError(f"persons: the blocking rules' equality conditions allow up to {bound:,} pairs, above "
                           f"linkage.max_pairs ({lk.max_pairs:,}); tighten the blocking rules or raise the limit")
    partitions = shuffle_partitions(spark, eng, bound)
    started = time.perf_counter()
    linker, pairs = predict(splink_api(spark, eng, partitions), persons, model)
    per_rule = {int(r["k"]): int(r["n"]) for r in pairs.groupBy(pairs.match_key.cast("int").alias("k"))
                .count().withColumnRenamed("count", "n").collect()}
    blocking = [{"rule": r, "pairs": per_rule.get(i, 0)} for i, r in enumerate(rules)]
    total = sum(b["pairs"] for b in blocking)
    seconds["predict"] = _lap(started)
    if total > lk.max_pairs:
        raise LinkageError(f"persons: blocking scored {total:,} pairs, above linkage.max_pairs ({lk.max_pairs:,}); "
                           "tighten the blocking rules or raise the limit")
    started = time.perf_counter()
    must, cannot = load_constraints(store)
    guard = mc["guard"]
    clusters, splits = cluster_on_spark(spark, persons, pairs, lk.match_threshold, must, cannot, guard,
                                        eng.break_lineage)
    floor = min(float(guard["keep_pairs_min_probability"]), float(lk.review_band[0]), lk.one_to_one_min_probability)
    pairs.where(pairs.match_probability >= floor).select(
        "unique_id_l", "unique_id_r", "match_weight", "match_probability").write.mode("overwrite").parquet(
        str(work / "pairs"))
    clusters.write.mode("overwrite").parquet(str(work / "clusters"))
    seconds["cluster_and_guard"] = _lap(started)
    linker.table_management.delete_tables_created_by_splink_from_db()
    scratch = store.open_scratch({INPUT_TABLE: _nodes_query(store)})
    try:
        started = time.perf_counter()
        scratch.register("_spark_pairs", ds.dataset(str(work / "pairs"), format="parquet").to_table())
        scratch.register("_spark_clusters", ds.dataset(str(work / "clusters"), format="parquet").to_table())
        scratch.execute("""CREATE TABLE _pp_all AS SELECT CAST(unique_id_l AS VARCHAR) AS unique_id_l,
            CAST(unique_id_r AS VARCHAR) AS unique_id_r, match_weight, match_probability FROM _spark_pairs""")
        scratch.execute(f"""CREATE TABLE {RAW_CLUSTERS} AS SELECT unique_id, source, record_key, cluster_id,
            CAST(cluster_confidence AS DOUBLE) AS cluster_confidence FROM _spark_clusters ORDER BY unique_id""")
        scratch.unregister("_spark_pairs")
        scratch.unregister("_spark_clusters")
        seconds["read_back"] = _lap(started)
        started = time.perf_counter()
        # the same re-weighting passes as the DuckDB path, over the pairs read back (person_passes)
        passes, again = second_look(scratch, INPUT_TABLE, "_pp_all", RAW_CLUSTERS, threshold=lk.match_threshold,
                                    review_low=float(lk.review_band[0]), settings=model, mc=mc, must=must,
                                    cannot=cannot, guard=guard)
        summary.update(passes)
        splits = splits if again is None else again
        one_to_one = link_one_to_one(scratch, RAW_CLUSTERS, "_pp_all", lk.one_to_one_sources,
                                     lk.one_to_one_min_probability, cannot)
        seconds["second_look"] = _lap(started)
    except BaseException:
        scratch.close()
        raise
    summary.update(blocking=blocking, candidate_pairs=total, candidate_pairs_upper_bound=bound, engine="spark",
                   shuffle_partitions=partitions,
                   spark_master=eng.spark_master,
                   seconds={**summary.get("seconds", {}), **seconds})
    counts = {"records": n_records, "splits": splits, "must_link": len(must), "cannot_link": len(cannot),
              "one_to_one_links": one_to_one, "scored_pairs": total}
    return ScoredPersons(scratch, model, summary, counts, mc)
