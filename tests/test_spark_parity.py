"""Person linkage on Spark against DuckDB (docs/spark.md): the sample town through both backends with one model.

The model is the one the sample run trained on DuckDB (``linkage_models``), applied unchanged on Spark
(``local[2]``) -- so this is also "a model trained on one engine applied on the other".  Compared:

* candidate pairs: the same set (blocking rules are equality tests, identical on both engines);
* comparison levels (gamma values) pair by pair: every difference must be explained by the two engines'
  Jaro-Winkler functions, i.e. a Jaro-Winkler term of that comparison whose DuckDB and Spark values lie on
  different sides of one of its thresholds.  The count of differing pairs is printed;
* clusters after the guard: pairwise F1 between the two clusterings >= 0.995;
* ``ecins-link run`` (persons, graph, score, report) with ``backend = "spark"``: the persons tables' contract,
  and an output folder with every file the DuckDB run wrote, with the same columns.

Needs pyspark and a Java runtime (``pip install -e '.[spark]'``, .ci/run installs both); skips cleanly without.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

pytestmark = [pytest.mark.slow, pytest.mark.spark]
pytest.importorskip("pyspark")
if not shutil.which("java"):
    pytest.skip("no Java runtime (needed by Spark)", allow_module_level=True)

from ecins_link.config import EngineSettings  # noqa: E402
from ecins_link.matching.metrics import pairwise_metrics  # noqa: E402
from ecins_link.matching.spark_backend import export_parquet, predict, spark_session, splink_api  # noqa: E402
from ecins_link.store import Store  # noqa: E402

SPARK_CONF = {"spark.sql.shuffle.partitions": "4"}
SEP = "\x1f"  # between the two ids of a pair key (a record key may hold '|')


@pytest.fixture(scope="module")
def both(sample_run, tmp_path_factory):  # noqa: ANN001, ANN201
    """The sample town's candidate pairs scored by both engines with the model the sample run trained."""
    from splink import DuckDBAPI, Linker

    work = tmp_path_factory.mktemp("spark_parity")
    store = Store(sample_run.store_path, read_only=True)
    try:
        model = json.loads(store.con.execute("""SELECT settings_json FROM linkage_models
                                                 ORDER BY created_at DESC LIMIT 1""").fetchone()[0])
        model.update(retain_intermediate_calculation_columns=True, retain_matching_columns=True)  # keep the levels
        export_parquet(store, "person_std", work / "person_std.parquet")
        people = store.con.execute("SELECT * FROM person_std").df()
    finally:
        store.close()
    con = duckdb.connect()
    con.register("_people", people)
    con.execute("CREATE TABLE person_std AS SELECT * FROM _people")
    linker = Linker("person_std", {**model, "linker_uid": None}, DuckDBAPI(connection=con), set_up_basic_logging=False)
    duck = linker.inference.predict().as_pandas_dataframe()
    con.close()
    engine = EngineSettings(spark_master="local[2]", spark_conf=SPARK_CONF, break_lineage="persist")
    spark = spark_session(engine, work)
    persons = spark.read.parquet(str(work / "person_std.parquet"))
    _, pairs = predict(splink_api(spark, engine), persons, model)
    return {"model": model, "people": people.set_index("unique_id"), "duck": duck, "spark": pairs.toPandas(),
            "session": spark}


@pytest.fixture(scope="module")
def spark_run(sample_run, tmp_path_factory):  # noqa: ANN001, ANN201
    """A copy of the sample run whose persons stage ran again with ``backend = "spark"`` and the stored
    (DuckDB-trained) model, through the CLI (``ecins-link run --stage persons --stage graph --stage score
    --stage report``, a child process as a user runs it); returns (copy, DuckDB clusters before)."""
    run = sample_run.copy(tmp_path_factory.mktemp("spark_run") / "town")
    text = run.project.read_text(encoding="utf-8")
    assert "[linkage]\n" in text
    text = text.replace("[linkage]\n", "[linkage]\nretrain = false\n", 1)
    text += '\n[engine]\nbackend = "spark"\nspark_master = "local[2]"\nwork_dir = "spark_work"\n' \
            '[engine.spark_conf]\n"spark.sql.shuffle.partitions" = "4"\n'
    run.project.write_text(text, encoding="utf-8")
    store = Store(run.store_path, read_only=True)
    before = store.con.execute("SELECT unique_id, person_id FROM person_clusters").df()
    store.close()
    shutil.rmtree(run.out_dir)
    args = [sys.executable, "-m", "ecins_link", "run", str(run.project), "--out", str(run.out_dir), "--user", "tester"]
    for stage in ("persons", "graph", "score", "report"):
        args += ["--stage", stage]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return run, before


