"""The ``ecins-link`` command line.

Errors are one clear line and a non-zero exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from ecins_link.config import ProjectConfig
    from ecins_link.store import Store

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Link partnership extracts into one person + location graph and flag toxic-cocktail risk.")
review_app = typer.Typer(no_args_is_help=True, help="Clerical review of uncertain person matches.")
app.add_typer(review_app, name="review")
console = Console(stderr=True)
_state = {"debug": False}

ProjectArg = Annotated[Path, typer.Argument(help="The project file (TOML).")]
UserOpt = Annotated[str | None, typer.Option("--user", help="Who is acting (audit log); default: the OS user.")]


def _fail(err: BaseException) -> None:
    if _state["debug"]:
        raise err
    console.print(f"[red]error:[/red] {type(err).__name__}: {err}" if not str(err) else f"[red]error:[/red] {err}",
                  highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


def _guard(fn):  # noqa: ANN001, ANN202 - decorator
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            console.print("[red]interrupted[/red]: the stage that was running was rolled back; run again to finish")
            raise typer.Exit(code=130) from None
        except Exception as err:  # noqa: BLE001 - every error becomes one line
            _fail(err)

    return wrapper


def _print_version(value: bool) -> None:
    if value:
        from ecins_link import __version__

        print(f"ecins-link {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """ecins-link: risk-linkage analytics for multi-agency partnerships.

    Results go to standard output (JSON with --json); progress, tables and errors go to standard error.
    """
    _state["debug"] = debug


@app.command()
@_guard
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
    print(json.dumps(_jsonable(summary), indent=2, default=str))


@app.command()
@_guard
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
        print(json.dumps(run_summary(result), indent=2, default=str))
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
@_guard
def check(
    project: ProjectArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Validate the project file and open every source: encodings, headers, dates, keys, references, codes."""
    from ecins_link.ingest.check import check_project
    from ecins_link.ingest.console import print_check

    report = check_project(project)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_check(Console(), report)
    if report["errors"]:
        raise typer.Exit(code=1)


@app.command()
@_guard
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
@_guard
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
@_guard
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


def _project_store(project: Path, command: str, user: str | None = None, purpose: str | None = None,
                   read_only: bool = False) -> tuple[ProjectConfig, Store]:
    """The project's config and its store, opened for one CLI command (the caller closes it: ``with store:``)."""
    from ecins_link.config import load_config
    from ecins_link.pipeline import open_store

    config = load_config(project)
    return config, open_store(config, user=user, command=command, purpose=purpose, read_only=read_only)


@review_app.command("export")
@_guard
def review_export(
    project: ProjectArg,
    out: Annotated[Path, typer.Option("--out", help="CSV to write for the analyst.")],
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    user: UserOpt = None,
) -> None:
    """Export the uncertain band of person pairs for clerical review."""
    from ecins_link.matching.review import export_review

    config, store = _project_store(project, "review export", user)
    lower, upper = config.linkage.review_band
    with store:
        n = export_review(store, out, lower=lower, upper=upper, limit=limit)
    console.print(f"{n} pairs written to {out}")


@review_app.command("import")
@_guard
def review_import(
    project: ProjectArg,
    decisions: Annotated[Path, typer.Argument(help="The filled-in review CSV.")],
    user: UserOpt = None,
) -> None:
    """Import clerical decisions; they act as must-link / cannot-link in every later run."""
    from ecins_link.matching.review import import_review

    _, store = _project_store(project, "review import", user)
    with store:
        result = import_review(store, decisions, reviewer=store.user)
    print(json.dumps(_jsonable(result), indent=2, default=str))


@app.command()
@_guard
def override(
    project: ProjectArg,
    entity_type: Annotated[str, typer.Option("--entity-type", help="person, household, location or cluster.")],
    entity_id: Annotated[str, typer.Option("--entity-id")],
    raise_score: Annotated[float, typer.Option("--raise", help="How much to raise the priority score (> 0).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (stored and audited).")],
    rule: Annotated[str | None, typer.Option("--rule")] = None,
    user: UserOpt = None,
) -> None:
    """Raise an entity's priority with a reason (professional judgement can raise, never lower)."""
    from ecins_link.scoring import add_override

    _, store = _project_store(project, "override", user)
    with store:
        oid = add_override(store, entity_type, entity_id, raise_score, reason, rule=rule)
    console.print(f"override {oid} recorded; re-run `ecins-link run --stage score --stage report` to re-rank")


