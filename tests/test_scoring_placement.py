"""Records the location stage placed at building level (a position word before a flat: "Rear of Flat 2, Birch
House ..."), counted by location rules at the unit inside the building as corroboration (scoring/placement.py).
The real-town version is ``test_scenarios_with_pieces_placed_at_the_building_are_flagged_at_the_flat`` in
``tests/test_history_detection.py`` (slow)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ecins_link.config import parse_config
from ecins_link.scoring import score
from ecins_link.scoring.fixtures import World
from ecins_link.scoring.placement import MAX_UNITS
from ecins_link.store import Store

AS_OF = dt.date(2025, 3, 31)
# Birch House (9000): a block of four flats; 5 Oak Road (8000): a converted house of two
UNITS = {"9000": ["FLAT 1", "FLAT 2", "FLAT 3", "FLAT 4"], "8000": ["FLAT A", "FLAT B"]}


def _uprn(parent: str, flat: str) -> str:
    return str(int(parent) + UNITS[parent].index(flat) + 1)


def _tables(at_building: dict[str, tuple[str, str | None]]) -> list[str]:
    """gazetteer_std with the two buildings and their units; address_std of the building-level reports (record_key
    -> (building uprn, flat named or None)); address_matches marked approximate for them, exact otherwise."""
    gaz = []
    for parent, flats in UNITS.items():
        gaz.append(f"('{parent}', NULL, NULL, 'BUILDING {parent}', NULL, 'OAK ROAD', NULL, 'NORTHTOWN', NULL, NULL)")
        gaz += [f"('{_uprn(parent, f)}', '{f}', NULL, 'BUILDING {parent}', NULL, 'OAK ROAD', NULL, 'NORTHTOWN', "
                f"NULL, '{parent}')" for f in flats]
    rows = ", ".join(f"('asb_events', '{k}', 'event', {repr(f) if f else 'NULL'}, NULL, 'BUILDING {b}', 'OAK ROAD', "
                     f"'NORTHTOWN', NULL)" for k, (b, f) in at_building.items())
    keys = ", ".join(f"'{k}'" for k in at_building)
    return [
        "CREATE TABLE gazetteer_std (uprn VARCHAR, flat VARCHAR, number VARCHAR, building VARCHAR, "
        "organisation VARCHAR, street VARCHAR, locality VARCHAR, town VARCHAR, postcode VARCHAR, parent_uprn VARCHAR)",
        f"INSERT INTO gazetteer_std VALUES {', '.join(gaz)}",
        "CREATE TABLE address_std (source VARCHAR, record_key VARCHAR, origin VARCHAR, flat VARCHAR, number VARCHAR, "
        "building VARCHAR, street VARCHAR, town VARCHAR, postcode VARCHAR)",
        f"INSERT INTO address_std VALUES {rows}",
        "ALTER TABLE address_matches ADD COLUMN match_level VARCHAR",
        f"UPDATE address_matches SET match_level = CASE WHEN record_key IN ({keys}) THEN 'approximate' "
        "ELSE 'exact' END",
    ]


def _scored(tmp_path: Path, w: World, extra: list[str]) -> dict[str, dict]:
    store = Store(tmp_path / "store.duckdb")
    w.write(store)
    for sql in extra:
        store.con.execute(sql)
    config = parse_config({"project": {"name": "p", "as_of": AS_OF.isoformat()}, "sources": [
        {"name": "police_nominals", "agency": "police", "path": "n.csv", "key": "id", "person": {"full_name": "n"}}]},
        root=tmp_path)
    score(store, config)
    rows = store.con.execute("SELECT entity_id, evidence FROM flags WHERE rule = 'asb_hotspot'").fetchall()
    store.close()
    return {e: json.loads(ev) for e, ev in rows}


def test_a_report_at_the_building_corroborates_the_flat_it_names_and_never_starts_a_flag(tmp_path: Path) -> None:
    w = World(AS_OF)
    for u in ["9000", "8000", *(_uprn(p, f) for p, fs in UNITS.items() for f in fs)]:
        w.event("fire", None, 900, location_id=f"U{u}", source="asb_events")  # every premises is a known location
    at_building: dict[str, tuple[str, str | None]] = {}

    def certain(agency: str, when: int, uprn: str) -> None:
        w.event(agency, "ASB_REPORT", when, location_id=f"U{uprn}", source="asb_events")

    def upstairs(agency: str, when: int, key: str, building: str, flat: str | None) -> None:
        w.event(agency, "ASB_REPORT", when, location_id=f"U{building}", source="asb_events", record_key=key)
        at_building[key] = (building, flat)

    # Flat 2: two certain reports and "Rear of Flat 2, Birch House": three reports, two agencies
    certain("police", 40, "9002")
    certain("council", 30, "9002")
    upstairs("police", 20, "B2", "9000", "FLAT 2")
    # Flat 4: three reports naming it, all at building level, nothing certain there: no flag at the flat
    for i, (agency, d) in enumerate((("police", 50), ("council", 45), ("police", 35))):
        upstairs(agency, d, f"B4{i}", "9000", "FLAT 4")
    # Flat 3: two certain reports; "O/S Birch House" names no flat and the block has more than MAX_UNITS flats
    certain("police", 40, "9003")
    certain("council", 30, "9003")
    upstairs("police", 20, "B0", "9000", None)
    # 5 Oak Road, Flat A: two certain reports; "O/S 5 Oak Road" names no flat, the house has two: counted
    certain("police", 40, "8001")
    certain("council", 30, "8001")
    upstairs("police", 20, "H0", "8000", None)
    assert len(UNITS["9000"]) > MAX_UNITS >= len(UNITS["8000"])
    got = _scored(tmp_path, w, _tables(at_building))
    # the flats; the block itself keeps its own (certain) reports and is a hotspot in its own right
    assert set(got) == {"U9002", "U8001", "U9000"}
    placed = {x["record_key"]: x["placed"] for x in got["U9002"]["records"]}
    assert placed["B2"] == "building" and sorted(placed.values()) == ["building", "event", "event"]
    assert {x["record_key"]: x["placed"] for x in got["U8001"]["records"]}["H0"] == "building"
    assert {x["placed"] for x in got["U9000"]["records"]} == {"event"}


@pytest.mark.parametrize("units_known", [True, False])
def test_a_store_without_parent_uprns_counts_building_level_reports_only_at_the_building(
        tmp_path: Path, units_known: bool) -> None:
    """gazetteer_std without ``parent_uprn`` (a store from an older version): no unit is known, nothing moves."""
    w = World(AS_OF)
    for u in ("9000", "9002"):
        w.event("fire", None, 900, location_id=f"U{u}", source="asb_events")
    w.event("police", "ASB_REPORT", 40, location_id="U9002", source="asb_events")
    w.event("council", "ASB_REPORT", 30, location_id="U9002", source="asb_events")
    w.event("police", "ASB_REPORT", 20, location_id="U9000", source="asb_events", record_key="B2")
    extra = _tables({"B2": ("9000", "FLAT 2")})
    if not units_known:
        extra.append("ALTER TABLE gazetteer_std DROP COLUMN parent_uprn")
    assert set(_scored(tmp_path, w, extra)) == ({"U9002"} if units_known else set())


@pytest.mark.parametrize("parent_class", ["commercial", "other"])
def test_a_report_at_a_shop_with_a_flat_above_stays_at_the_shop_unless_it_names_the_flat(
        tmp_path: Path, parent_class: str) -> None:
    """5 Oak Road (8000) is a shop (class commercial) with flats above, or a converted house (a shell, class
    other).  "Near 5 Oak Road" names no flat: at a shop it is about the shop, and the flat above (two certain
    reports) is no hotspot; at a shell it may be either flat and completes Flat A's three.  "Rear of Flat B, 5 Oak
    Road" names its flat: counted there either way."""
    w = World(AS_OF)
    for u in ["8000", *(_uprn("8000", f) for f in UNITS["8000"])]:
        w.event("fire", None, 900, location_id=f"U{u}", source="asb_events")
    at_building: dict[str, tuple[str, str | None]] = {}
    for flat in ("8001", "8002"):
        w.event("police", "ASB_REPORT", 40, location_id=f"U{flat}", source="asb_events")
        w.event("council", "ASB_REPORT", 30, location_id=f"U{flat}", source="asb_events")
    for key, flat in (("NEAR", None), ("REAR_B", "FLAT B")):
        w.event("police", "ASB_REPORT", 20, location_id="U8000", source="asb_events", record_key=key)
        at_building[key] = ("8000", flat)
    classes = [f"UPDATE gazetteer_std SET address_class = '{parent_class}' WHERE uprn = '8000'",
               "UPDATE gazetteer_std SET address_class = 'residential' WHERE parent_uprn = '8000'"]
    got = _scored(tmp_path, w, [*_tables(at_building), "ALTER TABLE gazetteer_std ADD COLUMN address_class VARCHAR",
                                *classes])
    assert {x["record_key"]: x["placed"] for x in got["U8002"]["records"]}["REAR_B"] == "building"
    if parent_class == "commercial":
        assert "U8001" not in got
    else:
        assert {x["record_key"]: x["placed"] for x in got["U8001"]["records"]}["NEAR"] == "building"
