"""What made planted scenarios go missing on towns with three years of history, and the boundaries of each fix:

* an ambiguous event address (fits several premises) corroborates a location rule where certain evidence of the
  rule already is, in the same window, and never starts a flag;
* an associate whose age no agency recorded counts for ``co_involved_with`` only when the rule says so, and
  never when recorded as a child; the 18th birthday still decides for a known date of birth;
* an event filed against a person's address record before the record's recorded start moves the residence start;
* (slow) detection, decoys and invisibility measured through the whole pipeline on several small towns.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ecins_link.config import parse_config
from ecins_link.graph.people import residences_sql
from ecins_link.scoring import score
from ecins_link.scoring.fixtures import World
from ecins_link.scoring.placement import MAX_CANDIDATES
from ecins_link.store import Store

AS_OF = dt.date(2025, 3, 31)


def _config(root: Path, rules: str | None = None):  # noqa: ANN202
    project = {"name": "h", "as_of": AS_OF.isoformat(),
               **({"rules": rules, "allow_paths_outside": [str(Path(rules).parent)]} if rules else {})}
    return parse_config({"project": project, "sources": [
        {"name": "police_nominals", "agency": "police", "path": "n.csv", "key": "id", "person": {"full_name": "n"}}]},
        root=root)


def _scored(tmp_path: Path, world: World, extra_sql: tuple[str, ...] | list[str] = (), rules: str | None = None) -> Store:
    store = Store(tmp_path / "store.duckdb")
    world.write(store)
    for sql in extra_sql:
        store.con.execute(sql)
    score(store, _config(tmp_path, rules))
    return store


def _flags(store: Store, rule: str) -> dict[str, dict]:
    rows = store.con.execute("SELECT entity_id, evidence FROM flags WHERE rule = ?", [rule]).fetchall()
    return {e: json.loads(ev) for e, ev in rows}


# ------------------------------------------------------------------------------------- ambiguous addresses
GAZ = [  # uprn, number, street, locality: pairs of premises sharing a number and street in two localities
    ("1001", "21", "FENTON STREET", "RIVERSIDE"), ("1002", "21", "FENTON STREET", "EASTFIELD"),
    ("2001", "5", "MILL LANE", "RIVERSIDE"), ("2002", "5", "MILL LANE", "EASTFIELD"),
    *((f"300{i}", "3", "PARK ROAD", loc) for i, loc in enumerate(["A", "B", "C", "D"], 1)),  # four of them
    ("4001", "8", "HIGH STREET", "RIVERSIDE"), ("4002", "8", "HIGH STREET", "EASTFIELD"),
    ("5001", "10", "HIGH STREET", "RIVERSIDE"), ("5002", "10", "HIGH STREET", "EASTFIELD"),
]


def _address_tables(ambiguous: dict[str, tuple[str, str, str | None]]) -> list[str]:
    """address_std (the ambiguous event addresses: record_key -> number, street, town) and gazetteer_std."""
    gaz = ", ".join(f"('{u}', NULL, '{n}', NULL, NULL, '{s}', '{loc}', 'NORTHTOWN', NULL)" for u, n, s, loc in GAZ)
    rows = ", ".join([f"('asb_events', '{k}', 'event', '{n}', '{s}', {repr(t) if t else 'NULL'})"
                      for k, (n, s, t) in ambiguous.items()] or ["('-', '-', 'event', '-', '-', NULL)"])
    return [
        "CREATE TABLE gazetteer_std (uprn VARCHAR, flat VARCHAR, number VARCHAR, building VARCHAR, "
        "organisation VARCHAR, street VARCHAR, locality VARCHAR, town VARCHAR, postcode VARCHAR)",
        f"INSERT INTO gazetteer_std VALUES {gaz}",
        f"CREATE TABLE address_std AS SELECT *, NULL::VARCHAR AS flat, NULL::VARCHAR AS building, "
        f"NULL::VARCHAR AS postcode FROM (VALUES {rows}) t(source, record_key, origin, number, street, town)",
    ]


class _Reports:
    """ASB reports of a World, remembering the ambiguous ones' parsed addresses."""

    def __init__(self, world: World) -> None:
        self.w, self.ambiguous = world, {}

    def certain(self, agency: str, when: int, uprn: str) -> None:
        self.w.event(agency, "ASB_REPORT", when, location_id=f"U{uprn}", source="asb_events")

    def unclear(self, agency: str, when: int, key: str, number: str, street: str, town: str | None = None) -> None:
        self.w.event(agency, "ASB_REPORT", when, location_id=f"L{key}", source="asb_events", record_key=key)
        self.ambiguous[key] = (number, street, town)

    def linked(self, *uprns: str) -> None:
        """Some (unrelated, signal-less) record at each premises, so the store knows it as a location."""
        for u in uprns:
            self.w.event("fire", None, 900, location_id=f"U{u}", source="asb_events")


