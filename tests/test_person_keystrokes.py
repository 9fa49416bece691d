"""The same identity with one name mistyped by one keystroke, at another address (matching/person_keystrokes.py).

Hand-made records scored like the 250k town scored such pairs (0.73-0.95), the packaged model's settings and the
engine's own clustering: what the pass accepts, and each condition that makes it leave a pair alone."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest
from _person_records import run_pass

from ecins_link.matching.person_keystrokes import one_keystroke_elsewhere
from ecins_link.matching.person_model import load_model_config

OLD = {"postcode": "NT1 1AA", "address_norm": "4 MILL LANE NORTHTOWN"}
NEW = {"postcode": "NT9 9ZZ", "address_norm": "FLAT 2 17 ELM ROAD NORTHTOWN"}
ELSE = {"postcode": "NT5 5EE", "address_norm": "9 OAK STREET NORTHTOWN"}


def _rec(key: str, forename: str, surname: str, dob: str | None, home: dict, sex: str | None = "M",
         source: str = "s") -> dict:
    return {"source": source, "record_key": key, "forename": forename, "forename_canonical": forename,
            "surname": surname, "dob": dob, "sex": sex, **home}


def _spelt(name: str, n: int, field: str = "forename") -> list[dict]:
    """``n`` other people whose ``field`` is ``name``: how common the spelling is in the extract."""
    out = []
    for i in range(n):
        fore, sur = (name, f"X{i}") if field == "forename" else (f"Y{i}", name)
        out.append(_rec(f"{name}{i}", fore, sur, f"19{40 + i % 50:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}", ELSE))
    return out


def _run(rows: list[dict], pairs: list[tuple], **cfg: object) -> tuple[dict, dict[str, str]]:
    held = cfg.pop("held", None)
    return run_pass(one_keystroke_elsewhere, "keystrokes", rows, pairs, held,  # type: ignore[arg-type]
                    **{"max_spelling_ratio": 0.1, **cfg})


def test_packaged_model_switches_the_pass_on() -> None:
    cfg = load_model_config()["keystrokes"]
    assert cfg["enabled"] is True and cfg["max_spelling_ratio"] <= 0.05 and cfg["max_clusters"] == 1


@pytest.mark.parametrize(("fa", "sa", "fb", "sb", "common"), [
    ("GEORGE", "COOPER", "GEOGRE", "COOPER", ("GEORGE", "forename")),  # two letters swapped
    ("OLIVIA", "BROWN", "OLIIVIA", "BROWN", ("OLIVIA", "forename")),  # a letter added
    ("SUSAN", "WRIGHT", "SSAN", "WRIGHT", ("SUSAN", "forename")),  # a letter missed
    ("JAMES", "ROBERTS", "JAMES", "ROBERRS", ("ROBERTS", "surname")),  # a letter changed, in the surname
    ("HAO", "WANG", "HOA", "WANG", ("HAO", "forename")),  # a short given name, two letters swapped
    # a keystroke from another spelling of the same surname (HUSSEIN), two from the other record's (HUSSAIN)
    ("MOHAMMED", "HUSSAIN", "MOHAMMED", "HUSWEIN", ("HUSSEIN", "surname")),
])
def test_one_keystroke_with_the_same_dob_at_another_address_is_accepted(
        fa: str, sa: str, fb: str, sb: str, common: tuple[str, str]) -> None:
    rows = [_rec("a", fa, sa, "1985-04-05", OLD), _rec("b", fb, sb, "1985-04-05", NEW), *_spelt(common[0], 20, common[1])]
    done, cid = _run(rows, [("a", "b", 3.0)])  # 0.89: what the 250k town gave such pairs
    assert done["enabled"] is True and done["reweighted"] == 1 and cid["a"] == cid["b"]
    off, cid = _run(rows, [("a", "b", 3.0)], enabled=False)
    assert off == {"enabled": False} and cid["a"] != cid["b"]


@pytest.mark.parametrize("case", ["second_name", "two_keystrokes", "short_name", "other_dob", "other_sex",
                                  "weak_pair", "placeholder_dob", "same_home", "namesake_elsewhere",
                                  "cluster_holds_right_spelling", "held_source", "both_names_differ"])
def test_what_the_pass_leaves_alone(case: str) -> None:
    a, b = _rec("a", "GEORGE", "COOPER", "1985-04-05", OLD), _rec("b", "GEOGRE", "COOPER", "1985-04-05", NEW)
    # three records of one date among ~25 is no placeholder here (the packaged 0.1 % is for whole extracts)
    rows, pairs, cfg = [a, b, *_spelt("GEORGE", 20)], [("a", "b", 3.0)], {"max_dob_share": 0.2}
    if case == "second_name":  # SARA and SARAH are two names: each carried by many records
        rows = [{**a, "forename": "SARAH"}, {**b, "forename": "SARA"}, *_spelt("SARAH", 20), *_spelt("SARA", 20)]
    elif case == "two_keystrokes":
        rows[1] = {**b, "forename": "GOERGR"}
    elif case == "short_name":  # two letters: one keystroke turns one name into another (ED / AL / LI / LE)
        rows = [{**a, "forename": "ED"}, {**b, "forename": "EB"}, *_spelt("ED", 20)]
    elif case == "other_dob":
        rows[1] = {**b, "dob": "1985-04-09"}
    elif case == "other_sex":
        rows[1] = {**b, "sex": "F"}
    elif case == "weak_pair":
        pairs = [("a", "b", -2.0)]
    elif case == "placeholder_dob":
        rows += [_rec(f"p{i}", "JOHN", f"Y{i}", "1985-04-05", ELSE) for i in range(5)]
        cfg = {"max_dob_share": 0.05}
    elif case == "same_home":  # one date of birth and surname at one home, names a letter apart: twins
        rows += [{**a, "record_key": "a2", "postcode": NEW["postcode"], "address_norm": NEW["address_norm"]}]
        pairs += [("a", "a2", 12.0)]
    elif case == "namesake_elsewhere":  # two GEORGE COOPERs born that day: the mistyped record could be either
        rows.append(_rec("c", "GEORGE", "COOPER", "1985-04-05", ELSE))
    elif case == "cluster_holds_right_spelling":  # the model kept two people of one name apart
        rows.append(_rec("c", "GEORGE", "COOPER", "1985-04-05", NEW))
        pairs += [("b", "c", 12.0)]
        cfg["max_clusters"] = 2
    elif case == "held_source":  # a register kept to one record per person: its own pairs are held off
        cfg["held"] = ["s"]
    elif case == "both_names_differ":
        rows[1] = {**b, "surname": "COOPPER"}
    done, cid = _run(rows, pairs, **cfg)
    assert done["reweighted"] == 0 and cid["a"] != cid["b"]


def test_a_held_source_keeps_its_cross_source_pairs() -> None:
    """Holding a source off touches only pairs of two of its records: a pair across two sources is accepted."""
    rows = [_rec("a", "GEORGE", "COOPER", "1985-04-05", OLD),
            _rec("b", "GEOGRE", "COOPER", "1985-04-05", NEW, source="t"), *_spelt("GEORGE", 20)]
    done, cid = _run(rows, [("a", "b", 3.0, "s", "t")], held=["s"])
    assert done["reweighted"] == 1 and done["held_within_source"] == 0 and cid["a"] == cid["b"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5])  # seed 14 measured too: 3 of 3; one town keeps CI short
def test_on_synthetic_towns_the_pass_links_keying_errors_and_precision_holds(
        standardised_town, packaged_model_with, seed: int) -> None:  # noqa: ANN001
    """A synthetic town (30,000 persons; the pass matters at scale: at 8,000 such pairs already score above the
    threshold) through ingest, standardise and the persons stage with the pass switched off, then on: the pairs it
    adds are one person at least 9 times in 10 (250k towns: 96-100 %; here 9 of 9 and 3 of 3), recall rises, and
    B-cubed precision stays at the issue's bar; no twins or father and son are merged by it."""
    from ecins_link.matching.metrics import evaluate_persons
    from ecins_link.matching.persons import link_persons

    cfg, store, truth = standardised_town(30000, seed)
    # the source-id step off in both runs: within the tenancy file it joins some of the same pairs first (one of
    # this town's three), and this test measures the keystroke pass alone
    on = packaged_model_with("[source_ids]\nenabled = true", "[source_ids]\nenabled = false")
    off = on.with_name("model_keystrokes_off.toml")
    off.write_text(on.read_text(encoding="utf-8").replace("[keystrokes]\nenabled = true",
                                                           "[keystrokes]\nenabled = false"), encoding="utf-8")
    link_persons(store, cfg, model_file=off)
    before = evaluate_persons(store, *truth)
    link_persons(store, cfg, model_file=on)
    after = evaluate_persons(store, *truth)
    summary = json.loads(store.con.execute(
        "SELECT summary_json FROM linkage_models ORDER BY created_at DESC LIMIT 1").fetchone()[0])
    done = summary["same_identity_keystroke"]
    found = after["pairwise"]["true_positive_pairs"] - before["pairwise"]["true_positive_pairs"]
    added = after["pairwise"]["predicted_pairs"] - before["pairwise"]["predicted_pairs"]
    assert done["enabled"] is True and done["reweighted"] >= 3, done
    assert found >= 3 and found >= 0.9 * added, (found, added)
    assert after["bcubed"]["recall"] > before["bcubed"]["recall"]
    assert after["bcubed"]["precision"] >= 0.997
    hard = after["hard_cases"]
    assert all(hard[k]["wrongly_merged_pairs"] <= before["hard_cases"][k]["wrongly_merged_pairs"]
               for k in ("twin", "father_son") if k in hard)
    # the pairs it accepted say so, and their explanation names the rule and ends on the score they linked on
    from ecins_link.matching.explain import explain_pair

    ruled = store.con.execute("""SELECT unique_id_l, unique_id_r, match_weight, match_probability FROM person_pairs
        WHERE list_contains(string_split(link_rule, ', '), 'same_identity_keystroke') ORDER BY 1, 2""").fetchall()
    assert len(ruled) == done["reweighted"]
    assert all(p == pytest.approx(0.95) for *_x, p in ruled)
    # a pair a pass accepted stays at the threshold (the passes after it leave such pairs alone)
    accepting = ["same_source_person_id", "same_home", "same_identity", "same_identity_variants",
                 "same_identity_keystroke"]
    assert store.con.execute("""SELECT count(*) FROM person_pairs
        WHERE list_has_any(string_split(link_rule, ', '), ?) AND abs(match_probability - 0.95) > 1e-9""",
                             [accepting]).fetchone()[0] == 0
    # every pair whose score a step after the first clustering changed explains down to its stored score
    reweighed = store.con.execute("""SELECT unique_id_l, unique_id_r, match_weight FROM person_pairs
            WHERE link_rule IS NOT NULL AND NOT list_has_any(string_split(link_rule, ', '), ?)
            ORDER BY 1, 2 LIMIT 3""", [accepting]).fetchall()
    assert reweighed  # the same-home and household rules re-weigh pairs in any town this size
    for a, b, w in reweighed:
        other = explain_pair(store, a, b).set_index("comparison")
        assert other.loc["Final score", "log2_weight"] == pytest.approx(w, abs=0.01)
        assert other.loc["Link rule", "description"].startswith("re-weighed: ")
    wf = explain_pair(store, ruled[0][0], ruled[0][1]).set_index("comparison")
    assert wf.loc["Link rule", "level"] == "same_identity_keystroke" and wf.loc["Link rule", "log2_weight"] > 0
    assert "one keystroke" in wf.loc["Link rule", "description"]
    assert wf.loc["Final score", "log2_weight"] == pytest.approx(ruled[0][2], abs=0.01)
    # ... and a panel's "why linked" text for such a pair ends with the rule (either order of the two records)
    from ecins_link.report.panel import _breakdowns

    asked = pd.DataFrame({"unique_id_l": [ruled[0][1]], "unique_id_r": [ruled[0][0]]})
    why = _breakdowns(store, asked)[tuple(sorted(ruled[0][:2]))]
    assert "forename: " in why and why.endswith("mistyped by one keystroke, at another address (person_keystrokes)")


