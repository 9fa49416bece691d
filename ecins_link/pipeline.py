"""Run a project end to end: ingest -> standardise -> persons -> locations -> graph -> score -> report.

Each stage is ``stage(store, config) -> None`` in its own package and commits its tables in one
transaction, so a run killed mid-way leaves the store as it was before the stage that was running, and
running again finishes the job.  This module only orders the stages, times them and records the run.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ecins_link.config import ProjectConfig, load_config
from ecins_link.store import Store

# (stage name, module, function) — the store tables between them are listed in docs/contracts.md
STAGES: list[tuple[str, str, str]] = [
    ("ingest", "ecins_link.ingest", "ingest"),
    ("standardise", "ecins_link.standardise", "standardise"),
    ("persons", "ecins_link.matching", "link_persons"),
    ("locations", "ecins_link.locations", "link_locations"),
    ("homes", "ecins_link.locations", "settle_homes"),
    ("graph", "ecins_link.graph", "build_graph"),
    ("score", "ecins_link.scoring", "score"),
]
STAGE_NAMES = [s[0] for s in STAGES] + ["report"]


@dataclass
class RunResult:
    """What a run did: where its outputs are and how long each stage took."""

    run_id: str
    store_path: Path
    out_dir: Path | None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_spans: dict[str, tuple[float, float]] = field(default_factory=dict)  # (start, end) s from the run's start
    outputs: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. sources left out of a partial run
    summary: dict = field(default_factory=dict)  # what run_summary.json holds (run_project fills it)


def stage_function(name: str) -> Callable:
    """The callable for a named stage (imported lazily so a CLI call loads only what it needs)."""
    for stage, module, func in STAGES:
        if stage == name:
            return getattr(importlib.import_module(module), func)
    raise KeyError(f"unknown stage {name!r}; stages are {STAGE_NAMES}")


def default_out_dir(config: ProjectConfig) -> Path:
    """Where a run writes its output folder unless told otherwise."""
    return config.root / "output"


def open_store(config: ProjectConfig, user: str | None = None, command: str = "run",
               purpose: str | None = None, read_only: bool = False) -> Store:
    """Open the project's store with the project's memory limit."""
    return Store(config.store_path, user=user, command=command, purpose=purpose, read_only=read_only,
                 memory_limit=config.project.memory_limit)


def run_stages(store: Store, config: ProjectConfig, stages: Iterable[str], out_dir: Path | None = None,
               purpose: str | None = None, progress: bool = True, allow_partial: bool = False) -> RunResult:
    """Run the named stages in pipeline order on an open store.

    After ingest, an unreadable source or one with more than its ``max_quarantine_share`` of rows
    quarantined stops the run with :class:`ecins_link.ingest.health.IngestFailed` (carrying ``result``)
    unless ``allow_partial``, when it becomes a warning.
    """
    wanted = [s for s in STAGE_NAMES if s in set(stages)]
    if "ingest" in wanted:  # a purged source is refused until the project file drops or re-admits it
        importlib.import_module("ecins_link.purge").check_purged(store, config)
    run_started = time.perf_counter()
    result = RunResult(run_id=store.run_id, store_path=store.path, out_dir=out_dir)
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    overlap = config.project.overlap_stages and {"persons", "locations"} <= set(wanted)
    # the locations stage's gazetteer preparation can start as soon as the gazetteer is ingested
    early_matcher = config.project.overlap_stages and {"standardise", "locations"} <= set(wanted)
    with Progress(*columns, disable=not progress, transient=False, console=Console(stderr=True)) as bar, ThreadPoolExecutor(1) as pool, \
            ExitStack() as cleanup:
        task = bar.add_task("pipeline", total=len(wanted))
        scoring = matcher = None
        for name in wanted:
            bar.update(task, description=f"{name:<12}")
            started = time.perf_counter()
            if name == "persons" and overlap:
                # persons' scoring only reads person_std and works in its own in-memory database: it runs on a
                # second connection while the locations stage (no person tables) writes the store; the persons
                # stage's transaction follows the locations stage's.  Stage seconds overlap.
                scoring = pool.submit(_on_reader, "ecins_link.matching.persons", "score_persons", store.reader(), config)
                scoring_started = started
                continue
            if name == "report":
                report = importlib.import_module("ecins_link.report")
                result.outputs = report.write_outputs(store, config, out_dir or default_out_dir(config), purpose=purpose)
            else:
                try:
                    options = {"early_matcher": matcher.result()} if name == "locations" and matcher else {}
                    stage_function(name)(store, config, **options)
                except BaseException:
                    _discard(scoring)
                    raise
            _timed(result, name, started, run_started)
            bar.advance(task)
            if name == "ingest":
                _ingest_gate(store, config, result, allow_partial)
            if name == "ingest" and early_matcher:  # started on a side thread: standardise need not wait for it
                matcher = pool.submit(_on_reader, "ecins_link.locations.stage", "prepare_matcher_early",
                                      store.reader(), config)
                cleanup.callback(_close_matcher, matcher)  # the locations stage closes it, or this if it fails first
            if name == "locations" and scoring is not None:
                from ecins_link.matching.persons import link_persons

                link_persons(store, config, scored=scoring.result())
                _timed(result, "persons", scoring_started, run_started)
                scoring = None
                bar.advance(task)
    return result


def _ingest_gate(store: Store, config: ProjectConfig, result: RunResult, allow_partial: bool) -> None:
    """Stop the run after a failed ingest (the error carries the partial result), else note its warnings."""
    from ecins_link.ingest.health import IngestFailed, check_ingest

    try:
        result.warnings += check_ingest(store, config, allow_partial).warnings
    except IngestFailed as err:
        err.result = result
        raise


def _timed(result: RunResult, name: str, started: float, run_started: float) -> None:
    now = time.perf_counter()
    result.stage_seconds[name] = round(now - started, 3)
    result.stage_spans[name] = (round(started - run_started, 3), round(now - run_started, 3))


def _close_matcher(matcher: Future) -> None:
    session = matcher.result()
    if session is not None:
        session.close()


def _on_reader(module: str, func: str, reader: Store, config: ProjectConfig) -> Any:
    """``module.func(reader, config)`` on a side thread's own reader handle, closed after (imported there, so
    the stage running meanwhile does not wait for the import)."""
    try:
        return getattr(importlib.import_module(module), func)(reader, config)
    finally:
        reader.close()


def _discard(scoring: Future | None) -> None:
    """A stage failed while persons' scoring ran alongside: wait for it and release what it holds."""
    if scoring is None:
        return
    try:
        scoring.result().close()
    except Exception:  # noqa: BLE001 - the stage's own error is the one to report
        pass


