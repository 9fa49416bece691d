"""Scoring rules on realistic fixture graphs: each shipped rule's boundary, evidence, invisibility, linkage."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ecins_link.config import ProjectConfig, parse_config
from ecins_link.scoring import score
from ecins_link.scoring.fixtures import World
from ecins_link.store import Store, StoreError

AS_OF = dt.date(2025, 3, 31)


def project(tmp_path: Path, **settings: object) -> ProjectConfig:
    """A minimal valid project whose as-of date is fixed."""
    return parse_config(
        {"project": {"name": "test", "as_of": AS_OF.isoformat(), **settings},
         "sources": [{"name": "police_nominals", "agency": "police", "path": "nominals.csv", "key": "nominal_id",
                      "person": {"full_name": "name", "dob": "dob"}}]},
        root=tmp_path)


def run(tmp_path: Path, build: Callable[[World], None], **settings: object) -> Store:
    """Build a world, score it, return the open store (closed by the caller's fixture teardown)."""
    world = World(AS_OF)
    build(world)
    store = Store(tmp_path / "store.duckdb")
    world.write(store)
    score(store, project(tmp_path, **settings))
    return store


def flags(store: Store, rule: str) -> dict[str, dict]:
    """entity_id -> flag row (as dict) for one rule."""
    df = store.df("SELECT * FROM flags WHERE rule = ?", [rule])
    return {r["entity_id"]: r for r in df.to_dict("records")}


# ------------------------------------------------------------------------------------------- MARAC
def _da_victim(w: World, pid: str, days_ago: list[int], loc: str) -> None:
    w.person(pid, 34)
    w.live(pid, loc)
    agencies = ["police", "housing", "council"]
    for i, d in enumerate(days_ago):
        agency = agencies[i % 3]
        w.event(agency, "DA_VICTIM" if agency == "police" else "DA_CONCERN", d, person=pid,
                role="V" if agency == "police" else None)


def test_marac_fires_at_three_incidents_not_two(scored) -> None:
    store = scored(lambda w: (_da_victim(w, "P000101", [12, 140, 300], "U100000001"),
                              _da_victim(w, "P000102", [12, 140], "U100000002")))
    got = flags(store, "marac_potential_escalation")
    assert set(got) == {"P000101"}
    ev = json.loads(got["P000101"]["evidence"])
    assert ev["conditions"][0]["count"] == 3 and ev["conditions"][0]["met"]
    assert {r["agency"] for r in ev["records"]} == {"police", "housing", "council"}
    assert all({"source", "record_key", "signal", "date", "role", "person_id", "link_confidence"} <= set(r)
               for r in ev["records"])
    assert got["P000101"]["guidance"].startswith("Meets the MARAC potential-escalation criterion")


def test_marac_window_is_twelve_months(scored) -> None:
    # three incidents spanning 11 months fire; spanning 13 months (first one out of the window) do not
    store = scored(lambda w: (_da_victim(w, "P000201", [5, 150, 335], "U100000003"),
                              _da_victim(w, "P000202", [5, 150, 396], "U100000004")))
    assert set(flags(store, "marac_potential_escalation")) == {"P000201"}


def test_invisible_to_single_agency_marking(scored) -> None:
    def build(w: World) -> None:
        _da_victim(w, "P000301", [10, 20, 30], "U100000005")  # police, housing, council: needs sharing
        w.person("P000302", 40)
        w.live("P000302", "U100000006")
        for d in (10, 60, 90):  # police alone holds three incidents
            w.event("police", "DA_VICTIM", d, person="P000302", role="V")
        w.event("housing", "DA_CONCERN", 100, person="P000302")

    got = flags(scored(build), "marac_potential_escalation")
    assert bool(got["P000301"]["visible_to_single_agency"]) is False
    assert bool(got["P000302"]["visible_to_single_agency"]) is True
    assert list(got["P000302"]["agencies"]) == ["housing", "police"]


def test_same_name_strangers_kept_apart_do_not_make_a_cocktail(scored) -> None:
    """Two John Smiths, each with two DA incidents: linked apart, no flag; wrongly merged, a false MARAC flag."""
    def strangers(merge: bool) -> Callable[[World], None]:
        def build(w: World) -> None:
            a, b = "P000401", ("P000401" if merge else "P000402")
            w.person(a, 31, name="John SMITH")
            if not merge:
                w.person(b, 58, name="John SMITH")
            w.live(a, "U100000007")
            w.live(b, "U100000008")
            w.event("police", "DA_VICTIM", 20, person_record=w.record(a, "police_nominals", "N1001"), role="V")
            w.event("police", "DA_VICTIM", 80, person_record=w.record(a, "police_nominals", "N1001"), role="V")
            w.event("housing", "DA_CONCERN", 40, person_record=w.record(b, "housing_tenants", "T77|2"))
            w.event("council", "DA_CONCERN", 90, person_record=w.record(b, "council_people", "C5521"))
        return build

    apart = scored(strangers(merge=False))
    assert flags(apart, "marac_potential_escalation") == {}
    per_person = apart.df("SELECT person_id, count(*) n FROM signals GROUP BY 1 ORDER BY 1")
    assert per_person.n.tolist() == [2, 2]
    merged = scored(strangers(merge=True))
    assert set(flags(merged, "marac_potential_escalation")) == {"P000401"}


# ------------------------------------------------------------------------------------------- fire
def _fire_person(w: World, pid: str, age: int, signals: list[tuple[str, str]], loc: str,
                 housemate: bool = True) -> None:
    w.person(pid, age)
    w.live(pid, loc)
    if housemate:
        w.person(pid + "H", age - 2)
        w.live(pid + "H", loc)
    for agency, sig in signals:
        w.event(agency, sig, 100, person=pid)


def test_fire_needs_three_of_eight_factors(scored) -> None:
    two = [("fire", "SW_SMOKER"), ("council", "MH_CONCERN")]
    three = [*two, ("housing", "HOARDING")]
    store = scored(lambda w: (_fire_person(w, "P000501", 60, two, "U100000009"),
                              _fire_person(w, "P000502", 60, three, "U100000010")))
    got = flags(store, "fire_safe_and_well")
    assert set(got) == {"P000502"}
    ev = json.loads(got["P000502"]["evidence"])
    assert ev["conditions_met"] == 3
    assert {c["id"] for c in ev["conditions"] if c["met"]} == {"smoker", "mental_health", "hoarding"}


def test_fire_lives_alone_derived_from_household_and_boosts(scored) -> None:
    two = [("fire", "SW_SMOKER"), ("council", "MH_CONCERN")]
    store = scored(lambda w: (_fire_person(w, "P000601", 70, two, "U100000011", housemate=False),
                              _fire_person(w, "P000602", 40, two, "U100000012", housemate=False),
                              _fire_person(w, "P000603", 70, two, "U100000013", housemate=True)))
    got = flags(store, "fire_safe_and_well")
    assert set(got) == {"P000601", "P000602"}  # living alone is the third factor; with a housemate it is not
    old, young = (json.loads(got[p]["evidence"]) for p in ("P000601", "P000602"))
    assert [b["applied"] for b in old["boosts"]] == [True, True]
    assert [b["applied"] for b in young["boosts"]] == [False, True]
    assert got["P000601"]["score"] == pytest.approx(2 * got["P000602"]["score"])


# ------------------------------------------------------------------------------------------- toxic trio
def _family(w: World, hh: str, loc: str, child_age: int, mh_on_child: bool = False) -> None:
    mum, dad, kid = f"{hh}M", f"{hh}D", f"{hh}C"
    w.person(mum, 31)
    w.person(dad, 35)
    w.person(kid, child_age)
    for p in (mum, dad, kid):
        w.live(p, loc, household_id=hh)
    w.event("police", "DA_VICTIM", 30, person=mum, role="V")
    w.event("council", "MH_CONCERN", 60, person=kid if mh_on_child else mum)
    w.event("council", "SUBSTANCE_MISUSE", 90, person=dad)


def test_toxic_trio_needs_a_child_and_adult_signals(scored) -> None:
    store = scored(lambda w: (_family(w, "HH01", "U100000030", 6),
                              _family(w, "HH02", "U100000031", 19),
                              _family(w, "HH03", "U100000032", 15, mh_on_child=True)))
    got = flags(store, "toxic_trio")
    assert set(got) == {"HH01"}
    assert set(got["HH01"]["person_ids"]) == {"HH01M", "HH01D"}
    assert "reason to look, not a verdict" in got["HH01"]["guidance"]


# ------------------------------------------------------------------------------------------- CSE
def _cse(w: World, kid: str, age: int, adult_age: int | None, concern: bool = False) -> None:
    w.person(kid, age)
    w.live(kid, f"U5{kid[1:]}")
    w.event("police", "MISSING_EPISODE", 20, person=kid)
    w.event("police", "MISSING_EPISODE", 120, person=kid)
    w.event("council", "SCHOOL_ABSENCE", 60, person=kid)
    if concern:
        w.event("council", "EXPLOITATION_CONCERN", 30, person=kid)
    if adult_age is not None:
        adult = kid + "A"
        w.person(adult, adult_age)
        w.event("police", "DRUG_SUPPLY", 50, person=adult, role="S")
        w.co_involved(kid, adult, 50)


def test_cse_risk_age_and_older_associate(scored) -> None:
    store = scored(lambda w: (_cse(w, "P000701", 15, 24), _cse(w, "P000702", 15, 16),
                              _cse(w, "P000703", 18, 24), _cse(w, "P000704", 14, None, concern=True),
                              _cse(w, "P000705", 14, None)))
    got = flags(store, "cse_risk")
    assert set(got) == {"P000701", "P000704"}
    cond = {c["id"]: c for c in json.loads(got["P000701"]["evidence"])["conditions"]}
    assert cond["exploitation"]["related_person_ids"] == ["P000701A"]  # the panel sees who the adult is
    assert cond["missing"]["count"] == 2


# ------------------------------------------------------------------------------------------- IOM / multi-agency
def test_iom_rfg_counts_offences_not_victimisation(scored) -> None:
    def build(w: World) -> None:
        for pid, roles in (("P000801", "SSS"), ("P000802", "SS"), ("P000803", "SSV")):
            w.person(pid, 27)
            w.live(pid, f"U8{pid[1:]}")
            for role, d in zip(roles, (20, 300, 700), strict=False):
                w.event("police", "VIOLENCE", d, person=pid, role=role)

    got = flags(scored(build), "iom_rfg")
    assert set(got) == {"P000801"}
    rfg = next(c for c in json.loads(got["P000801"]["evidence"])["conditions"] if c["id"] == "rfg_score")
    assert rfg["metric_value"] >= 40


def test_multi_agency_concern_three_agencies(scored) -> None:
    def build(w: World) -> None:
        for pid, agencies in (("P000901", ["police", "housing", "council"]), ("P000902", ["police", "housing"])):
            w.person(pid, 45)
            for a in agencies:
                w.event(a, "WELFARE_CONCERN", 50, person=pid)

    got = flags(scored(build), "multi_agency_concern")
    assert set(got) == {"P000901"}


# ------------------------------------------------------------------------------------------- signals / stage
def test_signals_resolution_location_household_and_decay(scored) -> None:
    def build(w: World) -> None:
        w.person("P001001", 40, confidence=0.93)
        w.live("P001001", "U100000050", household_id="HH50", first_seen=1000, last_seen=400)
        w.live("P001001", "U100000051", household_id="HH51", first_seen=399, last_seen=0)
        w.event("police", "ASB_REPORT", 90, person="P001001", location_id="U100000052", record_key="OCC1")
        w.event("council", "MH_CONCERN", 365, person="P001001", record_key="CON1")
        w.event("council", "WELFARE_CONCERN", 500, person="P001001", record_key="CON2")
        w.event("fire", "FIRE_REFUSE_DELIBERATE", 10, location_id="U100000053", record_key="INC1")

    store = scored(build)
    s = {r["record_key"]: r for r in store.df("SELECT * FROM signals").to_dict("records")}
    assert s["OCC1"]["location_id"] == "U100000052" and s["OCC1"]["uprn"] == "100000052"
    assert s["CON1"]["location_id"] == "U100000051" and s["CON1"]["household_id"] == "HH51"
    assert s["CON2"]["location_id"] == "U100000050" and s["CON2"]["household_id"] == "HH50"
    assert s["INC1"]["person_id"] is None and s["INC1"]["location_id"] == "U100000053"
    assert s["OCC1"]["category"] == "ASB" and s["OCC1"]["link_confidence"] == pytest.approx(0.93)
    assert s["OCC1"]["decayed_weight"] == pytest.approx(1.0 * 0.5)  # ASB_REPORT: weight 1, half-life 90
    assert s["CON1"]["decayed_weight"] == pytest.approx(2.0 * 0.5)  # MH_CONCERN: weight 2, half-life 365
    audit = store.df("SELECT category, action, row_counts FROM audit_log WHERE action = 'score'")
    assert audit.category.tolist() == ["combination"]
    assert json.loads(audit.row_counts[0])["signals"] == 4


def test_as_of_defaults_to_latest_event_date(tmp_path: Path) -> None:
    w = World(AS_OF)
    _da_victim(w, "P001101", [0, 100, 200], "U100000060")
    with Store(tmp_path / "s.duckdb") as store:
        w.write(store)
        cfg = parse_config({"project": {"name": "t"}, "sources": project(tmp_path).model_dump()["sources"]},
                           root=tmp_path)
        score(store, cfg)
        ev = json.loads(store.df("SELECT evidence FROM flags WHERE rule = 'marac_potential_escalation'").evidence[0])
        assert ev["as_of"] == AS_OF.isoformat()


def test_missing_input_table_is_a_clear_error(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        World(AS_OF).write(store)
        store.con.execute("DROP TABLE residences")
        with pytest.raises(StoreError, match="residences"):
            score(store, project(tmp_path))


def test_ranking_is_total_and_by_score(scored) -> None:
    store = scored(lambda w: (_da_victim(w, "P001201", [10, 20, 30], "U100000070"),
                              _da_victim(w, "P001202", [200, 250, 300], "U100000071"),
                              _family(w, "HH04", "U100000072", 4)))
    df = store.df("SELECT rank, score FROM flags ORDER BY rank")
    assert df["rank"].tolist() == list(range(1, len(df) + 1))
    assert df.score.is_monotonic_decreasing
    marac = flags(store, "marac_potential_escalation")
    assert marac["P001201"]["rank"] < marac["P001202"]["rank"]  # recent incidents outrank old ones


def test_project_rules_file_overrides_the_defaults(scored, tmp_path: Path) -> None:
    from ecins_link.scoring.rules import DEFAULT_RULES

    five = DEFAULT_RULES.read_text(encoding="utf-8").replace(
        'signals = ["DA_VICTIM", "DA_CONCERN"]\n  min_count = 3', 'signals = ["DA_VICTIM", "DA_CONCERN"]\n  min_count = 5')
    (tmp_path / "local_rules.toml").write_text(five, encoding="utf-8")
    # the rules file sits outside the project folder, so the project must allow that folder explicitly
    store = scored(lambda w: _da_victim(w, "P001301", [10, 20, 30], "U100000080"),
                   rules=str(tmp_path / "local_rules.toml"), allow_paths_outside=[str(tmp_path)])
    assert flags(store, "marac_potential_escalation") == {}


def test_toxic_trio_members_in_the_window_bring_their_signals(scored) -> None:
    def build(w: World) -> None:
        _family(w, "HH05", "U100000090", 6)
        # a new partner moved in 100 days ago; their substance misuse was recorded 300 days ago elsewhere
        w.person("HH06M", 30)
        w.person("HH06C", 4)
        w.person("HH06P", 33)
        w.live("HH06M", "U100000091", household_id="HH06")
        w.live("HH06C", "U100000091", household_id="HH06")
        w.live("HH06P", "U100000092", household_id="HH07", first_seen=900, last_seen=101)
        w.live("HH06P", "U100000091", household_id="HH06", first_seen=100, last_seen=0)
        w.event("police", "DA_VICTIM", 30, person="HH06M", role="V")
        w.event("council", "MH_CONCERN", 60, person="HH06M")
        w.event("council", "SUBSTANCE_MISUSE", 300, person="HH06P")
        # a lodger who left 500 days ago is not an adult of the household any more
        w.person("HH08M", 29)
        w.person("HH08C", 3)
        w.person("HH08L", 45)
        w.live("HH08M", "U100000093", household_id="HH08")
        w.live("HH08C", "U100000093", household_id="HH08")
        w.live("HH08L", "U100000093", household_id="HH08L", first_seen=900, last_seen=500)
        w.live("HH08L", "U100000094", household_id="HH09", first_seen=499, last_seen=0)
        w.event("police", "DA_VICTIM", 30, person="HH08M", role="V")
        w.event("council", "MH_CONCERN", 60, person="HH08M")
        w.event("council", "SUBSTANCE_MISUSE", 40, person="HH08L")

    got = flags(scored(build), "toxic_trio")
    assert set(got) == {"HH05", "HH06"}
    assert set(got["HH06"]["person_ids"]) == {"HH06M", "HH06P"}




CLUSTER_RULE = """
[[rules]]
id = "network_offending"
label = "Offending network around a child"
scope = "cluster"
window_days = 365
require_child = true
guidance = "Look at the network"
  [[rules.conditions]]
  id = "offending"
  categories = ["OFFENDING"]
  member = "adult"
  min_count = 3
  min_agencies = 1
"""


def test_custom_cluster_rule_over_person_components(scored, tmp_path: Path) -> None:
    (tmp_path / "cluster_rules.toml").write_text(CLUSTER_RULE, encoding="utf-8")

    def build(w: World) -> None:
        for comp, child_age in (("K1", 12), ("K2", 30)):
            for i, age in enumerate((child_age, 25, 31)):
                pid = f"{comp}P{i}"
                w.person(pid, age)
                w.component(pid, comp)
                if i:
                    w.event("police", "WEAPONS", 20 * i, person=pid, role="S")
                    w.event("police", "ACQUISITIVE", 30 * i, person=pid, role="S")

    store = scored(build, rules=str(tmp_path / "cluster_rules.toml"), allow_paths_outside=[str(tmp_path)])
    got = flags(store, "network_offending")
    assert set(got) == {"K1"}
    assert set(got["K1"]["person_ids"]) == {"K1P1", "K1P2"}
    assert set(store.df("SELECT DISTINCT rule FROM flags").rule) == {"network_offending"}


def test_odd_inputs_are_counted_not_crashed_on(scored) -> None:
    def build(w: World) -> None:
        _da_victim(w, "P001501", [10, 20, 30], "U100000098")
        w.event("police", "NOT_IN_TAXONOMY", 5, person="P001501")     # a code the taxonomy does not know
        w.event("police", "DA_VICTIM", None, person="P001501")          # undated (e.g. a flag column without date)
        w.event("police", "DA_VICTIM", 5, person_record=("police_nominals", "N404"))  # reference never linked

    store = scored(build)
    counts = json.loads(store.df("SELECT row_counts FROM audit_log WHERE action = 'score'").row_counts[0])
    assert counts["signals"] == 6
    assert counts["signals_unknown_code"] == 1 and counts["signals_without_person"] == 1
    ev = json.loads(flags(store, "marac_potential_escalation")["P001501"]["evidence"])
    assert ev["conditions"][0]["count"] == 3  # undated and unknown rows never count towards a window


def test_toxic_trio_household_is_the_people_living_at_one_address(scored) -> None:
    """Residence periods dated only by agency contacts don't overlap; the family still lives together."""
    def build(w: World) -> None:
        for pid, age, seen in (("F1M", 34, 320), ("F1D", 36, 60), ("F1C", 7, 700)):
            w.person(pid, age)
            w.live(pid, "U100000099", household_id=f"H-{pid}", first_seen=seen, last_seen=seen)
        w.event("council", "DA_CONCERN", 60, person="F1D")
        w.event("police", "MH_CONCERN", 320, person="F1M")
        w.event("council", "SUBSTANCE_MISUSE", 320, person="F1M")
        # a former tenant who moved on two years ago does not belong to today's household
        w.person("F2X", 40)
        w.live("F2X", "U100000099", household_id="H-old", first_seen=1500, last_seen=800)
        w.live("F2X", "U100000100", household_id="H-new", first_seen=799, last_seen=0)

    got = flags(scored(build), "toxic_trio")
    assert len(got) == 1
    flag = next(iter(got.values()))
    assert flag["entity_id"].startswith("H-F1") and set(flag["person_ids"]) == {"F1M", "F1D"}


def test_lives_alone_counts_people_currently_at_the_address(scored) -> None:
    def build(w: World) -> None:
        for pid, loc, seen in (("G1", "U100000101", 400), ("G2", "U100000101", 30), ("G3", "U100000102", 30)):
            w.person(pid, 81)
            w.live(pid, loc, household_id=f"H-{pid}", first_seen=seen, last_seen=seen)
            w.event("fire", "SW_SMOKER", 30, person=pid)
            w.event("council", "MH_CONCERN", 30, person=pid)

    assert set(flags(scored(build), "fire_safe_and_well")) == {"G3"}
