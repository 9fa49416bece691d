"""Side-by-side SQL steps on an in-memory database attached to the store's DuckDB instance.

A stage's intermediate and result tables are built *before* its transaction in an attached ``:memory:``
database shared by the instance's connections: each step runs on its own cursor, so independent steps
(most of them small, single-core work: a scan is parallelised per 122,880-row group) run side by side,
and every table a step writes is committed at once (fast to read, unlike tables created inside the stage
transaction).  The cursors read the store's committed tables in place (no copies).  Unqualified names
resolve to the scratch database first, then the store, so the stages' SQL needs no qualification; the
stage transaction then only copies the finished tables into the store.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb

from ecins_link.store import Store

StepFn = Callable[[duckdb.DuckDBPyConnection], Any]


@dataclass
class Step:
    """One unit of work: ``fn(cursor)`` after the steps named in ``after`` have finished."""

    name: str
    fn: StepFn
    after: tuple[str, ...] = ()


def sql_step(name: str, sql: str, after: tuple[str, ...] = ()) -> Step:
    """A step that creates (or replaces) table ``name`` in the scratch database from a query."""
    return Step(name, lambda cur: cur.execute(f'CREATE OR REPLACE TABLE "{name}" AS {sql}'), after)


@dataclass
class Scratch:
    """An attached in-memory database (``name``) on the store's instance; see the module docstring."""

    store: Store
    name: str
    seconds: dict[str, float] = field(default_factory=dict)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection of the store's instance whose unqualified names resolve scratch-first."""
        cur = self.store.con.cursor()
        try:
            home = cur.execute("SELECT current_database()").fetchone()[0]
            cur.execute(f'USE "{self.name}"')
            cur.execute(f"SET search_path = '\"{self.name}\".main,\"{home}\".main'")
        except BaseException:
            cur.close()
            raise
        return cur

    def table(self, name: str) -> str:
        """The qualified name of a scratch table (for SQL run on the store's own connection)."""
        return f'"{self.name}"."{name}"'

    def run(self, steps: list[Step], workers: int = 2) -> dict[str, Any]:
        """Run the steps, each on its own cursor, up to ``workers`` at a time, a step only after those it
        follows; returns each step's result.  The first failure is raised once running steps end."""
        names = [s.name for s in steps]
        unknown = {a for s in steps for a in s.after} - set(names)
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"bad step graph: unknown {sorted(unknown)} or repeated names")
        pending, results, running = list(steps), {}, {}
        lock = threading.Lock()

        def call(step: Step) -> Any:
            started = time.perf_counter()
            cur = self.cursor()
            try:
                return step.fn(cur)
            finally:
                cur.close()
                with lock:
                    self.seconds[step.name] = round(time.perf_counter() - started, 3)

        error: BaseException | None = None
        with ThreadPoolExecutor(max(1, workers)) as pool:
            while pending or running:
                if error is None:
                    ready = [s for s in pending if all(a in results for a in s.after)]
                    for s in ready[: max(0, workers - len(running))]:
                        pending.remove(s)
                        running[pool.submit(call, s)] = s.name
                if not running:
                    if error is None and pending:
                        raise ValueError(f"steps can never run (circular order): {[s.name for s in pending]}")
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    name = running.pop(fut)
                    if fut.exception() is not None:
                        error = error or fut.exception()
                    else:
                        results[name] = fut.result()
                if error is not None:
                    pending.clear()
        if error is not None:
            raise error
        return results


@contextmanager
def scratch(store: Store, prefix: str = "scratch") -> Iterator[Scratch]:
    """Attach a fresh in-memory scratch database to the store's instance; detached (freed) on exit."""
    name = f"_{prefix}_{uuid.uuid4().hex[:8]}"
    store.con.execute(f"ATTACH ':memory:' AS \"{name}\"")
    try:
        yield Scratch(store, name)
    finally:
        store.con.execute(f'DETACH "{name}"')
