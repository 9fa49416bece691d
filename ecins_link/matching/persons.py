"""The persons stage: link every person record (all sources) into people.

``link_persons(store, config)`` is two halves.  :func:`score_persons` only reads the store: it copies
``person_std`` into a private in-memory DuckDB connection (``Store.open_scratch``: Splink's large intermediate
tables are read at about half speed from a stage transaction's local storage) and there

1. builds the Splink model (``person_model``), checks the number of candidate pairs against
   ``config.linkage.max_pairs``, trains it without labels and scores the pairs;
2. clusters at ``config.linkage.match_threshold`` applying clerical must-link / cannot-link decisions and the
   over-merge guard (``person_clusters``), then one-to-one links (``one_to_one``).

The stage transaction then

3. hands the clusters to ``stable_ids.assign_stable_ids`` (person ids stable across batches);
4. writes ``person_pairs`` (pairs with probability >= ``guard.keep_pairs_min_probability``),
   appends ``cluster_splits`` and ``linkage_models`` (settings JSON with trained m/u + training summary,
   with seconds per step), ``person_link_state`` (a hash per record) and one audit row with counts only.

``ecins_link.pipeline.run_stages`` runs the first half alongside the locations stage (``project.overlap_stages``).

With ``config.linkage.retrain = false`` (and an earlier linkage in the store) step 1 is predict-only: the
last trained model scores just the pairs that involve a new or changed record (hash differs from
``person_link_state``); the earlier run's kept pairs between unchanged records are carried over, then
clustering and stable ids run over all records as usual.  Carried-over pairs are those kept in
``person_pairs``, which holds every scored pair inside a group of records joined at the threshold, so the guard's
negative-pair check and side evidence see what the full run saw (DOB contradictions are checked on all records as
always).  A carried pair restarts from the model's own score (``person_pairs.model_weight`` /
``model_probability``), and the steps after the first clustering (``person_passes``) weigh it again, as in a full
run: before, a carried pair kept the score those steps had left and they applied again on every incremental run.
Retrain periodically (the default) as the data drift.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from ecins_link.config import ProjectConfig
from ecins_link.matching.one_to_one import link_one_to_one
from ecins_link.matching.person_clusters import cluster
from ecins_link.matching.person_fields import column_stats, fit_to_data, table_columns
from ecins_link.matching.person_labels import calibrate, learn_m_from_labels
from ecins_link.matching.person_model import (
    level_weights,
    load_model_config,
    make_linker,
    quiet_splink,
)
from ecins_link.matching.person_pairs_kept import kept_pairs
from ecins_link.matching.person_passes import second_look
from ecins_link.matching.person_training import ALIAS, TrainingError, alias_columns, train
from ecins_link.matching.review import load_constraints
from ecins_link.matching.stable_ids import assign_stable_ids
from ecins_link.store import Store, StoreError

INPUT_TABLE = "person_std"
RAW_CLUSTERS = "person_clusters_raw"
STATE_TABLE = "person_link_state"  # unique_id, record_hash of the records the last run linked
_TRAINED = "summary_json NOT LIKE '%fewer than two records%'"  # linkage_models rows with a trained model
log = logging.getLogger(__name__)

_SPLITS_DDL = """CREATE TABLE IF NOT EXISTS cluster_splits (
    run_id VARCHAR, person_id VARCHAR, reason VARCHAR, n_records INTEGER)"""
_MODELS_DDL = """CREATE TABLE IF NOT EXISTS linkage_models (
    run_id VARCHAR, created_at TIMESTAMP, settings_json VARCHAR, summary_json VARCHAR)"""


class LinkageError(StoreError):
    """The persons stage cannot run safely (e.g. blocking would generate too many pairs)."""


def rule_pair_counts(con: duckdb.DuckDBPyConnection, rules: list[str], table: str = INPUT_TABLE) -> list[int]:
    """Pairs each rule generates on its own (without excluding pairs an earlier rule found)."""
    if not rules:
        return []
    parts = [f'SELECT {i} AS k, count(*) AS n FROM "{table}" l JOIN "{table}" r ON ({rule}) '
             f'AND l.unique_id < r.unique_id' for i, rule in enumerate(rules)]
    got = dict(con.execute(" UNION ALL ".join(parts)).fetchall())
    return [int(got.get(i, 0)) for i in range(len(rules))]


def candidate_pairs_upper_bound(con: duckdb.DuckDBPyConnection, rules: list[str], table: str = INPUT_TABLE) -> int:
    """Sum of the pairs each rule generates on its own (pairs found by several rules counted each time): an
    upper bound on the candidate pairs, cheaper than ``count_candidate_pairs`` (no exclusion of earlier rules)."""
    return sum(rule_pair_counts(con, rules, table))


def count_candidate_pairs(con: duckdb.DuckDBPyConnection, rules: list[str], table: str = INPUT_TABLE) -> list[dict]:
    """Pairs each prediction blocking rule adds (after the earlier rules), without generating them."""
    from splink import DuckDBAPI
    from splink.blocking_analysis import cumulative_comparisons_to_be_scored_from_blocking_rules_data

    df = cumulative_comparisons_to_be_scored_from_blocking_rules_data(
        table_or_tables=table, blocking_rules=rules, link_type="dedupe_only",
        db_api=DuckDBAPI(connection=con), unique_id_column_name="unique_id")
    return [{"rule": r, "pairs": int(n)} for r, n in zip(df["blocking_rule"], df["row_count"], strict=True)]


def _drop_splink_tables(store: Store) -> None:
    rows = store.con.execute("""SELECT table_name, table_type FROM information_schema.tables
                                WHERE starts_with(table_name, '__splink__')""").fetchall()
    for name, kind in rows:
        store.con.execute(f'DROP {"VIEW" if kind == "VIEW" else "TABLE"} IF EXISTS "{name}"')


def _lap(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _score(con: duckdb.DuckDBPyConnection, mc: dict, max_pairs: int, n_records: int,
           allow_untrained: list[str] | None = None, labels: tuple[list, list] = ([], [])) -> tuple[dict, dict]:
    """Train and predict on ``con`` (holding ``person_std``); leaves all scored pairs in table ``_pp_all``.
    Returns (settings, summary)."""
    started = time.perf_counter()
    counts = rule_pair_counts(con, list(mc["blocking"]["predict"]))
    # Splink drops a rule's pairs that an earlier rule found by testing every earlier rule on each of them:
    # the rules that generate most pairs go first (same pairs, fewer tests; 250k town: blocking 3.2 -> 2.5 s)
    rules = [r for _, r in sorted(zip(counts, mc["blocking"]["predict"], strict=True), key=lambda x: -x[0])]
    mc = {**mc, "blocking": {**mc["blocking"], "predict": rules}}
    if sum(counts) > max_pairs:  # only then count exactly (slower)
        total = sum(b["pairs"] for b in count_candidate_pairs(con, rules))
        if total > max_pairs:
            raise LinkageError(f"persons: blocking would score {total:,} pairs, above linkage.max_pairs "
                               f"({max_pairs:,}); tighten the blocking rules or raise the limit")
    count_seconds = _lap(started)
    linker = make_linker(con, INPUT_TABLE, mc)
    try:
        summary = train(linker, mc, n_records=n_records, con=con, table=INPUT_TABLE, allow_untrained=allow_untrained)
    except TrainingError as err:
        raise LinkageError(str(err)) from None
    must, cannot = labels
    lab = mc.get("labels", {})
    min_each = int(lab.get("min_each", 20))
    if must or cannot:
        summary["labels"] = {"match": len(must), "non_match": len(cannot)}
        if lab.get("m_from_labels", True):
            summary["labels"]["m_from_labels"] = learn_m_from_labels(linker, con, must, mc, min_each)
    started = time.perf_counter()
    with quiet_splink():
        preds = linker.inference.predict()
    con.execute(f"""CREATE OR REPLACE TABLE _pp_all AS
        SELECT unique_id_l, unique_id_r, match_weight, match_probability, match_key FROM {preds.physical_name}""")
    if (must or cannot) and lab.get("calibrate", True):
        summary["calibration"] = calibrate(con, "_pp_all", must, cannot, min_each)
        if not summary["calibration"]["used"]:
            summary.setdefault("warnings", []).append(
                f"persons: no calibration from clerical labels: {summary['calibration']['reason']}")
    # pairs each rule added after the earlier ones (Splink's match_key = index of the first rule that found it)
    per_rule = dict(con.execute("SELECT CAST(match_key AS INT), count(*) FROM _pp_all GROUP BY 1").fetchall())
    blocking = [{"rule": r, "pairs": int(per_rule.get(i, 0))} for i, r in enumerate(rules)]
    total = sum(b["pairs"] for b in blocking)
    summary["seconds"] = {"count_candidate_pairs": count_seconds, **summary.get("seconds", {}),
                          "predict": _lap(started)}
    settings = linker.misc.save_model_to_json()
    summary.update(blocking=blocking, candidate_pairs=total, level_weights=level_weights(linker))
    linker.table_management.delete_tables_created_by_splink_from_db()
    return settings, summary


def _diagnostics(summary: dict, mc: dict, n_people: int) -> None:
    """The run-diagnostics keys of ``linkage_models.summary_json`` (read by the run summary):
    trained / untrained comparisons, dropped fields, candidate pairs, clusters, warnings."""
    names = list(mc.get("comparisons") or [])
    summary.setdefault("trained_comparisons", [] if summary.get("mode") != "incremental" else names)
    summary.setdefault("untrained_comparisons", [] if summary.get("mode") != "incremental" else [])
    summary["dropped_fields"] = mc.get("dropped_fields", [])
    summary["dropped_rules"] = mc.get("dropped_rules", [])
    summary["candidate_pairs"] = int(summary.get("candidate_pairs", 0) or 0)
    summary["clusters"] = n_people
    warnings = summary.setdefault("warnings", [])
    for d in summary["dropped_fields"]:
        if d["field"] in ("forename", "surname", "dob") or d.get("mapped"):
            warnings.append(f"persons: field '{d['field']}' dropped from the model: {d['reason']}")
    for w in warnings:
        log.warning(w)


def _record_hashes(table: str = INPUT_TABLE) -> str:
    """SQL: ``(unique_id, record_hash)`` of every record -- any change to any field changes the hash."""
    return f'SELECT unique_id, md5(CAST(t AS VARCHAR)) AS record_hash FROM "{table}" t'


def _can_increment(store: Store) -> bool:
    return all(store.has_table(t) for t in ("linkage_models", STATE_TABLE, "person_pairs", "person_id_registry")) \
        and store.count(STATE_TABLE) > 0 and bool(store.con.execute(
            f"SELECT count(*) FROM linkage_models WHERE {_TRAINED}").fetchone()[0])


def _score_incremental(store: Store, scratch: duckdb.DuckDBPyConnection, max_pairs: int) -> tuple[dict, dict]:
    """Predict-only: the last trained model scores (on ``scratch``) only pairs that involve a new or changed
    record; the previous run's kept pairs between unchanged records are carried over.  Leaves ``_pp_all`` in
    ``scratch``."""
    from splink import DuckDBAPI, Linker

    con = store.con
    row = con.execute(f"""SELECT settings_json, run_id, summary_json FROM linkage_models WHERE {_TRAINED}
                          ORDER BY created_at DESC LIMIT 1""").fetchone()
    settings, model_run = json.loads(row[0]), row[1]
    started = time.perf_counter()
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _pp_delta AS SELECT h.unique_id FROM ({_record_hashes()}) h
        LEFT JOIN {STATE_TABLE} s USING (unique_id) WHERE s.record_hash IS DISTINCT FROM h.record_hash""")
    # a carried pair restarts from the model's own score: the steps after the first clustering run again over all
    # pairs, and must not apply twice (a store written before model_weight existed carries what it has)
    kept = table_columns(con, "person_pairs")
    carried = ("model_weight AS match_weight, model_probability AS match_probability"
               if {"model_weight", "model_probability"} <= kept else "match_weight, match_probability")
    copies = {"_pp_input": f"""SELECT p.*, d.unique_id IS NOT NULL AS _delta
                               FROM "{INPUT_TABLE}" p LEFT JOIN _pp_delta d USING (unique_id)""",
              "_pp_carried": f"""SELECT unique_id_l, unique_id_r, {carried} FROM person_pairs
                                WHERE unique_id_l IN (SELECT unique_id FROM person_std)
                                  AND unique_id_r IN (SELECT unique_id FROM person_std)
                                  AND unique_id_l NOT IN (SELECT unique_id FROM _pp_delta)
                                  AND unique_id_r NOT IN (SELECT unique_id FROM _pp_delta)"""}
    store.copy_to(scratch, copies)
    n_delta = store.count("_pp_delta")
    con.execute("DROP TABLE IF EXISTS _pp_delta")
    rules = [r["blocking_rule"] if isinstance(r, dict) else r for r in settings["blocking_rules_to_generate_predictions"]]
    # each rule twice, the delta side first, so the database filters to the few delta records before the join
    delta_rules = [f"{side}._delta AND ({r})" for r in rules for side in ("l", "r")]
    seconds = {"find_changed": _lap(started)}
    started = time.perf_counter()
    bound = candidate_pairs_upper_bound(scratch, delta_rules, table="_pp_input")
    seconds["count_candidate_pairs"] = _lap(started)
    started = time.perf_counter()
    if bound > max_pairs:
        raise LinkageError(f"persons (incremental): up to {bound:,} pairs, above linkage.max_pairs ({max_pairs:,})")
    run_settings = {**settings, "blocking_rules_to_generate_predictions": delta_rules}
    run_settings.pop("linker_uid", None)
    linker = Linker("_pp_input", run_settings, DuckDBAPI(connection=scratch), set_up_basic_logging=False)
    with quiet_splink():
        preds = linker.inference.predict()
    scratch.execute(f"""CREATE OR REPLACE TABLE _pp_all AS
        SELECT unique_id_l, unique_id_r, match_weight, match_probability FROM _pp_carried
        UNION ALL
        SELECT unique_id_l, unique_id_r, match_weight, match_probability FROM {preds.physical_name}""")
    n_new = int(scratch.execute(f"SELECT count(*) FROM {preds.physical_name}").fetchone()[0])
    calibration = json.loads(row[2] or "{}").get("calibration", {})
    if calibration.get("used"):  # the model's calibration from clerical labels applies to its fresh pairs
        scratch.execute(f"""UPDATE _pp_all SET match_probability = 1.0 / (1.0 + exp(-(? * match_weight + ?)))
            WHERE (unique_id_l, unique_id_r) IN (SELECT unique_id_l, unique_id_r FROM {preds.physical_name})""",
                        [calibration["slope"], calibration["intercept"]])
    linker.table_management.delete_tables_created_by_splink_from_db()
    scratch.execute("DROP TABLE _pp_input; DROP TABLE _pp_carried")
    summary = {"mode": "incremental", "model_run_id": model_run, "new_or_changed_records": n_delta,
               "candidate_pairs": n_new, "prior": settings.get("probability_two_random_records_match"),
               "em_passes": [], "seconds": {**seconds, "predict": _lap(started)}}
    return settings, summary


