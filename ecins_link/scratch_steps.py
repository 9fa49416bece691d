"""Side-by-side SQL steps in in-memory databases attached to the store's DuckDB instance.

A stage's intermediate and result tables are built on cursors of the store's instance, each step's table in
an in-memory database of its own attached for the stage: independent steps (most of them small, single-core
work: a scan is parallelised per 122,880-row group) run side by side, every table is committed at once (fast
to read, unlike a table created inside the stage transaction), and the store's committed tables are read in
place (no copies).  Unqualified names resolve to the scratch tables first, then the store's, so the stages'
SQL needs no qualification.

Meanwhile the calling thread holds the stage transaction and writes each finished table into the store.  A
transaction sees an attached database as it was when the transaction first touched it, which is why every
step has a database of its own: the transaction touches one only once its table is finished.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb

from ecins_link.store import Store

StepFn = Callable[[duckdb.DuckDBPyConnection], Any]


@dataclass
class Step:
    """One unit of work: ``fn(connection)`` once the steps named in ``after`` have finished.  On a cursor, a
    table the step creates without qualification lands in the step's own scratch database."""

    name: str
    fn: StepFn
    after: tuple[str, ...] = ()
    # run with DuckDB's usual thread count (not the run's): for a step every later one waits for, which has
    # the machine to itself
    all_threads: bool = False


def sql_step(name: str, sql: str, after: tuple[str, ...] = (), all_threads: bool = False) -> Step:
    """A step that creates scratch table ``name`` from a query."""
    return Step(name, lambda cur: cur.execute(f'CREATE OR REPLACE TABLE "{name}" AS {sql}'), after, all_threads)


@dataclass
class Scratch:
    """The scratch databases of one stage run (see the module docstring)."""

    store: Store
    prefix: str
    seconds: dict[str, float] = field(default_factory=dict)
    dbs: dict[str, str] = field(default_factory=dict)
    home: str = ""
    _threads: tuple[int, int] = (1, 1)  # DuckDB's thread count in run(), and before it

    def __post_init__(self) -> None:
        self.home = self.store.con.execute("SELECT current_database()").fetchone()[0]

    def db(self, name: str) -> str:
        """The scratch database of step ``name`` (attached on first use, from the calling thread only)."""
        if name not in self.dbs:
            db = f"{self.prefix}_{len(self.dbs)}"
            self.store.con.execute(f"ATTACH ':memory:' AS \"{db}\"")
            self.dbs[name] = db
        return self.dbs[name]

    def table(self, name: str) -> str:
        """The qualified name of step ``name``'s table."""
        return f'"{self.db(name)}".main."{name}"'

    def _path(self, con: duckdb.DuckDBPyConnection, first: list[str]) -> None:
        dbs = [*first, self.home]
        con.execute("SET search_path = '" + ",".join(f'"{d}".main' for d in dbs) + "'")

    def run(self, steps: list[Step], workers: int = 3, main: list[Step] | tuple[Step, ...] = (),
            threads: int | None = 1) -> dict[str, Any]:
        """Run ``steps``, each on a cursor, up to ``workers`` at a time, a step only after those it follows;
        meanwhile the calling thread runs the ``main`` steps on the store's own connection (e.g. writes into
        the open stage transaction), each time the first in order whose predecessors are done (a main step
        may follow main steps).  Returns each step's result.  The first failure stops new steps and is raised
        once the running ones end.

        ``threads``: DuckDB's thread count during the run (restored after).  One thread per statement while
        several statements run side by side: the steps are what runs in parallel, and a statement split over
        threads costs more CPU in all (250k town, graph + score: 13-14 CPU s instead of 15-16).  (With one
        thread DuckDB writes a new table's rows to the file at COMMIT rather than as it makes them; giving the
        main steps the usual count to overlap that work cost more CPU than it saved.)"""
        _check_order(steps, main)
        for s in steps:
            self.db(s.name)
        con = self.store.con
        before = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
        self._threads = (int(threads) if threads else before, before)
        con.execute(f"SET threads = {self._threads[0]}")
        # the cursors are made here, before the main steps occupy the store's connection
        cursors = [con.cursor() for _ in range(max(1, workers))]
        try:
            with ThreadPoolExecutor(len(cursors)) as pool:
                runner = _Runner(self, pool, cursors, steps)
                runner.drive(main)
        finally:
            for cur in cursors:
                cur.close()
            con.execute(f"SET threads = {before}")
        if runner.failed:
            raise runner.failed[0]
        return runner.results

    def run_on_cursor(self, cur: duckdb.DuckDBPyConnection, step: Step) -> Any:
        """Run a step on a cursor: its database first (and the default for new tables), then the others."""
        db = self.db(step.name)
        cur.execute(f'USE "{db}"')
        self._path(cur, [db, *(d for d in self.dbs.values() if d != db)])
        if not step.all_threads:
            return step.fn(cur)
        cur.execute(f"SET threads = {self._threads[1]}")
        try:
            return step.fn(cur)
        finally:
            cur.execute(f"SET threads = {self._threads[0]}")

    def run_on_main(self, step: Step) -> Any:
        """Run a main step on the store's connection, reading (besides the store) only the scratch databases
        of the steps it follows: the transaction must not touch a scratch database before its table is done."""
        con = self.store.con
        self._path(con, [self.dbs[a] for a in step.after if a in self.dbs])
        try:
            return step.fn(con)
        finally:
            con.execute("RESET search_path")

    def write(self, target: str, sql: str, after: tuple[str, ...]) -> Step:
        """A main step: (re)create the store's table ``target`` from ``sql`` (which reads the tables of the steps
        in ``after`` and the store's); its result is the row count."""
        def fn(con: duckdb.DuckDBPyConnection) -> int:
            con.execute(f'CREATE OR REPLACE TABLE "{self.home}".main."{target}" AS {sql}')
            return int(con.execute(f'SELECT count(*) FROM "{self.home}".main."{target}"').fetchone()[0])
        return Step(f"store.{target}", fn, after)

    def copy(self, name: str) -> Step:
        """A main step: copy step ``name``'s table into the store's table of the same name."""
        return self.write(name, f"SELECT * FROM {self.table(name)}", (name,))

    def close(self) -> None:
        """Detach (free) every scratch database."""
        while self.dbs:
            _, db = self.dbs.popitem()
            self.store.con.execute(f'DETACH DATABASE IF EXISTS "{db}"')


