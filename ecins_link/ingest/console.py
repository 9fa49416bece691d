"""On-screen tables for ``ecins-link check`` and for the per-source figures ``ecins-link run`` prints."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def print_sources(console: Console, sources: list[dict[str, Any]], warnings: list[str] | None = None) -> None:
    """Rows read / accepted / quarantined and the quarantined share per source, then any warnings."""
    if sources:
        table = Table(title="sources")
        for col in ("source", "read", "accepted", "quarantined", "share", "limit", "status"):
            table.add_column(col, justify="left" if col in ("source", "status") else "right")
        for s in sources:
            style = "" if s["status"] == "ok" else "red"
            table.add_row(s["source"], str(s["rows_read"]), str(s["rows_accepted"]), str(s["rows_quarantined"]),
                          f"{s['quarantined_share']:.1%}", f"{s['max_quarantine_share']:.0%}",
                          f"[{style}]{s['status']}[/{style}]" if style else s["status"])
        console.print(table)
    for w in warnings or []:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True)


def print_check(console: Console, report: dict[str, Any]) -> None:
    """The check report: one table per source, then every error and warning."""
    for s in report["sources"]:
        table = Table(title=f"{s['source']}  ({s['path']})", show_header=False, title_justify="left")
        table.add_column("what", style="bold")
        table.add_column("value", overflow="fold")
        if "rows" in s:
            delim = {"\t": "tab"}.get(s.get("delimiter"), s.get("delimiter"))
            table.add_row("read", f"{s['rows']} rows; encoding {s.get('encoding')}"
                          + (f"; delimiter {delim!r}" if delim else ""))
            table.add_row("header", escape(", ".join(s.get("header", [])[:30])))
            if s.get("missing_columns"):
                table.add_row("missing", escape(", ".join(s["missing_columns"])))
        for d in s.get("dates", []):
            table.add_row(f"date {d['column']}", f"{d['parsed']}/{d['values']} parse ({d['parsed_share']:.1%})"
                          + (f"; e.g. unparsed {escape(str(d['unparsed_examples'][:3]))}" if d["unparsed_examples"]
                             else ""))
        if "key" in s:
            k = s["key"]
            table.add_row("key", f"{'+'.join(k['columns'])}: {k['distinct']} distinct of {k['rows']} rows, "
                                 f"{k['missing']} missing")
        if "reference" in s:
            r = s["reference"]
            table.add_row("person_ref", f"-> {r['source']}: {r['found']}/{r['references']} found "
                                        f"({r['coverage']:.1%}), {r['one_to_many']} one-to-many")
        if "codes" in s:
            c = s["codes"]
            table.add_row("codes", f"{c['distinct']} distinct; unmapped: "
                          + (escape(", ".join(f"{u['code']} x{u['rows']}" for u in c["unmapped"][:10])) or "none"))
        console.print(table)
    for e in report["errors"]:
        console.print(f"[red]error:[/red] {escape(e)}", soft_wrap=True)
    for w in report["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True)
    verdict = "[red]errors found[/red]" if report["errors"] else "[green]no errors[/green]"
    console.print(f"check: {verdict} ({len(report['errors'])} errors, {len(report['warnings'])} warnings)")
