"""Pseudonymised research export: no direct identifier survives, pseudonyms are keyed and stable."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pandas as pd
import pytest
from test_report_fixtures import build_store

from ecins_link.export import export_pseudonymised, pseudonym
from ecins_link.store import StoreError


def _dump(out: Path) -> str:
    parts = [(out / "manifest.json").read_text(encoding="utf-8")]
    for path in sorted(out.glob("*.parquet")):
        df = pd.read_parquet(path)
        parts.append(" ".join(df.columns))
        parts.append(df.to_json(orient="records", default_handler=str))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("export")
    key = tmp / "key.bin"
    key.write_bytes(secrets.token_bytes(48))
    store = build_store(tmp / "s.duckdb")
    result = export_pseudonymised(store, tmp / "x1", key, min_cell=1)  # tiny fixture: no suppression
    yield tmp, key, store, result
    store.close()


def _identifiers(store) -> set[str]:
    """Every direct identifier held in the store's input tables."""
    ids: set[str] = set()
    q = """SELECT forenames, surname, full_name, strftime(dob, '%Y-%m-%d'), dob_raw, postcode, phone, email,
                  record_key, address_text, source || ':' || record_key FROM person_records"""
    for row in store.con.execute(q).fetchall():
        ids |= {str(v) for v in row if v is not None}
    for table in ("signals", "address_std", "person_clusters"):
        ids |= {str(k) for (k,) in store.con.execute(f"SELECT DISTINCT record_key FROM {table}").fetchall()}
    ids |= {str(v) for (v,) in store.con.execute("SELECT DISTINCT person_id FROM person_clusters").fetchall()}
    ids |= {str(v) for (v,) in store.con.execute("SELECT DISTINCT uprn FROM gazetteer_std").fetchall()}
    ids |= {str(v) for (v,) in store.con.execute("SELECT DISTINCT location_id FROM address_matches").fetchall()}
    ids |= {str(v) for (v,) in store.con.execute("SELECT DISTINCT address_text FROM address_std").fetchall()}
    return {i for i in ids if len(i) >= 2}


def test_no_direct_identifier_in_export(exported) -> None:
    tmp, _, store, _ = exported
    text = _dump(tmp / "x1")
    ids = _identifiers(store)
    assert len(ids) > 40
    leaked = sorted(i for i in ids if i in text)
    assert leaked == []


def test_generalised_values(exported) -> None:
    tmp, _, store, result = exported
    persons = pd.read_parquet(tmp / "x1" / "persons.parquet")
    years = set(store.con.execute("SELECT DISTINCT year(dob) FROM person_attributes").fetchall())
    assert {(int(y),) for y in persons["dob_year"]} == years
    signals = pd.read_parquet(tmp / "x1" / "signals.parquet")
    assert len(signals) == store.count("signals") == result["counts"]["signals"]
    assert signals["event_month"].str.fullmatch(r"\d{4}-\d{2}").all()
    sectors = set(signals["postcode_sector"].dropna())
    assert sectors and all(len(s.split(" ")[1]) == 1 for s in sectors)
    assert {"category", "agency", "signal"} <= set(signals.columns)


def test_same_key_same_ids_other_key_other_ids(exported, tmp_path: Path) -> None:
    tmp, key, store, _ = exported
    again = export_pseudonymised(store, tmp_path / "x2", key)
    first = pd.read_parquet(tmp / "x1" / "persons.parquet")
    second = pd.read_parquet(again["files"]["persons"])
    assert list(first["pseudo_person_id"]) == list(second["pseudo_person_id"])
    assert pseudonym(key.read_bytes(), "person", "P3") in set(first["pseudo_person_id"])
    other = tmp_path / "other.key"
    other.write_bytes(secrets.token_bytes(48))
    third = pd.read_parquet(export_pseudonymised(store, tmp_path / "x3", other)["files"]["persons"])
    assert not set(third["pseudo_person_id"]) & set(first["pseudo_person_id"])
    manifest = json.loads((tmp_path / "x3" / "manifest.json").read_text())
    assert manifest["key_fingerprint"] != again["key_fingerprint"]


