"""Is an ingest good enough to run on?  Per-source figures and the problems that stop a run.

A run stops (unless partial runs are allowed) when a source could not be read (missing file, unreadable
container, a mapped column absent: its ``unreadable_file`` quarantine entry) or when more than its
``max_quarantine_share`` of rows were quarantined.  The figures go on screen and into ``run_summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ecins_link.config import ProjectConfig
from ecins_link.store import Store


class IngestFailed(Exception):
    """One or more sources are unreadable or mostly quarantined; the message names each one and why."""

    def __init__(self, message: str, health: IngestHealth) -> None:
        super().__init__(message)
        self.health = health


@dataclass
class IngestHealth:
    """Per-source figures (``sources``), the problems that stop a run (``errors``) and ``warnings``."""

    sources: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def ingest_health(store: Store, config: ProjectConfig) -> IngestHealth:
    """Figures per source from ``accounting``, ``quarantine`` and ``field_issues`` (set-based queries)."""
    out = IngestHealth()
    if not store.has_table("accounting"):
        return out
    acc = {r[0]: r[1:] for r in store.con.execute(
        "SELECT source, rows_read, rows_accepted, rows_quarantined, duplicates_collapsed FROM accounting").fetchall()}
    reasons: dict[str, list[dict]] = {}
    for source, code, n, example in store.con.execute(
            """SELECT source, split_part(reason, ':', 1) AS code, count(*) AS n, min(reason) AS example
               FROM quarantine GROUP BY source, code ORDER BY source, n DESC, code""").fetchall():
        reasons.setdefault(source, []).append({"reason": code, "rows": int(n), "example": example[:300]})
    issues = dict(store.con.execute("SELECT source, count(*) FROM field_issues GROUP BY source").fetchall())
    refs = {(s, k): int(n) for s, k, n in store.con.execute(
        """SELECT source, split_part(problem, ':', 1), count(*) FROM field_issues
           WHERE problem LIKE 'ambiguous_reference:%' OR problem LIKE 'reference_to_conflict:%'
           GROUP BY ALL""").fetchall()}
    for src in config.sources:
        read, accepted, quarantined, dups = acc.get(src.name, (0, 0, 0, 0))
        share = quarantined / read if read else 0.0
        rs = reasons.get(src.name, [])
        unreadable = next((r["example"] for r in rs if r["reason"] == "unreadable_file"), None)
        row = {"source": src.name, "agency": src.agency, "path": _path(config, src.path),
               "rows_read": int(read), "rows_accepted": int(accepted), "rows_quarantined": int(quarantined),
               "duplicates_collapsed": int(dups), "quarantined_share": round(share, 4),
               "max_quarantine_share": src.max_quarantine_share, "field_issues": int(issues.get(src.name, 0)),
               "ambiguous_references": refs.get((src.name, "ambiguous_reference"), 0),
               "references_to_conflicts": refs.get((src.name, "reference_to_conflict"), 0),
               "top_reasons": rs[:5], "status": "ok"}
        if unreadable is not None:
            row["status"] = "unreadable"
            out.errors.append(f"source '{src.name}' ({row['path']}) could not be read: "
                              f"{unreadable.removeprefix('unreadable_file: ')}")
        elif share > src.max_quarantine_share:
            row["status"] = "over_quarantine_limit"
            top = "; ".join(f"{r['reason']} x{r['rows']} (e.g. {r['example'][:120]})" for r in rs[:3])
            ref = src.event.person_ref if src.event else None
            if ref and rs and rs[0]["reason"] == "orphan_reference":
                top += f" (its events refer to '{ref.source}': check that source first)"
            out.errors.append(f"source '{src.name}' ({row['path']}): {quarantined} of {read} rows "
                              f"({share:.1%}) quarantined, more than max_quarantine_share "
                              f"{src.max_quarantine_share:.1%}: {top}")
        elif read == 0:
            out.warnings.append(f"source '{src.name}' has no data rows")
        if row["ambiguous_references"]:
            out.warnings.append(f"source '{src.name}': {row['ambiguous_references']} events reference several "
                                "records and the event date does not decide (kept with no person)")
        if row["references_to_conflicts"]:
            out.warnings.append(f"source '{src.name}': {row['references_to_conflicts']} events reference a "
                                "duplicate-key conflict (kept, tied to the conflicting key)")
        out.sources.append(row)
    return out


def _path(config: ProjectConfig, relative: str) -> str:
    try:
        return str(config.path_of(relative))
    except Exception:  # noqa: BLE001 - a path the project may not use is reported as written
        return relative


def check_ingest(store: Store, config: ProjectConfig, allow_partial: bool = False) -> IngestHealth:
    """The ingest's health; raises :class:`IngestFailed` naming every failing source unless ``allow_partial``
    (then the failures become warnings)."""
    health = ingest_health(store, config)
    if health.errors and not allow_partial:
        lines = "\n  ".join(health.errors)
        raise IngestFailed(f"ingest failed for {len(health.errors)} source(s); `ecins-link check` shows why, "
                           f"--allow-partial continues without them (its quarantine.csv lists every rejected "
                           f"row):\n  {lines}", health)
    health.warnings = [f"partial run: {e}" for e in health.errors] + health.warnings
    return health