def test_ambiguous_address_completes_a_hotspot_but_never_starts_one(tmp_path: Path) -> None:
    w = World(AS_OF)
    r = _Reports(w)
    r.linked(*(u for u, *_ in GAZ))
    # 21 Fenton Street, Riverside: two certain reports (two agencies) and one that fits both 21 Fenton Streets
    r.certain("police", 40, "1001")
    r.certain("council", 30, "1001")
    r.unclear("police", 20, "A1", "21", "FENTON STREET")
    # 5 Mill Lane: three ambiguous reports and nothing certain at either premises: no flag anywhere
    for i, d in enumerate((50, 40, 30)):
        r.unclear(("police", "council", "police")[i], d, f"M{i}", "5", "MILL LANE", "NORTHTOWN")
    # 3 Park Road fits more premises than MAX_CANDIDATES: its ambiguous report is not counted
    r.certain("police", 40, "3001")
    r.certain("council", 30, "3001")
    r.unclear("police", 20, "P1", "3", "PARK ROAD")
    assert MAX_CANDIDATES < 4
    store = _scored(tmp_path, w, _address_tables(r.ambiguous))
    got = _flags(store, "asb_hotspot")
    assert set(got) == {"U1001"}  # not U1002 (no certain evidence there), nothing at Mill Lane or Park Road
    placed = {x["record_key"]: x["placed"] for x in got["U1001"]["records"]}
    assert placed["A1"] == "ambiguous" and sorted(placed.values()) == ["ambiguous", "event", "event"]
    # the ambiguous record stays unresolved in signals (it is not placed anywhere)
    assert store.con.execute("SELECT location_id FROM signals WHERE record_key = 'A1'").fetchone()[0] == "LA1"
    store.close()


def test_ambiguous_reports_count_only_inside_a_window_holding_certain_evidence(tmp_path: Path) -> None:
    """8 High Street: the certain report is on the first day (183 days before) of the last ambiguous report's
    window, so the window holds 3 reports from 2 agencies; 10 High Street: one day earlier, so it does not."""
    w = World(AS_OF)
    r = _Reports(w)
    r.linked(*(u for u, *_ in GAZ))
    for uprn, number, certain_day in (("4001", "8", 107 + 183), ("5001", "10", 107 + 184)):
        r.certain("council", certain_day, uprn)
        r.unclear("police", 200, f"B{number}", number, "HIGH STREET")
        r.unclear("police", 107, f"A{number}", number, "HIGH STREET")
    assert set(_flags(_scored(tmp_path, w, _address_tables(r.ambiguous)), "asb_hotspot")) == {"U4001"}


def test_resident_whose_home_address_is_ambiguous_corroborates_a_cuckooed_address(tmp_path: Path) -> None:
    """Drug supply by four outsiders at 21 Fenton Street, Riverside (certain); the vulnerable adult's own record
    gives '21 Fenton Street', which fits two premises: a possible resident of each, counted only where the
    rule's certain evidence is."""
    w = World(AS_OF)
    r = _Reports(w)
    r.linked(*(u for u, *_ in GAZ))
    for i, d in enumerate((60, 55, 45, 40)):
        w.person(f"V{i}", 25)
        w.event("police", "DRUG_SUPPLY", d, person=f"V{i}", location_id="U1001", role="S")
    w.person("R1", 70)
    w.live("R1", "LRES", first_seen=800, last_seen=0)
    w.event("council", "VULNERABLE_ADULT", 50, person="R1")
    extra = [*_address_tables({}),
             "INSERT INTO address_std (source, record_key, origin, number, street) VALUES "
             "('council_people', 'R1-council', 'person', '21', 'FENTON STREET')",
             "INSERT INTO address_matches VALUES ('council_people', 'R1-council', NULL, 'LRES', 0.0, 'unresolved')"]
    store = _scored(tmp_path, w, extra)
    got = _flags(store, "cuckooing")
    assert set(got) == {"U1001"}
    placed = {x["signal"]: x["placed"] for x in got["U1001"]["records"]}
    assert placed["VULNERABLE_ADULT"] == "ambiguous" and placed["DRUG_SUPPLY"] == "event"
    store.close()


