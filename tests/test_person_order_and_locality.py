"""Names written in the other order with a short form or a keying error (level "names swapped",
``thresholds.swap_variants``, ``person_std.surname_forename_canonical``) and one address written inside the
other (address level "same address, locality omitted", ``thresholds.address_locality_omitted``).

Hand-made pairs run through the packaged model's own level SQL in DuckDB; the standardise column on the shipped
synthetic town; then synthetic towns of two seeds run end to end through ``run_project`` and read against their
truth."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ecins_link.matching.person_model import CONTAINED, SWAP, SWAP_VARIANTS, load_model_config
from ecins_link.standardise.names import nickname_table

ROOT = Path(__file__).resolve().parents[1]
FEBRL_MODEL = ROOT / "benchmarks" / "febrl_model.toml"
NAME_COLS = ("forename", "forename_canonical", "forename_dm", "middle_names", "surname", "surname_compact", "surname_dm",
             "surname_forename_canonical")
ADDRESS_COLS = ("address_norm", "address_number", "address_flat", "postcode_sector")


def _canon(name: str) -> str:
    """The canonical form standardise gives a name on a record without sex (one canonical form whatever the sex)."""
    table = nickname_table()
    hit = set(table[table.name == name].canonical)
    return hit.pop() if len(hit) == 1 else name


def _dm(name: str) -> str:
    from ecins_link.standardise.names import dm_key

    return dm_key(name) or ""


def _names(fore: str, sur: str) -> dict:
    """A record's name columns as standardise writes them (the forenames field split at its first word)."""
    first, _, middle = fore.partition(" ")
    return {"forename": first, "forename_canonical": _canon(first), "forename_dm": _dm(first),
            "middle_names": middle or None, "surname": sur, "surname_compact": sur.replace(" ", "").replace("-", ""),
            "surname_dm": _dm(sur), "surname_forename_canonical": _canon(sur)}


def _holds(condition: str, left: dict, right: dict, cols: tuple[str, ...]) -> bool:
    """``condition`` (a comparison level's SQL over ``<col>_l`` / ``<col>_r``) evaluated by DuckDB on one pair."""
    row = {f"{c}_l": left.get(c) for c in cols} | {f"{c}_r": right.get(c) for c in cols}
    con = duckdb.connect()
    con.register("pair", pd.DataFrame([row], dtype="string"))
    value = con.execute(f"SELECT coalesce(({condition}), FALSE) FROM pair").fetchone()[0]
    con.close()
    return bool(value)


@pytest.mark.parametrize(("a", "b"), [
    (("PRICE", "KIT"), ("CHRISTOPHER", "PRICE")),  # a short form in the surname field
    (("WALKER", "OLLIE"), ("OLIVER", "WALKER")),
    (("HUSSAIN", "MOHAMED"), ("MOHD", "HUSSAIN")),  # a transliteration and an abbreviation, in the other order
    (("EVANS", "ROBERT"), ("ROBERT", "ECANS")),  # one keystroke in the swapped surname
    (("ELLIS", "TOMMY"), ("THOOMAS", "ELLIS")),  # a short form on one side, a keying error on the other
    (("MC CARTHY", "ROISIN"), ("ROISIN", "MC CARTHY")),  # a surname of two words in the forenames field
    (("VAN DER BERG", "PIETER"), ("PIETER", "VAN DER BERG")),
])
def test_names_in_the_other_order_with_a_variant_are_swapped(a: tuple[str, str], b: tuple[str, str]) -> None:
    left, right = _names(*a), _names(*b)
    assert _holds(SWAP_VARIANTS.format(jw=0.9), left, right, NAME_COLS)
    assert _holds(SWAP_VARIANTS.format(jw=0.9), right, left, NAME_COLS)
    assert not _holds(SWAP.format(jw=0.9), left, right, NAME_COLS)  # the level before swap_variants missed them


