"""Matching stage for persons (Splink model + clustering).

The entry point is imported lazily so that importing :mod:`ecins_link.matching` stays cheap.  Locations
(UPRN resolution) are their own stage: :mod:`ecins_link.locations`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["link_persons"]


def link_persons(store: Any, config: Any) -> None:
    """Persons stage (see :func:`ecins_link.matching.persons.link_persons`)."""
    from ecins_link.matching.persons import link_persons as _link

    _link(store, config)