def test_without_parsed_addresses_ambiguous_reports_are_not_counted(tmp_path: Path) -> None:
    """A store without address_std / gazetteer_std (e.g. no gazetteer): the rule sees certain evidence only."""
    w = World(AS_OF)
    r = _Reports(w)
    r.certain("police", 40, "1001")
    r.certain("council", 30, "1001")
    r.unclear("police", 20, "A1", "21", "FENTON STREET")
    store = _scored(tmp_path, w)
    assert _flags(store, "asb_hotspot") == {}
    store.close()


# -------------------------------------------------------------------------- associate of unknown age
def _cse_child(w: World, child: str, associate: str, associate_age: int | None, when: int = 60,
               associate_dob: dt.date | None = None) -> None:
    w.person(child, 15)
    w.person(associate, associate_age, dob=associate_dob)
    for d in (200, 120):
        w.event("police", "MISSING_EPISODE", d, person=child, role="P")
    w.event("council", "SCHOOL_ABSENCE", 150, person=child)
    w.event("police", "DRUG_SUPPLY", when, person=associate, role="S")
    w.co_involved(child, associate, when)


def test_associate_of_unknown_age_counts_only_when_the_rule_says_so(tmp_path: Path) -> None:
    when = 60
    day = AS_OF - dt.timedelta(days=when)
    w = World(AS_OF)
    _cse_child(w, "C1", "A1", None)                    # no date of birth anywhere: counts (shipped rule)
    _cse_child(w, "C2", "A2", None)                    # no date of birth, but recorded as a child: does not
    _cse_child(w, "C3", "A3", None, associate_dob=dt.date(day.year - 18, day.month, day.day))  # 18 that day
    _cse_child(w, "C4", "A4", None,
               associate_dob=dt.date(day.year - 18, day.month, day.day) + dt.timedelta(days=1))  # 17 that day
    age_unknown_child = ["UPDATE person_attributes SET is_child = true WHERE person_id = 'A2'"]
    (tmp_path / "shipped").mkdir()
    store = _scored(tmp_path / "shipped", w, age_unknown_child)
    assert set(_flags(store, "cse_risk")) == {"C1", "C3"}
    store.close()
    # a partnership's rule that does not accept an unknown age
    rules = tmp_path / "rules.toml"
    shipped = (Path(__file__).resolve().parents[1] / "ecins_link" / "scoring" / "rules.toml").read_text()
    rules.write_text(shipped.replace("with_unknown_age = true", "with_unknown_age = false"))
    (tmp_path / "strict").mkdir()
    strict = _scored(tmp_path / "strict", w, age_unknown_child, rules=str(rules))
    assert set(_flags(strict, "cse_risk")) == {"C3"}
    strict.close()


def test_rules_check_says_an_unknown_age_counts() -> None:
    from ecins_link.scoring.describe import describe_rule
    from ecins_link.scoring.rules import load_rules

    cse = next(r for r in load_rules(None).rules if r.id == "cse_risk")
    assert "aged 18+ at the incident (or of unknown age)" in describe_rule(cse)


