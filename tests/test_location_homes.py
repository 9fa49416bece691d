"""The homes stage: a person record's address the locations stage left open, settled by the person's other records
(``locations/homes.py``), on synthetic towns of two seeds and layouts scored against their truth."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ecins_link.config import load_config
from ecins_link.locations import settle_homes
from ecins_link.pipeline import run_stages
from ecins_link.store import Store, StoreError
from ecins_link.synth import generate_town

pytestmark = pytest.mark.slow
TOWNS = [(11, "classic"), (14, "random")]


@pytest.fixture(scope="module", params=TOWNS, ids=[f"{s}-{d}" for s, d in TOWNS])
def linked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A town run through persons and locations (not homes): its store, config, truth and address_matches."""
    seed, dialect = request.param
    out = tmp_path_factory.mktemp(f"homes{seed}") / "t"
    generate_town(out, persons=6000, seed=seed, dialect=dialect)
    cfg = load_config(out / "project.toml")
    store = Store(out / "s.duckdb")
    run_stages(store, cfg, ["ingest", "standardise", "persons", "locations"], progress=False)
    truth = pd.read_csv(out / "truth" / "addresses.csv", dtype=str, keep_default_na=False)
    before = store.df("SELECT * FROM address_matches")
    yield {"store": store, "config": cfg, "truth": truth, "before": before, "out": out}
    store.close()


def _rules_without_homes(tmp: Path) -> Path:
    packaged = Path(__file__).resolve().parents[1] / "ecins_link" / "locations" / "location_rules.toml"
    text = packaged.read_text(encoding="utf-8").replace("[homes]\n", "[homes]\nenabled = false\n", 1)
    text = text.replace("\nenabled = true\nconfidence", "\nconfidence", 1)
    path = tmp / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_homes_settles_open_person_addresses_rightly_and_nothing_else(linked: dict, tmp_path: Path) -> None:
    store, before, truth = linked["store"], linked["before"], linked["truth"]
    settle_homes(store, linked["config"], rules_path=_rules_without_homes(tmp_path))  # switched off: no change
    off = store.df("SELECT * FROM address_matches")
    assert off.sort_values(["source", "record_key"]).reset_index(drop=True).equals(
        before.sort_values(["source", "record_key"]).reset_index(drop=True))

    settle_homes(store, linked["config"])
    after = store.df("SELECT m.*, a.origin FROM address_matches m JOIN address_std a USING (source, record_key)")
    merged = after.merge(before, on=["source", "record_key"], suffixes=("", "_before"))
    changed = merged[(merged["uprn"].fillna("") != merged["uprn_before"].fillna(""))
                     | (merged["match_level"] != merged["match_level_before"])]
    settled = merged[merged["match_method"] == "person_homes"]
    assert len(settled) >= 5
    assert set(changed.index) == set(settled.index)  # only the rows it settles change
    assert (settled["origin"] == "person").all()  # events are never moved to where people live
    assert settled["match_level_before"].isin(["building", "unresolved", "street"]).all()
    assert settled["match_level"].isin(["exact", "flat"]).all()
    assert (settled["location_id"] == "U" + settled["uprn"]).all()
    assert settled["match_reason"].str.contains("before: ").all()
    scored = settled.merge(truth, on=["source", "record_key"])
    assert len(scored) == len(settled)
    assert (scored["uprn"] == scored["true_uprn"]).all(), scored[scored["uprn"] != scored["true_uprn"]]
    # homes on a commercial UPRN or on a building that has flats: never
    bad = store.con.execute("""SELECT count(*) FROM address_matches m JOIN gazetteer_std g USING (uprn)
                               WHERE m.match_method = 'person_homes' AND (g.address_class = 'commercial'
                                     OR EXISTS (SELECT 1 FROM gazetteer_std c WHERE c.parent_uprn = g.uprn))""")
    assert bad.fetchone()[0] == 0
    # the kinds it exists for: "23B" for flat B, and texts several properties fit
    assert "flat_letter" in set(scored["form"])


def test_homes_needs_linked_persons(tmp_path: Path) -> None:
    out = tmp_path / "t"
    generate_town(out, persons=300, seed=3)
    cfg = load_config(out / "project.toml")
    with Store(tmp_path / "s.duckdb") as store:
        run_stages(store, cfg, ["ingest", "standardise", "locations"], progress=False)
        with pytest.raises(StoreError, match="person_clusters"):
            settle_homes(store, cfg)
