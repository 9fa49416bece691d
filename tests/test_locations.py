"""Locations stage: addresses -> UPRNs on a realistic small gazetteer with messy agency address variants.

The fixture writes ``address_std`` / ``gazetteer_std`` as the standardise stage would (parsed parts), then
checks behaviour through ``link_locations`` and ``evaluate_locations``: keys resolve, ties are refused,
flat labels are not pinned on the shell house, proximity texts are flagged, unresolved addresses cluster.
"""

from __future__ import annotations

import pandas as pd
import pytest

from ecins_link.config import parse_config
from ecins_link.locations.stage import evaluate_locations, link_locations
from ecins_link.store import Store, StoreError

STREETS = [("HIGH STREET", "ALDTON", "AL1 1"), ("MILL LANE", "ALDTON", "AL1 2"), ("STATION ROAD", "ALDTON", "AL2 3"),
           ("HIGH STREET", "BRIGWORTH", "BR4 5"), ("CHURCH CLOSE", "BRIGWORTH", "BR4 6")]
GAZ_COLS = ["uprn", "address_norm", "flat", "number", "building", "organisation", "street", "locality", "town",
            "postcode", "postcode_outward", "postcode_sector", "full_address"]
STD_COLS = ["source", "record_key", "origin", "address_text", "address_norm", "flat", "number", "building", "street",
            "town", "postcode", "postcode_outward", "postcode_sector", "uprn"]


ABBREV = {"ST": "STREET", "RD": "ROAD", "LN": "LANE"}  # as the standardiser expands them


def _pc(prefix: str, n: int) -> str:
    return f"{prefix}{'ABD'[n % 3]}{'XYZ'[n // 10 % 3]}"


def _gazetteer() -> pd.DataFrame:
    rows, uprn = [], 10_000
    for s_i, (street, town, pre) in enumerate(STREETS):
        for n in range(1, 31):
            pc = _pc(pre, n)
            flats = ["A", "B"] if n % 7 == 0 else []
            for flat in [None, *flats]:
                uprn += 1
                parts = [f"FLAT {flat}" if flat else None, str(n), street, town]
                norm = " ".join(p for p in parts if p)
                rows.append([str(uprn), norm, f"FLAT {flat}" if flat else None, str(n), None, None, street, None,
                             town, pc, pc.split()[0], pc[:-2], f"{norm}, {pc}"])
        uprn += 1
        if s_i == 0:
            rows.append([str(uprn), "THE RED LION HIGH STREET ALDTON", None, None, None, "THE RED LION", "HIGH STREET",
                         None, "ALDTON", "AL1 1AA", "AL1", "AL1 1", "THE RED LION, HIGH STREET, ALDTON, AL1 1AA"])
        if s_i == 2:
            rows.append([str(uprn), "ROSE COTTAGE STATION ROAD ALDTON", None, None, "ROSE COTTAGE", None,
                         "STATION ROAD", None, "ALDTON", "AL2 3AA", "AL2", "AL2 3",
                         "ROSE COTTAGE, STATION ROAD, ALDTON, AL2 3AA"])
    return pd.DataFrame(rows, columns=GAZ_COLS)


def _uprn(gaz: pd.DataFrame, number: str | None, street: str, town: str, flat: str | None = None,
          name: str | None = None) -> str:
    g = gaz[(gaz.street == street) & (gaz.town == town)]
    if name:
        g = g[(g.organisation == name) | (g.building == name)]
    else:
        g = g[(g.number == number) & (g.flat.fillna("") == (flat or ""))]
    assert len(g) == 1
    return g.uprn.iloc[0]