# ------------------------------------------------------------------------- residence start from an event
def test_event_filed_before_a_recorded_start_moves_the_residence_start() -> None:
    con = duckdb.connect()
    con.execute("""
        CREATE TABLE person_clusters AS SELECT * FROM (VALUES
            ('ten:T1', 'ten', 'T1', 'P1'), ('ten:T2', 'ten', 'T2', 'P2'), ('nom:N3', 'nom', 'N3', 'P3'))
            t(unique_id, source, record_key, person_id);
        CREATE TABLE person_records AS SELECT source, record_key, resident_from::DATE AS resident_from,
            resident_to::DATE AS resident_to FROM (VALUES ('ten', 'T1', '2024-01-01', NULL),
            ('ten', 'T2', '2024-01-01', NULL), ('nom', 'N3', NULL, NULL)) t(source, record_key, resident_from, resident_to);
        CREATE TABLE address_matches AS SELECT * FROM (VALUES ('ten', 'T1', '1', 'U1'), ('ten', 'T2', '2', 'U2'),
            ('nom', 'N3', '3', 'U3')) t(source, record_key, uprn, location_id);
        CREATE TABLE address_records AS SELECT source, record_key, 'person' AS origin FROM address_matches;
        CREATE TABLE event_records AS SELECT person_source, person_record_key, event_date::DATE AS event_date
            FROM (VALUES ('ten', 'T1', '2023-05-01'), ('ten', 'T1', '2024-06-01'), ('ten', 'T2', '2024-01-01'),
                         ('nom', 'N3', '2023-05-01')) t(person_source, person_record_key, event_date)""")
    got = {p: (str(f), str(r)) for p, f, r in con.execute(
        f"SELECT person_id, first_seen, from_recorded FROM ({residences_sql()})").fetchall()}
    assert got["P1"] == ("2023-05-01", "2024-01-01")  # a case filed against the tenancy before it started
    assert got["P2"] == ("2024-01-01", "2024-01-01")  # on the start date itself: unchanged
    assert got["P3"][0] == "2023-05-01"               # no recorded start: the first event, as before


# ------------------------------------------------------------------------------ lapsed flags can be filtered
def _project_with_worklist(root: Path) -> Path:
    (root / "output").mkdir(parents=True)
    project = root / "p.toml"
    project.write_text('[project]\nname = "w"\n[[sources]]\nname = "a"\nagency = "police"\npath = "a.csv"\n'
                       'key = "k"\n[sources.person]\nfull_name = "n"\n')
    rows = [(1, "person:P1", "marac_potential_escalation", 9.0, "new"),
            (2, "person:P2", "cse_risk;multi_agency_concern", 8.0, "escalated"),
            (3, "location:U9", "asb_hotspot", 4.0, "lapsed"),
            (4, "person:P4", "cse_risk", 3.0, "lapsed"),
            (5, "person:P5", "iom_rfg", 2.0, "ongoing")]
    lines = ["rank,case,rules,score,agencies,status,first_met,last_met"]
    lines += [f"{r},{c},{rules},{s},police;council,{st},2024-01-01,2024-02-01" for r, c, rules, s, st in rows]
    (root / "output" / "worklist.csv").write_text("\n".join(lines) + "\n")
    return project


@pytest.mark.parametrize(("args", "ranks"), [
    (["--status", "lapsed"], [3, 4]),
    (["--status", "current"], [1, 2, 5]),
    (["--status", "new", "--status", "ongoing"], [1, 5]),
    (["--status", "lapsed", "--rule", "cse_risk"], [4]),
    (["--rule", "cse_risk"], [2, 4]),
    ([], [1, 2, 3, 4, 5]),
])
def test_worklist_command_filters_by_status_and_rule(tmp_path: Path, args: list[str], ranks: list[int]) -> None:
    from typer.testing import CliRunner

    from ecins_link.cli import app

    project = _project_with_worklist(tmp_path)
    got = CliRunner().invoke(app, ["worklist", str(project), "--json", *args])
    assert got.exit_code == 0, got.output
    assert [r["rank"] for r in json.loads(got.stdout)] == ranks


