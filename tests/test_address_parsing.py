"""Address parsing on the conventions partnerships' extracts use (police locations, housing, council, fire),
and the set-based DuckDB path (:mod:`ecins_link.standardise.address_sql`) agreeing with the one-text parser."""

from __future__ import annotations

import dataclasses

import duckdb
import pytest

from ecins_link.standardise.address import clean_part, expand_street, normalise_flat, parse_address
from ecins_link.standardise.address_sql import address_table, gazetteer_table
from ecins_link.synth import generate_town

# text -> (flat, number, building, street, town)
CASES = {
    # a bare leading number or letter that is a flat in a named building / numbered house
    "23, Copperfield House, Nelson Grove, Weston Green": ("FLAT 23", None, "COPPERFIELD HOUSE", "NELSON GROVE",
                                                          "WESTON GREEN"),
    "B, 1 Chester Grove, Leeds": ("FLAT B", "1", None, "CHESTER GROVE", "LEEDS"),
    "14, 15 Main Road": ("FLAT 14", "15", None, "MAIN ROAD", None),
    # ... and without commas: flat, building name, the building's number, street
    "18 THE MALTINGS 16 PARK ROAD": ("FLAT 18", "16", "THE MALTINGS", "PARK ROAD", None),
    "3 QUEENS TOWER 4 MAPLE ST OAKWOOD NORTHTOWN": ("FLAT 3", "4", "QUEENS TOWER", "MAPLE STREET", "NORTHTOWN"),
    "12 High Street 4 Northtown": (None, "12", None, "HIGH STREET", "NORTHTOWN"),
    # a street after a number given as its own part
    "53b, Wellington Rd": (None, "53B", None, "WELLINGTON ROAD", None),
    "53b, Wellington Rd, Bootle": (None, "53B", None, "WELLINGTON ROAD", "BOOTLE"),
    # street-type abbreviations
    "4 Laurel Gro, Oakwood, Northtown": (None, "4", None, "LAUREL GROVE", "NORTHTOWN"),
    "12 Mill La, Hexham": (None, "12", None, "MILL LANE", "HEXHAM"),
    "9 Riverside Wk": (None, "9", None, "RIVERSIDE WALK", None),
    "2 Marine Pde, Dover": (None, "2", None, "MARINE PARADE", "DOVER"),
    "30 Ash Cres Luton": (None, "30", None, "ASH CRESCENT", "LUTON"),
    "5 Kings Tce, Whitby": (None, "5", None, "KINGS TERRACE", "WHITBY"),
    "17 Church Sq.": (None, "17", None, "CHURCH SQUARE", None),
    # ST before a name is Saint; SAINT is written ST so both forms agree
    "22 St Johns Rd, Northtown": (None, "22", None, "ST JOHNS ROAD", "NORTHTOWN"),
    "22 Saint Johns Road, Northtown": (None, "22", None, "ST JOHNS ROAD", "NORTHTOWN"),
    # position words are not part of a building name
    "O/S 22 Oak Road, Northtown": (None, "22", None, "OAK ROAD", "NORTHTOWN"),
    "Outside 24, Harbour Court, Cambridge Road, St Marys": ("FLAT 24", None, "HARBOUR COURT", "CAMBRIDGE ROAD",
                                                            "ST MARYS"),
    "Rear of A, 30 Market Gro, Abbey Hill": ("FLAT A", "30", None, "MARKET GROVE", "ABBEY HILL"),
    "Junction near 33 Nelson Gro": (None, "33", None, "NELSON GROVE", None),
    "In 15a, Birch St, St Marys, Northtown": (None, "15A", None, "BIRCH STREET", "NORTHTOWN"),
    "Opp 4 High St., Alnwick NE66 1AB": (None, "4", None, "HIGH STREET", "ALNWICK"),
    "O/S Rose Cottage, Richmond St, Oakwood": (None, None, "ROSE COTTAGE", "RICHMOND STREET", "OAKWOOD"),
    # a plain street type beats a COURT-type building part, even as the last part
    "Apt 8, Sovereign Court, Ivy Ave": ("FLAT 8", None, "SOVEREIGN COURT", "IVY AVENUE", None),
    "9, Foundry Wharf, Dalton Street": ("FLAT 9", None, "FOUNDRY WHARF", "DALTON STREET", None),
    # the usual shapes stay as they were
    "Flat 2, Rose Court, 14 High St, Oakwood, Northtown": ("FLAT 2", "14", "ROSE COURT", "HIGH STREET", "NORTHTOWN"),
    "2/14 High Street, Northtown": ("FLAT 2", "14", None, "HIGH STREET", "NORTHTOWN"),
    "FB 10 Station Road": ("FLAT B", "10", None, "STATION ROAD", None),
    "The Old Rectory, Church Lane, Northtown NT3 1GP": (None, None, "THE OLD RECTORY", "CHURCH LANE", "NORTHTOWN"),
    # flat descriptors (standardise/data/address.toml) as flats with a canonical id, number suffixes kept
    "FIRST FLOOR FLAT, 9 MARKET PLACE, Northtown": ("FLAT FLOOR1", "9", None, "MARKET PLACE", "NORTHTOWN"),
    "1st Floor Flat 9 Market Place": ("FLAT FLOOR1", "9", None, "MARKET PLACE", None),
    "First Floor, 1 High Street": ("FLAT FLOOR1", "1", None, "HIGH STREET", None),
    "Flat 1st Floor, 9 High St": ("FLAT FLOOR1", "9", None, "HIGH STREET", None),
    "GROUND FLOOR FLAT 4 HIGH ST": ("FLAT FLOOR0", "4", None, "HIGH STREET", None),
    "GFF, 4 High St": ("FLAT FLOOR0", "4", None, "HIGH STREET", None),
    "Basement Flat, 7 Park Rd": ("FLAT BASEMENT", "7", None, "PARK ROAD", None),
    "TOP FLOOR FLAT 7 PARK RD": ("FLAT TOP", "7", None, "PARK ROAD", None),
    "Flat Above, 25 High St": ("FLAT ABOVE", "25", None, "HIGH STREET", None),
    "ABOVE, 25 HIGH ST": ("FLAT ABOVE", "25", None, "HIGH STREET", None),
    "Rear Flat, 7 Park Rd": ("FLAT REAR", "7", None, "PARK ROAD", None),
    "Annexe, 7 Park Rd": ("FLAT ANNEXE", "7", None, "PARK ROAD", None),
    "F2, 36 Elm Tce": ("FLAT 2", "36", None, "ELM TERRACE", None),
    "F10, Birch House, 19 High Street": ("FLAT 10", "19", "BIRCH HOUSE", "HIGH STREET", None),
    "FL1 7 Park Rd": ("FLAT 1", "7", None, "PARK ROAD", None),
    "3A Mill Mews": (None, "3A", None, "MILL MEWS", None),
    # the number as its own comma part after a flat (council exports with commas between every part)
    "First Floor Flat, 5, Walford Lane, Oxham, Yorkford": ("FLAT FLOOR1", "5", None, "WALFORD LANE", "YORKFORD"),
    "Flat 1, 24a, Oxdals Mews, Yorkford": ("FLAT 1", "24A", None, "OXDALS MEWS", "YORKFORD"),
    # abbreviated and run-together floor words, and a maisonette numbered like a flat
    "Betfred, Grd Floor, 3 Thornfield Drive": ("FLAT FLOOR0", "3", "BETFRED", "THORNFIELD DRIVE", None),
    "FIRSTFLOOR FLAT 21 BARBY AVENUE": ("FLAT FLOOR1", "21", None, "BARBY AVENUE", None),
    "Maisonette 2, Stanmouth Point, 20 Barstead Avenue": ("FLAT 2", "20", "STANMOUTH POINT", "BARSTEAD AVENUE",
                                                          None),
    # misspelt and reordered floor words, a flat number before a floor, a lone flat letter first (session 8)
    "FIRST FOOR FLAT 2 BRADMOUTS AVENUE": ("FLAT FLOOR1", "2", None, "BRADMOUTS AVENUE", None),
    "IFRST FLOOR FLAT 13 WALSTEAD WAY": ("FLAT FLOOR1", "13", None, "WALSTEAD WAY", None),
    "FLOOR SECOND FLAT 4 WENWORTH CLOSE": ("FLAT FLOOR2", "4", None, "WENWORTH CLOSE", None),
    "Fqat 5, Dundale House, 4 Oxfiels Grove": ("FLAT 5", "4", "DUNDALE HOUSE", "OXFIELS GROVE", None),
    "2 Second Floor, Eddale House, 29 Tamtos Avenue": ("FLAT 2", "29", "EDDALE HOUSE", "TAMTOS AVENUE", None),
    "C, The Lodge, 22, Edwics Road": ("FLAT C", "22", "THE LODGE", "EDWICS ROAD", None),
    # ... but not a street or building word one letter from a floor word, nor a letter with no house number after
    "Flat 2, Firs Court, 3 High St": ("FLAT 2", "3", "FIRS COURT", "HIGH STREET", None),
    "1 Flood Lane, Bootle": (None, "1", None, "FLOOD LANE", "BOOTLE"),
    # a vague flat word before the label that names the flat, with and without commas
    "Flat Over, Flat 1, Pendale Mansions, 18, Bromfiels Terrace": ("FLAT 1", "18", "PENDALE MANSIONS",
                                                                   "BROMFIELS TERRACE", None),
    "FLAT AT FLAT 9 BARWICK HOUSE 1 MELBURS GROVE": ("FLAT 9", "1", "BARWICK HOUSE", "MELBURS GROVE", None),
}