def run_project(config_path: str | Path, out_dir: str | Path | None = None, purpose: str | None = None,
                user: str | None = None, stages: Iterable[str] | None = None, progress: bool = False,
                allow_partial: bool = False) -> RunResult:
    """Load a project file and run the whole pipeline (or the named ``stages``), writing ``out_dir``.

    This is the Python API behind ``ecins-link run``.  ``run_summary.json`` is written into ``out_dir``
    whether the run succeeds or fails (``result.summary`` holds the same dict).
    """
    config = load_config(config_path)
    if purpose is not None and purpose not in config.purposes:
        raise ValueError(f"purpose {purpose!r} is not in the project file; known: {sorted(config.purposes)}")
    out = Path(out_dir) if out_dir else default_out_dir(config)
    with open_store(config, user=user, command="run", purpose=purpose) as store:
        store.start_run()
        try:
            result = run_stages(store, config, stages or STAGE_NAMES, out_dir=out, purpose=purpose, progress=progress,
                                allow_partial=allow_partial)
        except BaseException as err:
            store.finish_run("failed")
            _summarise_failure(store, config, out, err)
            raise
        store.finish_run("ok")
        from ecins_link.run_summary import build_summary, write_summary

        result.summary = build_summary(store, config, result, warnings=result.warnings)
        write_summary(result.summary, out)
    return result


def _summarise_failure(store: Store, config: ProjectConfig, out: Path, err: BaseException) -> None:
    """Write run_summary.json for a failed run (never masking the run's own error)."""
    from ecins_link.run_summary import build_summary, write_summary

    try:
        partial = getattr(err, "result", None) or RunResult(run_id=store.run_id, store_path=store.path, out_dir=out)
        summary = build_summary(store, config, partial, status="failed", error=str(err) or type(err).__name__)
        err.summary = summary
        write_summary(summary, out)
    except Exception:  # noqa: BLE001 - the run's own error is the one to report
        pass