def _key(df: pd.DataFrame) -> pd.Series:
    return df["unique_id_l"].astype(str) + SEP + df["unique_id_r"].astype(str)


def _jw_terms(model: dict) -> dict[str, list[tuple[str, str, float]]]:
    """Per comparison: the Jaro-Winkler terms of its levels as (left column, right column, threshold)."""
    out: dict[str, list[tuple[str, str, float]]] = {}
    for comp in model["comparisons"]:
        terms = out.setdefault(comp["output_column_name"], [])
        for level in comp["comparison_levels"]:
            if level["sql_condition"].strip().upper() == "ELSE":
                continue
            tree = sqlglot.parse_one(level["sql_condition"], read="duckdb")
            for jw in tree.find_all(exp.JarowinklerSimilarity):
                parent = jw.parent
                if isinstance(parent, (exp.GTE, exp.GT, exp.LT, exp.LTE)):
                    terms.append((jw.this.name, jw.expression.name, float(parent.expression.name)))
    return out


def test_candidate_pairs_and_levels_agree_up_to_jaro_winkler(both) -> None:  # noqa: ANN001
    duck, spark = both["duck"], both["spark"]
    assert len(duck) > 1000  # the sample town has ~5k candidate pairs: a real comparison, not an empty one
    duck = duck.set_index(_key(duck))
    spark = spark.set_index(_key(spark))
    assert set(duck.index) == set(spark.index), "the engines generated different candidate pairs"
    gammas = [c for c in duck.columns if c.startswith("gamma_")]
    assert gammas and set(gammas) <= set(spark.columns)
    spark = spark.loc[duck.index]
    differ = (duck[gammas].astype(int).values != spark[gammas].astype(int).values)
    terms = _jw_terms(both["model"])
    people, session = both["people"], both["session"]
    to_explain = []  # (pair key, comparison, left value, right value, threshold)
    for i, key in enumerate(duck.index):
        for j in differ[i].nonzero()[0]:
            comp = gammas[j].removeprefix("gamma_")
            assert terms[comp], f"pair {key}: comparison {comp} differs and uses no Jaro-Winkler term"
            l_id, r_id = key.split(SEP)
            for left, right, t in terms[comp]:
                lv = people.at[l_id, re.sub(r"_l$", "", left)] if left.endswith("_l") else people.at[r_id, left[:-2]]
                rv = people.at[r_id, re.sub(r"_r$", "", right)] if right.endswith("_r") else people.at[l_id, right[:-2]]
                to_explain.append((key, comp, lv, rv, t))
    explained: set[tuple[str, str]] = set()
    if to_explain:
        vals = pd.DataFrame(to_explain, columns=["key", "comp", "a", "b", "t"]).dropna()
        vals["duck"] = [duckdb.execute("SELECT jaro_winkler_similarity(?, ?)", [a, b]).fetchone()[0]
                        for a, b in zip(vals.a, vals.b, strict=True)]
        sdf = session.createDataFrame(vals[["a", "b"]].drop_duplicates())
        sdf.createOrReplaceTempView("_jw")
        spark_jw = session.sql("SELECT a, b, jaro_winkler(a, b) AS s FROM _jw").toPandas()
        vals = vals.merge(spark_jw, on=["a", "b"])
        crosses = (vals.duck >= vals.t) != (vals.s >= vals.t)
        explained = set(zip(vals.key[crosses], vals.comp[crosses], strict=True))
    differing = {(key, gammas[j].removeprefix("gamma_")) for i, key in enumerate(duck.index)
                 for j in differ[i].nonzero()[0]}
    n_pairs = int(differ.any(axis=1).sum())
    jw = _jaro_winkler_both(session, people, duck.index)
    print(f"\nspark parity: {len(duck)} candidate pairs on both engines; Jaro-Winkler differs (> 1e-9) for "
          f"{int((jw.d - jw.s).abs().gt(1e-9).sum())} of {len(jw)} distinct name pairs compared (max "
          f"{(jw.d - jw.s).abs().max():.3f}); {n_pairs} pair(s) with a different comparison level "
          f"({len(differing)} pair-comparisons), {len(differing & explained)} explained by that difference")
    assert differing <= explained, f"level differences not explained by Jaro-Winkler: {sorted(differing - explained)[:5]}"
    weights_close = (duck.match_weight - spark.match_weight).abs() < 1e-6
    assert weights_close[~differ.any(axis=1)].all(), "pairs with the same levels scored different match weights"


