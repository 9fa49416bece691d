"""The synthetic town: determinism, truth consistency, scenario property, hard cases, project file, bad rows.

Everything is re-derived from the written files + project.toml + truth, as an engine would see them.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from ecins_link.config import load_config
from ecins_link.synth import generate_town

TAXONOMY = tomllib.loads((Path(__file__).resolve().parents[1] / "ecins_link" / "scoring" / "taxonomy.toml")
                         .read_text(encoding="utf-8"))
CATEGORY = {s["code"]: s["category"] for s in TAXONOMY["signals"]}
GRAVITY = {s["code"]: s.get("gravity", 0) for s in TAXONOMY["signals"]}


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("town") / "a"
    generate_town(out, persons=500, seed=7)
    return out


@pytest.fixture(scope="module")
def bad_town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bad") / "t"
    generate_town(out, persons=300, seed=3, bad_rows=20)
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _read(cfg, source) -> pd.DataFrame:  # noqa: ANN001
    path = cfg.path_of(source.path)
    if source.format == "parquet":
        return pd.read_parquet(path).fillna("").astype(str)
    if source.format == "xlsx":
        return pd.read_excel(path, sheet_name=source.sheet, dtype=str).fillna("")
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def _key(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    key = df[cols[0]].astype(str)
    for c in cols[1:]:
        key = key + "|" + df[c].astype(str)
    return key


def _parse(value: str, formats: list[str]) -> dt.date | None:
    for f in formats:
        try:
            return dt.datetime.strptime(value, f).date()
        except ValueError:
            continue
    return None


def _events(cfg) -> pd.DataFrame:  # noqa: ANN001
    """(source, record_key) -> agency, signal, role, date, person_key, location text; from files + mappings."""
    rows = []
    for s in cfg.sources:
        if not (s.event or s.flags):
            continue
        df = _read(cfg, s)
        keys = _key(df, s.key)
        if s.event:
            ev = s.event
            ref = ev.person_ref
            for i, rec in df.iterrows():
                code, role = rec[ev.code], rec[ev.role].upper() if ev.role else ""
                date = _parse(rec[ev.date][:16], s.datetime_formats + s.date_formats) or \
                    _parse(rec[ev.date], s.datetime_formats + s.date_formats)
                person = "|".join(rec[c] for c in ref.columns) if ref else ""
                for m in ev.codes:
                    if m.code == code and (m.role is None or m.role == role):
                        rows.append((s.name, keys[i], s.agency, m.signal, role, date, ref.source if ref else "",
                                     person, rec[ev.location] if ev.location else ""))
        if s.flags:
            for i, rec in df.iterrows():
                date = _parse(rec[s.flags.date], s.date_formats)
                for col, sig in s.flags.columns.items():
                    if rec[col].upper() in s.flags.true_values:
                        rows.append((s.name, keys[i], s.agency, sig, "", date, s.name, keys[i], rec["ADDRESS"]))
    return pd.DataFrame(rows, columns=["source", "record_key", "agency", "signal", "role", "date", "person_source",
                                       "person_key", "location"])


# -- determinism ---------------------------------------------------------------------------------------------
def test_same_seed_is_byte_identical_and_other_seed_differs(town: Path, tmp_path: Path) -> None:
    generate_town(tmp_path / "b", persons=500, seed=7)
    generate_town(tmp_path / "c", persons=500, seed=8)
    a, b, c = _digest(town), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert len(a) >= 15
    differing = [k for k in a if a[k] != c.get(k)]
    assert len(differing) >= 10


def test_committed_samples_match_the_generator(tmp_path: Path) -> None:
    """data/samples/town (2,000 persons, seed 42) and town_bad (300, --bad-rows 20) are regenerated on change."""
    samples = Path(__file__).resolve().parents[1] / "data" / "samples"
    for name, persons, bad in (("town", 2000, 0), ("town_bad", 300, 20)):
        if not (samples / name / "project.toml").exists():
            pytest.skip("samples not present")
        generate_town(tmp_path / name, persons=persons, seed=42, bad_rows=bad)
        committed = {k: v for k, v in _digest(samples / name).items() if not k.startswith(("store", "output"))}
        assert _digest(tmp_path / name) == committed, f"regenerate data/samples/{name}"


# -- project file --------------------------------------------------------------------------------------------
def test_project_file_loads_and_uses_only_taxonomy_codes(town: Path) -> None:
    cfg = load_config(town / "project.toml")
    assert cfg.project.as_of is not None
    agencies = {s.agency for s in cfg.sources}
    assert {"police", "housing", "fire", "council"} <= agencies
    assert {s.format for s in cfg.sources} >= {"csv", "parquet", "xlsx"}
    assert cfg.gazetteer_source is not None
    assert set(cfg.purposes) == {"marac", "iom", "fire"}
    for s in cfg.sources:
        assert cfg.path_of(s.path).exists(), s.name
        df = _read(cfg, s)
        for col in s.key:
            assert col in df.columns
        for m in s.event.codes if s.event else []:
            assert m.signal in CATEGORY, m.signal
        for sig in s.flags.columns.values() if s.flags else []:
            assert sig in CATEGORY, sig
        if s.event and s.event.person_ref and s.event.person_ref.source != s.name:
            target = cfg.source(s.event.person_ref.source)
            known = set(_key(_read(cfg, target), target.key))
            refs = set(_key(df, s.event.person_ref.columns))
            assert refs <= known, f"{s.name}: dangling person references"
    for p in cfg.purposes.values():
        assert set(p.categories) <= set(TAXONOMY["categories"])


# -- truth consistency ---------------------------------------------------------------------------------------
def test_truth_records_cover_every_person_bearing_row(town: Path) -> None:
    cfg = load_config(town / "project.toml")
    truth = pd.read_csv(town / "truth" / "records.csv", dtype=str)
    persons = pd.read_csv(town / "truth" / "persons.csv", dtype=str)
    assert set(truth["true_person_id"]) <= set(persons["true_person_id"])
    expected = set()
    for s in cfg.sources:
        if s.person or (s.event and s.event.person_ref):
            df = _read(cfg, s)
            keys = set(s.name + "\x00" + _key(df, s.key))
            assert len(keys) == len(df), f"{s.name}: keys not unique in a clean town"
            expected |= keys
    got = set(truth["source"] + "\x00" + truth["record_key"])
    assert got == expected


def test_truth_addresses_are_gazetteer_uprns(town: Path) -> None:
    cfg = load_config(town / "project.toml")
    gaz = _read(cfg, cfg.gazetteer_source)
    addr = pd.read_csv(town / "truth" / "addresses.csv", dtype=str)
    assert len(addr) > 500
    assert set(addr["true_uprn"]) <= set(gaz["UPRN"])
    for s in cfg.sources:
        col = (s.person.address if s.person else None) or (s.event.location if s.event else None)
        if not col and s.person and s.person.address_lines:
            col = s.person.address_lines[0]
        if not col:
            continue
        df = _read(cfg, s)
        with_text = set(_key(df[df[col] != ""], s.key))
        assert with_text == set(addr.loc[addr["source"] == s.name, "record_key"]), s.name


def test_gazetteer_is_llpg_like(town: Path) -> None:
    cfg = load_config(town / "project.toml")
    gaz = _read(cfg, cfg.gazetteer_source)
    assert gaz["UPRN"].is_unique
    assert gaz["POSTCODE"].str.fullmatch(r"[A-Z]{1,2}[0-9]{1,2} [0-9][A-Z]{2}").all()
    assert (gaz["SAO_TEXT"] != "").sum() > 20 and (gaz["ORGANISATION"] != "").sum() > 3
    church = gaz.loc[gaz["STREET"].str.startswith("CHURCH "), ["STREET", "LOCALITY"]].drop_duplicates()
    assert church["STREET"].nunique() >= 3 and church["LOCALITY"].nunique() >= 3


# -- population ----------------------------------------------------------------------------------------------
def test_hard_cases_and_name_diversity(town: Path) -> None:
    persons = pd.read_csv(town / "truth" / "persons.csv", dtype=str, keep_default_na=False)
    records = pd.read_csv(town / "truth" / "records.csv", dtype=str)
    assert persons["name_origin"].nunique() >= 6
    fs = persons[persons["hard_case"] == "father_son"]
    pair = fs.groupby(["household_id", "forenames", "surname"]).filter(lambda g: len(g) == 2)
    assert len(pair) >= 2 and (pair.groupby("household_id")["dob"].nunique() == 2).all()
    tw = persons[persons["hard_case"] == "twin"]
    twins = tw.groupby(["household_id", "dob", "surname"]).filter(lambda g: len(g) == 2)
    assert len(twins) >= 2 and (twins.groupby("household_id")["forenames"].nunique() == 2).all()
    sn = persons[persons["hard_case"] == "same_name"]
    strangers = sn.groupby(["forenames", "surname"]).filter(
        lambda g: g["household_id"].nunique() > 1 and g["dob"].nunique() > 1)
    assert len(strangers) >= 4
    known = set(records["true_person_id"])
    hard = persons[persons["hard_case"] != ""]
    assert hard["true_person_id"].isin(known).all(), "every hard case is in some agency's records"
    counts = persons["surname"].value_counts()
    assert counts.iloc[0] >= 4 * counts.median(), "surname frequencies are skewed (many SMITHs)"


def test_records_carry_realistic_noise(town: Path) -> None:
    cfg = load_config(town / "project.toml")
    nominals = _read(cfg, cfg.source("police_nominals"))
    assert nominals["NAME"].str.fullmatch(r"[^,]+, .+").all()
    council = _read(cfg, cfg.source("council_people"))
    tenancies = _read(cfg, cfg.source("housing_tenancies"))
    dobs = pd.concat([nominals["DOB"], council["DOB"], tenancies["DOB"]])
    assert 0.005 < (dobs == "").mean() < 0.15, "some DOBs are missing, most are not"
    styles = {("+44" if p.startswith("+44") else "(" if p.startswith("(") else " " if " " in p else "plain")
              for p in council["PHONE"] if p}
    assert len(styles) >= 3
    assert council["DOB"].str.fullmatch(r"(\d{2}-[A-Z][a-z]{2}-\d{4})?").all()
    truth = pd.read_csv(town / "truth" / "records.csv", dtype=str)
    persons = pd.read_csv(town / "truth" / "persons.csv", dtype=str, keep_default_na=False).set_index("true_person_id")
    c = council.merge(truth[truth["source"] == "council_people"], left_on="PERSON_ID", right_on="record_key")
    true_sur = persons.loc[c["true_person_id"], "surname"].to_numpy()
    differs = (c["SURNAME"].str.upper().to_numpy() != true_sur).mean()
    assert 0.01 < differs < 0.3
    dup = c.groupby("true_person_id").size()
    assert (dup > 1).any(), "some people are recorded twice by one agency"


def test_activity_is_age_plausible(town: Path) -> None:
    """Nobody is in a police occurrence before age 10 or has a school contact before school age."""
    cfg = load_config(town / "project.toml")
    truth = pd.read_csv(town / "truth" / "records.csv", dtype=str)
    dob = pd.read_csv(town / "truth" / "persons.csv", dtype=str).set_index("true_person_id")["dob"]
    for source, col, fmt, codes, min_age in (("police_occurrences", "OCC_DATETIME", "%d/%m/%Y %H:%M", None, 10),
                                             ("council_contacts", "CONTACT_DATE", "%d-%b-%Y", "EDU-", 4.5)):
        s = cfg.source(source)
        df = _read(cfg, s)
        df["record_key"] = _key(df, s.key)
        if codes:
            df = df[df[s.event.code].str.startswith(codes)]
        m = df.merge(truth[truth["source"] == source], on="record_key")
        age = (pd.to_datetime(m[col], format=fmt) - pd.to_datetime(dob.loc[m["true_person_id"]].to_numpy()))
        assert len(m) > 20 and (age.dt.days / 365.25 >= min_age).all(), source
    occ = _read(cfg, cfg.source("police_occurrences"))
    occ["record_key"] = _key(occ, cfg.source("police_occurrences").key)
    da = occ[occ["OCC_TYPE"] == "DA"].merge(truth[truth["source"] == "police_occurrences"], on="record_key")
    born = pd.to_datetime(dob.loc[da["true_person_id"]].to_numpy())
    adult = born <= pd.Timestamp(cfg.project.as_of) - pd.DateOffset(years=16)
    assert adult.all(), "domestic abuse occurrences involve adults"


# -- planted scenarios ---------------------------------------------------------------------------------------
def _holds(kind: str, pieces: pd.DataFrame, as_of: dt.date, dobs: list[dt.date], extra_lives_alone: bool,
           stretch: float = 1.0, ages: bool = True) -> bool:
    """Does this set of evidence pieces satisfy the rule in ANY window ending on one of its dates (up to as-of)?
    ``dobs``: the people's dates of birth (children counted, and the cse child's age taken, at the time);
    ``stretch`` multiplies every window; ``ages=False`` ignores the cse age bound."""
    dates = sorted({d for d in pieces["date"] if d is not None and d <= as_of})
    return any(_holds_at(kind, pieces, anchor, dobs, extra_lives_alone, stretch, ages) for anchor in dates)


def _holds_at(kind: str, pieces: pd.DataFrame, anchor: dt.date, dobs: list[dt.date], extra_lives_alone: bool,
              stretch: float, ages: bool) -> bool:
    def within(days: int) -> pd.DataFrame:
        return pieces[pieces["date"].map(lambda d: d is not None and 0 <= (anchor - d).days <= days * stretch)]

    def child_at(dob: dt.date, when: dt.date) -> bool:
        return dob <= anchor and (when - dob).days < 18 * 365.25

    sig = lambda df: set(df["signal"])  # noqa: E731
    cats = lambda df: {CATEGORY[s] for s in df["signal"]}  # noqa: E731
    if kind == "toxic_trio":
        start = anchor - dt.timedelta(days=int(365 * stretch))
        return any(child_at(d, start) or child_at(d, anchor) for d in dobs) \
            and {"DA", "MENTAL_HEALTH", "SUBSTANCE"} <= cats(within(365))
    if kind == "marac_potential_escalation":
        return within(365)["signal"].isin(["DA_VICTIM", "DA_CONCERN"]).sum() >= 3
    if kind == "fire_safe_and_well":
        factors = {"SW_SMOKER": 1, "SW_LIMITED_MOBILITY": 2, "SW_LIVES_ALONE": 3, "SW_ALCOHOL": 4, "SW_DRUGS": 5,
                   "DRUG_POSSESSION": 5, "SW_MENTAL_HEALTH": 6, "MH_CONCERN": 6, "SW_HOARDING": 7, "HOARDING": 7,
                   "SW_NO_SMOKE_ALARM": 8}
        got = {factors[s] for s in sig(within(730)) if s in factors} | ({3} if extra_lives_alone else set())
        return len(got) >= 3
    if kind == "cuckooing":
        w = within(90)
        visitors = w[w["role"] == "S"]["person"].nunique()
        return bool("VULNERABILITY" in cats(w) and sig(w) & {"DRUG_SUPPLY", "DRUG_POSSESSION"} and visitors >= 4)
    if kind == "cse_risk":
        w = within(365)
        if ages and not child_at(dobs[0], anchor):
            return False
        return bool((w["signal"] == "MISSING_EPISODE").sum() >= 2
                    and sig(w) & {"SCHOOL_ABSENCE", "SCHOOL_EXCLUSION"}
                    and ("EXPLOITATION_CONCERN" in sig(w) or "OFFENDING" in cats(w)))
    if kind == "asb_hotspot":
        w = within(183)
        asb = w[w["signal"].map(CATEGORY) == "ASB"]
        return len(asb) >= 3 and asb["agency"].nunique() >= 2
    if kind == "multi_agency_concern":
        return within(365)["agency"].nunique() >= 3
    if kind == "iom_rfg":
        w = within(1095)
        off = w[(w["signal"].map(GRAVITY) > 0) & ~w["role"].isin(["V", "W"])]
        if len(off) < 3:
            return False
        recency = 30 * (1 - min((anchor - d).days for d in off["date"]) / 1095)
        rfg = recency + min(5 * len(off), 40) + min(off["signal"].map(GRAVITY).sum() / 30, 40)
        return rfg >= 40
    raise AssertionError(kind)


def test_every_scenario_needs_more_than_one_agency(town: Path) -> None:
    cfg = load_config(town / "project.toml")
    as_of = cfg.project.as_of
    events = _events(cfg)
    truth = pd.read_csv(town / "truth" / "records.csv", dtype=str)
    who = dict(zip(truth["source"] + "|" + truth["record_key"], truth["true_person_id"], strict=True))
    persons = pd.read_csv(town / "truth" / "persons.csv", dtype=str, keep_default_na=False).set_index("true_person_id")
    scenarios = json.loads((town / "truth" / "scenarios.json").read_text(encoding="utf-8"))
    kinds = {s["kind"] for s in scenarios}
    assert kinds == {"toxic_trio", "marac_potential_escalation", "fire_safe_and_well", "cuckooing", "cse_risk",
                     "asb_hotspot", "multi_agency_concern", "iom_rfg"}
    for s in scenarios:
        rows = []
        for p in s["pieces"]:
            match = events[(events["source"] == p["source"]) & (events["record_key"] == p["record_key"])
                           & (events["signal"] == p["signal"])]
            assert len(match) == 1, (s["scenario_id"], p)
            m = match.iloc[0]
            person = who.get(m["source"] + "|" + m["record_key"], "")
            rows.append({**p, "date": m["date"], "role": m["role"], "person": person})
            if s["kind"] not in ("asb_hotspot",):
                assert person in s["true_person_ids"], (s["scenario_id"], p)
        pieces = pd.DataFrame(rows)
        dobs = list(pd.to_datetime(persons.loc[s["true_person_ids"], "dob"]).dt.date)
        assert _holds(s["kind"], pieces, as_of, dobs, False), s["scenario_id"]
        for agency, part in pieces.groupby("agency"):
            assert not _holds(s["kind"], part, as_of, dobs, True), (s["scenario_id"], agency)


def test_decoys_only_fire_when_strangers_are_merged(town: Path) -> None:
    cfg = load_config(town / "project.toml")
    events = _events(cfg)
    truth = pd.read_csv(town / "truth" / "records.csv", dtype=str)
    who = dict(zip(truth["source"] + "|" + truth["record_key"], truth["true_person_id"], strict=True))
    decoys = json.loads((town / "truth" / "decoys.json").read_text(encoding="utf-8"))
    persons = pd.read_csv(town / "truth" / "persons.csv", dtype=str, keep_default_na=False).set_index("true_person_id")
    assert {d["kind"] for d in decoys} == {"isolated_signal", "same_name_strangers", "near_miss"}
    for d in decoys:
        rows = []
        for p in d["pieces"]:
            m = events[(events["source"] == p["source"]) & (events["record_key"] == p["record_key"])].iloc[0]
            rows.append({**p, "date": m["date"], "role": m["role"], "person": who[p["source"] + "|" + p["record_key"]]})
        pieces = pd.DataFrame(rows)
        if d["kind"] == "near_miss":  # the whole cocktail, just outside the window (or after the 18th birthday)
            assert set(pieces["person"]) <= set(d["true_person_ids"])
            dobs = list(pd.to_datetime(persons.loc[d["true_person_ids"], "dob"]).dt.date)
            assert not _holds(d["would_fire"], pieces, cfg.project.as_of, dobs, False), d["decoy_id"]
            loose = {"ages": False} if d["would_fire"] == "cse_risk" else {"stretch": 1.4}
            assert _holds(d["would_fire"], pieces, cfg.project.as_of, dobs, False, **loose), d["decoy_id"]
            continue
        assert set(pieces["person"]) == set(d["true_person_ids"])
        if d["kind"] == "isolated_signal":
            assert len(pieces) == 1 and d["would_fire"] is None
            continue
        a, b = persons.loc[d["true_person_ids"]].itertuples()
        assert (a.forenames, a.surname) == (b.forenames, b.surname) and a.dob != b.dob
        assert a.household_id != b.household_id
        assert _holds(d["would_fire"], pieces, cfg.project.as_of, [], False), d["decoy_id"]
        for _person, part in pieces.groupby("person"):
            assert not _holds(d["would_fire"], part, cfg.project.as_of, [], False), d["decoy_id"]


def test_scenarios_span_the_history(town: Path) -> None:
    """At least half the scenarios are older than 12 months (their last event), some more than 24 months, and
    some cse_risk children are adults today; every scenario and decoy says when it happened."""
    as_of = load_config(town / "project.toml").project.as_of
    scenarios = json.loads((town / "truth" / "scenarios.json").read_text(encoding="utf-8"))
    ages = [(as_of - dt.date.fromisoformat(s["last_event"])).days for s in scenarios]
    assert sum(a >= 365 for a in ages) >= len(ages) / 2
    assert sum(a >= 730 for a in ages) >= len(ages) / 5
    assert all(s["first_event"] <= s["last_event"] for s in scenarios)
    decoys = json.loads((town / "truth" / "decoys.json").read_text(encoding="utf-8"))
    assert all("last_event" in d for d in decoys)
    assert {d["would_fire"] for d in decoys if d["kind"] == "near_miss"} >= {"marac_potential_escalation",
                                                                              "asb_hotspot"}


# -- bad rows ------------------------------------------------------------------------------------------------
def test_clean_town_is_utf8_with_no_bad_rows(town: Path) -> None:
    for p in town.rglob("*.csv"):
        p.read_bytes().decode("utf-8")
    assert len(pd.read_csv(town / "truth" / "bad_rows.csv")) == 0


def test_bad_rows_are_where_truth_says(bad_town: Path) -> None:
    cfg = load_config(bad_town / "project.toml")
    bad = pd.read_csv(bad_town / "truth" / "bad_rows.csv", dtype=str, keep_default_na=False)
    codes = {"missing_key", "duplicate_key_conflict", "bad_date", "future_date", "ragged_row", "broken_quoting",
             "field_too_long", "undecodable", "orphan_reference", "accepted_unsafe", "accepted_decoded",
             "accepted_duplicate"}
    assert set(bad["expected"]) <= codes
    assert {"bad_date", "future_date", "missing_key", "duplicate_key_conflict", "ragged_row", "broken_quoting",
            "field_too_long", "orphan_reference", "accepted_unsafe", "accepted_decoded"} <= set(bad["expected"])
    for source, rows in bad.groupby("source"):
        raw = cfg.path_of(cfg.source(source).path).read_bytes()
        text = raw.decode("cp1252", errors="replace") if source == "council_people" else raw.decode("utf-8")
        lines = text.split("\n")
        for r in rows.itertuples():
            line = lines[int(r.row_number)]
            if r.record_key:
                assert r.record_key.split("|")[0] in line, (source, r.row_number)
            if r.expected == "field_too_long":
                assert len(line) > 100_000
            if r.expected == "accepted_unsafe":
                assert any(x in line for x in ("=HYPERLINK", "+CMD", "<script>"))
    people = cfg.path_of(cfg.source("council_people").path).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        people.decode("utf-8")
    unsafe = bad[bad["expected"] == "accepted_unsafe"]
    records = pd.read_csv(bad_town / "truth" / "records.csv", dtype=str)
    assert set(unsafe["record_key"]) <= set(records["record_key"])
    with (bad_town / "truth" / "bad_rows.csv").open(newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == ["source", "row_number", "record_key", "expected"]


def test_gazetteer_for_a_town_beyond_the_street_vocabulary() -> None:
    """A town needing more streets than 3 localities per street name allow still builds (the cap rises), with
    every (street, locality) pair distinct and the residential count reached."""
    import numpy as np

    from ecins_link.synth.places import build_gazetteer

    n_res = 170_000  # ~320k persons: 4.4k streets > 94 names x 13 types x 3 localities
    g = build_gazetteer(np.random.default_rng([1, 1]), n_res)
    assert int(g["residential"].sum()) >= n_res
    streets = g.drop_duplicates("street_id")
    assert not streets.duplicated(["STREET", "LOCALITY"]).any()
    assert streets.groupby("STREET")["LOCALITY"].nunique().max() > 3


def test_dob_noise_on_29_february_stays_a_real_date() -> None:
    """A year typo on a 29 February DOB must give a valid date (a seed-7 250k town crashed on 1973-02-29)."""
    import numpy as np

    from ecins_link.synth.noise import dobs

    dob = np.array(["1972-02-29"] * 2000, dtype="datetime64[D]")
    out = dobs(np.random.default_rng(0), dob, {"dob_transposed": 0.0, "dob_typo": 1.0, "dob_missing": 0.0})
    years = out.astype("datetime64[Y]").astype(int) + 1970
    assert set(years) == {1971, 1972, 1973}
    moved = out[years != 1972]
    assert len(moved) and (moved - moved.astype("datetime64[M]").astype("datetime64[D]") == 27).all()  # the 28th


def test_a_family_does_not_give_two_members_one_forename(tmp_path: Path) -> None:
    """Forenames drawn person by person repeated within a household for 8 % of Chinese-origin people (small name
    pools); now only the father-and-son hard case, and unrelated sharers, may repeat one."""
    generate_town(tmp_path / "t", persons=4000, seed=5)
    persons = pd.read_csv(tmp_path / "t" / "truth" / "persons.csv", dtype=str, keep_default_na=False)
    persons["first"] = persons["forenames"].str.split(" ").str[0]
    repeated = persons[persons.duplicated(["household_id", "first"], keep=False)]
    assert (repeated["hard_case"] == "father_son").sum() >= 2  # the deliberate case is still there
    others = repeated[repeated["hard_case"] != "father_son"]
    # sharers (unrelated adults, often of other surnames) may share a forename; family members may not
    family = others.groupby("household_id")["surname"].transform("nunique") == 1
    assert len(others[family]) <= 0.002 * len(persons), others[family].head(10)
