"""``ecins-link`` governance commands: clerical review, overrides, the audit log, research export and purge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecins_link.cli_common import ProjectArg, UserOpt, app, console, guard, print_json, project_store

review_app = typer.Typer(no_args_is_help=True, help="Clerical review of uncertain person matches.")
app.add_typer(review_app, name="review")


@review_app.command("export")
@guard
def review_export(
    project: ProjectArg,
    out: Annotated[Path, typer.Option("--out", help="CSV to write for the analyst.")],
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    user: UserOpt = None,
) -> None:
    """Export the uncertain band of person pairs for clerical review."""
    from ecins_link.matching.review import export_review

    config, store = project_store(project, "review export", user)
    lower, upper = config.linkage.review_band
    with store:
        n = export_review(store, out, lower=lower, upper=upper, limit=limit)
    console.print(f"{n} pairs written to {out}")


@review_app.command("import")
@guard
def review_import(
    project: ProjectArg,
    decisions: Annotated[Path, typer.Argument(help="The filled-in review CSV.")],
    user: UserOpt = None,
) -> None:
    """Import clerical decisions; they act as must-link / cannot-link in every later run."""
    from ecins_link.matching.review import import_review

    _, store = project_store(project, "review import", user)
    with store:
        result = import_review(store, decisions, reviewer=store.user)
    print_json(result)


@app.command()
@guard
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

    _, store = project_store(project, "override", user)
    with store:
        oid = add_override(store, entity_type, entity_id, raise_score, reason, rule=rule)
    console.print(f"override {oid} recorded; re-run `ecins-link run --stage score --stage report` to re-rank")


@app.command()
@guard
def audit(
    project: ProjectArg,
    verify: Annotated[bool, typer.Option("--verify", help="Check the hash chain; exit 1 if tampered.")] = False,
    limit: Annotated[int, typer.Option("--limit")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows (and the check) as JSON.")] = False,
) -> None:
    """List the audit log (who, when, what, purpose, counts)."""

    _, store = project_store(project, "audit", read_only=True)
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
@guard
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
    _, store = project_store(project, "export", user, purpose="research")
    with store:
        result = export_pseudonymised(store, out, key_file, min_cell=min_cell)
    print_json(result)


@app.command()
@guard
def purge(
    project: ProjectArg,
    source: Annotated[str, typer.Option("--source", help="The source whose records are erased.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (audited).")],
    user: UserOpt = None,
) -> None:
    """Erase one source's records from the store (audited as erasure); re-run afterwards."""
    from ecins_link.purge import purge_source

    _, store = project_store(project, "purge", user)
    with store:
        counts = purge_source(store, source, reason)
    print_json(counts)


def _print_audit_json(rows: object, verdict: object | None) -> None:
    """``audit --json``: ``{"rows": [...]}``, plus ``verified``, ``broken_at`` and ``problems`` when checked."""
    out: dict = {"rows": json.loads(rows.to_json(orient="records", date_format="iso", date_unit="us"))}  # type: ignore[attr-defined]
    if verdict is not None:
        out.update(verified=verdict.ok, broken_at=list(verdict.bad_seqs),  # type: ignore[attr-defined]
                   problems=list(verdict.problems))  # type: ignore[attr-defined]
    print_json(out)