def test_worklist_command_refuses_an_unknown_status(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ecins_link.cli import app

    got = CliRunner().invoke(app, ["worklist", str(_project_with_worklist(tmp_path)), "--status", "closed"])
    assert got.exit_code == 2 and "unknown status 'closed'" in got.output and "Traceback" not in got.output


# ------------------------------------------------------------- measured end to end on several small towns
SEEDS = (5, 6, 7)
PERSONS = 2000


@pytest.fixture(scope="module")
def town_runs(tmp_path_factory) -> list[dict]:  # noqa: ANN001
    """Three synthetic towns whose scenarios span three years, each run through the whole pipeline at its
    extract date and evaluated against its truth."""
    from ecins_link.api import Project
    from ecins_link.synth import generate_town

    out = []
    for seed in SEEDS:
        town = tmp_path_factory.mktemp(f"town{seed}")
        generate_town(town, persons=PERSONS, seed=seed)
        project = Project.open(town / "project.toml")
        project.run()
        out.append({"seed": seed, "town": town, "building_level": _building_level_pieces(town, project),
                    **project.evaluate(town / "truth")["scenarios"]})
    return out


def _building_level_pieces(town: Path, project) -> set[tuple[str, str]]:  # noqa: ANN001
    """(source, record_key) of the address records resolved to their true property's parent building (level
    building / approximate: a position word before a flat, or a shop under a shell) or left unresolved."""
    truth = pd.read_csv(town / "truth" / "addresses.csv", dtype=str, keep_default_na=False)
    gaz = pd.read_csv(town / "gazetteer" / "llpg.csv", dtype=str, keep_default_na=False)
    got = truth.merge(project.addresses(), on=["source", "record_key"], how="left")
    parent = got["true_uprn"].map(dict(zip(gaz["UPRN"], gaz["PARENT_UPRN"], strict=True)))
    gap = got["uprn"].isna() | ((got["uprn"] == parent) & got["match_level"].isin(["building", "approximate"]))
    return set(zip(got["source"][gap], got["record_key"][gap], strict=True))


@pytest.mark.slow
def test_detection_by_seed_and_age_on_towns_with_three_years_of_history(town_runs: list[dict]) -> None:
    """The done-when figures of issue 14, measured: planted scenarios in the top 2N of the worklist on every
    seed and pooled, by scenario age, decoys flagged, correct flags invisible to any single agency; and a miss
    is (almost) only ever a person-linkage miss, which this stage cannot repair."""
    planted = sum(r["scenarios_planted"] for r in town_runs)
    detected = sum(r["scenarios_detected_in_top_n"] for r in town_runs)
    assert planted >= 3 * 60
    # The towns' gazetteers have parent/child UPRNs (docs/synth-addresses.md): a position word before a flat
    # ("Rear of Flat 3, Birch House ...") resolves to the building, as issue 16 asks; location rules count such a
    # record at the flat it names inside the building as corroboration (scoring/placement.py).  Measured (seeds
    # 5/6/7, 2,000 persons): 178 of 184 (0.967; by town 0.98 / 0.95 / 0.97; by age 0.97 / 0.98 / 0.94), against
    # 163 (0.886) before that and 0.95+ before the address forms.
    assert detected / planted >= 0.95, [(r["seed"], r["missed"], r["ranked_below_top_n"]) for r in town_runs]
    for r in town_runs:
        assert r["detection_rate"] >= 0.92, (r["seed"], r["missed"], r["ranked_below_top_n"])
        assert r["decoy_flag_rate"] is None or r["decoy_flag_rate"] <= 0.05, (r["seed"], r["flagged_decoy_ids"])
        assert r["invisible_share"] >= 0.80
        assert set(r["by_age"]) == {"under_12_months", "12_to_24_months", "over_24_months"}
    for band in ("under_12_months", "12_to_24_months", "over_24_months"):
        n = sum(r["by_age"][band]["planted"] for r in town_runs)
        got = sum(r["by_age"][band]["detected"] for r in town_runs)
        assert n >= 30 and got / n >= 0.90, (band, got, n)
    # measured: every miss on these towns is a person-linkage miss (an older version missed one scenario of seed 5
    # for another reason: a co-involved adult with no date of birth); a miss with a piece whose location is only
    # known at building level or unresolved is tolerated (none on these seeds)
    other = []
    for r in town_runs:
        pieces = {s["scenario_id"]: s["pieces"]
                  for s in json.loads((r["town"] / "truth" / "scenarios.json").read_text(encoding="utf-8"))}
        other += [(r["seed"], m) for m in [*r["missed"], *r["ranked_below_top_n"]] if m["cause"] != "person_linkage"
                  and not any((p["source"], p["record_key"]) in r["building_level"] for p in pieces[m["scenario_id"]])]
    assert other == []


@pytest.mark.slow
def test_lapsed_cases_listed_and_filtered_on_a_real_run(town_runs: list[dict]) -> None:
    from typer.testing import CliRunner

    from ecins_link.cli import app

    r = town_runs[0]
    project = r["town"] / "project.toml"
    every = json.loads(CliRunner().invoke(app, ["worklist", str(project), "--json", "--limit", "0"]).stdout)
    lapsed = json.loads(CliRunner().invoke(app, ["worklist", str(project), "--json", "--limit", "0",
                                                 "--status", "lapsed"]).stdout)
    current = json.loads(CliRunner().invoke(app, ["worklist", str(project), "--json", "--limit", "0",
                                                  "--status", "current"]).stdout)
    assert lapsed and current and len(lapsed) + len(current) == len(every)
    assert {c["status"] for c in lapsed} == {"lapsed"} and "lapsed" not in {c["status"] for c in current}
    assert r["correct_flags_by_status"].get("lapsed", 0) > 0


@pytest.mark.slow
def test_scenarios_with_pieces_placed_at_the_building_are_flagged_at_the_flat(town_runs: list[dict]) -> None:
    """A cuckooing or ASB-hotspot scenario one of whose pieces is written with a position word before the flat
    ("Rear of Flat 3, Birch House ...") -- resolved, as issue 16 asks, to the building only -- is flagged at the
    flat, and that piece, when in the flag's evidence, is marked ``placed = 'building'`` (counted at the flat it
    names inside the building, as corroboration), never ``event``."""
    from ecins_link.api import Project

    seen = used = 0
    for r in town_runs:
        project = Project.open(r["town"] / "project.toml")
        gaz = pd.read_csv(r["town"] / "gazetteer" / "llpg.csv", dtype=str, keep_default_na=False)
        parent = dict(zip(gaz["UPRN"], gaz["PARENT_UPRN"], strict=True))
        got = project.addresses()
        at_building = {(s, k): u for s, k, u, lvl in zip(got["source"], got["record_key"], got["uprn"],
                                                           got["match_level"], strict=True)
                       if lvl in ("building", "approximate")}
        flags = project.flags()
        evidence = {(rule, e): json.loads(ev) for rule, e, ev in zip(flags["rule"], flags["entity_id"],
                                                                     flags["evidence"], strict=True)}
        missed = {m["scenario_id"]: m["cause"] for m in [*r["missed"], *r["ranked_below_top_n"]]}
        for s in json.loads((r["town"] / "truth" / "scenarios.json").read_text(encoding="utf-8")):
            if s["kind"] not in ("cuckooing", "asb_hotspot") or len(s["uprns"]) != 1:
                continue
            flat = s["uprns"][0]
            pieces = [(p["source"], p["record_key"]) for p in s["pieces"]]
            upstairs = [p for p in pieces if parent.get(flat) and at_building.get(p) == parent[flat]]
            if not upstairs or missed.get(s["scenario_id"]) == "person_linkage":
                continue
            seen += 1
            assert s["scenario_id"] not in missed, (r["seed"], s["scenario_id"], upstairs)
            if (s["kind"], f"U{flat}") not in evidence:  # every piece at the building (a shop under a shell):
                assert (s["kind"], f"U{parent[flat]}") in evidence  # flagged there, where all its records are
                continue
            ev = evidence[(s["kind"], f"U{flat}")]
            placed = {(x["source"], x["record_key"]): x["placed"] for x in ev["records"]}
            marked = [placed[p] for p in upstairs if p in placed]  # in the flag's strongest episode
            assert set(marked) <= {"building"}, (r["seed"], s["scenario_id"], placed)
            used += bool(marked)
    # the towns hold such scenarios, and in most of them the building-level piece is part of the flag's evidence
    assert seen >= 5 and used >= seen / 2, (seen, used)
