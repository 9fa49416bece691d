"""The output folder, purpose views and research export on the synthetic town, through the real pipeline."""

from __future__ import annotations

import importlib
import json
import secrets
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_report_fixtures import output_text

from ecins_link.export import export_pseudonymised
from ecins_link.store import Store

TOWN = Path(__file__).resolve().parents[1] / "data" / "samples" / "town"
pytestmark = pytest.mark.slow


def _pipeline_ready() -> bool:
    for module, func in (("ecins_link.ingest", "ingest"), ("ecins_link.standardise", "standardise"),
                         ("ecins_link.matching", "link_persons"), ("ecins_link.graph", "build_graph"),
                         ("ecins_link.scoring", "score")):
        try:
            if not hasattr(importlib.import_module(module), func):
                return False
        except ImportError:
            return False
    return (TOWN / "project.toml").exists()


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not _pipeline_ready():
        pytest.skip("pipeline stages or the town sample are not available yet")
    from ecins_link.pipeline import run_project

    root = tmp_path_factory.mktemp("town")
    shutil.copytree(TOWN, root / "town", ignore=shutil.ignore_patterns("store.duckdb*", "output"))
    project = root / "town" / "project.toml"
    full = run_project(project, root / "full", user="tester")
    marac = run_project(project, root / "marac", purpose="marac", user="tester", stages=["report"])
    return {"root": root, "project": project, "full": full, "marac": marac, "store": full.store_path}


def test_town_contract_and_worklist(town: dict) -> None:
    out = town["root"] / "full"
    for name in ("accounting.csv", "quarantine.csv", "persons.parquet", "addresses.parquet", "flags.parquet",
                 "worklist.csv", "panel/index.html"):
        assert (out / name).exists(), name
    flags = pd.read_parquet(out / "flags.parquet")
    work = pd.read_csv(out / "worklist.csv", dtype=str)
    assert len(work) == flags[["entity_type", "entity_id"]].drop_duplicates().shape[0]
    assert list(work["rank"].astype(int)) == list(range(1, len(work) + 1))
    assert all((out / "panel" / p).exists() for p in work["page"])
    with Store(town["store"], read_only=True) as store:
        assert len(pd.read_parquet(out / "persons.parquet")) == store.count("person_clusters")


def test_town_marac_pack_holds_no_fire_detail(town: dict) -> None:
    with Store(town["store"], read_only=True) as store:
        fire_keys = {k for (k,) in store.con.execute(
            "SELECT DISTINCT record_key FROM signals WHERE agency = 'fire' AND length(record_key) >= 6").fetchall()}
        fire_sources = {s for (s,) in store.con.execute(
            "SELECT DISTINCT source FROM signals WHERE agency = 'fire'").fetchall()}
    assert fire_keys and fire_sources
    marac = output_text(town["root"] / "marac")
    assert [k for k in fire_keys if k in marac] == []
    assert [s for s in fire_sources if s in marac] == []
    rules = set(pd.read_csv(town["root"] / "marac" / "worklist.csv")["rules"].str.split(";").explode())
    assert rules <= {"marac_potential_escalation", "toxic_trio", "cse_risk", "multi_agency_concern",
                     "professional_judgement"}
    full = output_text(town["root"] / "full")
    assert any(k in full for k in fire_keys)  # the guard: the unrestricted pack does show fire detail


def test_town_research_export_has_no_identifiers(town: dict, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(secrets.token_bytes(64))  # a counting sequence is refused as a guessable key
    with Store(town["store"]) as store:
        result = export_pseudonymised(store, tmp_path / "x", key)
        rows = store.con.execute("""SELECT forenames, surname, full_name, strftime(dob, '%Y-%m-%d'), postcode,
                                           phone, email, record_key, address_text FROM person_records""").fetchall()
    identifiers = {str(v) for row in rows for v in row if v is not None and len(str(v)) >= 6}
    text = "\n".join(pd.read_parquet(p).to_json(orient="records", default_handler=str)
                     for p in (tmp_path / "x").glob("*.parquet"))
    text += json.dumps(result["counts"])
    assert result["counts"]["persons"] > 100
    assert sorted(i for i in identifiers if i in text) == []
