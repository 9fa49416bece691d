"""evaluate_scenarios: planted scenarios found on the right entity, decoys, invisibility share."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from test_scoring import AS_OF, _family, project

from ecins_link.scoring import evaluate_scenarios, score
from ecins_link.scoring.fixtures import World
from ecins_link.store import Store


def _truth(tmp_path: Path, records: list[tuple[str, str, str]], scenarios: list[dict], decoys: list[dict]) -> Path:
    truth = tmp_path / "truth"
    truth.mkdir()
    with (truth / "records.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["source", "record_key", "true_person_id"])
        out.writerows(records)
    (truth / "scenarios.json").write_text(json.dumps(scenarios), encoding="utf-8")
    (truth / "decoys.json").write_text(json.dumps(decoys), encoding="utf-8")
    return truth


def test_evaluate_scenarios_counts_detections_decoys_and_invisibility(tmp_path: Path) -> None:
    w = World(AS_OF)
    records: list[tuple[str, str, str]] = []

    def victim(true_id: str, pid: str, keys: list[tuple[str, str, str]], loc: str) -> None:
        w.person(pid, 30)
        w.live(pid, loc)
        for n, (agency, source, key) in enumerate(keys):
            ref = w.record(pid, source, key)
            records.append((source, key, true_id))
            w.event(agency, "DA_VICTIM" if agency == "police" else "DA_CONCERN", 20 + 40 * n, person_record=ref,
                    role="V" if agency == "police" else None)

    # S1: linked correctly -> detected.  S2: linkage missed one record (two person ids) -> missed.
    victim("T1", "P1", [("police", "police_nominals", "N1"), ("housing", "tenants", "H1|1"),
                        ("council", "people", "C1")], "U10")
    victim("T2", "P2", [("police", "police_nominals", "N2"), ("housing", "tenants", "H2|1")], "U11")
    victim("T2", "P2b", [("council", "people", "C2")], "U11")
    # decoy: same-name strangers kept apart
    victim("T3", "P3", [("police", "police_nominals", "N3"), ("housing", "tenants", "H3|1")], "U12")
    victim("T4", "P4", [("council", "people", "C4")], "U13")
    _family(w, "HH9", "U14", 7)
    records += [("council_people", "HH9M-council", "T9M"), ("police_people", "HH9M-police", "T9M")]
    scenarios = [
        {"scenario_id": "S1", "kind": "marac_potential_escalation", "true_person_ids": ["T1"], "uprns": [],
         "pieces": []},
        {"scenario_id": "S2", "kind": "marac_potential_escalation", "true_person_ids": ["T2"], "uprns": [],
         "pieces": []},
        {"scenario_id": "S3", "kind": "toxic_trio", "true_person_ids": ["T9M"], "uprns": ["14"], "pieces": []},
    ]
    decoys = [{"decoy_id": "D1", "kind": "same_name_strangers", "true_person_ids": ["T3", "T4"], "uprns": [],
               "would_fire": "marac_potential_escalation"},
              {"decoy_id": "D2", "kind": "isolated_signal", "true_person_ids": ["T4"], "uprns": [],
               "would_fire": None}]
    truth = _truth(tmp_path, records, scenarios, decoys)
    with Store(tmp_path / "s.duckdb") as store:
        w.write(store)
        score(store, project(tmp_path))
        result = evaluate_scenarios(store, truth)
    assert result["scenarios_planted"] == 3 and result["top_n"] == 6
    assert result["scenarios_detected_in_top_n"] == 2
    assert result["missed"] == [{"scenario_id": "S2", "kind": "marac_potential_escalation", "cause": "person_linkage"}]
    assert result["missed_by_cause"] == {"person_linkage": 1}
    assert result["by_kind"]["toxic_trio"] == {"planted": 1, "detected": 1, "flagged_any_rank": 1}
    assert result["decoys_with_would_fire"] == 1 and result["decoys_flagged"] == 0
    assert result["correct_flags"] == 2 and result["invisible_share"] == 1.0
    assert result["targets_met"]["detection_rate"] is False


def test_evaluate_without_flags_table_says_so(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        assert "error" in evaluate_scenarios(store, tmp_path)
