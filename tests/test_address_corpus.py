"""250 hand-written UK address forms against a small hand-written BS7666 gazetteer, through a project file.

``tests/data/address_corpus_llpg.csv`` is a two-town LLPG (parent shells, flats above numbered shops, floor flats,
suffixed numbers, a chain with branches in both towns, a numbered range, an annexe, a maisonette);
``tests/data/address_corpus.txt`` lists address texts as agencies write them (homes and event locations) with
the expected answer: a UPRN, ``unresolved``, ``building:U`` (building known, flat not) or ``approx:U``
(position words).  The run goes ingest -> standardise -> locations (``run_project``), as a user's would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ecins_link.pipeline import run_project

DATA = Path(__file__).parent / "data"
PROJECT = """[project]
name = "address corpus"
store = "store.duckdb"

[[sources]]
name = "llpg"
agency = "council"
path = "llpg.csv"
key = "UPRN"
[sources.gazetteer]
uprn = "UPRN"
parent_uprn = "PARENT_UPRN"
sao_start_number = "SAO_START_NUMBER"
sao_start_suffix = "SAO_START_SUFFIX"
sao_text = "SAO_TEXT"
pao_start_number = "PAO_START_NUMBER"
pao_start_suffix = "PAO_START_SUFFIX"
pao_end_number = "PAO_END_NUMBER"
pao_text = "PAO_TEXT"
organisation = "ORGANISATION"
street = "STREET"
locality = "LOCALITY"
town = "TOWN"
postcode = "POSTCODE"
classification = "CLASSIFICATION"
x = "X"
y = "Y"

[[sources]]
name = "homes"
agency = "housing"
path = "homes.csv"
key = "ID"
[sources.person]
full_name = "NAME"
address = "ADDRESS"
postcode = "POSTCODE"

