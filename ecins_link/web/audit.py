"""Audit rows of the app (DPA 2018 s62 consultation and disclosure logging): one per view, search, lookup,
export and decision, with the user, purpose and entity, in the app's own database."""

from __future__ import annotations

import json

from django.http import HttpRequest

from ecins_link.web.models import AuditEntry


def audit(request: HttpRequest, action: str, entity: str = "", detail: dict | None = None, run_id: str = "") -> None:
    """Append one audit row for the logged-in user of ``request``."""
    profile = getattr(request.user, "profile", None)
    AuditEntry.objects.create(user=request.user.get_username(), purpose=getattr(profile, "purpose", "") or "",
                              action=action, entity=entity[:200], detail=json.dumps(detail or {}, default=str),
                              run_id=run_id, remote_addr=str(request.META.get("REMOTE_ADDR", ""))[:64])
