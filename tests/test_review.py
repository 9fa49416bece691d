"""Clerical review round trip: export the uncertain band, fill it in, import, constraints."""

from __future__ import annotations

import csv
import json
import shutil

import pandas as pd
import pytest
from test_explain import build_linked_store

from ecins_link.config import LinkageSettings
from ecins_link.matching.review import export_review, import_review, load_constraints
from ecins_link.store import Store


@pytest.fixture(scope="module")
def linked_path(tmp_path_factory):
    return build_linked_store(tmp_path_factory.mktemp("review") / "store.duckdb")


@pytest.fixture()
def store(linked_path, tmp_path):
    """A private copy of the linked store (tests add decisions and edit records)."""
    copy = tmp_path / "store.duckdb"
    shutil.copy(linked_path, copy)
    with Store(copy, user="analyst1") as s:
        yield s


def _read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def test_export_writes_the_uncertain_band_most_uncertain_first(store, tmp_path):
    out = tmp_path / "review.csv"
    lower, upper = LinkageSettings().review_band
    n = export_review(store, out)
    expected = store.con.execute(
        "SELECT count(*) FROM person_pairs WHERE match_probability >= ? AND match_probability < ?",
        [lower, upper],
    ).fetchone()[0]
    assert n == expected > 0
    df = _read(out)
    assert len(df) == n
    probs = df["match_probability"].astype(float)
    assert probs.between(lower, upper).all()
    weights = df["match_weight"].astype(float).abs()
    assert weights.is_monotonic_increasing
    assert (df["decision"] == "").all() and "note" in df.columns
    for col in ("l_surname", "r_surname", "l_dob", "r_postcode", "l_source", "r_record_key", "breakdown"):
        assert col in df.columns
    assert {"evidence_surname", "evidence_dob"} <= set(df.columns)
    assert df["evidence_dob"].str.match(r".+ \([+-]\d+\.\d\)$").all()
    first = df.iloc[0]
    truth = store.df("SELECT surname FROM person_std WHERE unique_id = ?", [first["unique_id_l"]])
    assert first["l_surname"] == truth["surname"].iloc[0]
    assert export_review(store, tmp_path / "two.csv", lower=lower, upper=upper, limit=2) == min(2, n)
    assert store.audit_rows()["action"].eq("clerical_review_export").sum() == 2


def test_round_trip_decisions_become_constraints(store, tmp_path):
    out = tmp_path / "review.csv"
    export_review(store, out, lower=0.01, upper=0.999)
    df = _read(out)
    assert len(df) >= 4
    df.loc[0, "decision"] = "match"
    df.loc[1, "decision"] = "Non-Match"
    df.loc[2, "decision"] = "non_match"
    df.loc[2, "note"] = "different dob, checked with housing"
    df.to_csv(
        out, index=False, sep=";", encoding="cp1252", errors="replace"
    )  # as Excel re-saves in some locales
    result = import_review(store, out, reviewer="analyst1")
    assert result == {
        "rows": len(df),
        "imported": 3,
        "match": 1,
        "non_match": 2,
        "skipped_blank": len(df) - 3,
    }
    must, cannot = load_constraints(store)

    def pair(i: int) -> tuple[str, str]:
        a, b = df.loc[i, "unique_id_l"], df.loc[i, "unique_id_r"]
        return (min(a, b), max(a, b))

    assert must == [pair(0)]
    assert sorted(cannot) == sorted([pair(1), pair(2)])
    audit = store.audit_rows()
    row = audit[audit["action"] == "clerical_review_import"].iloc[-1]
    assert row["category"] == "alteration" and '"match": 1' in row["row_counts"]
    surnames = set(df["l_surname"]) | set(df["r_surname"])
    assert not any(s and s in row["details"] + row["row_counts"] for s in surnames)
    # pair by pair: who, when, which two records, which decision (never names or the note's text)
    per_pair = audit[audit["action"] == "clerical_decision"]
    got = {(d["unique_id_l"], d["unique_id_r"], d["decision"], d["reviewer"])
           for d in per_pair["details"].map(json.loads)}
    want = {(df.loc[i, "unique_id_l"], df.loc[i, "unique_id_r"], dec, "analyst1")
            for i, dec in ((0, "match"), (1, "non_match"), (2, "non_match"))}
    assert got == want and len(per_pair) == 3
    assert all(json.loads(d)["decided_at"] for d in per_pair["details"])
    assert not any("checked with" in d or any(s and s in d for s in surnames) for d in per_pair["details"])
    assert store.verify_audit() == []

    # a later decision on the same pair wins; decided pairs are not exported again
    flip = pd.DataFrame({"unique_id_l": [pair(0)[1]], "unique_id_r": [pair(0)[0]], "decision": ["non_match"]})
    flip.to_csv(tmp_path / "flip.csv", index=False)
    import_review(store, tmp_path / "flip.csv", reviewer="analyst2")
    must, cannot = load_constraints(store)
    assert must == [] and pair(0) in cannot
    again = (
        _read(tmp_path / "again.csv") if export_review(store, tmp_path / "again.csv", 0.01, 0.999) else None
    )
    assert again is not None and len(again) == len(df) - 3
    decided = {pair(i) for i in range(3)}
    assert (
        not {(min(a, b), max(a, b)) for a, b in zip(again["unique_id_l"], again["unique_id_r"], strict=True)}
        & decided
    )


