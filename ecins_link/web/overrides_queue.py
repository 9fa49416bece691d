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