[[sources]]
name = "incidents"
agency = "police"
path = "events.csv"
key = "ID"
[sources.event]
code = "CODE"
date = "DATE"
location = "LOCATION"
location_postcode = "POSTCODE"
"""


def _corpus() -> pd.DataFrame:
    rows = []
    for line in (DATA / "address_corpus.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            origin, text, postcode, expected = (x.strip() for x in line.split("|"))
            rows.append({"origin": origin, "text": text, "postcode": postcode, "expected": expected})
    df = pd.DataFrame(rows)
    df["ID"] = [f"{o[0].upper()}{i:04d}" for i, o in enumerate(df["origin"])]
    return df


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("corpus")
    shutil.copy(DATA / "address_corpus_llpg.csv", root / "llpg.csv")
    corpus = _corpus()
    homes, events = corpus[corpus.origin == "home"], corpus[corpus.origin == "event"]
    pd.DataFrame({"ID": homes.ID, "NAME": "ALEX SMITH", "ADDRESS": homes.text, "POSTCODE": homes.postcode}).to_csv(
        root / "homes.csv", index=False)
    pd.DataFrame({"ID": events.ID, "DATE": "2026-01-05", "CODE": "ASB", "LOCATION": events.text,
                  "POSTCODE": events.postcode}).to_csv(root / "events.csv", index=False)
    (root / "project.toml").write_text(PROJECT)
    result = run_project(root / "project.toml", stages=["ingest", "standardise", "locations"])
    import duckdb

    with duckdb.connect(str(result.store_path), read_only=True) as con:
        got = con.execute("SELECT record_key AS ID, uprn, match_level, match_reason, match_confidence "
                          "FROM address_matches").df()
        details = con.execute("SELECT details FROM audit_log WHERE action = 'link_locations' "
                              "ORDER BY seq DESC LIMIT 1").fetchone()[0]
    out = corpus.merge(got, on="ID", how="left")
    out.attrs["steps"] = json.loads(details)["steps"]
    return out


def _ok(row: pd.Series) -> bool:
    exp = row["expected"]
    if exp == "unresolved":
        return pd.isna(row["uprn"])
    if ":" in exp:
        level, uprn = exp.split(":")
        return row["uprn"] == uprn and row["match_level"] == {"approx": "approximate"}.get(level, level)
    return row["uprn"] == exp and row["match_level"] in ("exact", "flat")


def test_corpus_has_at_least_200_forms_and_every_record_an_answer(answers: pd.DataFrame) -> None:
    assert len(answers) >= 200
    assert answers["match_level"].notna().all()
    assert answers["match_reason"].notna().all()


def test_no_answer_is_a_wrong_property(answers: pd.DataFrame) -> None:
    """Never another house number, suffix, flat, street or the shop under a home: a wrong UPRN is worse than none."""
    def expected_uprn(e: str) -> str | None:
        return None if e == "unresolved" else e.split(":")[-1]

    wrong = answers[answers["uprn"].notna() & (answers["uprn"] != answers["expected"].map(expected_uprn))]
    assert wrong.empty, wrong[["text", "expected", "uprn", "match_level", "match_reason"]].to_string()


def test_corpus_answers_match_expectations(answers: pd.DataFrame) -> None:
    ok = answers.apply(_ok, axis=1)
    misses = answers[~ok][["text", "expected", "uprn", "match_level", "match_reason"]]
    print(f"{(~ok).sum()} of {len(ok)} differ:\n{misses.to_string()}")
    assert ok.mean() >= 0.97, f"{(~ok).sum()} of {len(ok)} differ:\n{misses.to_string()}"


def test_homes_never_on_commercial_uprns(answers: pd.DataFrame) -> None:
    gaz = pd.read_csv(DATA / "address_corpus_llpg.csv", dtype=str)
    commercial = set(gaz.loc[gaz.CLASSIFICATION.str.startswith("C"), "UPRN"])
    homes = answers[answers.origin == "home"]
    assert not homes["uprn"].isin(commercial).any()
    refused = homes[homes["match_reason"].str.contains("commercial", na=False)]
    assert len(refused) >= 3  # the guard said why


def test_ambiguous_premises_list_their_candidates(answers: pd.DataFrame) -> None:
    row = answers[answers.text == "Boots, Aldton"].iloc[0]
    assert pd.isna(row["uprn"])
    assert "1006" in row["match_reason"] and "1033" in row["match_reason"]


def test_the_matcher_ran_without_error_and_settled_part_of_the_residue(answers: pd.DataFrame) -> None:
    """The residue reaches uk_address_matcher and its answers are checked without a failure (a failure would leave
    the residue unresolved quietly: the run goes on, the audit row says why)."""
    steps = answers.attrs["steps"]
    assert "uk_address_matcher_error" not in steps, steps.get("uk_address_matcher_error")
    assert steps["uk_address_matcher_sent"] > 0
    assert steps["uk_address_matcher"] > 0


RECORDING_ERRORS = ["Betfred, Grd Floor, 7 High Street, Aldton", "FIRSTFLOOR FLAT 7 HIGH ST ALDTON",
                    "First Floor Flat, 9a, High Street, Aldton", "9a High Street, Aldton",
                    "Maisonette 2, Birch House, 19 High Street, Aldton", "2 Hihg Street, Aldton",
                    "24 Hihg Street, Aldton", "25, High Stret, Aldton", "The Red Lion, 24 High Street, Aldton",
                    "First Floor Flat, 9, High Street, Aldton"]


def test_recording_error_forms_resolve_as_expected(answers: pd.DataFrame) -> None:
    """Forms address-errors learned from councils' registers (abbreviated / run-together floor words, a suffix on
    a building with flats, misspelt streets, a maisonette numbered like a flat, a number in its own comma part, a
    building the text names that the candidate is not): each one as expected, not just 97 % of the corpus."""
    rows = answers[answers["text"].isin(RECORDING_ERRORS)]
    assert len(rows) == len(RECORDING_ERRORS)
    bad = rows[~rows.apply(_ok, axis=1)]
    assert bad.empty, bad[["text", "expected", "uprn", "match_level", "match_reason"]].to_string()


UNIT_FORMS = ["5 High Street, Aldton", "9 MARKET PL, ALDTON", "Flat 1, 9 Market Place, Aldton",
              "Flat, 5 High Street, Aldton", "5a High Street, Aldton", "Flat 2, 5 High Street, Aldton",
              "Ground Floor Flat, 9 Market Place, Aldton", "Flat 1, 7 High Street, Aldton",
              "Betfred, Flat 1, 7 High Street, Aldton", "Flat 1, 7 High Street, Aldton",
              "4 Birch House, High Street, Aldton", "5 BIRCH HOUSE HIGH STREET ALDTON",
              "Birch House, 3, High Street, Aldton", "Birch House, 7, High Street, Aldton",
              "Plot 12, Flat 2, Birch House, 19 High Street, Aldton", "PLOT 7 24 HIGH STREET ALDTON",
              "Plot 51, Flat B, 11 High Street, Aldton"]


def test_building_unit_forms_resolve_as_expected(answers: pd.DataFrame) -> None:
    """A home at a building that holds one dwelling is that dwelling (never the shop, never another numbered flat
    or floor); an event naming one unit's organisation is that unit; "4 Birch House, High St" is flat 4 of the
    block; a development plot's number ("Plot 12, ...") is not the house number.  Each one as expected."""
    rows = answers[answers["text"].isin(UNIT_FORMS)]
    assert set(rows["text"]) == set(UNIT_FORMS)
    bad = rows[~rows.apply(_ok, axis=1)]
    assert bad.empty, bad[["text", "expected", "uprn", "match_level", "match_reason"]].to_string()


SESSION8_FORMS = ["First Foor Flat, 9 High Street, Aldton", "IFRST FLOOR FLAT 9 HIGH ST ALDTON",
                  "Grund Floor Flat, 9 High Street, Aldton", "Floor Second Flat, 7 High Street, Aldton",
                  "First Flat Floor, 9 High Street, Aldton", "Fqat 2, Birch House, 19 High Street, Aldton",
                  "2 Second Floor, Birch House, 19 High Street, Aldton",
                  "Flat 3 1st Floor, Birch House, 19 High Street, Aldton", "B, The Lodge, 11 High Street, Aldton",
                  "Flat 2, Birch House, 19-21 High Street, Aldton", "24-25 High Street, Aldton",
                  "Rose Cottage, 6 Church Road, Kingsley", "2 Mill Lane, Aldton",
                  "Rose Cottage, 7 Church Road, Kingsley", "Flat Over, Flat 2, Birch House, 19 High Street, Aldton",
                  "Betfred, 7, High Stret, Aldton"]


