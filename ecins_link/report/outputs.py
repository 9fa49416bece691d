"""``write_outputs``: the public output folder of a run (docs/architecture.md, "Public contract of a run")."""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ecins_link.config import ProjectConfig
from ecins_link.report.panel import PanelBuilder
from ecins_link.report.tables import (
    build_cases,
    load_flags,
    source_agencies,
    write_basic_tables,
    write_flag_tables,
)
from ecins_link.report.views import view_for
from ecins_link.store import Store


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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
        panel = PanelBuilder(store, view, flags, cases, sources, run_label, max_charts)
        panel.prepare()
        counts = {**basic.result(), **flag_tables.result()}
    counts.update(panel.render(out_dir / "panel"))  # (no other thread left: it may fork)
    files = {name: out_dir / name for name in ("accounting.csv", "quarantine.csv", "persons.parquet",
                                               "addresses.parquet", "flags.parquet", "worklist.csv")}
    files["panel"] = out_dir / "panel" / "index.html"
    store.audit("disclosure", "panel_pack_built",
                {"purpose": purpose, "cases": counts["case_pages"], "rules": sorted(set(flags["rule"])),
                 "out_dir": str(out_dir)},
                {"cases": counts["case_pages"], "flags": counts["flags"]}, purpose=purpose)
    store.audit("disclosure", "run_outputs_exported",
                {"purpose": purpose, "files": sorted(p.name for p in files.values()), "out_dir": str(out_dir)},
                {k: v for k, v in counts.items() if k != "explained_links"}, purpose=purpose)
    return {"out_dir": out_dir, "purpose": purpose, "files": files, "counts": counts,
            "seconds": round(time.perf_counter() - started, 3)}
