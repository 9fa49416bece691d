"""The synthetic town writes the address forms of issue 16 (item 7), with truth, for several seeds and layouts.

Each town is read back as an engine reads it (``ingest`` through the generated project file, so the BS7666
gazetteer mapping and any drawn extract layout are exercised): the gazetteer's parent/child structure, and
every form in the agencies' texts with the UPRN it was written from.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from ecins_link.config import load_config
from ecins_link.ingest import ingest
from ecins_link.store import Store
from ecins_link.synth import generate_town, vocab

SEEDS = [(5, "classic"), (6, "classic"), (8, "classic"), (17, "random")]
NEW_FORMS = {"suffixed_number", "flat_glued", "floor_descriptor", "flat_above_shop", "premises_name"}


@pytest.fixture(scope="module", params=SEEDS, ids=[f"{s}-{d}" for s, d in SEEDS])
def town(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    seed, dialect = request.param
    out = tmp_path_factory.mktemp(f"forms{seed}") / "t"
    summary = generate_town(out, persons=1500, seed=seed, dialect=dialect)
    with Store(out / "s.duckdb") as store:
        ingest(store, load_config(out / "project.toml"))
        gaz = store.df("SELECT * FROM gazetteer")
        texts = store.df("SELECT source, record_key, any_value(address_text) AS text FROM address_records "
                         "GROUP BY ALL")
    truth = pd.read_csv(out / "truth" / "addresses.csv", dtype=str, keep_default_na=False)
    truth = truth.merge(texts, on=["source", "record_key"], how="left")
    gaz = gaz.fillna("")
    return {"gaz": gaz.set_index("uprn", drop=False), "truth": truth, "summary": summary, "out": out}


def test_every_form_is_written_with_truth(town: dict) -> None:
    t, gaz = town["truth"], town["gaz"]
    counts = t["form"].value_counts()
    assert NEW_FORMS <= set(counts.index), counts.to_dict()
    assert counts[sorted(NEW_FORMS - {"premises_name"})].min() >= 3, counts.to_dict()  # events at shops are few
    # the new forms are a share of the addresses, not all of them
    assert 0.05 < counts[list(NEW_FORMS)].sum() / len(t) < 0.35, counts.to_dict()
    assert set(t["true_uprn"]) <= set(gaz.index)
    assert t["text"].notna().all() and (t["text"] != "").all()
    g = gaz.loc[t["true_uprn"]]
    t = t.assign(flat=g["sub_building"].to_numpy(), number=g["number"].to_numpy(), org=g["organisation"].to_numpy(),
                 parent=g["parent_uprn"].to_numpy(), up=t["text"].str.upper())
    suf = t[t["form"] == "suffixed_number"]
    assert suf["number"].str.fullmatch(r"\d+[A-Z]").all()
    assert [n in u for n, u in zip(suf["number"], suf["up"], strict=True)] == [True] * len(suf)
    floor = t[t["form"] == "floor_descriptor"]
    assert floor["flat"].str.contains("FLOOR").all() and floor["up"].str.contains(r"FLOOR|GFF").all()
    glued = t[t["form"] == "flat_glued"]
    assert glued["up"].str.contains(r"^(?:IN )?FL?\d+\b").all()  # police may write "In F5, ..."
    assert [re.search(r"\d+", u).group() in f for u, f in zip(glued["up"], glued["flat"], strict=True)] == \
        [True] * len(glued)
    above = t[t["form"] == "flat_above_shop"]
    assert (above["parent"] != "").all() and (above["address_class"] == "residential").all()
    premises = t[t["form"] == "premises_name"]
    assert (premises["org"] != "").all() and (premises["address_class"] != "residential").all()
    assert [u.removeprefix("IN ").startswith(o) and not re.search(rf"\b{n}\b", u) for u, o, n in
            zip(premises["up"], premises["org"], premises["number"], strict=True)] == [True] * len(premises)


def test_flats_above_shops_sit_over_a_numbered_named_shop(town: dict) -> None:
    gaz = town["gaz"]
    t = town["truth"]
    for uprn in t.loc[t["form"] == "flat_above_shop", "true_uprn"].unique():
        flat = gaz.loc[uprn]
        siblings = gaz[((gaz["parent_uprn"] == flat["parent_uprn"]) | (gaz["uprn"] == flat["parent_uprn"]))
                       & (gaz["organisation"] != "")]
        assert len(siblings) == 1, uprn
        shop = siblings.iloc[0]
        assert (shop["number"], shop["street"]) == (flat["number"], flat["street"])


def test_gazetteer_parent_child_structure_is_consistent(town: dict) -> None:
    gaz, t = town["gaz"], town["truth"]
    assert gaz["uprn"].is_unique
    children = gaz[gaz["parent_uprn"] != ""]
    assert len(children) > 30
    assert set(children["parent_uprn"]) <= set(gaz.index)  # every parent is listed
    parents = gaz.loc[children["parent_uprn"]]
    assert (parents["parent_uprn"] == "").all()  # one level: no parent has a parent
    assert (parents["street"].to_numpy() == children["street"].to_numpy()).all()
    assert (parents["number"].to_numpy() == children["number"].to_numpy()).all()
    assert (parents["building_name"].to_numpy() == children["building_name"].to_numpy()).all()
    # shells (class PP) hold only children: no one lives or is recorded at one
    shells = gaz[gaz["classification"].str.startswith("PP")]
    assert len(shells) > 5 and set(shells.index) <= set(children["parent_uprn"])
    assert not set(shells.index) & set(t["true_uprn"])
    # every flat of a block or converted house has a parent; homes are never on commercial UPRNs
    flats = gaz[(gaz["sub_building"] != "") & (gaz["organisation"] == "") & (gaz["building_name"] != "")]
    assert (flats["parent_uprn"] != "").all()
    homes = t[t["source"].isin(["police_nominals", "housing_tenancies", "council_people", "fire_safe_well"])]
    assert (homes["address_class"] == "residential").all()


def test_chain_branches_and_ambiguous_premises(town: dict) -> None:
    gaz, t = town["gaz"], town["truth"]
    orgs = gaz[gaz["organisation"] != ""]
    assert orgs["organisation"].value_counts().max() >= 2  # several branches of one name in the town
    assert orgs["organisation"].isin(vocab.address_forms()["chains"]).any()
    premises = t[t["form"] == "premises_name"]
    for _, r in premises.iterrows():  # ambiguous exactly when the area written holds another branch
        name = gaz.loc[r["true_uprn"], "organisation"]
        same = orgs[(orgs["organisation"] == name)]
        area = r["text"].upper()
        in_area = same[[loc in area or town_ in area for loc, town_ in zip(same["locality"], same["town"],
                                                                           strict=True)]]
        assert int(r["ambiguous"]) <= int(len(in_area) > 1), r.to_dict()


def test_conventions_vary_by_seed(tmp_path: Path) -> None:
    """The gazetteer conventions and shares are drawn per town: several seeds give several layouts, and the
    people, events and scenarios are those of the same seed whatever the forms."""
    seen = {generate_town(tmp_path / str(s), persons=60, seed=s).address_conventions["flat_numbers"]
            for s in range(1, 9)}
    assert len(seen) >= 2
    one = generate_town(tmp_path / "again", persons=60, seed=3)
    assert one.address_conventions == generate_town(tmp_path / "again2", persons=60, seed=3).address_conventions
