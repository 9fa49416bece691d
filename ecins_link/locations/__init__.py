"""Locations stage: every address of person records and events -> a UPRN, or a stable cluster id.

Entry points are imported lazily so that importing :mod:`ecins_link.locations` stays cheap:
:func:`link_locations` (the stage), :func:`settle_homes` (the ``homes`` stage, after persons),
:func:`prepare_matcher_early` (the pipeline's early start of
uk_address_matcher's gazetteer preparation) and :func:`evaluate_locations` (scores against a truth file).
"""

from __future__ import annotations

from typing import Any

__all__ = ["link_locations", "prepare_matcher_early", "settle_homes", "evaluate_locations"]


def link_locations(store: Any, config: Any, **options: Any) -> None:
    """Locations stage (see :func:`ecins_link.locations.stage.link_locations`)."""
    from ecins_link.locations.stage import link_locations as _link

    _link(store, config, **options)


def settle_homes(store: Any, config: Any, **options: Any) -> None:
    """Homes stage (see :func:`ecins_link.locations.homes.settle_homes`)."""
    from ecins_link.locations.homes import settle_homes as _settle

    _settle(store, config, **options)


def prepare_matcher_early(store: Any, config: Any, **options: Any) -> Any:
    """See :func:`ecins_link.locations.stage.prepare_matcher_early`."""
    from ecins_link.locations.stage import prepare_matcher_early as _prepare

    return _prepare(store, config, **options)


def evaluate_locations(store: Any, truth_addresses_csv: Any) -> dict:
    """See :func:`ecins_link.locations.stage.evaluate_locations`."""
    from ecins_link.locations.stage import evaluate_locations as _evaluate

    return _evaluate(store, truth_addresses_csv)
