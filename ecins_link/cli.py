"""The ``ecins-link`` command line.

Errors are one clear line and a non-zero exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecins_link.cli_common import ProjectArg, UserOpt, app, console, guard, print_json


@app.command()
@guard
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the town into.")],
    persons: Annotated[int, typer.Option("--persons", min=10, help="Number of people.")] = 2000,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    bad_rows: Annotated[int, typer.Option("--bad-rows", min=0, help="Malformed rows to inject.")] = 0,
    dialect: Annotated[str, typer.Option(
        "--dialect", help="classic (the sample's extract layouts) or random (each source's layout drawn by seed).")
    ] = "classic",
) -> None:
    """Generate a synthetic partnership town with ground truth."""
    from ecins_link.synth import generate_town

    summary = generate_town(out, persons=persons, seed=seed, bad_rows=bad_rows, dialect=dialect)
    console.print(f"town written to {out}")
    print_json(summary)


@app.command()
@guard
def run(
    project: ProjectArg,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: PROJECT_DIR/output).")] = None,
    purpose: Annotated[str | None, typer.Option("--purpose", help="Build the panel pack for this purpose only.")] = None,
    user: UserOpt = None,
    stage: Annotated[list[str] | None, typer.Option("--stage", help="Run only these stages (repeatable).")] = None,
    allow_partial: Annotated[bool, typer.Option(
        "--allow-partial", help="Continue when a source is unreadable or over its max_quarantine_share.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON on standard output.")] = False,
) -> None:
    """Run the whole pipeline on a project and write the output folder."""
    from ecins_link.api import Project, run_summary
    from ecins_link.ingest.console import print_sources
    from ecins_link.ingest.health import IngestFailed
    from ecins_link.pipeline import STAGE_NAMES

    for s in stage or []:
        if s not in STAGE_NAMES:
            raise ValueError(f"unknown stage {s!r}; stages are {STAGE_NAMES}")
    try:
        result = Project.open(project, user=user).run(stages=stage, purpose=purpose, out=out,
                                                      progress=not as_json, allow_partial=allow_partial)
    except IngestFailed as err:
        print_sources(console, err.health.sources)
        raise
    print_sources(console, result.summary.get("sources", []), result.summary.get("warnings", []))
    if as_json:
        print_json(run_summary(result))
        return
    table = Table(title=f"run {result.run_id}")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for name, secs in result.stage_seconds.items():
        table.add_row(name, f"{secs:.1f}")
    console.print(table)
    if result.out_dir:
        console.print(f"outputs in {result.out_dir}")


@app.command()
@guard
def check(
    project: ProjectArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Validate the project file and open every source: encodings, headers, dates, keys, references, codes."""
    from ecins_link.ingest.check import check_project
    from ecins_link.ingest.console import print_check

    report = check_project(project)
    if as_json:
        print_json(report)
    else:
        print_check(Console(), report)
    if report["errors"]:
        raise typer.Exit(code=1)


@app.command()
@guard
def init(
    extracts: Annotated[list[Path], typer.Argument(help="The extract files (CSV, XLSX, Parquet).")],
    out: Annotated[Path, typer.Option("--out", help="The project file to write.")] = Path("project.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a project-file skeleton guessed from the extracts' headers and values (every guess marked)."""
    from ecins_link.ingest.init_project import write_skeleton

    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; use --force to overwrite")
    write_skeleton(extracts, out)
    console.print(f"project skeleton written to {out}: review every '# GUESS' line, then `ecins-link check {out}`")


@app.command()
@guard
def evaluate(
    project: ProjectArg,
    truth: Annotated[Path, typer.Option("--truth", help="The truth folder of a synthetic town.")],
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON here.")] = None,
) -> None:
    """Print linkage, location and scenario metrics against ground truth (JSON)."""
    from ecins_link.api import Project

    result = Project.open(project).evaluate(truth)
    text = json.dumps(result, indent=2, default=str)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    print(text)


def _sample_town() -> Path | None:
    candidate = Path(__file__).resolve().parents[1] / "data" / "samples" / "town"
    return candidate if (candidate / "project.toml").exists() else None


@app.command()
@guard
def demo(
    out: Annotated[Path, typer.Option("--out", help="Working folder for the demo.")] = Path("ecins-demo"),
    user: UserOpt = None,
) -> None:
    """Run the whole pipeline on the shipped sample town and evaluate it against its truth."""
    from ecins_link.evaluation import evaluate_project
    from ecins_link.pipeline import run_project

    sample = _sample_town()
    town = out / "town"
    if town.exists():
        shutil.rmtree(town)
    if sample is not None:
        shutil.copytree(sample, town)
        console.print(f"sample town copied from {sample}")
    else:
        from ecins_link.synth import generate_town

        console.print("shipped sample not found; generating the same town (2,000 persons, seed 42)")
        generate_town(town, persons=2000, seed=42)
    result = run_project(town / "project.toml", out_dir=out / "output", user=user, progress=True)
    metrics = evaluate_project(town / "project.toml", town / "truth", user=user)
    (out / "evaluation.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n", encoding="utf-8")
    table = Table(title="ecins-link demo")
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, secs in result.stage_seconds.items():
        table.add_row(f"{name} (s)", f"{secs:.1f}")
    def row(name: str, value: object) -> None:
        table.add_row(name, str(round(value, 4) if isinstance(value, float) else value))

    scalar = int | float | bool | str
    for section, values in metrics.items():
        for key, value in (values or {}).items():
            if isinstance(value, scalar):
                row(f"{section}.{key}", value)
            elif key in ("bcubed", "pairwise", "overall") and isinstance(value, dict):  # headline accuracy
                for sub, v in value.items():
                    if isinstance(v, scalar):
                        row(f"{section}.{key}.{sub}", v)
    console.print(table)
    console.print(f"panel pack: {(out / 'output' / 'panel' / 'index.html').resolve()}")
    console.print(f"evaluation: {(out / 'evaluation.json').resolve()}")


# the other command groups register themselves on ``app`` when imported (after these, so ``--help`` lists the
# pipeline commands first)
from ecins_link import cli_governance, cli_panel  # noqa: E402, F401

__all__ = ["app"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
