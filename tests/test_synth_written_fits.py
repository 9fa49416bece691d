"""The synthetic truth's judgement of which properties an address text fits (``synth/written_fits.py``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ecins_link.config import load_config
from ecins_link.ingest import ingest
from ecins_link.store import Store
from ecins_link.synth import generate_town
from ecins_link.synth.written_fits import FitIndex, narrowed_by_postcode

TOWNS = [(11, "classic"), (14, "random")]


@pytest.fixture(scope="module", params=TOWNS, ids=[f"{s}-{d}" for s, d in TOWNS])
def town(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A town big enough to hold street names used in two localities, read back through its project file."""
    seed, dialect = request.param
    out: Path = tmp_path_factory.mktemp(f"fits{seed}") / "t"
    generate_town(out, persons=8000, seed=seed, dialect=dialect)
    with Store(out / "s.duckdb") as store:
        ingest(store, load_config(out / "project.toml"))
        gaz = store.df("SELECT * FROM gazetteer").fillna("")
        texts = store.df("SELECT source, record_key, any_value(address_text) AS text FROM address_records "
                         "GROUP BY ALL")
    truth = pd.read_csv(out / "truth" / "addresses.csv", dtype=str, keep_default_na=False)
    return {"gaz": gaz.set_index("uprn", drop=False),
            "truth": truth.merge(texts, on=["source", "record_key"], how="left")}


def _gazetteer() -> pd.DataFrame:
    rows = [  # two East Streets in one town, one house 17 on each; a block name twice on one street
        ("1", "", "17", "", "", "EAST STREET", "RIVERSIDE", "NORTHTOWN", "NT1 1AA"),
        ("2", "", "17", "", "", "EAST STREET", "HIGHCLIFFE", "NORTHTOWN", "NT4 2BB"),
        ("3", "", "19", "", "", "EAST STREET", "RIVERSIDE", "NORTHTOWN", "NT1 1AA"),
        ("4", "FLAT 2", "16", "ST JOHNS COURT", "", "ASHFIELD ROAD", "MILLBROOK", "NORTHTOWN", "NT2 3CC"),
        ("5", "FLAT 2", "19", "ST JOHNS COURT", "", "ASHFIELD ROAD", "MILLBROOK", "NORTHTOWN", "NT2 3CC"),
        ("6", "", "16", "ST JOHNS COURT", "", "ASHFIELD ROAD", "MILLBROOK", "NORTHTOWN", "NT2 3CC"),
    ]
    cols = ["UPRN", "SAO_TEXT", "PAO_NUMBER", "PAO_TEXT", "ORGANISATION", "STREET", "LOCALITY", "TOWN", "POSTCODE"]
    return pd.DataFrame(rows, columns=cols).set_index("UPRN", drop=False)


def test_a_text_fits_every_property_agreeing_with_the_parts_it_writes() -> None:
    fits = FitIndex(_gazetteer())
    assert len(fits.postcodes("EAST STREET", "", {"PAO_NUMBER": "17", "TOWN": "NORTHTOWN"})) == 2
    assert fits.postcodes("EAST STREET", "", {"PAO_NUMBER": "17", "LOCALITY": "HIGHCLIFFE"}) == ("NT4 2BB",)
    assert len(fits.postcodes("EAST STREET", "", {"PAO_NUMBER": "19"})) == 1
    # the block's name without its number fits flat 2 of both blocks; with the number, one
    assert len(fits.postcodes("ASHFIELD ROAD", "FLAT 2", {"PAO_TEXT": "ST JOHNS COURT"})) == 2
    assert len(fits.postcodes("ASHFIELD ROAD", "FLAT 2", {"PAO_TEXT": "ST JOHNS COURT", "PAO_NUMBER": "16"})) == 1
    # a text without a flat does not fit the flats of the building
    assert len(fits.postcodes("ASHFIELD ROAD", "", {"PAO_NUMBER": "16"})) == 1
    assert fits.postcodes("NO SUCH STREET", "", {"PAO_NUMBER": "1"}) == ()


def test_a_postcode_settles_a_text_only_when_it_names_one_of_the_properties() -> None:
    rivals = [("NT1 1AA", "NT4 2BB"), ("NT1 1AA", "NT4 2BB"), ("NT1 1AA", "NT4 2BB"), ("NT2 3CC", "NT2 3CC"),
              ("NT1 1AA",)]
    ambiguous = [True, True, True, True, False]
    got = narrowed_by_postcode(ambiguous, rivals, ["nt42bb", "", "NT4 2BD", "NT2 3CC", "NT1 1AA"])
    # right postcode (any spacing or case): settled; none or mistyped: not; both properties share it: not
    assert got.tolist() == [False, True, True, True, False]
    assert narrowed_by_postcode(ambiguous, rivals, None).tolist() == ambiguous


def test_ambiguous_house_texts_are_those_several_houses_fit(town: dict) -> None:
    """A house text is ambiguous only where the gazetteer holds another house of that number on a street of that
    name, and always where it does and the text gives neither the locality nor a postcode that tells them apart."""
    gaz, t = town["gaz"], town["truth"]
    houses = gaz[(gaz["sub_building"] == "") & (gaz["number"] != "")]
    same = houses.groupby(["street", "number"])["uprn"].agg(list).to_dict()
    rows = t[t["form"] == "house"]
    assert len(rows) > 100
    must, seen = 0, 0
    for _, r in rows.iterrows():
        g = gaz.loc[r["true_uprn"]]
        rivals = gaz.loc[same[(g["street"], g["number"])]]
        if int(r["ambiguous"]):
            assert len(rivals) >= 2, r.to_dict()
            seen += 1
        if len(rivals) >= 2 and r["source"] == "police_occurrences" and rivals["locality"].nunique() == len(rivals) \
                and not any(loc in r["text"].upper() for loc in rivals["locality"]):
            assert int(r["ambiguous"]) == 1, r.to_dict()  # no postcode on an occurrence, no locality written
            must += 1
    assert must > 0 and seen >= must
