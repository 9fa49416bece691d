"""Ingest over several synthetic-town dialects: the same people and events written in layouts drawn from
``synth/data/dialects.toml`` (separators, encodings, header styles and quirks, date styles incl. US dates,
name layouts, foreign-key styles, code vocabularies) arrive exactly as from the classic layout, so no code
is tuned to one layout."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ecins_link.config import load_config
from ecins_link.ingest import ingest
from ecins_link.ingest.check import check_project
from ecins_link.store import Store
from ecins_link.synth import generate_town
from ecins_link.synth.dialect import Layout, catalogue, draw_layouts

SEEDS = [1, 2, 3]
PERSONS = 300


def _ingested(root: Path) -> dict[str, pd.DataFrame]:
    with Store(root / "s.duckdb") as store:
        ingest(store, load_config(root / "project.toml"))
        return {"acc": store.df("SELECT source, rows_read, rows_accepted, rows_quarantined FROM accounting"),
                "people": store.df("SELECT source, record_key, dob, resident_from FROM person_records"),
                "events": store.df("SELECT source, record_key, signal, event_date, person_source, person_record_key "
                                   "FROM event_records"),
                "issues": store.df("SELECT * FROM field_issues")}


@pytest.fixture(scope="module", params=SEEDS)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    seed = request.param
    root = tmp_path_factory.mktemp(f"dialect{seed}")
    classic = generate_town(root / "classic", persons=PERSONS, seed=seed)
    drawn = generate_town(root / "random", persons=PERSONS, seed=seed, dialect="random")
    return {"seed": seed, "classic": _ingested(classic.out_dir), "random": _ingested(drawn.out_dir),
            "root": drawn.out_dir, "layouts": drawn.layouts}


def test_layouts_are_drawn_from_the_whole_catalogue() -> None:
    """Over a few seeds every axis takes several values, and month-first dates go to one source at most."""
    import numpy as np

    formats = {"a": "csv", "b": "csv", "c": "xlsx", "d": "parquet", "e": "csv", "f": "csv"}
    seen: dict[str, set] = {}
    for seed in range(12):
        lays = draw_layouts(np.random.default_rng([seed, 8]), formats, set())
        assert sum(lay.dates == "us" for lay in lays.values()) <= 1
        assert lays["c"].separator == "," and lays["d"].quirk != "trailing_delimiter"
        for lay in lays.values():
            for k, v in lay.describe().items():
                seen.setdefault(k, set()).add(v)
    cat = catalogue()
    assert seen["separator"] == {s["char"] for s in cat["separators"]}
    assert seen["encoding"] == {e["name"] for e in cat["encodings"]}
    assert seen["dates"] == {d["name"] for d in cat["dates"]}
    assert seen["header"] == {h["name"] for h in cat["headers"]}
    assert draw_layouts(np.random.default_rng(0), formats, {"a"})["a"] == Layout()


def test_classic_dialect_is_the_sample_layout(tmp_path: Path) -> None:
    a = generate_town(tmp_path / "a", persons=60, seed=9)
    b = generate_town(tmp_path / "b", persons=60, seed=9, dialect="classic")
    for rel in ["project.toml", *(str(p.relative_to(a.out_dir)) for p in a.paths.values())]:
        assert (a.out_dir / rel).read_bytes() == (b.out_dir / rel).read_bytes()
    assert not a.layouts


def test_every_dialect_passes_check(pair: dict) -> None:
    report = check_project(pair["root"] / "project.toml")
    assert report["errors"] == [], (pair["layouts"], report["errors"])


def test_same_rows_accepted_nothing_quarantined(pair: dict) -> None:
    c, r = pair["classic"], pair["random"]
    acc = r["acc"].set_index("source").sort_index()
    assert (acc.rows_quarantined == 0).all(), (pair["layouts"], acc)
    pd.testing.assert_frame_equal(acc, c["acc"].set_index("source").sort_index())


def test_same_people_with_the_same_dates(pair: dict) -> None:
    """Dates survive every style (US month-first included): each record's DOB and start date are unchanged."""
    key = ["source", "record_key"]
    c = pair["classic"]["people"].sort_values(key).reset_index(drop=True)
    r = pair["random"]["people"].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(c, r)


