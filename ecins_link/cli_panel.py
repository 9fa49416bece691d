"""``ecins-link`` commands around the panel: rules files, the worklist listing, the panel workspace (``serve``)
and its logins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecins_link.cli_common import ProjectArg, app, console, guard, print_json

rules_app = typer.Typer(no_args_is_help=True, help="Combination rules files: validate and explain.")
app.add_typer(rules_app, name="rules")


@rules_app.command("check")
@guard
def rules_check(
    rules: Annotated[Path, typer.Argument(help="The rules file (TOML).")],
    taxonomy: Annotated[Path | None, typer.Option("--taxonomy", help="Signal taxonomy (default: shipped).")] = None,
) -> None:
    """Validate a rules file against the taxonomy and print every rule in plain English (exit 2 if invalid)."""
    from ecins_link.scoring.describe import check_rules

    _, text = check_rules(rules, taxonomy)
    print(text)


@app.command()
@guard
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
        print_json(json.loads(rows.to_json(orient="records", date_format="iso")))
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
@guard
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
@guard
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
@guard
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
@guard
def users_disable(project: ProjectArg, name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Disable a login and end its sessions (kept for the audit trail)."""
    from ecins_link.web.cli_users import disable

    disable(project, name)
    console.print(f"user {name} disabled")
