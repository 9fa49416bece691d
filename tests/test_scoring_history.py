"""Rules over the whole history: episodes in any window, boundaries, ages at the time, status across batches,
the rule language (required conditions, k-of-n groups, extends) and ``ecins-link rules check``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecins_link.config import ConfigError, parse_config
from ecins_link.scoring import score
from ecins_link.scoring.fixtures import World
from ecins_link.scoring.rules import load_rules
from ecins_link.store import Store

AS_OF = dt.date(2025, 3, 31)


def _config(root: Path, as_of: dt.date = AS_OF, rules: str | None = None, **scoring: object):  # noqa: ANN202
    project = {"name": "history", "as_of": as_of.isoformat(),
               **({"rules": rules, "allow_paths_outside": [str(Path(rules).parent)]} if rules else {})}
    return parse_config(
        {"project": project, "scoring": scoring,
         "sources": [{"name": "police_nominals", "agency": "police", "path": "nominals.csv", "key": "nominal_id",
                      "person": {"full_name": "name", "dob": "dob"}}]}, root=root)


@pytest.fixture
def scored_at(tmp_path: Path):  # noqa: ANN201
    """``scored_at(build, as_of=..., rules=..., **scoring)`` -> the open store after one score run."""
    stores: list[Store] = []

    def _run(build: Callable[[World], None], as_of: dt.date = AS_OF, rules: str | None = None,
             **scoring: object) -> Store:
        folder = tmp_path / f"w{len(stores)}"
        folder.mkdir()
        world = World(as_of)
        build(world)
        store = Store(folder / "store.duckdb")
        world.write(store)
        score(store, _config(folder, as_of, rules, **scoring))
        stores.append(store)
        return store

    yield _run
    for s in stores:
        s.close()


def flags(store: Store, rule: str) -> dict[str, dict]:
    """entity_id -> flag row for one rule (dates as ``datetime.date``)."""
    rows = store.con.execute("SELECT * FROM flags WHERE rule = ?", [rule])
    cols = [d[0] for d in rows.description]
    return {r[cols.index("entity_id")]: dict(zip(cols, r, strict=True)) for r in rows.fetchall()}


def _da(w: World, pid: str, days_ago: list[int]) -> None:
    w.person(pid, 34)
    w.live(pid, f"U9{pid[-6:]}")
    for i, d in enumerate(days_ago):
        agency = ("police", "housing", "council")[i % 3]
        w.event(agency, "DA_VICTIM" if agency == "police" else "DA_CONCERN", d, person=pid)


# ------------------------------------------------------------------------------------------- windows
def test_window_includes_its_first_and_last_day(scored_at) -> None:
    """3 incidents spanning exactly 365 days are in one window (anchored on the last); 366 days are not."""
    store = scored_at(lambda w: (_da(w, "P000001", [400, 200, 35]), _da(w, "P000002", [401, 200, 35])))
    got = flags(store, "marac_potential_escalation")
    assert set(got) == {"P000001"}
    f = got["P000001"]
    assert f["first_met"] == f["last_met"] == AS_OF - dt.timedelta(days=35)
    assert f["window_start"] == AS_OF - dt.timedelta(days=400) and f["window_end"] == f["last_met"]
    ev = json.loads(f["evidence"])
    assert ev["window_start"] == (AS_OF - dt.timedelta(days=400)).isoformat()
    assert len(ev["records"]) == 3


def test_old_episode_is_found_lapsed_and_ranked_below_a_current_one(scored_at) -> None:
    """A criterion met 500 days ago (outside any window ending at as-of) is a flag; an event on as-of counts."""
    store = scored_at(lambda w: (_da(w, "P000011", [700, 600, 500]), _da(w, "P000012", [200, 100, 0])))
    got = flags(store, "marac_potential_escalation")
    old, cur = got["P000011"], got["P000012"]
    assert old["status"] == "lapsed" and cur["status"] == "new"
    assert old["last_met"] == AS_OF - dt.timedelta(days=500)
    assert cur["first_met"] == cur["last_met"] == AS_OF  # met on the as-of date itself
    assert old["severity"] == pytest.approx(cur["severity"])  # same episode, shifted in time
    assert cur["rank"] < old["rank"] and old["score"] < cur["score"]


def test_first_and_last_met_span_a_long_run_of_incidents(scored_at) -> None:
    """Incidents every 100 days for 2 years: first met on the 3rd, last met on the latest; strongest window
    holds the most incidents (4 in 365 days)."""
    store = scored_at(lambda w: _da(w, "P000021", [700, 600, 500, 400, 300, 200, 100]))
    f = flags(store, "marac_potential_escalation")["P000021"]
    assert f["first_met"] == AS_OF - dt.timedelta(days=500)
    assert f["last_met"] == AS_OF - dt.timedelta(days=100)
    assert json.loads(f["evidence"])["conditions"][0]["count"] == 4
    assert f["windows_met"] == 5


def test_lookback_days_limits_what_the_rules_see(scored_at) -> None:
    store = scored_at(lambda w: (_da(w, "P000031", [700, 600, 500]), _da(w, "P000032", [200, 100, 0])),
                      lookback_days=365)
    assert set(flags(store, "marac_potential_escalation")) == {"P000032"}


# ------------------------------------------------------------------------------------------- ages at the time
def _cse(w: World, pid: str, dob: dt.date, days_ago: list[int]) -> None:
    """Missing episodes at days_ago[0:2], school absence and exploitation concern at days_ago[2]."""
    w.person(pid, None, dob=dob)
    w.live(pid, f"U8{pid[-6:]}")
    w.event("police", "MISSING_EPISODE", days_ago[0], person=pid, role="P")
    w.event("police", "MISSING_EPISODE", days_ago[1], person=pid, role="P")
    w.event("council", "SCHOOL_ABSENCE", days_ago[2], person=pid)
    w.event("council", "EXPLOITATION_CONCERN", days_ago[2], person=pid)


def test_eighteenth_birthday_boundary_and_a_child_now_adult(scored_at) -> None:
    met = AS_OF - dt.timedelta(days=10)
    def build(w: World) -> None:
        # 18 the day after the criterion is met: a child then
        _cse(w, "P000041", dt.date(met.year - 18, met.month, met.day) + dt.timedelta(days=1), [100, 50, 10])
        # 18 on the very day the criterion is met: an adult
        _cse(w, "P000042", dt.date(met.year - 18, met.month, met.day), [100, 50, 10])
        # 17 at a pattern two years ago, 19 now
        _cse(w, "P000043", AS_OF - dt.timedelta(days=int(19.5 * 365.25)), [800, 760, 740])

    got = flags(scored_at(build), "cse_risk")
    assert set(got) == {"P000041", "P000043"}
    assert got["P000043"]["status"] == "lapsed"


def test_toxic_trio_child_counted_at_the_time(scored_at) -> None:
    """The child of a household was 16 at the episode and is 18 now: still a household with a child then.
    A 'child' who was already 18 throughout is not."""
    def family(w: World, tag: str, child_dob: dt.date) -> None:
        loc = f"U7000000{tag}"
        w.person(f"M{tag}", 40)
        w.person(f"D{tag}", 42)
        w.person(f"C{tag}", None, dob=child_dob)
        for p in (f"M{tag}", f"D{tag}", f"C{tag}"):
            w.live(p, loc, household_id=f"H{tag}", first_seen=2000, last_seen=0)
        w.event("police", "DA_VICTIM", 600, person=f"M{tag}", role="V")
        w.event("council", "MH_CONCERN", 550, person=f"D{tag}")
        w.event("council", "SUBSTANCE_MISUSE", 500, person=f"D{tag}")

    store = scored_at(lambda w: (family(w, "01", AS_OF - dt.timedelta(days=int(18.3 * 365.25))),
                                 family(w, "02", AS_OF - dt.timedelta(days=int(20.5 * 365.25)))))
    assert set(flags(store, "toxic_trio")) == {"H01"}


def test_first_sighting_is_not_an_arrival(scored_at) -> None:
    """A child first seen by an agency after the episode still lived there (no recorded start: resident since
    their previous address ended); a child whose recorded tenancy starts after the episode did not."""
    def family(w: World, tag: str, recorded: bool) -> None:
        loc = f"U7100000{tag}"
        w.person(f"M{tag}", 40)
        w.person(f"D{tag}", 42)
        w.person(f"C{tag}", 9)
        w.live(f"M{tag}", loc, household_id=f"H{tag}", first_seen=2000, last_seen=0)
        w.live(f"D{tag}", loc, household_id=f"H{tag}", first_seen=2000, last_seen=0)
        w.live(f"C{tag}", loc, household_id=f"H{tag}", first_seen=100, last_seen=100, start_recorded=recorded)
        w.event("police", "DA_VICTIM", 600, person=f"M{tag}", role="V")
        w.event("council", "MH_CONCERN", 550, person=f"D{tag}")
        w.event("council", "SUBSTANCE_MISUSE", 500, person=f"D{tag}")

    store = scored_at(lambda w: (family(w, "11", recorded=False), family(w, "12", recorded=True)))
    assert set(flags(store, "toxic_trio")) == {"H11"}


# ------------------------------------------------------------------------------------------- batches
def test_stable_ids_and_status_across_batches(tmp_path: Path) -> None:
    world = World(AS_OF)
    _da(world, "P000051", [300, 200, 100])
    _da(world, "P000052", [900, 800, 700])
    store = Store(tmp_path / "store.duckdb")
    try:
        world.write(store)
        score(store, _config(tmp_path, AS_OF))
        first = flags(store, "marac_potential_escalation")
        assert first["P000051"]["status"] == "new" and first["P000052"]["status"] == "lapsed"
        # next batch: one more incident for P000051 -> escalated, same flag id
        later = AS_OF + dt.timedelta(days=30)
        store.con.execute("INSERT INTO event_records SELECT source, agency, 'NEW1', event_seq, signal, raw_code, role, "
                          "?::DATE, event_ts, location_text, location_postcode, person_source, person_record_key "
                          "FROM event_records WHERE person_record_key = 'P000051-police' LIMIT 1", [later])
        score(store, _config(tmp_path, later))
        second = flags(store, "marac_potential_escalation")
        assert second["P000051"]["flag_id"] == first["P000051"]["flag_id"]
        assert second["P000051"]["status"] == "escalated"
        score(store, _config(tmp_path, later))  # re-running a batch gives the same status
        assert flags(store, "marac_potential_escalation")["P000051"]["status"] == "escalated"
        score(store, _config(tmp_path, later + dt.timedelta(days=7)))  # nothing new: ongoing
        third = flags(store, "marac_potential_escalation")
        assert third["P000051"]["status"] == "ongoing"
        assert third["P000052"]["flag_id"] == first["P000052"]["flag_id"]
        hist = store.df("SELECT run_as_of, count(*) n FROM flag_history GROUP BY 1 ORDER BY 1")
        assert len(hist) == 3  # one per as-of; the re-run replaced its batch
    finally:
        store.close()


def test_household_flag_id_survives_a_new_household_id(tmp_path: Path) -> None:
    """The graph names a household anew when someone moves in; the flag id (rule + address) stays the same."""
    def build(newcomer: bool) -> World:
        w = World(AS_OF)
        for p, age in (("HM", 40), ("HD", 42), ("HC", 8)):
            w.person(p, age)
            w.live(p, "U7200000001", household_id="H-old", first_seen=2000, last_seen=0)
        if newcomer:
            w.person("HN", 30)
            w.live("HN", "U7200000001", household_id="H-new", first_seen=10, last_seen=0)
        w.event("police", "DA_VICTIM", 60, person="HM", role="V")
        w.event("council", "MH_CONCERN", 50, person="HD")
        w.event("council", "SUBSTANCE_MISUSE", 40, person="HD")
        return w

    ids = []
    for n, newcomer in enumerate((False, True)):
        store = Store(tmp_path / f"s{n}.duckdb")
        try:
            build(newcomer).write(store)
            score(store, _config(tmp_path, AS_OF))
            got = flags(store, "toxic_trio")
            assert len(got) == 1
            f = next(iter(got.values()))
            ids.append((f["entity_id"], f["flag_id"]))
        finally:
            store.close()
    assert ids[0][0] != ids[1][0] and ids[0][1] == ids[1][1]


def test_current_days_sets_when_a_flag_lapses(scored_at) -> None:
    store = scored_at(lambda w: _da(w, "P000061", [300, 200, 100]), current_days=90)
    assert flags(store, "marac_potential_escalation")["P000061"]["status"] == "lapsed"


# ------------------------------------------------------------------------------------------- rule language
OVER_65 = """
extends = "shipped"
disable = ["multi_agency_concern"]

