"""The run summary printed by ``ecins-link run --json`` and returned by :meth:`Project.run_summary`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ecins_link.pipeline import RunResult

SUMMARY_FILE = "run_summary.json"


def _plain(value: Any) -> Any:
    """JSON-friendly copy of ``value`` (paths as text, tuples as lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def run_summary(result: RunResult) -> dict[str, Any]:
    """The summary of one run, as a JSON-ready dictionary.

    When the run wrote ``run_summary.json`` into its output folder (the public contract of a run) and that
    file is this run's (same ``run_id``), its content is returned as is.  Otherwise (the report stage did
    not run, or an older engine wrote no summary) a smaller summary is built from the run's own result:
    ``run_id``, ``store``, ``out_dir``, ``stages`` (name and seconds, in order), ``outputs`` (row counts per
    output file) and ``source = "run_result"``.

    Parameters
    ----------
    result : RunResult
        What :meth:`Project.run` (or ``ecins-link run``) returned.

    Returns
    -------
    dict
        The summary; every value is JSON-serialisable.
    """
    if result.out_dir is not None:
        path = Path(result.out_dir) / SUMMARY_FILE
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict) and data.get("run_id") == result.run_id:
                return data
    counts = (result.outputs or {}).get("counts", {}) if isinstance(result.outputs, dict) else {}
    return _plain({
        "run_id": result.run_id,
        "store": result.store_path,
        "out_dir": result.out_dir if result.outputs else None,
        "stages": [{"stage": name, "seconds": secs} for name, secs in result.stage_seconds.items()],
        "outputs": counts,
        "source": "run_result",
    })
