"""The public Python API of ecins-link: :class:`Project` and the small typed objects it returns.

Import these names from the top-level package (``from ecins_link import Project``); the modules of this
package, like every other module of ``ecins_link``, are private and may change between releases.
"""

from ecins_link.api.explanation import FlagExplanation
from ecins_link.api.project import Project
from ecins_link.api.review import Review
from ecins_link.api.summary import run_summary

__all__ = ["FlagExplanation", "Project", "Review", "run_summary"]