def _messy(gaz: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(address_std rows, truth rows) with the kinds of variation agencies send."""
    std, truth = [], []

    def add(key: str, text: str, flat, number, building, street, town, postcode, true_uprn, src_uprn=None):
        norm = " ".join(ABBREV.get(w, w) for w in text.upper().replace(",", " ").split())
        out = postcode.split()[0] if postcode else None
        std.append(["police", key, "person", text, norm, flat, number, building, street, town, postcode, out,
                    postcode[:-2] if postcode else None, src_uprn])
        truth.append(["police", key, true_uprn])

    for i in range(1, 31):
        pc, u = _pc("AL1 1", i), _uprn(gaz, str(i), "HIGH STREET", "ALDTON")
        add(f"clean{i}", f"{i} High Street, Aldton", None, str(i), None, "HIGH STREET", "ALDTON", pc, u)
        # postcode missing: number + street + town settles it
        add(f"nopc{i}", f"{i} High St, Aldton", None, str(i), None, "HIGH STREET", "ALDTON", None, u)
        # postcode mistyped (last two letters transposed)
        good = _pc("AL1 2", i)
        add(f"badpc{i}", f"{i} Mill Lane, Aldton", None, str(i), None, "MILL LANE", "ALDTON",
            good[:-2] + good[-1] + good[-2], _uprn(gaz, str(i), "MILL LANE", "ALDTON"))
    # 14 High Street Aldton is split into flats A and B (with a shell record for the building)
    add("flatA", "Flat A, 14 High Street", "FLAT A", "14", None, "HIGH STREET", "ALDTON", _pc("AL1 1", 14),
        _uprn(gaz, "14", "HIGH STREET", "ALDTON", "FLAT A"))
    add("fb", "FB 14 High Street", None, "14", None, "HIGH STREET", "ALDTON", _pc("AL1 1", 14),
        _uprn(gaz, "14", "HIGH STREET", "ALDTON", "FLAT B"))
    # a postcode of another district: the street+town key must not override it
    add("otherpc", "3 Mill Lane, Aldton", None, "3", None, "MILL LANE", "ALDTON", "BR4 6AX",
        _uprn(gaz, "3", "MILL LANE", "ALDTON"))
    # the text names a locality the street-key candidate is not in
    add("otherarea", "4 Mill Lane, Brigworth", None, "4", None, "MILL LANE", "ALDTON", None,
        _uprn(gaz, "4", "MILL LANE", "ALDTON"))
    # same street name in two towns, no town and no postcode: a tie, must not be guessed
    add("tie", "5 High Street", None, "5", None, "HIGH STREET", None, None, _uprn(gaz, "5", "HIGH STREET", "ALDTON"))
    add("pub", "Red Lion pub, Aldton", None, None, None, None, "ALDTON", None,
        _uprn(gaz, None, "HIGH STREET", "ALDTON", name="THE RED LION"))
    add("cottage", "Rose Cottage, Station Rd, Aldton", None, None, "ROSE COTTAGE", "STATION ROAD", "ALDTON", None,
        _uprn(gaz, None, "STATION ROAD", "ALDTON", name="ROSE COTTAGE"))
    add("rear", "Rear of 3 Church Close, Brigworth", None, "3", None, "CHURCH CLOSE", "BRIGWORTH", _pc("BR4 6", 3),
        _uprn(gaz, "3", "CHURCH CLOSE", "BRIGWORTH"))
    add("given", "somewhere", None, None, None, None, None, None, _uprn(gaz, "9", "MILL LANE", "ALDTON"),
        src_uprn=_uprn(gaz, "9", "MILL LANE", "ALDTON"))
    # not in the gazetteer (new build): stays unresolved, and its two spellings share one location id
    add("new1", "77 Orchard Way, Aldton", None, "77", None, "ORCHARD WAY", "ALDTON", "AL9 9XX", None)
    add("new2", "77 Orchard Way", None, "77", None, "ORCHARD WAY", "ALDTON", None, None)
    add("vague", "Aldton", None, None, None, None, "ALDTON", "AL1 1AD", None)
    add("vague2", "Aldton", None, None, None, None, "ALDTON", "AL1 1AD", None)
    return pd.DataFrame(std, columns=STD_COLS), pd.DataFrame(truth, columns=["source", "record_key", "true_uprn"])


def _config(with_gazetteer: bool = True):
    sources = [{"name": "police", "agency": "police", "path": "p.csv", "key": "id", "person": {"full_name": "n"}}]
    if with_gazetteer:
        sources.append({"name": "llpg", "agency": "council", "path": "g.csv", "key": "uprn",
                        "gazetteer": {"uprn": "uprn"}})
    return parse_config({"project": {"name": "t"}, "sources": sources})


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    gaz = _gazetteer()
    std, truth = _messy(gaz)
    path = tmp_path_factory.mktemp("loc")
    truth_csv = path / "addresses.csv"
    truth.to_csv(truth_csv, index=False)
    store = Store(path / "s.duckdb")
    store.write_table("gazetteer_std", gaz)
    store.write_table("address_std", std)
    link_locations(store, _config())
    matches = store.df("SELECT * FROM address_matches").set_index("record_key")
    yield store, matches, truth.set_index("record_key"), truth_csv
    store.close()


def test_every_row_gets_a_match_row_and_location(linked):
    store, m, truth, _ = linked
    assert len(m) == store.count("address_std")
    assert m.location_id.notna().all()
    resolved = m[m.uprn.notna()]
    assert (resolved.location_id == "U" + resolved.uprn).all()
    assert m[m.uprn.isna()].location_id.str.startswith("L").all()


def test_keys_resolve_clean_missing_and_mistyped_postcodes(linked):
    _, m, truth, _ = linked
    for prefix, method in [("clean", "exact_key"), ("nopc", "street_number"), ("badpc", "street_number")]:
        rows = m[m.index.str.startswith(prefix)]
        assert (rows.uprn == truth.loc[rows.index, "true_uprn"]).all(), prefix
        assert set(rows.match_method) == {method}


def test_flat_resolves_and_unusual_flat_label_is_not_pinned_on_the_house(linked):
    _, m, truth, _ = linked
    assert m.loc["flatA", "uprn"] == truth.loc["flatA", "true_uprn"]
    shell = m.loc["clean14", "uprn"]  # the shell record of 14 High Street
    assert m.loc["fb", "uprn"] != shell
    assert m.loc["fb", "uprn"] == truth.loc["fb", "true_uprn"]  # "FB" read as flat B (location_rules.toml)


def test_weak_keys_refuse_contradicting_postcode_or_area(linked):
    _, m, _, _ = linked
    assert m.loc["otherpc", "match_method"] != "street_number"
    assert m.loc["otherarea", "match_method"] not in ("street_number", "street_unique")


def test_ties_are_refused_not_picked(linked):
    _, m, _, _ = linked
    # "5 High Street" with no town/postcode exists in two towns
    assert m.loc["tie", "match_method"] != "street_number"
    assert pd.isna(m.loc["tie", "uprn"]) or m.loc["tie", "match_method"] == "uk_address_matcher"


def test_premises_building_proximity_and_source_uprn(linked):
    _, m, truth, _ = linked
    assert m.loc["pub", "uprn"] == truth.loc["pub", "true_uprn"] and m.loc["pub", "match_method"] == "premises_name"
    assert m.loc["cottage", "uprn"] == truth.loc["cottage", "true_uprn"]
    assert m.loc["rear", "match_method"] == "proximity"
    assert m.loc["rear", "match_confidence"] < m.loc["clean3", "match_confidence"]
    assert m.loc["given", "match_method"] == "source_uprn"


def test_unresolved_cluster_and_vague_addresses_stay_apart(linked):
    _, m, _, _ = linked
    assert pd.isna(m.loc["new1", "uprn"]) and m.loc["new1", "match_method"] == "unresolved"
    assert m.loc["new1", "location_id"] == m.loc["new2", "location_id"]
    assert m.loc["vague", "match_method"] == "too_vague"
    assert m.loc["vague", "location_id"] != m.loc["vague2", "location_id"]


def test_evaluate_locations_rates(linked):
    store, m, truth, truth_csv = linked
    ev = evaluate_locations(store, truth_csv)
    o = ev["overall"]
    assert o["n"] == len(truth)
    assert abs(o["correct"] + o["wrong"] + o["unresolved"] + o["rightly_unresolved"] - 1) < 1e-3
    assert o["wrong"] == 0.0
    assert o["correct"] + o["rightly_unresolved"] >= 0.95  # only the deliberate tie and contradictions left
    assert ev["by_method"]["exact_key"]["correct"] == 1.0
    assert ev["truth_rows_missing_match"] == 0
    assert ev["location_ids"]["purity"] == 1.0  # no location id mixes two true properties


def test_no_gazetteer_clusters_among_themselves(tmp_path):
    std, _ = _messy(_gazetteer())
    with Store(tmp_path / "s.duckdb") as store:
        store.write_table("address_std", std)
        link_locations(store, _config(with_gazetteer=False))
        m = store.df("SELECT * FROM address_matches").set_index("record_key")
        assert len(m) == len(std)
        assert m.loc["given", "match_method"] == "source_uprn"
        # "1 High St" without a postcode joins "1 High Street, Aldton" with one
        assert m.loc["nopc1", "location_id"] == m.loc["clean1", "location_id"]
        assert m.loc["clean1", "location_id"] != m.loc["clean2", "location_id"]
        assert m.loc["flatA", "location_id"] != m.loc["clean14", "location_id"]
        ids1 = dict(zip(m.index, m.location_id, strict=True))
        link_locations(store, _config(with_gazetteer=False))
        m2 = store.df("SELECT record_key, location_id FROM address_matches")
        assert dict(zip(m2.record_key, m2.location_id, strict=True)) == ids1  # stable across runs


def test_missing_inputs_raise(tmp_path):
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(StoreError):
            link_locations(store, _config())
        store.write_table("address_std", _messy(_gazetteer())[0])
        with pytest.raises(StoreError):
            link_locations(store, _config())  # gazetteer declared but gazetteer_std missing


def _rules_without_matcher(tmp_path, *more: tuple[str, str]):
    """A copy of the shipped location rules with uk_address_matcher off (and each (old, new) of ``more``
    replaced): the tests of the key steps need no model."""
    from ecins_link.locations.stage import RULES_FILE

    text = RULES_FILE.read_text(encoding="utf-8")
    for old, new in (*more, ("enabled = true", "enabled = false")):
        text = text.replace(old, new)
    rules = tmp_path / "rules.toml"
    rules.write_text(text, encoding="utf-8")
    return rules


def _link(tmp_path, gaz, std, rules_path=None):
    """``std`` linked against ``gaz`` on a new store: (address_matches by record_key, the stage audit row's
    steps)."""
    import json

    with Store(tmp_path / "s.duckdb") as store:
        store.write_table("gazetteer_std", gaz)
        store.write_table("address_std", std)
        link_locations(store, _config(), rules_path=rules_path)
        matches = store.df("SELECT * FROM address_matches").set_index("record_key")
        details = json.loads(store.con.execute(
            "SELECT details FROM audit_log WHERE action = 'link_locations'").fetchone()[0])
    return matches, details["steps"]


@pytest.mark.parametrize("failing", ["residue matching", "background gazetteer preparation"])
def test_matcher_failure_leaves_residue_unresolved_and_audited(tmp_path, monkeypatch, failing):
    """uk_address_matcher failing (while matching the residue, or while preparing the gazetteer in the
    background): the keys' matches stand, the residue stays unresolved, and the audit row says why."""
    from uk_address_matcher import AddressMatcher

    from ecins_link.locations import uam as location_uam

    def boom(*_a, **_k):
        raise MemoryError("simulated")

    if failing == "residue matching":
        monkeypatch.setattr(location_uam, "run_uk_address_matcher", boom)
    else:
        monkeypatch.setattr(AddressMatcher, "_resolve_canonical_data", boom)
    gaz = _gazetteer()
    std, _ = _messy(gaz)
    m, steps = _link(tmp_path, gaz, std)
    assert len(m) == len(std)
    assert m.loc["clean1", "match_method"] == "exact_key"  # the keys are unaffected
    assert "uk_address_matcher" not in set(m.match_method)
    assert steps["uk_address_matcher_error"] == "MemoryError"


def test_proximity_can_be_left_unresolved_by_rules(tmp_path):
    rules = _rules_without_matcher(tmp_path, ("resolve = true", "resolve = false"))
    gaz = _gazetteer()
    std, _ = _messy(gaz)
    m, _ = _link(tmp_path, gaz, std, rules)
    assert pd.isna(m.loc["rear", "uprn"]) and m.loc["rear", "match_method"] == "unresolved"
    assert m.loc["rear", "location_id"].startswith("L")
    assert m.loc["clean3", "match_method"] == "exact_key"  # other addresses unaffected


def test_locality_named_in_the_text_settles_a_street_tie(tmp_path):
    """Two "River Street"s in one town (different localities): the locality the text names picks one; a text
    naming only the town stays unresolved; a locality that contradicts the parts is not forced."""
    from ecins_link.standardise.address import parse_address

    gaz = []
    for uprn, loc, pc in (("1", "KINGSLEY", "NT4 1AB"), ("2", "OAKWOOD", "NT8 2CD")):
        gaz.append([uprn, f"9 RIVER STREET {loc} NORTHTOWN", None, "9", None, None, "RIVER STREET", loc, "NORTHTOWN",
                    pc, pc.split()[0], pc[:-2], f"9 RIVER STREET, {loc}, NORTHTOWN, {pc}"])
    texts = {"kings": "9 River St, Kingsley, Northtown", "oak": "O/S 9 River Street, Oakwood, Northtown",
             "town": "9 River St, Northtown", "other": "9 River St, Millbrook, Northtown"}
    std = []
    for key, text in texts.items():
        a = parse_address(text)
        std.append(["police", key, "event", text, a.norm, a.flat, a.number, a.building, a.street, a.town, None, None,
                    None, None])
    rules = _rules_without_matcher(tmp_path)
    m, _ = _link(tmp_path, pd.DataFrame(gaz, columns=GAZ_COLS), pd.DataFrame(std, columns=STD_COLS), rules)
    assert (m.loc["kings", "uprn"], m.loc["kings", "match_method"]) == ("1", "street_area")
    assert (m.loc["oak", "uprn"], m.loc["oak", "match_method"]) == ("2", "proximity")
    assert pd.isna(m.loc["town", "uprn"]) and pd.isna(m.loc["other", "uprn"])


def _canonical_and_residue() -> tuple:
    import duckdb

    from ecins_link.locations.uam import canonical_sql

    gaz = _gazetteer()
    std, _ = _messy(gaz)
    con = duckdb.connect()
    con.register("gazetteer_std", gaz)
    canonical = con.execute(canonical_sql()).to_arrow_table()
    con.register("std", std)
    messy = con.execute("SELECT record_key AS akey, upper(address_text) AS address_concat, postcode FROM std "
                        "WHERE record_key IN ('pub', 'cottage', 'fb', 'rear', 'tie', 'new2', 'otherarea')").to_arrow_table()
    return canonical, messy


def test_background_gazetteer_preparation_matches_like_the_plain_matcher():
    """The session prepares the gazetteer in a thread, then matches: same answers as AddressMatcher.match()."""
    import duckdb
    from uk_address_matcher import AddressMatcher

    from ecins_link.locations.uam import MatcherSession

    canonical, messy = _canonical_and_residue()
    with MatcherSession(canonical, {}) as session:
        got = session.match(messy).to_pandas()
        assert session.prepare_seconds is not None and session.prepare_seconds > 0
    con = duckdb.connect()
    con.register("c", canonical)
    con.register("m", messy)
    plain = AddressMatcher(canonical_addresses=con.sql("SELECT * FROM c"),
                           addresses_to_match=con.sql("SELECT akey AS unique_id, address_concat, postcode FROM m"),
                           con=con, show_progress="off").match().matches()
    want = plain.select("CAST(unique_id AS VARCHAR) AS akey, CAST(resolved_canonical_id AS VARCHAR) AS uprn, "
                        "CAST(match_weight AS DOUBLE) AS w").to_df()
    both = got.merge(want, on="akey", how="outer", suffixes=("", "_plain"))
    assert len(both) == messy.num_rows
    assert (both.uprn.fillna("-") == both.uprn_plain.fillna("-")).all()
    assert ((both.match_weight - both.w).abs().fillna(0) < 1e-9).all()
    assert both.uprn.notna().sum() >= 2  # the pub and the cottage at least


def test_matcher_session_closes_while_preparing():
    from ecins_link.locations.uam import MatcherSession

    canonical, _ = _canonical_and_residue()
    session = MatcherSession(canonical, {})
    session.close()
    session.close()  # idempotent
    assert not session._thread.is_alive()


def test_flat_building_number_street_without_commas_is_read_from_the_gazetteer(tmp_path):
    """"2 Beckett House 6 Station Rd" parsed as number 2 + street "BECKETT HOUSE 6 STATION ROAD": the gazetteer
    has Beckett House at 6 Station Road, so it is flat 2 there (by the keys); an unknown building is not re-read."""
    rules = _rules_without_matcher(tmp_path)
    gaz = _gazetteer()
    flats = [[str(90_000 + f), f"FLAT {f} BECKETT HOUSE 6 STATION ROAD ALDTON", f"FLAT {f}", "6", "BECKETT HOUSE", None,
              "STATION ROAD", None, "ALDTON", "AL2 3BB", "AL2", "AL2 3",
              f"FLAT {f}, BECKETT HOUSE, 6 STATION ROAD, ALDTON, AL2 3BB"] for f in (1, 2, 3)]
    gaz = pd.concat([gaz, pd.DataFrame(flats, columns=GAZ_COLS)], ignore_index=True)
    rows = [["police", key, "person", text, text.upper().replace(" RD", " ROAD"), None, "2", None,
             street, "ALDTON", None, None, None, None]
            for key, text, street in [("beckett", "2 Beckett House 6 Station Rd Aldton", "BECKETT HOUSE 6 STATION ROAD"),
                                      ("unknown", "2 Foyle House 6 Station Rd Aldton", "FOYLE HOUSE 6 STATION ROAD")]]
    std = pd.DataFrame(rows, columns=STD_COLS)
    m, _ = _link(tmp_path, gaz, std, rules)
    assert m.loc["beckett", "uprn"] == "90002"
    assert m.loc["beckett", "match_method"] == "street_number"
    assert pd.isna(m.loc["unknown", "uprn"])  # no Foyle House at 6 Station Road: left alone, not flat 2 of it


def test_saint_locality_spelt_as_street_by_the_standardiser_still_settles_a_street_tie(tmp_path):
    """Two Birch Closes in Northtown, one in St Marys: "4 Birch Close St Marys" (address_norm "... STREET MARYS",
    as the standardiser expands ST) is the St Marys one."""
    rules = _rules_without_matcher(tmp_path)
    gaz = pd.DataFrame([[str(80_000 + i), f"4 BIRCH CLOSE {loc} NORTHTOWN", None, "4", None, None, "BIRCH CLOSE", loc,
                         "NORTHTOWN", pc, pc.split()[0], pc[:-2], f"4 BIRCH CLOSE, {loc}, NORTHTOWN, {pc}"]
                        for i, (loc, pc) in enumerate([("ST MARYS", "NT1 1AA"), ("KINGSLEY", "NT2 2BB")])],
                       columns=GAZ_COLS)
    std = pd.DataFrame([["police", "stm", "person", "4 Birch Close St Marys Northtown",
                         "4 BIRCH CLOSE STREET MARYS NORTHTOWN", None, "4", None, "BIRCH CLOSE", "NORTHTOWN",
                         None, None, None, None],
                        ["police", "plain", "person", "4 Birch Close Northtown", "4 BIRCH CLOSE NORTHTOWN", None, "4",
                         None, "BIRCH CLOSE", "NORTHTOWN", None, None, None, None]], columns=STD_COLS)
    m, _ = _link(tmp_path, gaz, std, rules)
    assert m.loc["stm", "uprn"] == "80000" and m.loc["stm", "match_method"] == "street_area"
    assert pd.isna(m.loc["plain", "uprn"])  # no area named: still a tie


def test_house_name_parsed_as_street_is_read_from_the_gazetteer(tmp_path):
    """"Fern Lea, Station Rd" parsed with street "FERN LEA": the gazetteer has a house Fern Lea on Station Road
    (and another on Mill Lane), so it is that house; a house name the gazetteer has on no street named next is not."""
    rules = _rules_without_matcher(tmp_path)
    gaz = _gazetteer()
    houses = [[str(70_000 + i), f"FERN LEA {street} ALDTON", None, None, "FERN LEA", None, street, None, "ALDTON", pc,
               pc.split()[0], pc[:-2], f"FERN LEA, {street}, ALDTON, {pc}"]
              for i, (street, pc) in enumerate([("STATION ROAD", "AL2 3FL"), ("MILL LANE", "AL1 2FL")])]
    gaz = pd.concat([gaz, pd.DataFrame(houses, columns=GAZ_COLS)], ignore_index=True)
    std = pd.DataFrame([["police", key, "person", text, norm, None, None, None, "FERN LEA", "ALDTON", None, None, None,
                         None] for key, text, norm in
                        [("fern", "Fern Lea, Station Rd, Aldton", "FERN LEA STATION ROAD ALDTON"),
                         ("church", "Fern Lea, Church Close, Aldton", "FERN LEA CHURCH CLOSE ALDTON")]],
                       columns=STD_COLS)
    m, _ = _link(tmp_path, gaz, std, rules)
    assert m.loc["fern", "uprn"] == "70000"
    assert pd.isna(m.loc["church", "uprn"])  # no Fern Lea on Church Close: not guessed


def test_a_flat_known_only_to_its_building_is_scored_right_building_not_wrong_other(tmp_path):
    """"Flat C, 14 High Street" where the gazetteer lists only flats A and B (and the building): the answer is the
    building at level ``building``.  Scored against a truth of flat A, it is ``right_building`` (the true flat's
    building), not ``wrong_other``; ``wrong`` still counts it (its meaning is unchanged)."""
    gaz = _gazetteer()
    truth_uprn = _uprn(gaz, "14", "HIGH STREET", "ALDTON", "FLAT A")
    shell = _uprn(gaz, "14", "HIGH STREET", "ALDTON")
    pc = _pc("AL1 1", 14)
    std = pd.DataFrame([["police", "flatC", "person", "Flat C, 14 High Street", "FLAT C 14 HIGH STREET", "FLAT C", "14",
                         None, "HIGH STREET", None, pc, pc.split()[0], pc[:-2], None],
                        ["police", "house", "person", "15 High Street, Aldton", "15 HIGH STREET ALDTON", None, "15",
                         None, "HIGH STREET", "ALDTON", None, None, None, None]], columns=STD_COLS)
    truth = pd.DataFrame([["police", "flatC", truth_uprn],
                          ["police", "house", _uprn(gaz, "15", "HIGH STREET", "ALDTON")]],
                         columns=["source", "record_key", "true_uprn"])
    truth.to_csv(tmp_path / "addresses.csv", index=False)
    with Store(tmp_path / "s.duckdb") as store:
        store.write_table("gazetteer_std", gaz)
        store.write_table("address_std", std)
        link_locations(store, _config())
        m = store.df("SELECT * FROM address_matches").set_index("record_key")
        assert m.loc["flatC", "uprn"] == shell and m.loc["flatC", "match_level"] == "building"
        o = evaluate_locations(store, tmp_path / "addresses.csv")["overall"]
    assert o["correct"] == 0.5 and o["wrong"] == 0.5
    assert o["right_building"] == 0.5 and o["wrong_other"] == 0.0


def test_suffix_on_a_building_with_lettered_flats_is_the_building_unless_the_rules_say_flat_letter(tmp_path):
    """"14A High St" where the street has no 14A and 14 lists flats A and B: by default the building (level
    ``building``, flat not known: a suffix is as often added to a flat whose own label was dropped); with
    ``[flats] suffix_as_flat_letter = true`` flat A.  Never flat B."""
    gaz = _gazetteer()
    std = pd.DataFrame([["police", "sfx", "person", "14A High Street, Aldton", "14A HIGH STREET ALDTON", None, "14A",
                         None, "HIGH STREET", "ALDTON", None, None, None, None]], columns=STD_COLS)
    shell = gaz[(gaz.street == "HIGH STREET") & (gaz.town == "ALDTON") & (gaz.number == "14") & gaz.flat.isna()]
    m, _ = _link(tmp_path, gaz, std, _rules_without_matcher(tmp_path))
    assert m.loc["sfx", "uprn"] == shell.uprn.iloc[0] and m.loc["sfx", "match_level"] == "building"
    on = tmp_path / "on"
    on.mkdir()
    m, _ = _link(on, gaz, std, _rules_without_matcher(on, ("suffix_as_flat_letter = false",
                                                           "suffix_as_flat_letter = true")))
    assert m.loc["sfx", "uprn"] == _uprn(gaz, "14", "HIGH STREET", "ALDTON", "FLAT A")
    assert m.loc["sfx", "match_level"] == "flat"


def test_a_position_word_before_a_lettered_number_is_placed_at_its_building(tmp_path):
    """"O/S 14A High St": 14A is no gazetteer number, 14 is a building of flats.  Without the position word the text
    resolves to the building (level ``building``); with it, it was left unresolved, although "O/S 14 High St" is
    placed at 14.  Now it is placed at the building as any text after a position word is (level ``approximate``)."""
    gaz = _gazetteer()
    std = pd.DataFrame([["police", k, "event", t, t.upper().replace("/", ""), None, "14A", None, "HIGH STREET",
                         "ALDTON", None, None, None, None] for k, t in (("near", "O/S 14A High Street, Aldton"),
                                                                          ("plain", "14A High Street, Aldton"))],
                       columns=STD_COLS)
    shell = gaz[(gaz.street == "HIGH STREET") & (gaz.town == "ALDTON") & (gaz.number == "14") & gaz.flat.isna()]
    m, _ = _link(tmp_path, gaz, std, _rules_without_matcher(tmp_path))
    assert m.loc["plain", "uprn"] == m.loc["near", "uprn"] == shell.uprn.iloc[0]
    assert m.loc["plain", "match_level"] == "building" and m.loc["near", "match_level"] == "approximate"