def test_export_is_audited(exported) -> None:
    _, _, store, result = exported
    audit = store.audit_rows()
    rows = audit[(audit.action == "research_export")]
    assert len(rows) >= 1 and set(rows.category) == {"disclosure"} and set(rows.purpose) == {"research"}
    assert str(result["counts"]["persons"]) in rows.iloc[0].row_counts


def test_bad_key_is_clear_error(tmp_path: Path) -> None:
    store = build_store(tmp_path / "s.duckdb")
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    with pytest.raises(ValueError, match="fewer than"):
        export_pseudonymised(store, tmp_path / "o", short)
    with pytest.raises(FileNotFoundError):
        export_pseudonymised(store, tmp_path / "o", tmp_path / "missing.key")


def test_export_with_only_person_clusters(tmp_path: Path) -> None:
    store = build_store(tmp_path / "s.duckdb")
    for table in ("person_attributes", "residences", "signals", "flags", "households", "address_matches"):
        store.con.execute(f"DROP TABLE {table}")
    key = tmp_path / "k"
    key.write_bytes(secrets.token_bytes(32))
    result = export_pseudonymised(store, tmp_path / "o", key)
    persons = pd.read_parquet(result["files"]["persons"])
    assert len(persons) == store.con.execute("SELECT count(DISTINCT person_id) FROM person_clusters").fetchone()[0]
    assert set(result["counts"]) == {"persons"}
    store.con.execute("DROP TABLE person_clusters")
    with pytest.raises(StoreError, match="person_clusters"):
        export_pseudonymised(store, tmp_path / "o2", key)


def test_small_cells_withheld_on_sample_town(sample_run, tmp_path: Path) -> None:
    """On the sample town's run, no exported (dob_year, sex) cell or postcode sector covers fewer than 5 persons,
    and what was withheld is counted in the manifest."""
    from ecins_link.store import Store

    run = sample_run.copy(tmp_path / "run")
    key = tmp_path / "k"
    key.write_bytes(secrets.token_bytes(64))
    store = Store(run.store_path)
    try:
        result = export_pseudonymised(store, tmp_path / "x", key)
        total_sectors = store.con.execute("SELECT count(DISTINCT postcode_sector) FROM address_std").fetchone()[0]
    finally:
        store.close()
    persons = pd.read_parquet(result["files"]["persons"])
    cells = persons.dropna(subset=["dob_year"]).groupby(["dob_year", "sex"], dropna=False).size()
    assert len(cells) > 5 and cells.min() >= 5
    withheld = result["withheld"]
    assert persons["dob_year"].isna().sum() >= withheld["dob_years"] > 0
    res = pd.read_parquet(result["files"]["residences"])
    sig = pd.read_parquet(result["files"]["signals"])
    links = pd.concat([res[["pseudo_person_id", "postcode_sector"]], sig[["pseudo_person_id", "postcode_sector"]]])
    per_sector = links.dropna().groupby("postcode_sector").pseudo_person_id.nunique()
    assert len(per_sector) > 0 and per_sector.min() >= 5
    assert withheld["postcode_sectors"] < total_sectors
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert manifest["small_cell_suppression"] == {"min_cell": 5, "withheld": withheld}
    store = Store(run.store_path)
    try:
        with pytest.raises(ValueError, match="min_cell"):
            export_pseudonymised(store, tmp_path / "y", key, min_cell=0)
    finally:
        store.close()


