"""``write_outputs``: the public output folder of a run (docs/architecture.md, "Public contract of a run").

The folder is written whole or not at all: everything goes into a temporary sibling folder that is renamed into
place once complete (the folder it replaces is removed after), so a failed, killed or full-disk run leaves the
previous outputs untouched and no half-written pages.  One writer at a time per output folder: a second run
aiming at a folder being written is refused (:class:`OutputBusyError`).  A folder is only ever replaced if it
is an earlier output folder (or empty): a report never deletes someone else's files.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from ecins_link.config import ProjectConfig
from ecins_link.guards import DiskFullError, is_disk_full
from ecins_link.report.panel import PanelBuilder
from ecins_link.report.tables import (
    build_cases,
    load_flags,
    source_agencies,
    write_basic_tables,
    write_flag_tables,
)
from ecins_link.report.views import View, view_for
from ecins_link.store import Store

MARKER = ".ecins-output.json"  # written into every output folder: what wrote it, for which purpose
_OUTPUT_FILES = ("worklist.csv", "accounting.csv", "panel")


class OutputBusyError(RuntimeError):
    """Another run is writing the same output folder."""


@contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold the output folder's lock (a lock file beside it) or raise :class:`OutputBusyError`."""
    lock = out_dir.parent / f".{out_dir.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusyError(f"another run is writing the output folder {out_dir}; wait for it to finish "
                                  "or choose another --out") from None
        yield
    finally:
        os.close(fd)


def _replaceable(out_dir: Path) -> None:
    """Refuse to replace a folder that is not an earlier output folder (or empty)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ValueError(f"output path {out_dir} exists and is not a folder")
    names = {p.name for p in out_dir.iterdir()}
    if names and MARKER not in names and not (names & set(_OUTPUT_FILES)):
        raise ValueError(f"output folder {out_dir} holds other files ({sorted(names)[:3]}...) and is not an "
                         "ecins-link output folder; choose an empty or new --out")


def _marker(out_dir: Path) -> dict | None:
    """What the output folder about to be replaced held (run id, purpose), for the audit; None if new."""
    try:
        return json.loads((out_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"run_id": None, "purpose": "unknown (no marker)"} if out_dir.exists() else None


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Rename the finished ``tmp`` folder to ``out_dir`` (the old one, if any, is moved aside then removed)."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "previous")
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _category_of(store: Store) -> dict[str, str]:
    """signal code -> category, from the signals table (and the shipped taxonomy as a fallback)."""
    mapping: dict[str, str] = {}
    try:
        from ecins_link.scoring.taxonomy import DEFAULT_TAXONOMY, load_taxonomy

        mapping.update({s.code: s.category for s in load_taxonomy(DEFAULT_TAXONOMY).signals})
    except Exception:  # noqa: BLE001 - the signals table below is the authority when present
        pass
    if store.has_table("signals"):
        rows = store.con.execute("SELECT DISTINCT signal, category FROM signals WHERE signal IS NOT NULL").fetchall()
        mapping.update({str(s): str(c) for s, c in rows if c is not None})
    return mapping


def write_outputs(store: Store, config: ProjectConfig, out_dir: Path, purpose: str | None = None, *,
                  max_charts: int = 500) -> dict:
    """Write a run's output folder: CSVs, Parquet files and the HTML panel pack, for ``purpose`` if given.

    Files: accounting.csv, quarantine.csv, persons.parquet, addresses.parquet, flags.parquet, worklist.csv,
    panel/index.html and panel/cases/case_<hash>.html.  With a purpose only its rules' flags are included,
    detail only from its agencies and categories, other partners existence-only, and only its fields.
    ``max_charts``: case pages ranked beyond this get no timeline chart (its signals stay listed in the
    provenance table): a chart is cheap (drawn as SVG text, < 1 ms) but adds ~5 KB to every page, and a pack
    is for a panel, not a population.
    Appends two 'disclosure' audit rows (pack built, files exported) with counts, no names.
    Returns ``{"out_dir", "purpose", "files": {name: path}, "counts": {name: rows}, "seconds"}``.
    """
    started = time.perf_counter()
    view = view_for(config, purpose)
    out_dir = Path(out_dir).absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir):
        _replaceable(out_dir)
        for stale in [*out_dir.parent.glob(f".{out_dir.name}.tmp-*"), *out_dir.parent.glob(f".{out_dir.name}.old-*")]:
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed run (we hold the lock: nobody else's)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
        try:
            counts, flags = _write_all(store, config, view, tmp, purpose, max_charts)
            (tmp / MARKER).write_text(json.dumps({"run_id": store.run_id, "purpose": purpose}), encoding="utf-8")
            os.chmod(tmp, 0o755)
            replaced = _marker(out_dir)
            _swap_in(tmp, out_dir)
        except BaseException as err:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(err):
                raise DiskFullError(f"writing the output folder {out_dir} (the previous outputs are untouched)",
                                    err) from err
            raise
    files = {name: out_dir / name for name in ("accounting.csv", "quarantine.csv", "persons.parquet",
                                               "addresses.parquet", "flags.parquet", "worklist.csv")}
    files["panel"] = out_dir / "panel" / "index.html"
    store.audit("disclosure", "panel_pack_built",
                {"purpose": purpose, "cases": counts["case_pages"], "rules": sorted(set(flags["rule"])),
                 "out_dir": str(out_dir)},
                {"cases": counts["case_pages"], "flags": counts["flags"]}, purpose=purpose)
    store.audit("disclosure", "run_outputs_exported",
                {"purpose": purpose, "files": sorted(p.name for p in files.values()), "out_dir": str(out_dir),
                 "replaced": replaced},
                {k: v for k, v in counts.items() if k != "explained_links"}, purpose=purpose)
    return {"out_dir": out_dir, "purpose": purpose, "files": files, "counts": counts,
            "seconds": round(time.perf_counter() - started, 3)}


def _write_all(store: Store, config: ProjectConfig, view: View, out_dir: Path, purpose: str | None,
               max_charts: int) -> tuple[dict, object]:
    """Write every file of the output folder into ``out_dir``; returns (counts, flags)."""
    as_of = config.project.as_of.isoformat() if config.project.as_of else "latest event date"
    run_label = (f"{config.project.name} · as of {as_of} · run {store.run_id} · "
                 f"built {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    # the CSV/Parquet files are written by a second thread on its own cursor (DuckDB and Arrow release the
    # GIL) while this one builds the panel pack
    with ThreadPoolExecutor(max_workers=1) as side, store.reader() as cursor:
        basic = side.submit(write_basic_tables, cursor, config, view, out_dir)
        flags = load_flags(store, view, _category_of(store))
        cases = build_cases(flags)
        flag_tables = side.submit(write_flag_tables, cursor, flags, cases, out_dir)
        sources = source_agencies(store, config)
        panel = PanelBuilder(store, view, flags, cases, sources, run_label, max_charts, config=config)
        panel.prepare()
        counts = {**basic.result(), **flag_tables.result()}
    counts.update(panel.render(out_dir / "panel"))  # (no other thread left: it may fork)
    return counts, flags