def _jaro_winkler_both(session, people: pd.DataFrame, keys: pd.Index) -> pd.DataFrame:  # noqa: ANN001
    """Both engines' Jaro-Winkler of the forenames and surnames of every candidate pair, and BERT / ROBERT."""
    ids = pd.DataFrame([k.split(SEP) for k in keys], columns=["l", "r"])
    names = pd.concat([pd.DataFrame({"a": people.loc[ids.l, col].values, "b": people.loc[ids.r, col].values})
                       for col in ("forename", "surname")]).dropna().drop_duplicates()
    names = pd.concat([names, pd.DataFrame({"a": ["BERT"], "b": ["ROBERT"]})], ignore_index=True)
    con = duckdb.connect()
    con.register("_n", names)
    names = con.execute("SELECT a, b, jaro_winkler_similarity(a, b) AS d FROM _n").df()
    con.close()
    session.createDataFrame(names[["a", "b"]]).createOrReplaceTempView("_n")
    names = names.merge(session.sql("SELECT a, b, jaro_winkler(a, b) AS s FROM _n").toPandas(), on=["a", "b"])
    bert = names[(names.a == "BERT") & (names.b == "ROBERT")].iloc[0]
    # the documented difference (docs/spark.md): if Splink's jar changes, this says so
    assert round(bert.d, 3) == 0.806 and round(bert.s, 3) == 0.764
    return names


def test_clusters_agree(spark_run) -> None:  # noqa: ANN001
    run, duck = spark_run
    store = Store(run.store_path, read_only=True)
    try:
        spark = store.con.execute("SELECT unique_id, person_id FROM person_clusters").df()
        pieces = store.con.execute("SELECT run_id, count(*) FROM cluster_splits GROUP BY 1 ORDER BY 1").fetchall()
    finally:
        store.close()
    assert sorted(duck.unique_id) == sorted(spark.unique_id)
    agreement = pairwise_metrics(spark, duck)
    print(f"\nspark parity: cluster agreement pairwise F1 {agreement['f1']:.4f} "
          f"({agreement['predicted_pairs']} vs {agreement['true_pairs']} within-cluster pairs); "
          f"guard pieces per run {pieces}")
    assert agreement["true_pairs"] > 500
    assert agreement["f1"] >= 0.995
    assert len(pieces) == 2 and abs(pieces[0][1] - pieces[1][1]) <= 2  # the guard split the same few clusters


