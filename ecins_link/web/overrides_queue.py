"""Raise-only overrides asked for in the UI reach the store through ``ecins_link.scoring.add_override`` (the
same path as ``ecins-link override``), as soon as no batch holds the store."""

from __future__ import annotations

import datetime as dt

from ecins_link.config import ProjectConfig
from ecins_link.web.models import OverrideRequest


def apply_pending(config: ProjectConfig) -> int:
    """Write every pending override request to the store; returns how many were written (0 when locked)."""
    from ecins_link.pipeline import open_store
    from ecins_link.scoring import add_override
    from ecins_link.scoring.overrides import OverrideError
    from ecins_link.store import StoreError

    pending = list(OverrideRequest.objects.filter(override_id="", error="").order_by("id"))
    done = 0
    for req in pending:
        try:
            store = open_store(config, user=req.user, command="web override", purpose=req.purpose or None)
        except StoreError:  # a batch holds the store: try again later
            return done
        with store:
            try:
                req.override_id = add_override(store, req.entity_type, req.entity_id, req.raise_score, req.reason,
                                               rule=req.rule or None)
                req.applied_at = dt.datetime.now(dt.UTC)
            except OverrideError as err:
                req.error = str(err)
        req.save()
        done += 1
    return done


def flush_audit(config: ProjectConfig) -> int:
    """Copy the app's new audit rows into the store's hash-chained audit log (category 'consultation' or
    'disclosure'), one store row per (user, purpose, action) with counts and case ids -- never the text of a
    search or look-up (names stay in the app's own database).  Skipped while a batch holds the store; returns
    the number of app rows copied."""
    from collections import defaultdict

    from ecins_link.pipeline import open_store
    from ecins_link.store import StoreError
    from ecins_link.web.models import AuditEntry
    from ecins_link.web.setup import web_dir_of

    marker = web_dir_of(config) / "audit_flushed_id"
    last = int(marker.read_text(encoding="utf-8").strip() or 0) if marker.exists() else 0
    rows = list(AuditEntry.objects.filter(id__gt=last).order_by("id")[:50_000])
    if not rows:
        return 0
    groups: dict[tuple[str, str, str], list[AuditEntry]] = defaultdict(list)
    for r in rows:
        groups[(r.user, r.purpose, r.action)].append(r)
    try:
        store = open_store(config, user="ecins-web", command="serve")
    except StoreError:
        return 0
    with store:
        for (user, purpose, action), items in sorted(groups.items()):
            category = "disclosure" if action in ("export", "lookup") else "consultation"
            cases = sorted({i.entity for i in items if action in ("view_case", "decision", "override")})
            store.audit(category, f"web_{action}", {"app_user": user, "cases": cases[:500],
                                                    "first_at": items[0].at, "last_at": items[-1].at},
                        {"requests": len(items)}, purpose=purpose or None)
    marker.write_text(str(rows[-1].id), encoding="utf-8")
    return len(rows)
