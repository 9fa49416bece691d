"""Project files: valid ones load, every mistake is one error naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecins_link.config import ConfigError, load_config

GOOD = """
[project]
name = "t"
[[sources]]
name = "police_nominals"
agency = "police"
path = "nominals.csv"
key = "NOMINAL_ID"
[sources.person]
full_name = "NAME"
dob = "DOB"
[[sources]]
name = "police_occurrences"
agency = "police"
path = "occ.csv"
key = ["OCC_ID", "NOMINAL_ID"]
[sources.event]
code = "TYPE"
date = "WHEN"
person_ref = { source = "police_nominals", column = "NOMINAL_ID" }
codes = [{ code = "DA", role = "V", signal = "DA_VICTIM" }]
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "project.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_good_project_loads(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, GOOD))
    assert [s.kind for s in cfg.sources] == ["person", "event"]
    assert cfg.source("police_occurrences").key == ["OCC_ID", "NOMINAL_ID"]
    assert cfg.store_path == tmp_path.resolve() / "store.duckdb"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (('full_name = "NAME"', 'nmae = "NAME"'), "sources.0.person"),
        (('source = "police_nominals", column', 'source = "nobody", column'), "nobody"),
        (('key = "NOMINAL_ID"', 'key = []'), "key"),
        (('path = "occ.csv"', 'path = "occ.csv"\nformat = "xml"'), "sources.1.format"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, change: tuple[str, str], needle: str) -> None:
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[project\nname="))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
