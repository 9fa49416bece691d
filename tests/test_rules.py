"""Rule and taxonomy files: the shipped defaults load; every kind of mistake is one clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecins_link.config import ConfigError
from ecins_link.scoring import load_rules, load_taxonomy
from ecins_link.scoring.rules import DEFAULT_RULES
from ecins_link.scoring.taxonomy import DEFAULT_TAXONOMY

SHIPPED_IDS = {"toxic_trio", "marac_potential_escalation", "fire_safe_and_well", "cuckooing", "cse_risk",
               "asb_hotspot", "multi_agency_concern", "iom_rfg"}

GOOD_RULE = """
[[rules]]
id = "marac_potential_escalation"
label = "MARAC"
scope = "person"
window_days = 365
guidance = "Consider referral"
  [[rules.conditions]]
  id = "da"
  signals = ["DA_VICTIM", "DA_CONCERN"]
  min_count = 3
"""


def _write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_files_load_and_cover_the_contract_rule_ids() -> None:
    taxonomy = load_taxonomy()
    rules = load_rules(taxonomy=taxonomy)
    assert {r.id for r in rules.rules} == SHIPPED_IDS
    for rule in rules.rules:
        assert rule.guidance.strip(), rule.id
    fire = rules.get("fire_safe_and_well")
    assert fire.needed == 3 and len(fire.conditions) == 8
    assert "reason to look" in rules.get("toxic_trio").guidance


def test_custom_rule_file_loads(tmp_path: Path) -> None:
    rules = load_rules(_write(tmp_path, GOOD_RULE))
    assert rules.get("marac_potential_escalation").conditions[0].min_count == 3


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (("DA_CONCERN\"]", "DA_CONCERNS\"]"), r"rule 'marac_potential_escalation': key 'conditions\.0\.signals': unknown signal code 'DA_CONCERNS'"),
        (("signals = [\"DA_VICTIM\", \"DA_CONCERN\"]", "categories = [\"DOMESTIC\"]"), r"rule 'marac_potential_escalation': key 'conditions\.0\.categories': unknown category 'DOMESTIC'"),
        (("scope = \"person\"", "scope = \"street\""), r"rule 'marac_potential_escalation': key 'scope'"),
        (("window_days = 365", "window_days = 0"), r"rule 'marac_potential_escalation': key 'window_days'"),
        (("window_days = 365", "window_days = \"a year\""), r"rule 'marac_potential_escalation': key 'window_days'"),
        (("min_count = 3", "min_count = 3\n  min_agencies = 0"), r"key 'conditions\.0\.min_agencies'"),
        (("min_count = 3", "min_count = 3\n  wibble = 1"), r"key 'conditions\.0\.wibble'"),
        (("guidance = \"Consider referral\"", ""), r"rule 'marac_potential_escalation': key 'guidance'"),
        (("min_count = 3", "min_count = 3\n  metric = \"churn\"\n  metric_min = 4"), r"'churn' is not available for scope 'person'"),
        (("scope = \"person\"", "scope = \"person\"\nmin_conditions = 2"), r"'min_conditions' \(2\) exceeds"),
    ],
)
def test_bad_rule_files_fail_with_one_clear_error(tmp_path: Path, change: tuple[str, str], expect: str) -> None:
    text = GOOD_RULE.replace(*change)
    assert text != GOOD_RULE
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_rules(path)
    message = str(err.value)
    assert message.startswith(str(path)), message
    assert re.search(expect, message), message


def test_duplicate_rule_ids_and_bad_toml_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="repeated: \\['marac_potential_escalation'\\]"):
        load_rules(_write(tmp_path, GOOD_RULE + GOOD_RULE))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_rules(_write(tmp_path, GOOD_RULE + "\n[[rules]\n"))
    with pytest.raises(ConfigError, match="rules file not found"):
        load_rules(tmp_path / "missing.toml")


def test_rule_unnamed_by_id_is_named_by_position(tmp_path: Path) -> None:
    text = GOOD_RULE + GOOD_RULE.replace('id = "marac_potential_escalation"\n', "")
    with pytest.raises(ConfigError, match=r"rule '#2': key 'id'"):
        load_rules(_write(tmp_path, text))


def test_rules_are_checked_against_a_custom_taxonomy(tmp_path: Path) -> None:
    tax = DEFAULT_TAXONOMY.read_text(encoding="utf-8").replace('code = "DA_CONCERN"', 'code = "DA_DISCLOSURE"')
    taxonomy = load_taxonomy(_write(tmp_path, tax, "taxonomy.toml"))
    with pytest.raises(ConfigError, match="unknown signal code 'DA_CONCERN'"):
        load_rules(DEFAULT_RULES, taxonomy)


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (('category = "DA"\nweight = 2.0', 'category = "DOMESTIC"\nweight = 2.0'), r"signal 'DA_CONCERN': key 'category'"),
        (('code = "MH_CONCERN"\ndescription = "Mental-health referral or concern (adult social care, GP liaison, police S136)"\ncategory = "MENTAL_HEALTH"\nweight = 2.0',
          'code = "MH_CONCERN"\ndescription = "x"\ncategory = "MENTAL_HEALTH"\nweight = -2.0'), r"signal 'MH_CONCERN': key 'weight'"),
        (('half_life_days = 90\n\n[[signals]]\ncode = "ASB_NOISE"', 'half_life_days = 0\n\n[[signals]]\ncode = "ASB_NOISE"'), r"signal 'ASB_REPORT': key 'half_life_days'"),
        (('code = "WEAPONS"', 'code = "VIOLENCE"'), r"signal 'VIOLENCE': key 'code': code is repeated"),
    ],
)
def test_bad_taxonomy_names_file_signal_and_key(tmp_path: Path, change: tuple[str, str], expect: str) -> None:
    text = DEFAULT_TAXONOMY.read_text(encoding="utf-8")
    assert change[0] in text
    path = _write(tmp_path, text.replace(change[0], change[1], 1), "taxonomy.toml")
    with pytest.raises(ConfigError) as err:
        load_taxonomy(path)
    assert str(err.value).startswith(str(path))
    assert re.search(expect, str(err.value)), str(err.value)
