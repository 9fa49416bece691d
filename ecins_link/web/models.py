"""The app's own data (Django ORM over ``<project>/web/app.sqlite3``): never written to the project store.

* :class:`Profile` -- a user's role (analyst: full view; panel: one purpose) and purpose.
* :class:`Decision` -- a panel's decision on a case (append-only history; the latest is current), keyed on
  the case's flag id (stable across runs) and its entity key, so it is shown again after a re-run.
* :class:`OverrideRequest` -- a raise-only override asked for in the UI; written to the store through
  ``ecins_link.scoring.add_override`` as soon as the store is free (a batch may hold it).
* :class:`AuditEntry` -- one row per view, search, lookup, export and decision (DPA 2018 s62 logging).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

ROLES = (("analyst", "analyst"), ("panel", "panel member"))
DECISIONS = (("", "no decision yet"), ("discuss", "discuss at panel"), ("refer", "refer to an agency"),
             ("monitor", "monitor"), ("no_further_action", "no further action"), ("closed", "closed"))


class Profile(models.Model):
    """Role and purpose of one login."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    role = models.CharField(max_length=16, choices=ROLES)
    purpose = models.CharField(max_length=64, blank=True, default="")


class Decision(models.Model):
    """One recorded decision on a case (never edited: a new row supersedes)."""

    case_key = models.CharField(max_length=200, db_index=True)  # "entity_type:entity_id"
    flag_id = models.CharField(max_length=64, db_index=True)    # the case's lead flag when decided
    flag_ids = models.TextField(default="[]")                  # every flag of the case then (JSON)
    purpose = models.CharField(max_length=64, blank=True, default="")
    decision = models.CharField(max_length=32, choices=DECISIONS, blank=True, default="")
    action = models.CharField(max_length=500, blank=True, default="")
    owner = models.CharField(max_length=200, blank=True, default="")
    review_date = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True, default="")
    user = models.CharField(max_length=150)
    run_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class OverrideRequest(models.Model):
    """A raise-only override from the UI; ``override_id`` is set once it is in the store."""

    entity_type = models.CharField(max_length=32)
    entity_id = models.CharField(max_length=200)
    rule = models.CharField(max_length=100, blank=True, default="")
    raise_score = models.FloatField()
    reason = models.TextField()
    user = models.CharField(max_length=150)
    purpose = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    override_id = models.CharField(max_length=64, blank=True, default="")
    applied_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")


class AuditEntry(models.Model):
    """Who consulted or disclosed what, for which purpose, when."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.CharField(max_length=150, db_index=True)
    purpose = models.CharField(max_length=64, blank=True, default="")
    action = models.CharField(max_length=32)   # view_worklist, view_case, search, lookup, export, decision, ...
    entity = models.CharField(max_length=200, blank=True, default="")
    detail = models.TextField(blank=True, default="")  # JSON
    run_id = models.CharField(max_length=64, blank=True, default="")
    remote_addr = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-at", "-id"]