def test_flat_descriptors_are_not_position_words() -> None:
    assert not parse_address("Rear Flat, 7 Park Rd").approximate
    assert parse_address("Rear of 7 Park Rd").approximate


def test_gazetteer_sao_descriptors_meet_agency_ones() -> None:
    for sao, flat in (("First Floor Flat", "FLAT FLOOR1"), ("1ST FLOOR FLAT", "FLAT FLOOR1"),
                      ("Ground floor", "FLAT FLOOR0"), ("Top Flat", "FLAT TOP"), ("FLAT 2", "FLAT 2"), ("F2", "FLAT 2")):
        assert normalise_flat(sao) == flat, sao


@pytest.mark.parametrize("text", list(CASES))
def test_parts(text: str) -> None:
    a = parse_address(text)
    assert (a.flat, a.number, a.building, a.street, a.town) == CASES[text], a


def test_position_words_flag_and_street_names() -> None:
    assert parse_address("O/S 22 Oak Road").approximate
    assert parse_address("Junction near 33 Nelson Gro").approximate
    assert not parse_address("22 Oak Road").approximate
    # a street named with a position word keeps it
    j = parse_address("12 Junction Road, Archway")
    assert (j.number, j.street, j.approximate) == ("12", "JUNCTION ROAD", False)
    r = parse_address("Rear Lane, Hexham")
    assert (r.street, r.approximate) == ("REAR LANE", False)
    assert parse_address("Near, Junction Rd").street == "JUNCTION ROAD"
    # the same property with and without the position words has the same normalised text
    assert parse_address("Rear of 4, St Johns Court, Station St").norm == parse_address(
        "4, St Johns Court, Station St").norm


