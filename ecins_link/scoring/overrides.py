"""Human overrides: professional judgement may RAISE a case's priority with a reason, never lower it.

Overrides are stored in ``overrides`` and audited (category 'alteration', ids and amounts only: the
free-text reason is kept in the store for the panel, never copied into the audit log).  The next
``score`` run adds ``raise_score`` to the entity's flags (of ``rule`` only, when given); an override for
an entity with no matching flag becomes a ``professional_judgement`` flag of its own.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid

from ecins_link.scoring.rules import SCOPES
from ecins_link.store import Store

OVERRIDES_DDL = """CREATE TABLE IF NOT EXISTS overrides (
    override_id VARCHAR, entity_type VARCHAR, entity_id VARCHAR, rule VARCHAR, raise_score DOUBLE,
    reason VARCHAR, user_name VARCHAR, recorded_at TIMESTAMP)"""


class OverrideError(ValueError):
    """An override that cannot be recorded (it would lower a priority, or names nothing)."""


def ensure_overrides_table(store: Store) -> None:
    """Create the ``overrides`` table if it does not exist."""
    store.con.execute(OVERRIDES_DDL)


def add_override(store: Store, entity_type: str, entity_id: str, raise_score: float, reason: str,
                 rule: str | None = None) -> str:
    """Record that a professional raises an entity's priority by ``raise_score`` (> 0); returns the id.

    Raises :class:`OverrideError` if ``raise_score`` is not a positive finite number (an override can
    never lower what the rules produced), if the entity type is unknown, or if the reason is empty.
    """
    try:
        amount = float(raise_score)
    except (TypeError, ValueError):
        raise OverrideError(f"raise_score must be a number, not {raise_score!r}") from None
    if not math.isfinite(amount) or amount <= 0:
        raise OverrideError(
            f"an override can only raise a priority: raise_score must be > 0 (got {raise_score!r}); "
            "professional judgement may raise a case, never lower what the rules produced")
    if entity_type not in SCOPES:
        raise OverrideError(f"entity_type must be one of {list(SCOPES)}, not {entity_type!r}")
    if not str(entity_id or "").strip():
        raise OverrideError("entity_id is required")
    if not str(reason or "").strip():
        raise OverrideError("a reason is required for every override")
    override_id = "O" + uuid.uuid4().hex[:12]
    with store.stage("override"):
        ensure_overrides_table(store)
        store.con.execute(
            "INSERT INTO overrides VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [override_id, entity_type, str(entity_id), rule, amount, str(reason).strip(), store.user,
             dt.datetime.now()])
        store.audit("alteration", "override_raise",
                    details={"override_id": override_id, "entity_type": entity_type, "entity_id": str(entity_id),
                             "rule": rule, "raise_score": amount},
                    row_counts={"overrides": 1})
    return override_id