@dataclass
class ScoredPersons:
    """What :func:`score_persons` hands to :func:`link_persons`: the scored pairs (``_pp_all``) and raw
    clusters (``RAW_CLUSTERS``) on a private in-memory connection, the model settings and training summary."""

    scratch: duckdb.DuckDBPyConnection
    settings: dict
    summary: dict
    counts: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)

    def close(self) -> None:
        """Release the in-memory connection."""
        self.scratch.close()


def columns_of_older_stores(have: set[str]) -> str:
    """SQL select-list additions (each starting ``, ``) for the ``person_std`` columns a store standardised by an
    older version lacks, given the columns it ``have``: ``address_surnames`` (before the household link) as NULL,
    ``surname_forename_canonical`` (before names in the other order were read as forenames) as the surname."""
    extra = "" if "address_surnames" in have else ", CAST(NULL AS VARCHAR) AS address_surnames"
    return extra + ("" if "surname_forename_canonical" in have else ", surname AS surname_forename_canonical")


def score_persons(store: Store, config: ProjectConfig, model_file: str | Path | None = None) -> ScoredPersons:
    """The persons stage's heavy half, read-only on the store: copy ``person_std`` to an in-memory
    connection, train and score pairs there (or, with ``linkage.retrain = false``, score only pairs touching
    new or changed records), cluster with the clerical decisions and the guard, and link one-to-one sources.
    ``store`` may be a :meth:`Store.reader` handle, so this can run while another stage writes the store."""
    if config.engine.backend == "spark":  # scoring and clustering on Spark (docs/spark.md); the rest as below
        from ecins_link.matching.spark_backend import score_persons_spark

        return score_persons_spark(store, config, model_file)
    store.require(INPUT_TABLE, stage="persons")
    if model_file is None and config.linkage.model:
        model_file = config.path_of(config.linkage.model)
    mc = load_model_config(model_file)
    lk, guard = config.linkage, mc["guard"]
    n_records = store.count(INPUT_TABLE)
    dupes, nulls = store.con.execute(f"""SELECT count(unique_id) - count(DISTINCT unique_id),
        count(*) - count(unique_id) FROM {INPUT_TABLE}""").fetchone()
    if dupes or nulls:
        raise LinkageError(f"persons: {dupes} duplicate and {nulls} missing unique_id value(s) in {INPUT_TABLE}")
    # training-only copies of the columns fallback EM passes block on (person_training.alias_rule)
    have = {r[0] for r in store.con.execute(f'DESCRIBE "{INPUT_TABLE}"').fetchall()}
    copies = "".join(f', "{c}" AS "{ALIAS}{c}"' for c in alias_columns(mc["blocking"].get("train_fallback", []))
                     if c in have)
    copies += columns_of_older_stores(have)
    scratch = store.open_scratch({INPUT_TABLE: f'SELECT *{copies} FROM "{INPUT_TABLE}"'})
    try:
        if n_records >= 2:
            mc = fit_to_data(mc, column_stats(scratch, INPUT_TABLE), config)
        if n_records >= 2 and not lk.retrain and _can_increment(store):
            settings, summary = _score_incremental(store, scratch, lk.max_pairs)
        elif n_records >= 2:
            settings, summary = _score(scratch, mc, lk.max_pairs, n_records, lk.allow_untrained,
                                       load_constraints(store))
            summary["mode"] = "full"
        else:  # nothing to compare: an untrained model keeps linkage_models/explain consistent
            scratch.execute("""CREATE TABLE _pp_all (unique_id_l VARCHAR, unique_id_r VARCHAR,
                               match_weight DOUBLE, match_probability DOUBLE)""")
            linker = make_linker(scratch, INPUT_TABLE, mc)  # untrained priors: explain still has a model
            settings, summary = linker.misc.save_model_to_json(), {"note": "fewer than two records; not trained"}
        seconds = summary.setdefault("seconds", {})
        started = time.perf_counter()
        must, cannot = load_constraints(store)
        splits = cluster(scratch, INPUT_TABLE, "_pp_all", lk.match_threshold, must, cannot, guard, RAW_CLUSTERS)
        # the re-weighting passes over the first clustering, then clustering again (person_passes)
        passes, again = second_look(scratch, INPUT_TABLE, "_pp_all", RAW_CLUSTERS, threshold=lk.match_threshold,
                                    review_low=float(lk.review_band[0]), settings=settings, mc=mc, must=must,
                                    cannot=cannot, guard=guard)
        summary.update(passes)
        splits = splits if again is None else again
        one_to_one = link_one_to_one(scratch, RAW_CLUSTERS, "_pp_all", lk.one_to_one_sources,
                                     lk.one_to_one_min_probability, cannot)
        seconds["cluster_and_guard"] = _lap(started)
        counts = {"records": n_records, "splits": splits, "must_link": len(must), "cannot_link": len(cannot),
                  "one_to_one_links": one_to_one,
                  "scored_pairs": int(scratch.execute("SELECT count(*) FROM _pp_all").fetchone()[0])}
    except BaseException:
        scratch.close()
        raise
    return ScoredPersons(scratch, settings, summary, counts, mc)