def test_postcode_and_empty() -> None:
    a = parse_address("10 Downing St, London SW1A2AA")
    assert (a.postcode, a.town, a.street) == ("SW1A 2AA", "LONDON", "DOWNING STREET")
    assert dataclasses.astuple(parse_address("  ")) == dataclasses.astuple(parse_address(None))
    assert parse_address("Outside").norm is None


EXTRA = ["Flát 3, Łódź House, 4 Żabia St", "12 O'Neill's Yard & Co.", "Apt. 4 - 6 Mill Rd", "NEAR, O/S 5 Low Rd",
         "", ",,", "F2, 3 Low Rd", "1 - 3 High St NT1 2AB", "Unit 4, Riverside Ind Est, Leeds LS1 4AP"]


@pytest.fixture(scope="module")
def town_texts(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], duckdb.DuckDBPyConnection]:
    """Address texts of a small synthetic town plus the case texts; a connection holding its gazetteer."""
    out = tmp_path_factory.mktemp("addr")
    generate_town(out / "town", 600, 11)
    con = duckdb.connect()
    texts: list[str] = []
    for path, col in (("police/occurrences.csv", None), ("fire/incidents.csv", None), ("council/people.csv", None)):
        df = con.execute(f"SELECT * FROM read_csv('{out / 'town' / path}', all_varchar = true)").df()
        cols = [c for c in df.columns if "ADDRESS" in c.upper() or "LOCATION" in c.upper()] if col is None else [col]
        for c in cols:
            texts += [x for x in df[c].dropna().tolist()]
    con.execute(f"""CREATE TABLE gazetteer AS SELECT UPRN AS uprn,
        nullif(concat_ws(' ', SAO_TEXT, SAO_START_NUMBER), '') AS sub_building,
        PAO_START_NUMBER || coalesce(PAO_START_SUFFIX, '') AS number, PAO_TEXT AS building_name, ORGANISATION AS organisation, STREET AS street, LOCALITY AS locality, TOWN AS town,
        POSTCODE AS postcode FROM read_csv('{out / 'town' / 'gazetteer' / 'llpg.csv'}', all_varchar = true)""")
    return sorted(set(texts) | set(CASES) | set(EXTRA)), con


