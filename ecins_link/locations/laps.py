"""Per-step wall and CPU seconds of the locations stage (the audit row's ``steps.seconds`` / ``steps.cpu_seconds``).

CPU seconds are the whole process's (:func:`time.process_time`): work another thread does meanwhile (the matcher's
gazetteer preparation in the background, or persons' scoring alongside the stage) counts in the step it overlaps.
"""

from __future__ import annotations

import time


class Laps:
    """A stopwatch: each :meth:`lap` records the wall and CPU seconds since the previous one under a step name
    (a name used twice adds up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        """Close the current step under ``name`` and start the next."""
        wall, cpu = time.perf_counter(), time.process_time()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + wall - self._wall, 3)
        self.cpu_seconds[name] = round(self.cpu_seconds.get(name, 0.0) + cpu - self._cpu, 3)
        self._wall, self._cpu = wall, cpu
