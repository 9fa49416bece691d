"""Spread pure-Python work over the machine's cores by forking: the panel pack's page rendering.

Rendering ~8,000 case pages is Python-bound (the GIL rules out threads).  After every store query is done,
the builder forks: each child renders an interleaved share of the pages from the parent's memory
(copy-on-write, nothing pickled) and exits; the parent renders its own share and waits.  A child never
touches the store connection (it only formats text and writes files) and ends with ``os._exit``, so no
DuckDB or Python clean-up runs twice.  Any share whose child failed is done again in the parent, so a
failure surfaces there with its real traceback and a transient one costs time, not pages.  Where fork is
unavailable (Windows) or one worker is asked for, everything runs in the parent.

A worker never outlives the run: on Linux each child asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), so a parent killed with ``kill -9`` leaves no worker writing pages; the
report's output folder is only renamed into place by the parent after every worker is done (outputs.py).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
ENV_WORKERS = "ECINS_REPORT_WORKERS"  # cap on worker processes (1 = render in the parent only)
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """In a forked child: be killed when the parent dies (Linux), and leave at once if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not glibc/Linux: the parent's wait is the only guard
        pass
    if os.getppid() != parent:  # the parent died between fork and prctl
        os._exit(1)


def default_workers(n_items: int, min_per_worker: int = 200) -> int:
    """Worker processes for ``n_items`` items: one per usable core (at most 4, and ``ECINS_REPORT_WORKERS``
    if set), but no more than one per ``min_per_worker`` items (a fork costs a few milliseconds)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    wanted = min(cores, 4)
    env = os.environ.get(ENV_WORKERS, "").strip()
    if env.isdigit() and int(env) >= 1:
        wanted = min(wanted, int(env))
    return max(1, min(wanted, n_items // min_per_worker))


def forked_map(func: Callable[[Sequence[T]], None], items: Sequence[T], workers: int) -> None:
    """Call ``func(share)`` on ``workers`` interleaved shares of ``items`` (share k = items k, k+w, ...):
    share 0 in this process, the others in forked children.  ``func`` must only compute and write files
    (its results are not sent back) and must not use a database connection."""
    shares = [items[k::workers] for k in range(workers)] if workers > 1 else [items]
    if len(shares) == 1 or not hasattr(os, "fork") or not sys.platform.startswith("linux"):
        for share in shares:
            func(share)
        return
    children: dict[int, int] = {}
    # the cyclic garbage collector of a child would visit (and so copy, page by page) every object it
    # inherited: move them out of its reach first, and let the short-lived children (and the parent's own
    # share: the collector is back on, and catches up, when it is done) run without it
    collecting = gc.isenabled()
    gc.freeze()
    parent = os.getpid()
    try:
        for k in range(1, len(shares)):
            pid = os.fork()
            if pid == 0:  # child: do one share, then leave without any clean-up of the parent's state
                code = 1
                try:
                    die_with_parent(parent)
                    gc.disable()
                    func(shares[k])
                    code = 0
                finally:
                    os._exit(code)
            children[pid] = k
        gc.disable()  # the parent's share too runs without collections (~5% of page rendering's CPU)
        func(shares[0])
    finally:
        if collecting:
            gc.enable()
        failed = []
        for pid, k in children.items():
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                failed.append(k)
        gc.unfreeze()
    for k in failed:
        log.warning("page worker %d of %d failed; redoing its %d items here", k, workers, len(shares[k]))
        func(shares[k])