def test_bad_file_is_rejected_with_line_numbers_and_nothing_imported(store, tmp_path):
    out = tmp_path / "review.csv"
    export_review(store, out, lower=0.01, upper=0.999)
    df = _read(out)
    df.loc[0, "decision"] = "match"
    df.loc[1, "decision"] = "maybe"
    df.loc[2, "decision"] = "match"
    df.loc[2, "unique_id_r"] = "police:rec-does-not-exist"
    df.to_csv(out, index=False)
    with pytest.raises(ValueError) as err:
        import_review(store, out, reviewer="analyst1")
    msg = str(err.value)
    assert "2 problem(s)" in msg and "line 3: decision must be match or non_match" in msg
    assert "line 4: unknown record id" in msg and "line 2" not in msg
    assert load_constraints(store) == ([], [])
    pd.DataFrame({"left": ["a"], "decision": ["match"]}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['unique_id_l', 'unique_id_r'\]"):
        import_review(store, tmp_path / "cols.csv", reviewer="analyst1")
    with pytest.raises(ValueError, match="not found"):
        import_review(store, tmp_path / "nope.csv", reviewer="analyst1")


def test_formula_like_values_are_neutralised(store, tmp_path):
    left = store.con.execute(
        "SELECT unique_id_l FROM person_pairs WHERE match_probability >= 0.01 AND match_probability < 0.95 LIMIT 1"
    ).fetchone()[0]
    store.con.execute(
        """UPDATE person_std SET forename = '=HYPERLINK("http://evil.example","x")', surname = '+SUM(A1)',
           address_norm = '@cmd -1' WHERE unique_id = ?""",
        [left],
    )
    out = tmp_path / "review.csv"
    export_review(store, out, lower=0.01)
    with open(out, encoding="utf-8-sig", newline="") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert '\'=HYPERLINK("http://evil.example","x")' in cells and "'+SUM(A1)" in cells and "'@cmd -1" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "@")]
    # negative weights stay numbers, not quoted text
    assert any(c.startswith("-") and c[1:].replace(".", "").isdigit() for c in cells)


def test_no_decisions_yet_means_no_constraints(tmp_path):
    with Store(tmp_path / "fresh.duckdb") as s:
        assert load_constraints(s) == ([], [])


def test_reviewer_match_shows_as_clerical_link_in_person_explanation(store, tmp_path):
    from ecins_link.matching.explain import explain_person
    from ecins_link.matching.stable_ids import assign_stable_ids

    person, member = store.con.execute(
        """SELECT person_id, min(unique_id) FROM person_clusters
           GROUP BY person_id HAVING count(*) >= 2 ORDER BY person_id LIMIT 1"""
    ).fetchone()
    loner = store.con.execute(
        """SELECT c.unique_id FROM person_clusters c
           WHERE c.person_id IN (SELECT person_id FROM person_clusters GROUP BY 1 HAVING count(*) = 1)
             AND NOT EXISTS (SELECT 1 FROM person_pairs p WHERE c.unique_id IN (p.unique_id_l, p.unique_id_r))
           ORDER BY c.unique_id LIMIT 1"""
    ).fetchone()[0]
    pd.DataFrame({"unique_id_l": [loner], "unique_id_r": [member], "decision": ["match"]}).to_csv(
        tmp_path / "d.csv", index=False
    )
    import_review(store, tmp_path / "d.csv", reviewer="analyst1")
    # the next persons run honours the must-link: the loner joins the person's cluster
    store.con.execute(
        "UPDATE run_clusters SET cluster_id = (SELECT cluster_id FROM run_clusters WHERE unique_id = ?) "
        "WHERE unique_id = ?",
        [member, loner],
    )
    assign_stable_ids(store, "run_clusters")
    out = explain_person(store, person).set_index("unique_id")
    assert loner in out.index
    row = out.loc[loner]
    assert row["link_basis"] == "clerical" and row["linked_to"] == member
    assert row["breakdown"].startswith("forename: ") and row["match_weight"] < 0  # the model alone says no
    assert (out.drop(index=loner)["link_basis"] == "model").all()


def test_quoted_ids_and_notes_are_restored_on_import(tmp_path):
    from ecins_link.matching.review import spreadsheet_safe

    with Store(tmp_path / "q.duckdb") as s:
        s.write_table("person_std", "SELECT * FROM (VALUES ('-ext:1'), ('@ext:2'), ('ext:3')) t(unique_id)")
        filled = pd.DataFrame(
            {
                "unique_id_l": ["-ext:1", "ext:3"],
                "unique_id_r": ["@ext:2", "-ext:1"],
                "decision": ["match", ""],
                "note": ["=same NHS number", ""],
            }
        )
        safe = spreadsheet_safe(filled)
        assert safe.loc[0, "unique_id_l"] == "'-ext:1" and safe.loc[0, "note"] == "'=same NHS number"
        safe.to_csv(tmp_path / "q.csv", index=False)
        assert import_review(s, tmp_path / "q.csv", reviewer="a")["skipped_blank"] == 1
        assert load_constraints(s) == ([("-ext:1", "@ext:2")], [])
        assert s.con.execute("SELECT note FROM clerical_decisions").fetchone()[0] == "=same NHS number"