class _Runner:
    """The state of one :meth:`Scratch.run`: steps start as soon as their predecessors are done."""

    def __init__(self, work: Scratch, pool: ThreadPoolExecutor, cursors: list[duckdb.DuckDBPyConnection],
                 steps: list[Step]) -> None:
        self.work, self.pool, self.pending, self.workers = work, pool, list(steps), len(cursors)
        self.free: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        for cur in cursors:
            self.free.put(cur)
        self.cond = threading.Condition()
        self.results: dict[str, Any] = {}
        self.failed: list[BaseException] = []
        self.running = 0

    def _submit_ready(self) -> None:  # holding cond
        if self.failed:
            return
        # no queue: a free cursor takes the first ready step in the given order (longest chains first)
        ready = [s for s in self.pending if all(a in self.results for a in s.after)]
        for step in ready[: max(0, self.workers - self.running)]:
            self.pending.remove(step)
            self.running += 1
            self.pool.submit(self._call, step)

    def _finish(self, step: Step, started: float, value: Any, error: BaseException | None, worker: bool) -> None:
        with self.cond:
            self.running -= int(worker)
            if error is not None:
                self.failed.append(error)
            else:
                self.results[step.name] = value
                self.work.seconds[step.name] = round(time.perf_counter() - started, 3)
            self._submit_ready()
            self.cond.notify_all()

    def _call(self, step: Step) -> None:
        started, cur = time.perf_counter(), self.free.get()
        value, error = None, None
        try:
            value = self.work.run_on_cursor(cur, step)
        except BaseException as err:  # noqa: BLE001 - handed to the calling thread
            error = err
        finally:
            self.free.put(cur)
        self._finish(step, started, value, error, worker=True)

    def drive(self, main: list[Step] | tuple[Step, ...]) -> None:
        """Start the steps; on the calling thread run the main steps, each time the first one in order whose
        predecessors are done; then wait for the rest."""
        with self.cond:
            self._submit_ready()
        todo = list(main)
        while todo:
            with self.cond:
                self.cond.wait_for(lambda: self.failed or any(all(a in self.results for a in s.after) for s in todo))
                if self.failed:
                    break
                step = next(s for s in todo if all(a in self.results for a in s.after))
            todo.remove(step)
            started, value, error = time.perf_counter(), None, None
            try:
                value = self.work.run_on_main(step)
            except BaseException as err:  # noqa: BLE001 - raised by Scratch.run after the workers end
                error = err
            self._finish(step, started, value, error, worker=False)
            if error is not None:
                break
        with self.cond:
            self.cond.wait_for(lambda: self.failed or (not self.pending and self.running == 0))
            self.pending.clear()


def _check_order(workers: list[Step], main: list[Step] | tuple[Step, ...]) -> None:
    """Refuse repeated names, unknown predecessors, cursor steps that follow main steps and circular orders
    (they would never finish)."""
    steps = [*workers, *main]
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"repeated step names in {names}")
    unknown = {a for s in steps for a in s.after} - set(names)
    if unknown:
        raise ValueError(f"steps follow unknown steps {sorted(unknown)}")
    on_main = {s.name for s in main}
    if any(set(s.after) & on_main for s in workers):
        raise ValueError("a step on a cursor cannot follow a main step")
    done: set[str] = set()
    left = list(steps)
    while left:
        ready = [s for s in left if set(s.after) <= done]
        if not ready:
            raise ValueError(f"steps can never run (circular order): {[s.name for s in left]}")
        done |= {s.name for s in ready}
        left = [s for s in left if s.name not in done]


@contextmanager
def scratch(store: Store, prefix: str = "scratch") -> Iterator[Scratch]:
    """Scratch databases for one stage run, detached (freed) on exit."""
    work = Scratch(store, f"_{prefix}_{uuid.uuid4().hex[:8]}")
    try:
        yield work
    finally:
        work.close()