def test_set_based_equals_one_text_parser(town_texts: tuple[list[str], duckdb.DuckDBPyConnection]) -> None:
    texts, con = town_texts
    assert len(texts) > 200
    con.execute("CREATE OR REPLACE TABLE t AS SELECT unnest(?) AS v", [texts])
    n = address_table(con, "SELECT v FROM t UNION ALL SELECT NULL", "_parsed")
    assert n == len(texts)
    got = {r[0]: r[1:] for r in con.execute(
        "SELECT raw, norm, flat, number, building, street, town, postcode, approximate FROM _parsed").fetchall()}
    for text in texts:
        a = parse_address(text)
        assert got[text] == (a.norm, a.flat, a.number, a.building, a.street, a.town, a.postcode, a.approximate), text


def test_gazetteer_table_equals_part_functions(town_texts: tuple[list[str], duckdb.DuckDBPyConnection]) -> None:
    _texts, con = town_texts
    con.execute("""INSERT INTO gazetteer VALUES ('1', 'Flát 2', '14', 'Rose Court', NULL, 'High St', 'Oakwood',
        'Northtown', 'NT1 2AB'), ('2', 'FB', NULL, NULL, 'The Bakery', 'Saint Marys Rd', NULL, 'Leeds', NULL)""")
    n = gazetteer_table(con, "_gaz")
    assert n == con.execute("SELECT count(*) FROM gazetteer").fetchone()[0]
    rows = con.execute("""SELECT g.*, s.flat, s.number, s.building, s.organisation, s.street, s.locality, s.town,
        s.address_norm FROM gazetteer g JOIN _gaz s USING (uprn)""").fetchall()
    for uprn, sao, num, bld, org, street, loc, town, _pc, *std in rows:
        want = [normalise_flat(sao), clean_part(num), clean_part(bld), clean_part(org), expand_street(street),
                clean_part(loc), clean_part(town)]
        assert std[:7] == want, uprn
        name = want[3] if not (want[1] or want[2]) else None
        assert std[7] == " ".join(x for x in (want[0], name, want[2], want[1], want[4], want[5], want[6]) if x)
    one = dict(con.execute("SELECT uprn, address_norm FROM _gaz WHERE uprn IN ('1', '2')").fetchall())
    assert one["1"] == parse_address("Flat 2, Rose Court, 14 High Street, Oakwood, Northtown").norm
    assert one["2"] == "FLAT B THE BAKERY ST MARYS ROAD LEEDS"


def test_gazetteer_classification_and_bs7666_numbers() -> None:
    from ecins_link.config import GazetteerMapping
    from ecins_link.ingest.gazetteer import gazetteer_select
    from ecins_link.standardise.address_flats import address_class_sql

    con = duckdb.connect()
    vals = ["RD06", "R", "CR08", "C", "PP", "RG02", "Commercial", "Residential", "ZW99", "", None]
    con.execute("CREATE TABLE c AS SELECT * FROM (SELECT unnest(?) AS v, generate_subscripts(?, 1) AS i)", [vals, vals])
    got = [r[0] for r in con.execute(f"SELECT {address_class_sql('v')} FROM c ORDER BY i").fetchall()]
    assert got == ["residential", "residential", "commercial", "commercial", "other", "other", "commercial",
                   "residential", "other", None, None]
    con.execute("""CREATE TABLE r AS SELECT * FROM (VALUES
        ('1', '12', 'a', NULL, NULL, 'FLAT', '2', NULL),
        ('2', '12', NULL, '14', NULL, NULL, NULL, NULL),
        ('3', '12.0', NULL, NULL, NULL, 'FIRST FLOOR FLAT', NULL, 'BIRCH HOUSE'))
        t(u, pn, ps, pe, pes, st, sn, pt)""")
    g = GazetteerMapping(uprn="u", pao_start_number="pn", pao_start_suffix="ps", pao_end_number="pe",
                         pao_end_suffix="pes", sao_text="st", sao_start_number="sn", pao_text="pt")
    rows = con.execute(f"SELECT uprn, sub_building, number, building_name FROM ({gazetteer_select(g, 'r')}) ORDER BY 1"
                       ).fetchall()
    assert rows == [("1", "FLAT 2", "12A", None), ("2", None, "12-14", None), ("3", "FIRST FLOOR FLAT", "12", "BIRCH HOUSE")]
    # the one-column mapping still wins where it is given
    old = GazetteerMapping(uprn="u", number="pn", sub_building="st")
    assert con.execute(f"SELECT number, sub_building FROM ({gazetteer_select(old, 'r')}) ORDER BY uprn").fetchall()[0] == \
        ("12", "FLAT")
