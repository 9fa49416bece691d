"""Toxic-cocktail scoring: transparent combination rules over the linked person + location graph.

Entry points (docs/contracts.md):

* ``score(store, config)`` — the score stage: writes ``signals`` and ``flags`` (creates ``overrides``).
* ``add_override(store, entity_type, entity_id, raise_score, reason, rule=None) -> str`` — raise only.
* ``load_taxonomy(path=None)`` / ``load_rules(path=None, taxonomy=None)`` — validated data files.
* ``evaluate_scenarios(store, truth_dir) -> dict`` — planted scenarios / decoys vs flags.
"""

from ecins_link.scoring.engine import load_project_rules, score
from ecins_link.scoring.evaluate import evaluate_scenarios
from ecins_link.scoring.overrides import OverrideError, add_override
from ecins_link.scoring.rules import Rule, RuleSet, load_rules
from ecins_link.scoring.taxonomy import Taxonomy, load_taxonomy

__all__ = ["score", "add_override", "OverrideError", "load_taxonomy", "load_rules", "load_project_rules",
           "evaluate_scenarios", "Rule", "RuleSet", "Taxonomy"]
