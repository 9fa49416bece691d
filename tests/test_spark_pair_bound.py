"""The Spark backend's ``linkage.max_pairs`` brake (``spark_backend.pairs_upper_bound``): read from the store
before Spark generates any pair, it must never be below the pairs the rules really generate.  No Spark needed."""

from __future__ import annotations

import pytest

from ecins_link.matching.person_model import load_model_config
from ecins_link.matching.persons import rule_pair_counts
from ecins_link.matching.spark_backend import pairs_upper_bound
from ecins_link.store import Store


def test_bound_covers_every_rules_pairs(sample_run) -> None:  # noqa: ANN001
    rules = load_model_config()["blocking"]["predict"]
    store = Store(sample_run.store_path, read_only=True)
    try:
        con = store.con
        n = con.execute("SELECT count(*) FROM person_std").fetchone()[0]
        exact = rule_pair_counts(con, rules)
        per_rule = [pairs_upper_bound(con, "person_std", [r]) for r in rules]
        assert all(b >= e for b, e in zip(per_rule, exact, strict=True)), list(zip(rules, per_rule, exact, strict=True))
        assert sum(exact) > 1000 and pairs_upper_bound(con, "person_std", rules) == sum(per_rule)
        # one-sided conditions are applied (an undated record's rule counts only undated left sides) ...
        undated = con.execute("SELECT count(*) FROM person_std WHERE dob IS NULL").fetchone()[0]
        assert pairs_upper_bound(con, "person_std", ["l.dob IS NULL AND l.sex = r.sex"]) <= undated * n
        # ... and a rule with no equality at all is bounded by every ordered pair
        assert pairs_upper_bound(con, "person_std", ["l.dob < r.dob"]) == n * n
    finally:
        store.close()
    with pytest.raises(ValueError, match="plain identifiers"):
        pairs_upper_bound(None, "person_std", ['l."a b" = r."a b"'])
