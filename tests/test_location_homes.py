"""The homes stage: a person record's address the locations stage left open, settled by the person's other records
(``locations/homes.py``), on synthetic towns of two seeds and layouts scored against their truth."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ecins_link.config import load_config
from ecins_link.locations import settle_homes
from ecins_link.locations.homes import _letter_sources
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


def _rules(tmp: Path, name: str, **homes: object) -> Path:
    """The packaged location rules with these ``[homes]`` keys replaced."""
    packaged = Path(__file__).resolve().parents[1] / "ecins_link" / "locations" / "location_rules.toml"
    lines = packaged.read_text(encoding="utf-8").splitlines()
    start = lines.index("[homes]")
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("["):
            break
        key = lines[i].split("=")[0].strip()
        if key in homes:
            lines[i] = f"{key} = {str(homes[key]).lower() if isinstance(homes[key], bool) else homes[key]}"
    path = tmp / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_homes_settles_open_person_addresses_rightly_and_nothing_else(linked: dict, tmp_path: Path) -> None:
    store, before, truth = linked["store"], linked["before"], linked["truth"]
    settle_homes(store, linked["config"], rules_path=_rules(tmp_path, "off", enabled=False))  # off: no change
    off = store.df("SELECT * FROM address_matches")
    assert off.sort_values(["source", "record_key"]).reset_index(drop=True).equals(
        before.sort_values(["source", "record_key"]).reset_index(drop=True))

    # a small town: a source's convention is learnt from 2 settled records here (10 by default)
    settle_homes(store, linked["config"], rules_path=_rules(tmp_path, "low", letter_min_confirmed=2))
    after = store.df("SELECT m.*, a.origin FROM address_matches m JOIN address_std a USING (source, record_key)")
    merged = after.merge(before, on=["source", "record_key"], suffixes=("", "_before"))
    changed = merged[(merged["uprn"].fillna("") != merged["uprn_before"].fillna(""))
                     | (merged["match_level"] != merged["match_level_before"])]
    settled = merged[merged["match_method"].isin(["person_homes", "source_flat_letters"])]
    assert (merged["match_method"] == "person_homes").sum() >= 5
    assert set(changed.index) == set(settled.index)  # only the rows it settles change
    # events are never moved to where people live; only a learnt way of writing flats reaches them
    assert (settled.loc[settled["match_method"] == "person_homes", "origin"] == "person").all()
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
    by_letters = scored[scored["match_method"] == "source_flat_letters"]
    learnt = store.con.execute("SELECT details FROM audit_log WHERE action = 'settle_homes' "
                               "ORDER BY seq DESC LIMIT 1").fetchone()[0]
    assert (len(by_letters) > 0) == ('"agree"' in learnt)
    assert set(by_letters["source"]) <= {s["source"] for s in json.loads(learnt)["letter_sources"]}
    assert (by_letters["form"] == "flat_letter").all() and (by_letters["match_level"] == "flat").all()


def test_a_source_learns_its_way_of_writing_flats_only_from_enough_uncontradicted_records() -> None:
    evidence = [("council", 12, 0), ("police", 40, 2), ("housing", 12, 3), ("fire", 5, 0)]
    got = {s["source"] for s in _letter_sources(evidence, {})}
    assert got == {"council", "police"}  # 10 confirmed at least, at most 5 % contradicted
    assert {s["source"] for s in _letter_sources(evidence, {"letter_min_confirmed": 3})} == {"council", "police", "fire"}


def test_homes_needs_linked_persons_newer_than_the_records(tmp_path: Path) -> None:
    out = tmp_path / "t"
    generate_town(out, persons=300, seed=3)
    cfg = load_config(out / "project.toml")
    with Store(tmp_path / "s.duckdb") as store:
        run_stages(store, cfg, ["ingest", "standardise", "locations"], progress=False)
        with pytest.raises(StoreError, match="person_clusters"):
            settle_homes(store, cfg)
        # persons linked, then the records standardised again: the clusters may be stale, so homes does nothing
        # and says why (the run summary turns it into a warning)
        run_stages(store, cfg, ["persons"], progress=False)
        run_stages(store, cfg, ["standardise"], progress=False)
        before = store.df("SELECT * FROM address_matches ORDER BY source, record_key")
        result = run_stages(store, cfg, ["homes"], progress=False)
        assert store.df("SELECT * FROM address_matches ORDER BY source, record_key").equals(before)
        from ecins_link.run_summary import build_summary

        summary = build_summary(store, cfg, result)
        assert summary["homes"]["enabled"] is False and "persons stage" in summary["homes"]["skipped"]
        assert any(w.startswith("homes stage skipped") for w in summary["warnings"])
        run_stages(store, cfg, ["persons", "homes"], progress=False)  # linked again: it runs
        again = build_summary(store, cfg, result)["homes"]
        assert again["enabled"] is True and again["skipped"] is None
