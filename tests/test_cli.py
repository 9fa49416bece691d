"""CLI contract: commands exist, errors are one clear line with a non-zero exit and no traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ecins_link.cli import app

runner = CliRunner()


def test_commands_listed() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("synth", "run", "evaluate", "demo", "review", "override", "audit", "export"):
        assert cmd in result.output


def test_missing_project_is_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2
    assert "project file not found" in result.output
    assert "Traceback" not in result.output


def test_bad_project_names_key(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text('[project]\nname = "x"\n[[sources]]\nname = "a"\nagency = "b"\npath = "c.csv"\nkey = "k"\n')
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 2
    assert "sources.0" in result.output and "Traceback" not in result.output


def test_unknown_stage_rejected(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "p.toml"), "--stage", "teleport"])
    assert result.exit_code == 2
    assert "unknown stage" in result.output


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "run", str(tmp_path / "missing.toml")])
    assert result.exit_code != 0
    assert result.exception is not None


def test_demo_runs_the_sample_and_prints_headline_accuracy(tmp_path: Path) -> None:
    """`ecins-link demo` (the README's main job) runs the shipped sample end to end and reports accuracy."""
    import json

    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo")], terminal_width=200)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "demo" / "evaluation.json").read_text(encoding="utf-8"))
    assert metrics["persons"]["bcubed"]["precision"] >= 0.99 and metrics["ingest"]["accounting_balanced"]
    assert "persons.bcubed.precision" in result.output and "locations.overall.correct" in result.output
    assert (tmp_path / "demo" / "output" / "panel" / "index.html").exists()
