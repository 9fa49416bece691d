"""The silent failures of issue 17 on the sample town: ``check`` reports each one before a run, and ``run``
stops with a message naming the source and a non-zero exit (unless ``--allow-partial``), writing the figures
into ``run_summary.json``."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecins_link.cli import app
from ecins_link.ingest.check import check_project

TOWN = Path(__file__).resolve().parents[1] / "data" / "samples" / "town"
runner = CliRunner()


def _town(tmp: Path) -> Path:
    if not (TOWN / "project.toml").exists():
        pytest.skip("sample town not generated")
    dest = tmp / "town"
    shutil.copytree(TOWN, dest, ignore=shutil.ignore_patterns("store.duckdb*", "output", "truth"))
    return dest / "project.toml"


def _edit_source(project: Path, source: str, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` inside one [[sources]] block of the project file."""
    text = project.read_text(encoding="utf-8")
    start = text.index(f'name = "{source}"')
    end = text.find("[[sources]]", start)
    end = len(text) if end < 0 else end
    block = text[start:end]
    assert old in block
    project.write_text(text[:start] + block.replace(old, new, 1) + text[end:], encoding="utf-8")


def _missing_column(project: Path) -> None:
    _edit_source(project, "council_people", 'email = "EMAIL"', 'email = "E_MAIL"')


def _missing_path(project: Path) -> None:
    _edit_source(project, "fire_incidents", 'path = "fire/incidents.csv"', 'path = "fire/incidents_2024.csv"')


def _wrong_dates(project: Path) -> None:
    _edit_source(project, "council_people", 'date_formats = ["%d-%b-%Y"]', 'date_formats = ["%d/%m/%Y"]')


BREAKS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "missing_column": (_missing_column, "council_people", "E_MAIL"),
    "missing_path": (_missing_path, "fire_incidents", "incidents_2024.csv"),
    "wrong_date_formats": (_wrong_dates, "council_people", "DOB"),
}


def test_check_passes_the_sample_town(tmp_path: Path) -> None:
    report = check_project(_town(tmp_path))
    assert report["errors"] == []
    people = next(s for s in report["sources"] if s["source"] == "council_people")
    assert people["encoding"] == "utf-8" and people["delimiter"] == ","
    assert people["dates"][0]["parsed_share"] == 1.0 and people["key"]["repeated_rows"] == 0
    cases = next(s for s in report["sources"] if s["source"] == "housing_cases")
    assert cases["reference"]["coverage"] == 1.0
    contacts = next(s for s in report["sources"] if s["source"] == "council_contacts")
    assert contacts["codes"]["unmapped"] and all(u["rows"] > 0 for u in contacts["codes"]["unmapped"])


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_check_catches_the_silent_failure(tmp_path: Path, case: str) -> None:
    project = _town(tmp_path)
    brk, source, word = BREAKS[case]
    brk(project)
    result = runner.invoke(app, ["check", str(project), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    (err,) = [e for e in report["errors"] if e.startswith(source)]
    assert word in err
    if case == "wrong_date_formats":  # the fix is suggested
        dates = next(s for s in report["sources"] if s["source"] == source)["dates"][0]
        assert dates["parsed_share"] < 0.5 and dates["better_formats"][0]["format"] == "%d-%b-%Y"


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_run_fails_loudly_naming_the_source_unless_partial(tmp_path: Path, case: str) -> None:
    project = _town(tmp_path)
    brk, source, _word = BREAKS[case]
    brk(project)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(project), "--stage", "ingest", "--out", str(out)], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert re.search(rf"source '{source}'", result.output) and "Traceback" not in result.output
    summary = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed" and source in summary["error"]
    row = next(s for s in summary["sources"] if s["source"] == source)
    assert row["status"] in ("unreadable", "over_quarantine_limit")
    if case == "wrong_date_formats":
        assert row["quarantined_share"] > 0.5 and row["top_reasons"][0]["reason"] == "bad_date"

    partial = runner.invoke(app, ["run", str(project), "--stage", "ingest", "--out", str(out), "--allow-partial"],
                            terminal_width=200)
    assert partial.exit_code == 0, partial.output
    assert "partial run" in partial.output and source in partial.output
    summary = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "ok" and any(source in w for w in summary["warnings"])
    dependent = {"council_people": "council_contacts"}.get(source)  # its events refer to the broken source
    others = [s for s in summary["sources"] if s["source"] not in (source, dependent)]
    assert all(s["status"] == "ok" and s["rows_accepted"] > 0 for s in others)


def test_check_names_signals_missing_from_the_taxonomy(tmp_path: Path) -> None:
    project = _town(tmp_path)
    _edit_source(project, "council_contacts", 'signal = "', 'signal = "NO_SUCH_')
    report = check_project(project)
    (err,) = report["errors"]
    assert err.startswith("council_contacts: signal(s) ['NO_SUCH_") and "taxonomy" in err


def test_quarantine_limit_is_per_source_and_settable(tmp_path: Path) -> None:
    project = _town(tmp_path)
    _edit_source(project, "fire_safe_well", 'date_formats = ["%d/%m/%Y"]', 'date_formats = ["%Y-%m-%d"]')
    args = ["run", str(project), "--stage", "ingest", "--out", str(tmp_path / "o")]
    failed = runner.invoke(app, args, terminal_width=200)
    assert failed.exit_code == 2 and "source 'fire_safe_well'" in failed.output
    _edit_source(project, "fire_safe_well", 'date_formats = ["%Y-%m-%d"]',
                 'date_formats = ["%Y-%m-%d"]\nmax_quarantine_share = 1.0')
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output


def test_full_run_writes_the_summary_contract(sample_run) -> None:
    from ecins_link.run_summary import read_summary

    summary = read_summary(sample_run.out_dir)
    for key in ("run_id", "stages", "sources", "nulled_fields", "trained_comparisons", "untrained_comparisons",
                "pairs", "clusters", "warnings"):
        assert key in summary
    assert summary["status"] == "ok"
    assert [s["stage"] for s in summary["stages"]][:2] == ["ingest", "standardise"]
    assert all(s["seconds"] >= 0 for s in summary["stages"])
    assert {s["source"] for s in summary["sources"]} >= {"police_nominals", "council_people"}
    assert summary["clusters"] and summary["clusters"] > 0
    assert all(isinstance(v, dict) for v in summary["nulled_fields"].values())
    # the persons stage's re-weighting steps, by name, each with what it did
    passes = summary["linkage_passes"]
    assert set(passes) == {"source_priors", "same_source_person_id", "household_moves", "same_home", "same_identity",
                           "same_identity_variants", "same_identity_keystroke"}
    assert passes["source_priors"]["enabled"] is True and isinstance(passes["source_priors"]["sources"], list)
    assert passes["same_identity"]["enabled"] is True and passes["same_identity"]["reweighted"] >= 0