@pytest.mark.parametrize(("a", "b"), [
    (("ROB", "ROBERTS"), ("BOB", "ROBERTS")),  # a surname one letter from a forename is no swap
    (("BILLY", "WILLIAMS"), ("WILLIAM", "WILLIAMS")),
    (("JOHN", "SMITH"), ("JANE", "SMITH")),
    (("JOHN", "PRICE"), ("PRICE", "MARK")),  # one name shared across the fields, the other unrelated
    (("LI", "WEI"), ("LU", "WEN")),  # short names: no keystroke rule under four letters
])
def test_what_is_not_a_swap(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert not _holds(SWAP_VARIANTS.format(jw=0.9), _names(*a), _names(*b), NAME_COLS)


def _addr(norm: str, number: str | None, flat: str | None = None, sector: str | None = None) -> dict:
    return {"address_norm": norm, "address_number": number, "address_flat": flat, "postcode_sector": sector}


@pytest.mark.parametrize(("a", "b", "same"), [
    (_addr("3 LIME WAY", "3", sector="NT5 5"), _addr("3 LIME WAY EASTFIELD NORTHTOWN", "3"), True),
    (_addr("12 STATION ROAD NORTHTOWN", "12", sector="NT2 8"),
     _addr("12 STATION ROAD ABBEY HILL NORTHTOWN", "12", sector="NT2 8"), False),  # words inside, not one run
    (_addr("FLAT 17 NELSON HOUSE 12 STATION ROAD", "12", "17", "NT2 8"),
     _addr("FLAT 17 NELSON HOUSE 12 STATION ROAD ABBEY HILL NORTHTOWN", "12", "17"), True),
    (_addr("18 STATION STREET", "18", sector="NT5 8"),  # postcode mistyped within its sector
     _addr("18 STATION STREET EASTFIELD NORTHTOWN", "18", sector="NT5 8"), True),
    (_addr("3 LIME WAY", "3", sector="NT5 5"), _addr("3 LIME WAY OAKWOOD", "3", sector="NT8 2"), False),  # two towns
    (_addr("3 LIME WAY", "3"), _addr("13 LIME WAY EASTFIELD", "13"), False),  # another house
    (_addr("NELSON HOUSE 12 STATION ROAD", "12", "17"), _addr("NELSON HOUSE 12 STATION ROAD NORTHTOWN", "12", "18"),
     False),  # another flat
    (_addr("ROSE COTTAGE BIRCH STREET", None), _addr("ROSE COTTAGE BIRCH STREET OAKWOOD", None), False),  # no number
])
def test_one_address_written_inside_the_other(a: dict, b: dict, same: bool) -> None:
    assert _holds(CONTAINED, a, b, ADDRESS_COLS) is same
    assert _holds(CONTAINED, b, a, ADDRESS_COLS) is same


def test_packaged_model_has_both_and_the_febrl_model_neither() -> None:
    packaged, febrl = load_model_config()["thresholds"], load_model_config(FEBRL_MODEL)["thresholds"]
    assert packaged["swap_variants"] is True and packaged["address_locality_omitted"] is True
    assert febrl["swap_variants"] is False and febrl["address_locality_omitted"] is False


def test_sample_town_reads_the_surname_as_a_forename(sample_run) -> None:  # noqa: ANN001
    """Standardise writes the nickname vocabulary's canonical form of the surname (the surname itself where the
    vocabulary does not list it), so a name written in the other order compares in canonical form."""
    con = duckdb.connect(str(sample_run.store_path), read_only=True)
    std = con.execute("SELECT surname, sex, surname_forename_canonical FROM person_std WHERE surname IS NOT NULL").df()
    con.close()
    table = nickname_table()
    sexed = set(table[table.sex.notna()].name)
    plain = dict(table[table.sex.isna() & ~table.name.isin(sexed)][["name", "canonical"]].itertuples(index=False))
    unlisted = ~std.surname.isin(set(table.name))
    assert (std.surname_forename_canonical[unlisted] == std.surname[unlisted]).all()
    listed = std[std.surname.isin(set(plain))]
    assert len(listed) > 0
    assert (listed.surname_forename_canonical == listed.surname.map(plain)).all()


def _reached(settings: dict, comparison: str, label: str) -> str:
    """SQL for "the pair reaches level ``label`` of ``comparison``" in a saved model: its condition and none of the
    levels before it (Splink takes the first level that holds)."""
    comp = next(c for c in settings["comparisons"] if c["output_column_name"] == comparison)
    before = []
    for lvl in comp["comparison_levels"]:
        if lvl.get("label_for_charts") == label:
            earlier = " OR ".join(f"coalesce(({c}), FALSE)" for c in before) or "FALSE"
            return f"coalesce(({lvl['sql_condition']}), FALSE) AND NOT ({earlier})"
        before.append(lvl["sql_condition"])
    raise KeyError(label)


def _level_pairs(con: duckdb.DuckDBPyConnection, condition: str, truth: Path) -> pd.DataFrame:
    """Scored pairs of a finished run (its store's connection ``con``) meeting ``condition`` (over ``<column>_l`` /
    ``<column>_r`` of person_std), with whether the truth says they are one person."""
    cols = [r[0] for r in con.execute("DESCRIBE person_std").fetchall()]
    sel = ", ".join(f'l."{c}" AS "{c}_l", r."{c}" AS "{c}_r"' for c in cols)
    df = con.execute(f"""SELECT p.match_probability, {sel}
                         FROM person_pairs p JOIN person_std l ON l.unique_id = p.unique_id_l
                         JOIN person_std r ON r.unique_id = p.unique_id_r""").df()
    mem = duckdb.connect()
    mem.register("pairs", df)
    hit = mem.execute(f"SELECT * FROM pairs WHERE coalesce(({condition}), FALSE)").df()
    mem.close()
    t = pd.read_csv(truth / "records.csv", dtype=str).set_index(["source", "record_key"]).true_person_id
    hard = pd.read_csv(truth / "persons.csv", dtype=str, keep_default_na=False).set_index("true_person_id").hard_case
    tl = [t[k] for k in zip(hit.source_l, hit.record_key_l, strict=True)]
    tr = [t[k] for k in zip(hit.source_r, hit.record_key_r, strict=True)]
    hit["same"] = [a == b for a, b in zip(tl, tr, strict=True)]
    # two people of a hard case (twins, a father and son of one name) in one pair
    hit["hard_pair"] = [a != b and hard.get(a) == hard.get(b) and hard.get(a) in ("twin", "father_son")
                        for a, b in zip(tl, tr, strict=True)]
    return hit


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 7])
def test_synthetic_towns_link_through_both_at_the_same_precision(standardised_town, seed: int) -> None:  # noqa: ANN001
    """Two synthetic towns (3,000 persons) through ingest, standardise and the persons stage: pairs whose addresses
    are one written inside the other are one person at least as often as pairs at one address written alike, and
    those accepted are (>= 97 %); pairs in the other order with a variant are all one person; the saved model
    carries both levels, B-cubed precision stays at the issue's bar (>= 0.997) and neither level accepts a pair of
    twins or of a father and son."""
    from ecins_link.matching import link_persons
    from ecins_link.matching.metrics import evaluate_persons

    cfg, store, (records, persons) = standardised_town(3000, seed)
    truth = records.parent
    link_persons(store, cfg)
    settings = json.loads(store.con.execute("SELECT settings_json FROM linkage_models").fetchone()[0])
    e = evaluate_persons(store, records, persons)
    labels = {lv.get("label_for_charts") for c in settings["comparisons"] for lv in c["comparison_levels"]}
    assert {"same address, locality omitted", "names swapped"} <= labels
    contained = _level_pairs(store.con, _reached(settings, "address", "same address, locality omitted"), truth)
    exact = _level_pairs(store.con, _reached(settings, "address", "exact"), truth)
    # one dwelling written two ways: as often one person as an address written the same way (a household's
    # members share both), and the pairs it helps accept are one person
    assert len(contained) >= 10 and contained.same.mean() >= exact.same.mean()
    accepted = contained[contained.match_probability >= 0.95]
    assert len(accepted) >= 5 and accepted.same.mean() >= 0.97
    swapped = _level_pairs(store.con, f"({SWAP_VARIANTS.format(jw=0.9)}) AND NOT ({SWAP.format(jw=0.9)})", truth)
    assert swapped.same.all()
    assert e["bcubed"]["precision"] >= 0.997
    # neither level accepts a pair of twins or of a father and son (the towns hold a few twins merged before
    # either level existed: one spelling for both, which no name rule separates)
    for pairs in (contained, swapped):
        assert not pairs[pairs.match_probability >= 0.95].hard_pair.any()
    assert e["hard_cases"].get("father_son", {}).get("wrongly_merged_pairs", 0) == 0