[[rules]]
id = "fire_older_alone"
label = "Aged 65+, living alone and 3 of 6 fire factors"
scope = "person"
window_days = 730
guidance = "Consider a Safe and Well visit."

  [[rules.groups]]
  id = "factors"
  label = "fire risk factors"
  min = 3

  [[rules.conditions]]
  id = "older"
  metric = "age"
  metric_min = 65
  required = true

  [[rules.conditions]]
  id = "alone"
  signals = ["SW_LIVES_ALONE"]
  metric = "household_size"
  metric_max = 1
  required = true

  [[rules.conditions]]
  id = "smoker"
  signals = ["SW_SMOKER"]
  group = "factors"

  [[rules.conditions]]
  id = "mobility"
  signals = ["SW_LIMITED_MOBILITY"]
  group = "factors"

  [[rules.conditions]]
  id = "alcohol"
  signals = ["SW_ALCOHOL"]
  group = "factors"

  [[rules.conditions]]
  id = "mental_health"
  signals = ["SW_MENTAL_HEALTH", "MH_CONCERN"]
  group = "factors"

  [[rules.conditions]]
  id = "hoarding"
  signals = ["SW_HOARDING", "HOARDING"]
  group = "factors"

  [[rules.conditions]]
  id = "no_alarm"
  signals = ["SW_NO_SMOKE_ALARM"]
  group = "factors"