def _joined_classes(out: Path) -> pd.Series:
    """What a researcher can do: join the files on the pseudonym and count persons per quasi-identifier tuple
    (DOB year, sex, child marker, the set of postcode sectors linked to the person)."""
    persons = pd.read_parquet(out / "persons.parquet")
    links = pd.concat([pd.read_parquet(out / f)[["pseudo_person_id", "postcode_sector"]]
                       for f in ("residences.parquet", "signals.parquet")]).dropna()
    sectors = links.groupby("pseudo_person_id")["postcode_sector"].agg(lambda s: ",".join(sorted(set(s))))
    key = persons[["dob_year", "sex", "is_child"]].astype(str).agg("|".join, axis=1) + "|" + \
        persons["pseudo_person_id"].map(sectors).fillna("")
    return key.map(key.value_counts())


def test_k_anonymity_across_joined_files_on_sample_town(sample_run, tmp_path: Path) -> None:
    """Once persons, residences and signals are joined on the pseudonym, every person shares DOB year, sex,
    child marker and postcode sectors with at least 4 others (k = 5), and the manifest says what it took.
    Without enforcement (k = 1) most persons are unique: the check can fail."""
    from ecins_link.store import Store

    run = sample_run.copy(tmp_path / "run")
    key = tmp_path / "k"
    key.write_bytes(secrets.token_bytes(32))
    with Store(run.store_path) as store:
        export_pseudonymised(store, tmp_path / "raw", key, min_cell=1)
        result = export_pseudonymised(store, tmp_path / "x", key)
    raw = _joined_classes(tmp_path / "raw")
    assert (raw == 1).sum() > len(raw) / 3  # the attack: unique persons on the joined quasi-identifiers
    classes = _joined_classes(tmp_path / "x")
    assert classes.min() >= 5
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    kanon = manifest["k_anonymity"]
    assert kanon["k"] == 5 and kanon["min_class_size"] >= 5 and kanon["checked"]["min_class_size"] >= 5
    assert kanon["dob_year_withheld"] > 0 and kanon["persons"] == len(raw)
    assert kanon == result["k_anonymity"]
    assert len(pd.read_parquet(tmp_path / "x" / "persons.parquet")) == len(raw) - kanon["persons_left_out"]


def test_free_text_in_a_coded_column_never_leaves(tmp_path: Path) -> None:
    """A role column holding free text (a name, a DOB, a postcode) exports as NULL; real codes stay."""
    store = build_store(tmp_path / "s.duckdb")
    leak = "SMITH, JOHN 01/02/1980 NT1 4AB"
    try:
        store.con.execute("UPDATE signals SET role = ? WHERE signal_id = (SELECT min(signal_id) FROM signals)", [leak])
        store.con.execute("UPDATE signals SET role = 'V' WHERE role IS NULL OR role <> ?", [leak])
        key = tmp_path / "k"
        key.write_bytes(secrets.token_bytes(32))
        result = export_pseudonymised(store, tmp_path / "o", key, min_cell=1)
    finally:
        store.close()
    text = _dump(tmp_path / "o")
    assert "SMITH" not in text and "1980" not in text.split("k_anonymity")[0].split("dob_year")[0]
    roles = pd.read_parquet(result["files"]["signals"])["role"]
    assert roles.isna().sum() == 1 and set(roles.dropna()) == {"V"}
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["coded_values_withheld"]["signals.role"] == 1
    assert manifest["columns"]["signals"] == list(pd.read_parquet(result["files"]["signals"]).columns)


@pytest.mark.parametrize("key", [b"a" * 16, b"a" * 64, b"abcdefghijklmnopqrstuvwxyz", bytes(range(32)),
                                 b"0123012301230123", b"aaaaaaaabbbbbbbbccccccccdddd"])
def test_guessable_keys_are_refused(tmp_path: Path, key: bytes) -> None:
    store = build_store(tmp_path / "s.duckdb")
    path = tmp_path / "weak.key"
    path.write_bytes(key)
    try:
        with pytest.raises(ValueError, match="guessable|fewer than"):
            export_pseudonymised(store, tmp_path / "o", path)
        good = tmp_path / "good.key"
        good.write_text(secrets.token_hex(32))
        export_pseudonymised(store, tmp_path / "o", good)
    finally:
        store.close()
    assert not (tmp_path / "o" / "weak").exists()