def test_same_events_signals_and_people(pair: dict) -> None:
    """Numbered or lower-case codes map to the same signals; references written with fewer key columns find
    the same person (the tenancy in force on the event date) or are marked ambiguous, never lost."""
    key = ["source", "record_key", "signal"]
    c = pair["classic"]["events"].sort_values(key, na_position="first").reset_index(drop=True)
    r = pair["random"]["events"].sort_values(key, na_position="first").reset_index(drop=True)
    pd.testing.assert_frame_equal(c[key + ["event_date"]], r[key + ["event_date"]])
    ambiguous = set(pair["random"]["issues"].query("problem.str.startswith('ambiguous_reference')",
                                                   engine="python").record_key)
    differs = (c.person_record_key.fillna("") != r.person_record_key.fillna("")).to_numpy()
    for k, cls, rnd in zip(r.record_key[differs], c.person_record_key[differs], r.person_record_key[differs],
                           strict=True):
        if pd.isna(rnd):
            assert k in ambiguous
        else:  # another record of the same person (e.g. an earlier tenancy in force at the time)
            assert cls.split("|")[-1] == rnd.split("|")[-1], (k, cls, rnd)


@pytest.mark.slow
def test_every_catalogue_option_ingests_like_classic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Towns whose sources all take the k-th option of every axis, for every k: each option of the catalogue
    (US dates, UTF-16, tabs, trailing delimiters, repeated columns, numbered codes, ...) is ingested at least
    once and gives the classic town's records, dates and signals."""
    from ecins_link.synth import dialect

    cat = catalogue()
    axes = {"separators": "separator", "encodings": "encoding", "headers": "header", "header_quirks": "quirk",
            "dates": "dates", "names": "names", "foreign_keys": "foreign_key", "codes": "codes"}
    rounds = max(len(cat[a]) for a in axes)
    classic = _ingested(generate_town(tmp_path / "classic", persons=150, seed=11).out_dir)
    key = ["source", "record_key"]
    for k in range(rounds):
        pick = {field: cat[axis][k % len(cat[axis])] for axis, field in axes.items()}

        def layouts(_rng: object, formats: dict[str, str], _keep: set[str], pick: dict = pick,
                    k: int = k) -> dict[str, Layout]:
            out = {}
            for name, fmt in formats.items():
                text = fmt == "csv"
                quirk = pick["quirk"]["name"]
                out[name] = Layout(separator=pick["separator"]["char"] if text else ",", declare_delimiter=k % 2 == 0,
                                   encoding=pick["encoding"]["name"] if text else "utf-8",
                                   header=pick["header"]["name"],
                                   quirk=quirk if text or quirk != "trailing_delimiter" else "none",
                                   dates=pick["dates"]["name"], names=pick["names"]["name"],
                                   foreign_key=pick["foreign_key"]["name"], codes=pick["codes"]["name"])
            return out

        monkeypatch.setattr(dialect, "draw_layouts", layouts)
        town = generate_town(tmp_path / f"k{k}", persons=150, seed=11, dialect="random")
        got = _ingested(town.out_dir)
        assert (got["acc"].rows_quarantined == 0).all(), (k, pick, got["acc"])
        pd.testing.assert_frame_equal(classic["people"].sort_values(key).reset_index(drop=True),
                                      got["people"].sort_values(key).reset_index(drop=True))
        sig = ["source", "record_key", "signal", "event_date"]
        pd.testing.assert_frame_equal(
            classic["events"][sig].sort_values(sig, na_position="first").reset_index(drop=True),
            got["events"][sig].sort_values(sig, na_position="first").reset_index(drop=True))