def test_misspelt_floors_ranges_added_names_and_replaced_streets(answers: pd.DataFrame) -> None:
    """Recording errors address-errors learned from councils' registers, each as expected (12 of these 16 failed
    on the session-start code): floor words misspelt or reordered ("FIRST FOOR FLAT", "FLOOR SECOND FLAT"); a flat number before a
    floor ("2 Second Floor, Birch House, 19 ..."); a lone flat letter as the first part; a number range read as its
    one fitting end (both ends fitting: no answer); a house name added to a numbered house whose number and street
    name it alone; another real street written where postcode and number name one property; a vague flat word
    ("Flat Over") before the flat label that names the flat; a shop named with its number and a misspelt street
    ("Betfred, 7, High Stret": the number parsed as a flat of a building "BETFRED") is the shop's unit."""
    rows = answers[answers["text"].isin(SESSION8_FORMS)]
    assert set(rows["text"]) == set(SESSION8_FORMS)
    bad = rows[~rows.apply(_ok, axis=1)]
    assert bad.empty, bad[["text", "expected", "uprn", "match_level", "match_reason"]].to_string()


SESSION9_FORMS = ["Flat 1, Church Road, Kingsley", "FLAT 2 CHRUCH ROAD KINGSLEY AL2 4BB", "Flat B, High Street, Aldton",
                  "First Floor Flat, High Street, Aldton", "Flat 2, Birch House, 19 Mill Lane, Aldton",
                  "FLAT 3 BIRCHHOUSE 19 STATION ROAD ALDTON", "Flat 4, Birchhouse, High Street, Aldton",
                  "Flat 1, 3 High Street, Aldton", "Ground Floor Flat, 3 Mill Mews, Aldton",
                  "Flat B, 3 High Street, Aldton", "Flat 1, 1 Mill Lane, Aldton",
                  "Flat 2, Rose Cottage, Church Road, Kingsley", "Ash Court, 2, Queen Street, Aldton",
                  "Ash Court, 3, Queen Street, Aldton", "Flat 2, Ash Court, 2 Queen Street, Aldton",
                  "Betfred, First Floor, 7 High Street, Aldton", "Betfred, Flat 2, 7 High Street, Aldton",
                  "Lfaat B, 11 High Street, Aldton", "6 CHURCH RAOD BRIGWORTH", "5 CHRUCH RD BRIGWORTH",
                  "Birch House, Hihg Street, Aldton", "Ivy Cottage, Station Road, Brigworth",
                  "IVY COTTAGE STATION RD BRIGWORTH BR4 6JB", "Rose Cotage, Church Road, Kingsley",
                  "Flat 2, Brich House, 19 High Street, Aldton", "BETFRED 7 HGH STREET ALDTON",
                  "Ground Floor Flat, High Street, Aldton"]


def test_dropped_numbers_replaced_streets_joined_names_and_lettered_houses(answers: pd.DataFrame) -> None:
    """Recording errors address-errors learned from councils' registers, each as expected: the house number dropped
    where flat, street and full postcode name one flat ("Flat 1, Church Road ... AL2 4BB"; the same text at a
    postcode holding two first-floor flats of that street is no answer); another street written where the flat,
    the building's name and its number name one flat ("Flat 2, Birch House, 19 Mill Lane"); a building name run
    together ("Birchhouse"); a flat at a house the gazetteer lists beside lettered properties of its number ("Flat
    1, 3 High Street" where 3, 3A and 3B are houses of their own) is no answer, while a flat at a house with no
    such neighbours is that house's building, and so is a flat of a house known by name alone ("Flat 2, Rose
    Cottage, Church Road"); a bare number after a block's name that is the block's own number is the building
    ("Ash Court, 2, Queen Street" where Ash Court is 2 and holds a flat 2), another number a flat of it; an event
    naming a unit's organisation with a flat word is that unit, a home never the shop; a flat label misspelt beyond
    the spelling rules before a flat letter the building lists ("Lfaat B, 11 High Street"); a misspelt street that
    swallowed the town the text names is never a property in another town ("6 CHURCH RAOD BRIGWORTH"); a building
    name and postcode with the street misspelt is the building; of two properties the gazetteer writes alike (two Ivy
    Cottages on one street, one postcode) neither is chosen; a building or house name misspelt on the street the text
    writes ("Rose Cotage", "Brich House") is the one property of that spelling, flat and number; a premises name
    with its number and a street one letter short ("BETFRED 7 HGH STREET") is that premises; a home's floor flat
    with no number is never matched to the ground-floor shop unit of its postcode."""
    rows = answers[answers["text"].isin(SESSION9_FORMS)]
    assert set(rows["text"]) == set(SESSION9_FORMS)
    bad = rows[~rows.apply(_ok, axis=1)]
    assert bad.empty, bad[["text", "postcode", "expected", "uprn", "match_level", "match_reason"]].to_string()