"""


def test_required_conditions_and_k_of_n_group(scored_at, tmp_path: Path) -> None:
    path = tmp_path / "partnership_rules.toml"
    path.write_text(OVER_65, encoding="utf-8")
    def person(w: World, pid: str, age: int, factors: list[str], alone: bool = True) -> None:
        w.person(pid, age)
        loc = f"U6{pid[-6:]}"
        w.live(pid, loc)
        if not alone:
            w.person(pid + "X", 60)
            w.live(pid + "X", loc)
        for i, f in enumerate(factors):
            w.event(("fire", "council", "housing")[i % 3], f, 30 + i, person=pid)

    three = ["SW_SMOKER", "MH_CONCERN", "HOARDING"]
    store = scored_at(lambda w: (person(w, "P000071", 72, three), person(w, "P000072", 72, three[:2]),
                                 person(w, "P000073", 60, [*three, "SW_ALCOHOL"]),
                                 person(w, "P000074", 72, [*three, "SW_ALCOHOL"], alone=False)),
                      rules=str(path))
    got = flags(store, "fire_older_alone")
    assert set(got) == {"P000071"}
    ev = json.loads(got["P000071"]["evidence"])
    assert ev["conditions_needed"] == 5 and ev["conditions_met"] == 5
    assert {c["id"]: c["counts_as"] for c in ev["conditions"]}["older"] == "required"
    rules = {r.id: r for r in load_rules(path).rules}
    assert rules["marac_potential_escalation"].enabled and not rules["multi_agency_concern"].enabled
    assert store.df("SELECT count(*) n FROM flags WHERE rule = 'multi_agency_concern'").n[0] == 0


@pytest.mark.parametrize(("text", "expect"), [
    ('extends = "shipped"\ndisable = ["nope"]\n', "key 'disable': 'nope' is not a rule"),
    ('disable = ["toxic_trio"]\n[[rules]]\nid = "x"\n', "only a file that 'extends'"),
    (OVER_65.replace('group = "factors"', 'group = "factorz"', 1), "'factorz' is not a group"),
    (OVER_65.replace("min = 3", "min = 7"), "groups.0.min: 7 exceeds"),
    (OVER_65.replace("required = true", 'required = true\n  group = "factors"', 1), "either 'required' or"),
])
def test_bad_rule_language_is_one_clear_error(tmp_path: Path, text: str, expect: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=expect):
        load_rules(path)


def test_rules_check_prints_plain_english_and_fails_cleanly(tmp_path: Path) -> None:
    from ecins_link.cli import app

    path = tmp_path / "partnership_rules.toml"
    path.write_text(OVER_65, encoding="utf-8")
    runner = CliRunner()
    ok = runner.invoke(app, ["rules", "check", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "fire_older_alone" in ok.output and "at least 3 of these 6 (fire risk factors)" in ok.output
    assert "required: age (at the time) at least 65" in ok.output
    assert "multi_agency_concern (disabled)" in ok.output
    assert "in ANY window of 2 years (730 days)" in ok.output
    path.write_text(OVER_65.replace("SW_SMOKER", "SW_SMOKES"), encoding="utf-8")
    bad = runner.invoke(app, ["rules", "check", str(path)])
    assert bad.exit_code == 2 and "unknown signal code 'SW_SMOKES'" in bad.output
