"""``ecins-link init`` on extracts it has never seen: a project file that loads, whose guesses are marked, and
that ``check`` and ``run`` accept on the sample town's extracts."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecins_link.cli import app
from ecins_link.config import load_config
from ecins_link.ingest.check import check_project

TOWN = Path(__file__).resolve().parents[1] / "data" / "samples" / "town"
runner = CliRunner()


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (TOWN / "project.toml").exists():
        pytest.skip("sample town not generated")
    root = tmp_path_factory.mktemp("init")
    for folder in ("police", "housing", "fire", "council", "gazetteer"):
        shutil.copytree(TOWN / folder, root / folder)
    files = sorted(str(p) for p in root.rglob("*") if p.is_file())
    result = runner.invoke(app, ["init", *files, "--out", str(root / "project.toml")])
    assert result.exit_code == 0, result.output
    return root / "project.toml"


def test_skeleton_loads_and_marks_every_guess(skeleton: Path) -> None:
    config = load_config(skeleton)
    assert {s.name for s in config.sources} == {"police_nominals", "police_occurrences", "housing_cases",
                                               "housing_tenancies", "fire_incidents", "fire_safe_and_well",
                                               "council_people", "council_contacts", "gazetteer_llpg"}
    for line in skeleton.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "  #", "name =", "path =", "format =", "store =", "unmapped",
                                                 "codes")):
            assert "# GUESS" in line, line


def test_skeleton_guesses_keys_dates_and_references(skeleton: Path) -> None:
    data = tomllib.loads(skeleton.read_text(encoding="utf-8"))
    src = {s["name"]: s for s in data["sources"]}
    assert src["police_nominals"]["key"] == "NOMINAL_ID" and src["council_people"]["key"] == "PERSON_ID"
    assert src["housing_tenancies"]["key"] == ["TENANCY_REF", "PERSON_REF"]
    assert src["council_people"]["date_formats"] == ["%d-%b-%Y"]
    assert src["police_nominals"]["date_formats"] == ["%d/%m/%Y"]
    assert src["council_people"]["person"]["surname"] == "SURNAME"
    assert src["council_contacts"]["event"]["person_ref"] == {"source": "council_people", "column": "PERSON_ID"}
    assert src["housing_cases"]["event"]["person_ref"]["source"] == "housing_tenancies"
    assert src["gazetteer_llpg"]["gazetteer"]["uprn"] == "UPRN"
    assert set(src["fire_safe_and_well"]["flags"]["columns"]) >= {"SMOKER", "LIVES_ALONE"}


def test_skeleton_passes_check_and_ingests(skeleton: Path, tmp_path: Path) -> None:
    """Only the placeholders left for the analyst (flag columns' signals) stop ``check``."""
    report = check_project(skeleton)
    assert len(report["errors"]) == 1 and "TODO_SIGNAL" in report["errors"][0]
    result = runner.invoke(app, ["run", str(skeleton), "--stage", "ingest", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output


def test_init_on_a_semicolon_utf16_extract(tmp_path: Path) -> None:
    text = "Client Ref;Surname;First Name;Date of Birth;Post Code\n" + "\n".join(
        f"R{i};Smith{i};Ann;{1 + i % 28:02d}/0{1 + i % 9}/19{50 + i % 40};NT1 2AB" for i in range(40)) + "\n"
    (tmp_path / "clients.csv").write_bytes(text.encode("utf-16"))
    out = tmp_path / "p.toml"
    result = runner.invoke(app, ["init", str(tmp_path / "clients.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (src,) = tomllib.loads(out.read_text(encoding="utf-8"))["sources"]
    assert src["delimiter"] == ";" and src["key"] == "Client Ref"
    assert src["person"] == {"surname": "Surname", "forenames": "First Name", "dob": "Date of Birth",
                             "postcode": "Post Code"}
    assert src["date_formats"] == ["%d/%m/%Y"]
    assert check_project(out)["errors"] == []
    again = runner.invoke(app, ["init", str(tmp_path / "clients.csv"), "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output