def test_the_pass_names_itself_on_the_pairs_it_raises() -> None:
    """``link_rule``: written where the pass raised a pair to the threshold, never on a pair the model had already
    accepted (the model's own score explains that one)."""
    from ecins_link.matching.person_home import accept_at_threshold

    con = duckdb.connect()
    con.execute("CREATE TABLE pp (unique_id_l VARCHAR, unique_id_r VARCHAR, match_weight DOUBLE, "
                "match_probability DOUBLE, link_rule VARCHAR)")
    con.execute("INSERT INTO pp VALUES ('a', 'b', 3.0, 0.89, NULL), ('c', 'd', 8.0, 0.996, NULL), "
                "('e', 'f', 2.0, 0.8, NULL)")
    con.execute("CREATE TABLE acc AS SELECT * FROM (VALUES ('b', 'a'), ('c', 'd')) t(unique_id_l, unique_id_r)")
    assert accept_at_threshold(con, "pp", "acc", 0.95, "same_identity_keystroke") == 2
    got = {r[0]: r[1:] for r in con.execute("SELECT unique_id_l, match_probability, link_rule FROM pp").fetchall()}
    assert got["a"] == (pytest.approx(0.95), "same_identity_keystroke")
    assert got["c"] == (pytest.approx(0.996), None) and got["e"] == (pytest.approx(0.8), None)
