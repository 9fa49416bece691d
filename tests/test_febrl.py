"""FEBRL model file (benchmarks/febrl_model.toml): the same engine with FEBRL's model settings links a FEBRL4
subsample at high precision and clearly higher recall than the packaged (UK households) model, whose twin /
generation guards keep apart records whose whole forename or DOB FEBRL replaced."""

from __future__ import annotations

from pathlib import Path

from ecins_link.config import parse_config
from ecins_link.matching import metrics
from ecins_link.matching.person_febrl import febrl_person_std, febrl_truth
from ecins_link.matching.person_model import load_model_config
from ecins_link.matching.persons import link_persons
from ecins_link.store import Store

FEBRL_MODEL = Path(__file__).resolve().parents[1] / "benchmarks" / "febrl_model.toml"
CONFIG = parse_config({"project": {"name": "febrl"}, "sources": [
    {"name": "s", "agency": "a", "path": "x.csv", "key": "id", "person": {"surname": "s"}}]})
# true pairs where FEBRL replaced the whole forename and corrupted soc_sec_id (the `phone` slot): same surname
# and date of birth, forename unlike, identifier different -- to the packaged model, the twin pattern
WHOLE_FORENAME_REPLACED = """
    WITH t AS (SELECT unique_id, regexp_extract(unique_id, 'rec-(\\d+)-', 1) AS tid FROM person_std)
    SELECT count(*), count(*) FILTER (WHERE cl.person_id = cr.person_id),
           avg(coalesce((SELECT max(p.match_weight) FROM person_pairs p WHERE (p.unique_id_l, p.unique_id_r)
                         IN ((l.unique_id, r.unique_id), (r.unique_id, l.unique_id))), -40))
    FROM t a JOIN t b ON a.tid = b.tid AND a.unique_id < b.unique_id
    JOIN person_std l ON l.unique_id = a.unique_id JOIN person_std r ON r.unique_id = b.unique_id
    JOIN person_clusters cl ON cl.unique_id = l.unique_id JOIN person_clusters cr ON cr.unique_id = r.unique_id
    WHERE l.surname = r.surname AND l.dob = r.dob AND jaro_winkler_similarity(l.forename, r.forename) < 0.8
      AND l.phone <> r.phone"""


def _link(tmp_path: Path, frames: dict, model: Path | None) -> tuple[dict, dict, tuple[int, int, float]]:
    with Store(tmp_path / f"{model.stem if model else 'packaged'}.duckdb") as store:
        febrl_person_std(store.con, frames)
        link_persons(store, CONFIG, model_file=model)
        truth = febrl_truth(frames).set_index("unique_id")["true_id"]
        pred = store.df("SELECT unique_id, person_id FROM person_clusters").set_index("unique_id")["person_id"]
        rules = load_model_config(model)["blocking"]["predict"]
        replaced = store.con.execute(WHOLE_FORENAME_REPLACED).fetchone()
        return metrics.pairwise_metrics(pred, truth), metrics.blocking_reach(store, truth, rules), replaced


def test_febrl_model_links_febrl_better_than_packaged(tmp_path: Path, febrl4_sample: dict) -> None:
    febrl, reach, (n_replaced, febrl_linked, febrl_weight) = _link(tmp_path, febrl4_sample, FEBRL_MODEL)
    packaged, _, (_, _, packaged_weight) = _link(tmp_path, febrl4_sample, None)
    assert febrl["true_pairs"] == len(febrl4_sample["a"])  # FEBRL4: each entity once in A, once in B
    assert reach["share"] >= 0.999  # the FEBRL blocking set reaches (nearly) every true pair
    assert febrl["precision"] >= 0.99
    assert febrl["recall"] >= 0.98
    assert febrl["recall"] > packaged["recall"] and febrl["f1"] > packaged["f1"]
    # the difference is the twin guard: a FEBRL whole-forename replacement is linked by the FEBRL model and
    # (deliberately, for UK twins) weighed as strong evidence against by the packaged one -- at 5k x 5k that
    # keeps such pairs apart (benchmarks/results/febrl.json); on this smaller sample the prior is higher
    assert n_replaced >= 3
    assert febrl_linked == n_replaced
    assert febrl_weight > packaged_weight


def test_febrl_model_file_differs_only_in_data() -> None:
    """Same schema as the packaged model: every section the engine reads is there; the twin / generation
    patterns are switched off by thresholds, not by code."""
    febrl, packaged = load_model_config(FEBRL_MODEL), load_model_config()
    assert set(packaged) <= set(febrl)
    assert set(packaged["thresholds"]) <= set(febrl["thresholds"])
    assert febrl["thresholds"]["twin_max_forename_jaro_winkler"] == 0.0
    assert "forename.else" not in febrl["weight_bounds"] and "phone.exact" not in febrl["weight_bounds"]