def link_persons(store: Store, config: ProjectConfig, model_file: str | Path | None = None,
                 scored: ScoredPersons | None = None) -> None:
    """Stage entry point: person_std -> person_pairs, person_clusters (+ registry, lineage), cluster_splits,
    linkage_models.  ``model_file`` overrides the packaged ``person_model.toml``.  ``scored``: the result of
    :func:`score_persons` already run (e.g. alongside the locations stage); it is closed here."""
    try:
        if scored is None:
            scored = score_persons(store, config, model_file)
        _write_persons(store, config, scored)
    finally:
        if scored is not None:
            scored.close()


def _write_persons(store: Store, config: ProjectConfig, scored: ScoredPersons) -> None:
    """The persons stage's transaction: kept pairs, stable ids, splits, model and state from ``scored``."""
    lk, guard = config.linkage, scored.model["guard"]
    settings, summary, counts = scored.settings, scored.summary, scored.counts
    splits, n_records, seconds = counts["splits"], counts["records"], summary["seconds"]
    with store.stage("persons"):
        _drop_splink_tables(store)  # left by versions that ran Splink on the store itself
        started = time.perf_counter()
        keep = min(float(guard["keep_pairs_min_probability"]), float(lk.review_band[0]))
        n_pairs = store.write_table("person_pairs", kept_pairs(scored.scratch, INPUT_TABLE, keep, float(lk.match_threshold)))
        store.con.register("_pp_raw", scored.scratch.execute(f"SELECT * FROM {RAW_CLUSTERS}").to_arrow_table())
        store.con.execute(f"CREATE OR REPLACE TEMP TABLE {RAW_CLUSTERS} AS SELECT * FROM _pp_raw")
        store.con.unregister("_pp_raw")
        seconds["write_pairs"] = _lap(started)
        started = time.perf_counter()
        assign_stable_ids(store, RAW_CLUSTERS)
        seconds["stable_ids"] = _lap(started)
        started = time.perf_counter()
        store.con.execute(_SPLITS_DDL)
        if splits:  # one set-based insert: each piece's person id is the smallest id among its records
            store.con.register("_pp_splits", pd.DataFrame(splits, columns=["cluster_id", "reason", "n_records"]))
            store.con.execute(f"""INSERT INTO cluster_splits
                SELECT ?, min(pc.person_id), any_value(s.reason), any_value(s.n_records)
                FROM _pp_splits s JOIN {RAW_CLUSTERS} r ON r.cluster_id = s.cluster_id
                JOIN person_clusters pc USING (unique_id) GROUP BY s.cluster_id ORDER BY 2""", [store.run_id])
            store.con.unregister("_pp_splits")
        n_people, n_multi = store.con.execute("""SELECT count(DISTINCT person_id),
            count(DISTINCT person_id) FILTER (WHERE person_id IN
                (SELECT person_id FROM person_clusters GROUP BY person_id HAVING count(*) > 1))
            FROM person_clusters""").fetchone()
        _diagnostics(summary, scored.model, n_people)
        summary.update(input_table=INPUT_TABLE, match_threshold=lk.match_threshold, records=n_records,
                       persons=n_people, multi_record_persons=n_multi, scored_pairs=counts["scored_pairs"],
                       kept_pairs=n_pairs, must_link=counts["must_link"], cannot_link=counts["cannot_link"],
                       guard_pieces=len(splits), guard=guard, one_to_one_links=counts["one_to_one_links"])
        seconds["write_splits_and_counts"] = _lap(started)
        store.con.execute(_MODELS_DDL)
        store.con.execute("INSERT INTO linkage_models VALUES (?, ?, ?, ?)",
                          [store.run_id, dt.datetime.now(), json.dumps(settings), json.dumps(summary, default=str)])
        store.write_table(STATE_TABLE, _record_hashes())  # what the next incremental run compares against
        store.con.execute(f"DROP TABLE IF EXISTS {RAW_CLUSTERS}")
        store.audit("combination", "link_persons",
                    details={"match_threshold": lk.match_threshold, "candidate_pairs": summary.get("candidate_pairs", 0),
                             "em_passes_failed": sum(1 for p in summary.get("em_passes", []) if not p["ok"]),
                             "guard_pieces": len(splits)},
                    row_counts={"person_std": n_records, "person_pairs": n_pairs, "persons": n_people,
                                "cluster_splits": len(splits)})
        log.info("persons: %d records -> %d persons (%d pairs kept, %d guard pieces)",
                 n_records, n_people, n_pairs, len(splits))
