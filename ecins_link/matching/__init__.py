"""Matching stages: persons (Splink model + clustering) and locations (UPRN resolution).

Both entry points are imported lazily so that importing :mod:`ecins_link.matching` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["link_persons", "link_locations"]


def link_persons(store: Any, config: Any) -> None:
    """Persons stage (see :func:`ecins_link.matching.persons.link_persons`)."""
    from ecins_link.matching.persons import link_persons as _link

    _link(store, config)


def link_locations(store: Any, config: Any, **options: Any) -> None:
    """Locations stage (see :func:`ecins_link.matching.locations.link_locations`)."""
    from ecins_link.matching.locations import link_locations as _link

    _link(store, config, **options)
