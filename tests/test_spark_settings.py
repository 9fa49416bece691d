"""The Spark backend's settings that need no Spark: the shuffle-partition rule and the work folder check."""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from ecins_link.config import ConfigError, EngineSettings, ProjectConfig, parse_config
from ecins_link.matching.spark_backend import PAIRS_PER_PARTITION, shuffle_partitions, work_folder


def _session(cores: int) -> SimpleNamespace:
    return SimpleNamespace(sparkContext=SimpleNamespace(defaultParallelism=cores))


def test_partitions_follow_the_pairs_with_two_per_core_at_least() -> None:
    engine = EngineSettings(backend="spark")
    assert shuffle_partitions(_session(4), engine, 10_000) == 8  # small data: two tasks per core
    assert shuffle_partitions(_session(4), engine, 17_288_993) == 9  # the 250k town's bound
    assert shuffle_partitions(_session(64), engine, 650_000_000) == 650_000_000 // PAIRS_PER_PARTITION
    set_by_project = EngineSettings(backend="spark", spark_conf={"spark.sql.shuffle.partitions": 40})
    assert shuffle_partitions(_session(4), set_by_project, 650_000_000) == 40


SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "town" / "project.toml"


def _config(tmp_path: Path, work_dir: str) -> ProjectConfig:
    """The sample town's project with ``[engine] backend = "spark"`` and ``work_dir``, rooted at ``tmp_path``."""
    data = tomllib.loads(SAMPLE.read_text(encoding="utf-8"))
    data["engine"] = {"backend": "spark", "work_dir": work_dir}
    return parse_config(data, root=tmp_path, file=tmp_path / "project.toml")


@pytest.mark.parametrize("url", ["s3://bucket/ecins", "gs://bucket/x", "abfss://c@acct.dfs.core.windows.net/x",
                                 "dbfs:/tmp/ecins"])
def test_object_store_work_dir_is_refused_with_the_alternative(tmp_path: Path, url: str) -> None:
    config = _config(tmp_path, url)
    with pytest.raises(ConfigError, match="object-store URLs are not supported.*mounted at the same path"):
        work_folder(config)


def test_folder_work_dir_resolves_in_the_project(tmp_path: Path) -> None:
    config = _config(tmp_path, "spark_work")
    assert work_folder(config) == tmp_path / "spark_work"
