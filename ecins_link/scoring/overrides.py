"""Human overrides: professional judgement may RAISE a case's priority with a reason, never lower it.

Overrides are stored in ``overrides`` and audited (category 'alteration', ids and amounts only: the
free-text reason is kept in the store for the panel, never copied into the audit log).  The next
``score`` run adds ``raise_score`` to the entity's flags (of ``rule`` only, when given); an override for
an entity with no matching flag becomes a ``professional_judgement`` flag of its own.

The score stage does not trust the table (anyone with the store file can write to it): before every score
run, :func:`ensure_overrides_table` checks every row again - a positive, finite ``raise_score`` of at most
:data:`MAX_RAISE` (and at most :data:`MAX_RAISE_TOTAL` per entity), a reason, a user, a known entity type and
an entity that exists in the store.  Rows that fail are moved to ``overrides_refused`` with the reason and
audited one by one (``override_refused``); each row that passes is audited (``override_applied``).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid

import pandas as pd

from ecins_link.scoring.rules import SCOPES
from ecins_link.store import Store

OVERRIDES_DDL = """CREATE TABLE IF NOT EXISTS overrides (
    override_id VARCHAR, entity_type VARCHAR, entity_id VARCHAR, rule VARCHAR, raise_score DOUBLE,
    reason VARCHAR, user_name VARCHAR, recorded_at TIMESTAMP)"""
REFUSED_DDL = """CREATE TABLE IF NOT EXISTS overrides_refused (
    override_id VARCHAR, entity_type VARCHAR, entity_id VARCHAR, rule VARCHAR, raise_score DOUBLE,
    reason VARCHAR, user_name VARCHAR, recorded_at TIMESTAMP, refused_at TIMESTAMP, refused_because VARCHAR)"""
MAX_RAISE = 100.0        # one override: far above any rule's score, far below anything that breaks ranking
MAX_RAISE_TOTAL = 200.0  # all overrides of one entity together
# where an entity of each type must exist for an override on it to be applied
_ENTITY_SOURCES = {
    "person": [("person_attributes", "person_id"), ("person_clusters", "person_id")],
    "household": [("households", "household_id")],
    "location": [("address_matches", "location_id"), ("residences", "location_id"), ("households", "location_id"),
                 ("signals", "location_id")],
    "cluster": [("person_components", "component_id")],
}


class OverrideError(ValueError):
    """An override that cannot be recorded (it would lower a priority, or names nothing)."""


def ensure_overrides_table(store: Store) -> None:
    """Create the ``overrides`` table if it does not exist, then validate every row for use by the score stage:
    rows that fail are moved to ``overrides_refused`` (with why) and audited; rows that pass are audited as
    applied.  Runs in its own transaction (or the caller's)."""
    from ecins_link.matching.stable_ids import atomic

    with atomic(store.con):
        store.con.execute(OVERRIDES_DDL)
        store.con.execute(REFUSED_DDL)
        rows = store.df("SELECT rowid AS _rowid, * FROM overrides ORDER BY recorded_at NULLS LAST, override_id")
        if rows.empty:
            return
        why = _problems(store, rows)
        refused = rows[why.notna()].assign(refused_because=why[why.notna()])
        if not refused.empty:
            store.con.register("__ov_refused", refused.assign(refused_at=dt.datetime.now()))
            try:
                store.con.execute("""INSERT INTO overrides_refused SELECT override_id, entity_type, entity_id, rule,
                    raise_score, reason, user_name, recorded_at, refused_at, refused_because FROM __ov_refused""")
                store.con.execute("DELETE FROM overrides WHERE rowid IN (SELECT _rowid FROM __ov_refused)")
            finally:
                store.con.unregister("__ov_refused")
        for r in refused.itertuples():
            store.audit("alteration", "override_refused",
                        {"override_id": _text(r.override_id), "entity_type": _text(r.entity_type),
                         "entity_id": _text(r.entity_id), "raise_score": _text(r.raise_score),
                         "because": r.refused_because}, {"overrides_refused": 1})
        for r in rows[why.isna()].itertuples():
            store.audit("alteration", "override_applied",
                        {"override_id": r.override_id, "entity_type": r.entity_type, "entity_id": r.entity_id,
                         "rule": r.rule, "raise_score": float(r.raise_score), "recorded_by": r.user_name},
                        {"overrides": 1})


def _text(value: object) -> str | None:
    """A cell of a refused row as short text for the audit (what was there, without trusting it)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)[:64]


def _problems(store: Store, rows: pd.DataFrame) -> pd.Series:
    """Per override row: why it may not be applied, or None."""
    def exists(entity_type: str) -> set[str]:
        found: set[str] = set()
        for table, col in _ENTITY_SOURCES.get(entity_type, []):
            if store.has_table(table):
                found |= {r[0] for r in store.con.execute(
                    f'SELECT DISTINCT "{col}" FROM "{table}" WHERE "{col}" IS NOT NULL').fetchall()}
        return found
    known = {t: exists(t) for t in set(rows["entity_type"].dropna()) if t in SCOPES}
    out: list[str | None] = []
    totals: dict[tuple[str, str], float] = {}
    seen_ids: set[str] = set()
    for r in rows.itertuples():
        amount = r.raise_score
        ok_amount = isinstance(amount, (int, float)) and math.isfinite(amount)
        if not _text(r.override_id) or r.override_id in seen_ids:
            out.append("missing or repeated override_id")
        elif r.entity_type not in SCOPES:
            out.append(f"entity_type must be one of {list(SCOPES)}")
        elif not ok_amount or amount <= 0:
            out.append("raise_score must be a positive finite number (an override can only raise)")
        elif amount > MAX_RAISE:
            out.append(f"raise_score above the cap of {MAX_RAISE:g}")
        elif not str(r.reason or "").strip():
            out.append("no reason given")
        elif not str(r.user_name or "").strip() or pd.isna(r.recorded_at):
            out.append("no user or time recorded")
        elif str(r.entity_id) not in known.get(r.entity_type, set()):
            out.append(f"no {r.entity_type} {r.entity_id!s:.40} in the store")
        elif totals.get((r.entity_type, r.entity_id), 0.0) + amount > MAX_RAISE_TOTAL:
            out.append(f"overrides of this {r.entity_type} would exceed the total cap of {MAX_RAISE_TOTAL:g}")
        else:
            totals[(r.entity_type, r.entity_id)] = totals.get((r.entity_type, r.entity_id), 0.0) + amount
            out.append(None)
        seen_ids.add(r.override_id)
    return pd.Series(out, index=rows.index, dtype=object)


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
    if amount > MAX_RAISE:
        raise OverrideError(f"raise_score must be at most {MAX_RAISE:g} (got {raise_score!r})")
    if entity_type not in SCOPES:
        raise OverrideError(f"entity_type must be one of {list(SCOPES)}, not {entity_type!r}")
    if not str(entity_id or "").strip():
        raise OverrideError("entity_id is required")
    if not str(reason or "").strip():
        raise OverrideError("a reason is required for every override")
    override_id = "O" + uuid.uuid4().hex[:12]
    with store.stage("override"):
        store.con.execute(OVERRIDES_DDL)
        store.con.execute(
            "INSERT INTO overrides VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [override_id, entity_type, str(entity_id), rule, amount, str(reason).strip(), store.user,
             dt.datetime.now()])
        store.audit("alteration", "override_raise",
                    details={"override_id": override_id, "entity_type": entity_type, "entity_id": str(entity_id),
                             "rule": rule, "raise_score": amount},
                    row_counts={"overrides": 1})
    return override_id
