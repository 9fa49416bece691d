"""One person model for both engines (matching/model_dialect.py): rendering the canonical DuckDB model for Spark.

These tests need no Spark: they check the rendering itself.  Whether the rendered SQL gives the same answers on
Spark is tests/test_spark_parity.py's job.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

from ecins_link.config import ConfigError, parse_config
from ecins_link.matching.model_dialect import (
    ModelDialectError,
    render_condition,
    render_settings,
    with_parameters,
)
from ecins_link.matching.person_model import load_model_config, settings

REPO = Path(__file__).resolve().parents[1]
MODELS = [None, REPO / "benchmarks" / "febrl_model.toml"]  # the packaged model; one with the optional levels on


@pytest.mark.parametrize("model_file", MODELS, ids=["packaged", "febrl"])
def test_every_level_and_rule_renders_to_parseable_spark_sql(model_file: Path | None) -> None:
    canonical = settings(load_model_config(model_file)).create_settings_dict("duckdb")
    spark = render_settings(canonical)
    assert spark["sql_dialect"] == "spark" and canonical.get("sql_dialect", "duckdb") == "duckdb"
    n = 0
    for comp_d, comp_s in zip(canonical["comparisons"], spark["comparisons"], strict=True):
        for lvl_d, lvl_s in zip(comp_d["comparison_levels"], comp_s["comparison_levels"], strict=True):
            sql = lvl_s["sql_condition"]
            if sql != "ELSE":
                sqlglot.parse_one(sql, read="spark")  # Splink re-parses it as Spark SQL
            assert "jaro_winkler_similarity" not in sql.lower() and '"' not in sql
            assert {k: v for k, v in lvl_d.items() if k != "sql_condition"} == \
                {k: v for k, v in lvl_s.items() if k != "sql_condition"}
            n += 1
    assert n > 40
    rules = [r["blocking_rule"] for r in spark["blocking_rules_to_generate_predictions"]]
    assert len(rules) == len(canonical["blocking_rules_to_generate_predictions"])


@pytest.mark.parametrize(("duckdb_sql", "spark_sql"), [
    ("jaro_winkler_similarity(forename_l, forename_r) >= 0.9", "JARO_WINKLER(forename_l, forename_r) >= 0.9"),
    ("strftime(dob_l, '%Y%m%d') = strftime(dob_r, '%Y%m%d')",
     "DATE_FORMAT(dob_l, 'yyyyMMdd') = DATE_FORMAT(dob_r, 'yyyyMMdd')"),
    ("regexp_matches(surname_l, '[^A-Z]')", "surname_l RLIKE '[^A-Z]'"),
    ("list_has_any(string_split(a_l, '.'), string_split(a_r, ' '))",
     "ARRAYS_OVERLAP(SPLIT(a_l, '\\\\Q.\\\\E'), SPLIT(a_r, ' '))"),  # Spark's split takes a regex
    ("regexp_replace(surname_l, '[^A-Z]+', ' ', 'g') = surname_r",
     "REGEXP_REPLACE(surname_l, '[^A-Z]+', ' ') = surname_r"),
    ('"surname_l" = "surname_r"', "`surname_l` = `surname_r`"),
])
def test_constructs_render_with_the_same_meaning(duckdb_sql: str, spark_sql: str) -> None:
    assert render_condition(duckdb_sql) == spark_sql


@pytest.mark.parametrize(("sql", "needle"), [
    ("regexp_replace(surname_l, '-', ' ') = surname_r", "'g' flag"),          # first match vs every match
    ("regexp_matches(surname_l, '(A)\\1')", "back-references"),
    ("regexp_replace(surname_l, '(A)', '\\1', 'g') = surname_r", "group references"),
    ("list_filter(string_split(a_l, ' '), (x, i) -> i > 1) = a_r", "index"),  # 1-based vs 0-based
    ("list_transform(string_split(a_l, ' '), x -> x) = a_r", "no checked Spark rendering"),
    ("my_udf(a_l, a_r) > 1", "my_udf"),
    ("strftime(dob_l, '%d %B %Y') = dob_r", "strftime format"),
])
def test_constructs_that_differ_between_engines_are_refused(sql: str, needle: str) -> None:
    with pytest.raises(ModelDialectError, match=needle):
        render_condition(sql, where="comparison 'x' level 'y'")


def test_parameters_trained_on_one_engine_move_to_the_canonical_model() -> None:
    canonical = settings(load_model_config()).create_settings_dict("duckdb")
    trained = render_settings(canonical)
    trained["probability_two_random_records_match"] = 0.00123
    trained["comparisons"][0]["comparison_levels"][1]["m_probability"] = 0.0321
    trained["comparisons"][2]["comparison_levels"][1]["u_probability"] = 0.0045
    back = with_parameters(canonical, trained)
    assert back["sql_dialect"] == "duckdb"
    assert back["probability_two_random_records_match"] == 0.00123
    assert back["comparisons"][0]["comparison_levels"][1]["m_probability"] == 0.0321
    assert back["comparisons"][2]["comparison_levels"][1]["u_probability"] == 0.0045
    assert [lv["sql_condition"] for c in back["comparisons"] for lv in c["comparison_levels"]] == \
        [lv["sql_condition"] for c in canonical["comparisons"] for lv in c["comparison_levels"]]
    trained["comparisons"].pop()
    with pytest.raises(ModelDialectError, match="comparisons differ"):
        with_parameters(canonical, trained)
    with pytest.raises(ModelDialectError, match="canonical"):
        render_settings({**canonical, "sql_dialect": "spark"})


def test_engine_section_of_the_project_file() -> None:
    base = {"project": {"name": "x"}, "sources": [{"name": "a", "agency": "p", "path": "a.csv", "key": "id",
                                                   "person": {"surname": "s"}}]}
    assert parse_config(base).engine.backend == "duckdb"
    cfg = parse_config({**base, "engine": {"backend": "spark", "spark_master": "local[4]",
                                           "spark_conf": {"spark.sql.shuffle.partitions": 16,
                                                          "spark.sql.adaptive.enabled": True}}})
    assert cfg.engine.backend == "spark" and cfg.engine.work_dir == "spark_work"
    assert cfg.engine.spark_conf == {"spark.sql.shuffle.partitions": "16", "spark.sql.adaptive.enabled": "true"}
    with pytest.raises(ConfigError, match="engine.backend"):
        parse_config({**base, "engine": {"backend": "polars"}})
    with pytest.raises(ConfigError, match="engine.spark_workers"):
        parse_config({**base, "engine": {"spark_workers": 3}})