@app.command()
@_guard
def audit(
    project: ProjectArg,
    verify: Annotated[bool, typer.Option("--verify", help="Check the hash chain; exit 1 if tampered.")] = False,
    limit: Annotated[int, typer.Option("--limit")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows (and the check) as JSON.")] = False,
) -> None:
    """List the audit log (who, when, what, purpose, counts)."""

    _, store = _project_store(project, "audit", read_only=True)
    with store:
        rows = store.audit_rows().tail(limit)
        verdict = store.audit_verdict() if verify else None
    if as_json:
        _print_audit_json(rows, verdict)
        if verdict is not None and not verdict.ok:
            raise typer.Exit(code=1)
        return
    table = Table(title=f"audit log ({len(rows)} most recent rows)")
    for col in ("seq", "logged_at", "user_name", "category", "purpose", "action", "row_counts"):
        table.add_column(col, overflow="fold")
    for r in rows.itertuples():
        table.add_row(str(r.seq), str(r.logged_at)[:19], r.user_name, r.category, r.purpose, r.action, r.row_counts)
    Console().print(table)
    if verdict is not None:
        if not verdict.ok:
            for problem in verdict.problems:
                console.print(f"[red]audit: {problem}[/red]", highlight=False, markup=True, soft_wrap=True)
            if verdict.bad_seqs:
                console.print(f"[red]audit chain broken at seq {verdict.bad_seqs}[/red]")
            raise typer.Exit(code=1)
        console.print(f"audit chain verified ({verdict.rows} rows; anchored outside the store up to seq "
                      f"{verdict.anchored_seq})")


@app.command()
@_guard
def export(
    project: ProjectArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for the research extract.")],
    key_file: Annotated[Path, typer.Option("--key-file", help="Secret key for keyed-hash pseudonyms.")],
    pseudonymise: Annotated[bool, typer.Option("--pseudonymise/--no-pseudonymise")] = True,
    min_cell: Annotated[int, typer.Option("--min-cell", min=5,
                                          help="k: withhold values, and enforce k-anonymity, below this many "
                                               "persons (at least 5).")] = 5,
    user: UserOpt = None,
) -> None:
    """Export a pseudonymised research extract (HMAC-SHA256 ids, DOB year, postcode sector, small cells withheld)."""
    from ecins_link.export import export_pseudonymised

    if not pseudonymise:
        raise ValueError("only pseudonymised research exports are offered (Five Safes: safe data)")
    if not key_file.exists():
        raise FileNotFoundError(f"key file not found: {key_file}")
    _, store = _project_store(project, "export", user, purpose="research")
    with store:
        result = export_pseudonymised(store, out, key_file, min_cell=min_cell)
    print(json.dumps(_jsonable(result), indent=2, default=str))


@app.command()
@_guard
def purge(
    project: ProjectArg,
    source: Annotated[str, typer.Option("--source", help="The source whose records are erased.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (audited).")],
    user: UserOpt = None,
) -> None:
    """Erase one source's records from the store (audited as erasure); re-run afterwards."""
    from ecins_link.purge import purge_source

    _, store = _project_store(project, "purge", user)
    with store:
        counts = purge_source(store, source, reason)
    print(json.dumps(counts, indent=2))


def _print_audit_json(rows: object, verdict: object | None) -> None:
    """``audit --json``: ``{"rows": [...]}``, plus ``verified``, ``broken_at`` and ``problems`` when checked."""
    out: dict = {"rows": json.loads(rows.to_json(orient="records", date_format="iso", date_unit="us"))}  # type: ignore[attr-defined]
    if verdict is not None:
        out.update(verified=verdict.ok, broken_at=list(verdict.bad_seqs),  # type: ignore[attr-defined]
                   problems=list(verdict.problems))  # type: ignore[attr-defined]
    print(json.dumps(out, indent=2, default=str))


rules_app = typer.Typer(no_args_is_help=True, help="Combination rules files: validate and explain.")
app.add_typer(rules_app, name="rules")


@rules_app.command("check")
@_guard
def rules_check(
    rules: Annotated[Path, typer.Argument(help="The rules file (TOML).")],
    taxonomy: Annotated[Path | None, typer.Option("--taxonomy", help="Signal taxonomy (default: shipped).")] = None,
) -> None:
    """Validate a rules file against the taxonomy and print every rule in plain English (exit 2 if invalid)."""
    from ecins_link.scoring.describe import check_rules

    _, text = check_rules(rules, taxonomy)
    print(text)


@app.command()
@_guard
def worklist(
    project: ProjectArg,
    status: Annotated[list[str] | None, typer.Option(
        "--status", help="Only cases with this status: new, ongoing, escalated, lapsed, or current (= not lapsed). "
        "Repeatable.")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only cases flagged by this rule id.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows (0 = all).")] = 50,
    purpose: Annotated[str | None, typer.Option("--purpose", help="The purpose the listing is for.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="The run's output folder (default: output/).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """List the ranked worklist of the latest run, filtered by status (e.g. --status lapsed) and rule."""
    from ecins_link.api import Project
    from ecins_link.api.listing import filter_cases

    cases = Project.open(project, purpose=purpose, out=out).worklist()
    shown = filter_cases(cases, status or [], rule)
    rows = shown if limit <= 0 else shown.head(limit)
    if as_json:
        print(json.dumps(json.loads(rows.to_json(orient="records", date_format="iso")), indent=2))
        return
    table = Table(title=f"worklist: {len(shown)} of {len(cases)} cases" + (f" (first {len(rows)})" if len(rows) <
                                                                            len(shown) else ""))
    cols = [c for c in ("rank", "case", "rules", "score", "status", "first_met", "last_met", "agencies")
            if c in rows.columns]
    for c in cols:
        table.add_column(c, overflow="fold")
    for r in rows[cols].itertuples(index=False):
        table.add_row(*("" if v is None or v != v else str(v) for v in r))
    Console().print(table)


users_app = typer.Typer(no_args_is_help=True, help="Logins of the panel workspace (ecins-link serve).")
app.add_typer(users_app, name="users")


@app.command()
@_guard
def serve(
    project: ProjectArg,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    https: Annotated[bool, typer.Option("--https", help="Served behind TLS: Secure cookies and HSTS.")] = False,
    refresh: Annotated[float, typer.Option("--refresh-seconds", min=0.2,
                                           help="How often to look for a newly completed run.")] = 30.0,
    threads: Annotated[int, typer.Option("--threads", min=1, max=64, help="Request threads.")] = 8,
) -> None:
    """Serve the panel workspace (web app) on the latest completed run."""
    from ecins_link.web.server import serve as run_server

    console.print(f"panel workspace on http://{host}:{port}/ (Ctrl+C to stop)")
    run_server(project, host=host, port=port, https=https, refresh_seconds=refresh, threads=threads)


@users_app.command("add")
@_guard
def users_add(
    project: ProjectArg,
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option("--role", help="analyst (full view) or panel (one purpose).")],
    purpose: Annotated[str | None, typer.Option("--purpose", help="The purpose a panel member works under.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Add a login (or reset one); the password is prompted for unless --password-stdin."""
    from ecins_link.web.cli_users import add

    add(project, name, role, purpose, password_stdin)
    console.print(f"user {name} saved ({role}{', ' + purpose if purpose else ''})")


@users_app.command("list")
@_guard
def users_list(project: ProjectArg) -> None:
    """List the logins."""
    from ecins_link.web.cli_users import rows

    table = Table(title="panel workspace users")
    for col in ("name", "role", "purpose", "active", "last login"):
        table.add_column(col)
    for r in rows(project):
        table.add_row(r.name, r.role, r.purpose, "yes" if r.active else "no", r.last_login)
    Console().print(table)


@users_app.command("disable")
@_guard
def users_disable(project: ProjectArg, name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Disable a login and end its sessions (kept for the audit trail)."""
    from ecins_link.web.cli_users import disable

    disable(project, name)
    console.print(f"user {name} disabled")


def _jsonable(obj: object) -> object:
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return obj


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
