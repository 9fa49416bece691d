"""Ingest the synthetic town with injected bad rows: every injected defect is quarantined with the expected
reason at the expected row, every good record arrives, and the accounting balances on every source."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ecins_link.config import load_config
from ecins_link.ingest import ingest
from ecins_link.store import Store

TOWNS = Path(__file__).resolve().parents[1] / "data" / "samples"


def _ingested(tmp_path: Path, town: str) -> tuple[Store, Path]:
    root = TOWNS / town
    if not (root / "project.toml").exists():
        pytest.skip(f"synthetic town {town} not generated")
    store = Store(tmp_path / "s.duckdb")  # never write into the sample folder
    ingest(store, load_config(root / "project.toml"))
    return store, root


@pytest.fixture(scope="module")
def town_bad(tmp_path_factory: pytest.TempPathFactory):
    store, root = _ingested(tmp_path_factory.mktemp("town_bad"), "town_bad")
    yield store, root
    store.close()


def test_accounting_balances_on_every_source(town_bad) -> None:
    store, root = town_bad
    acc = store.df("SELECT * FROM accounting")
    cfg = load_config(root / "project.toml")
    assert set(acc.source) == {s.name for s in cfg.sources}
    assert (acc.rows_read == acc.rows_accepted + acc.rows_quarantined).all()
    assert (acc.rows_read > 0).all()
    q = store.df("SELECT source, count(*) AS n FROM quarantine GROUP BY source").set_index("source").n
    assert (acc.set_index("source").rows_quarantined == q.reindex(acc.source).fillna(0).to_numpy()).all()


def test_every_injected_bad_row_has_expected_fate(town_bad) -> None:
    store, root = town_bad
    truth = pd.read_csv(root / "truth" / "bad_rows.csv", dtype=str, keep_default_na=False)
    truth["row_number"] = truth.row_number.astype(int)
    quarantine = {(s, int(r)): reason.split(":")[0] for s, r, reason in
                  store.con.execute("SELECT source, row_number, reason FROM quarantine").fetchall()}
    persons = store.df("SELECT source, record_key, unsafe, forenames, surname FROM person_records")
    acc = store.df("SELECT * FROM accounting").set_index("source")
    for t in truth.itertuples():
        if t.expected == "accepted_unsafe":
            hit = persons[(persons.source == t.source) & (persons.record_key == t.record_key)]
            assert len(hit) == 1 and bool(hit.unsafe.iat[0]), t
        elif t.expected == "accepted_decoded":
            hit = persons[(persons.source == t.source) & (persons.record_key == t.record_key)]
            assert len(hit) == 1 and not (hit.forenames.iat[0] + hit.surname.iat[0]).isascii(), t
            assert "\ufffd" not in hit.forenames.iat[0] + hit.surname.iat[0]
        elif t.expected == "accepted_duplicate":
            assert acc.loc[t.source, "duplicates_collapsed"] >= 1
            assert (t.source, t.row_number) not in quarantine
        else:
            assert quarantine.get((t.source, t.row_number)) == t.expected, t
    expected_q = truth[~truth.expected.str.startswith("accepted")]
    assert len(quarantine) == len(expected_q)  # nothing else quarantined


def test_no_good_record_lost(town_bad) -> None:
    store, root = town_bad
    truth = pd.read_csv(root / "truth" / "records.csv", dtype=str)
    store.con.register("truth_records", truth[["source", "record_key"]])
    missing = store.con.execute("""SELECT count(*) FROM truth_records t
        WHERE NOT EXISTS (SELECT 1 FROM person_records p WHERE p.source = t.source AND p.record_key = t.record_key)
          AND NOT EXISTS (SELECT 1 FROM event_records e WHERE e.source = t.source AND e.record_key = t.record_key)
        """).fetchone()[0]
    assert missing == 0
    addresses = pd.read_csv(root / "truth" / "addresses.csv", dtype=str)
    store.con.register("truth_addresses", addresses[["source", "record_key"]])
    lost = store.con.execute("""SELECT count(*) FROM truth_addresses t WHERE NOT EXISTS (SELECT 1 FROM
        address_records a WHERE a.source = t.source AND a.record_key = t.record_key)""").fetchone()[0]
    assert lost == 0


def test_clean_town_quarantines_nothing(tmp_path: Path) -> None:
    store, root = _ingested(tmp_path, "town")
    with store:
        bad = pd.read_csv(root / "truth" / "bad_rows.csv")
        assert store.count("quarantine") == len(bad[~bad.expected.astype(str).str.startswith("accepted")])
        acc = store.df("SELECT * FROM accounting")
        assert (acc.rows_read == acc.rows_accepted + acc.rows_quarantined).all()
        assert store.count("gazetteer") == acc.set_index("source").loc["llpg", "rows_accepted"]