def test_run_with_spark_backend_keeps_the_output_contract(sample_run, spark_run) -> None:  # noqa: ANN001
    run, _ = spark_run
    store = Store(run.store_path, read_only=True)
    try:
        con = store.con
        cols = [r[0] for r in con.execute("DESCRIBE person_clusters").fetchall()]
        assert cols[:5] == ["unique_id", "source", "record_key", "person_id", "cluster_confidence"]
        assert [r[0] for r in con.execute("DESCRIBE person_pairs").fetchall()] == \
            ["unique_id_l", "unique_id_r", "match_weight", "match_probability", "link_rule", "model_weight",
             "model_probability"]
        assert con.execute("SELECT count(*) FROM person_clusters").fetchone()[0] == \
            con.execute("SELECT count(*) FROM person_std").fetchone()[0]
        assert con.execute("SELECT count(*) FROM person_pairs").fetchone()[0] > 500
        summary, settings = con.execute("""SELECT summary_json, settings_json FROM linkage_models
                                           ORDER BY created_at DESC LIMIT 1""").fetchone()
        summary = json.loads(summary)
        assert summary["engine"] == "spark" and summary["mode"] == "fixed model"
        assert summary["candidate_pairs_upper_bound"] >= summary["candidate_pairs"] > 1000  # the max_pairs brake
        assert json.loads(settings)["sql_dialect"] == "duckdb"  # the stored model stays canonical
        # the re-weighting passes (person_passes) ran on Spark's pairs as on DuckDB's, with the same decisions
        duck_store = Store(sample_run.store_path, read_only=True)
        try:
            duck_summary = json.loads(duck_store.con.execute("""SELECT summary_json FROM linkage_models
                                                                ORDER BY created_at DESC LIMIT 1""").fetchone()[0])
        finally:
            duck_store.close()
        for name in ("household_moves", "same_home", "same_identity"):
            assert isinstance(summary.get(name), dict), f"{name} did not run on the Spark backend"
            assert summary[name].get("reweighted") == duck_summary[name].get("reweighted"), name
        # a source's own prior (person_source_priors) ran on Spark's pairs, with the same bits per source (the
        # sample's sources are under its min_records, so both lists are empty here; the 250k towns exercise it)
        assert summary["source_priors"]["enabled"] and duck_summary["source_priors"]["enabled"]
        spark_bits = {s["source"]: s["bits"] for s in summary["source_priors"]["sources"]}
        duck_bits = {s["source"]: s["bits"] for s in duck_summary["source_priors"]["sources"]}
        assert spark_bits.keys() == duck_bits.keys()
        assert all(abs(spark_bits[k] - duck_bits[k]) <= 0.05 for k in duck_bits), (spark_bits, duck_bits)
        assert summary["source_priors"]["passes_hold_off"] == duck_summary["source_priors"]["passes_hold_off"]
        audit = con.execute("SELECT count(*) FROM audit_log WHERE action = 'link_persons'").fetchone()[0]
        assert audit >= 2
        assert con.execute("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0] == "ok"
    finally:
        store.close()
    assert not list((run.town_dir / "spark_work").glob("run_*")), "personal data left in the Parquet work folder"


def _columns(path: Path) -> list[tuple[str, str]] | list[str]:
    if path.suffix == ".parquet":
        return [(f.name, str(f.type)) for f in pq.read_schema(path)]
    return next(csv.reader(path.open(encoding="utf-8", newline="")))


def test_cli_run_on_spark_writes_the_duckdb_runs_output_files(sample_run, spark_run) -> None:  # noqa: ANN001
    """The output folder of ``ecins-link run`` with the Spark backend has every contract file the DuckDB run
    wrote, with the same columns (Parquet: names and types), and a person row for every record."""
    run, _ = spark_run
    duck_files = sorted(p.name for p in sample_run.out_dir.iterdir() if p.suffix in (".csv", ".parquet"))
    assert {"persons.parquet", "flags.parquet", "worklist.csv"} <= set(duck_files)
    for name in duck_files:
        assert (run.out_dir / name).exists(), f"{name} missing from the Spark run's output"
        assert _columns(run.out_dir / name) == _columns(sample_run.out_dir / name), name
    assert (run.out_dir / "panel" / "index.html").exists()
    persons = pq.read_table(run.out_dir / "persons.parquet")
    store = Store(run.store_path, read_only=True)
    try:
        assert persons.num_rows == store.count("person_clusters") == store.count("person_std")
    finally:
        store.close()
