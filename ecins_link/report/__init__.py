"""Run outputs: CSV/Parquet files of the public contract, the HTML panel pack and purpose-bound views."""

from ecins_link.report.outputs import write_outputs
from ecins_link.report.views import View, view_for

__all__ = ["View", "view_for", "write_outputs"]
