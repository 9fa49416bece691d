"""ecins-link: link multi-agency extracts into one person + location graph and flag toxic-cocktail risk.

The public Python API is what this package exports (``__all__``); every submodule is private and may change
between releases.  The names are imported on first use, so ``import ecins_link`` (and the command line) stay
quick.

>>> from ecins_link import Project
>>> project = Project.open("project.toml")          # doctest: +SKIP
>>> project.run()                                   # doctest: +SKIP
>>> project.worklist().head()                       # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecins_link.api import FlagExplanation, Project, Review, run_summary
    from ecins_link.config import ConfigError
    from ecins_link.graph.analysis import bridging_people
    from ecins_link.pipeline import RunResult
    from ecins_link.store import StoreError, StoreLockedError

try:
    __version__ = _version("ecins-link")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

STAGES: tuple[str, ...] = ("ingest", "standardise", "persons", "locations", "homes", "graph", "score", "report")
"""The pipeline's stages, in the order they run."""

_PUBLIC = {
    "ConfigError": "ecins_link.config",
    "FlagExplanation": "ecins_link.api",
    "Project": "ecins_link.api",
    "Review": "ecins_link.api",
    "RunResult": "ecins_link.pipeline",
    "StoreError": "ecins_link.store",
    "StoreLockedError": "ecins_link.store",
    "bridging_people": "ecins_link.graph.analysis",
    "run_summary": "ecins_link.api",
}

__all__ = [
    "STAGES",
    "ConfigError",
    "FlagExplanation",
    "Project",
    "Review",
    "RunResult",
    "StoreError",
    "StoreLockedError",
    "__version__",
    "bridging_people",
    "run_summary",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ecins_link' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
