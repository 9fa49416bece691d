"""Forked page rendering (ecins_link.report.fanout): the pack is the same however many workers render it,
and a worker that fails costs time, not pages."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from test_report_fixtures import build_store, config

from ecins_link.report import fanout, panel, write_outputs

RUN_LABEL = re.compile(r" · run [0-9a-f]+ · built \d{4}-\d\d-\d\d \d\d:\d\d")


def _folder(out: Path) -> dict[str, bytes]:
    """Every file of an output folder (the run label, which names the run and its minute, normalised)."""
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            files[str(p.relative_to(out))] = RUN_LABEL.sub(" · RUN", data.decode()).encode() if p.suffix == ".html" else data
    return files


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_pack_identical_with_forked_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = build_store(tmp_path / "s.duckdb")
    monkeypatch.setattr(panel, "default_workers", lambda n: 1)
    one = write_outputs(store, config(), tmp_path / "one")
    monkeypatch.setattr(panel, "default_workers", lambda n: 3)
    three = write_outputs(store, config(), tmp_path / "three")
    assert one["counts"] == three["counts"] and one["counts"]["case_pages"] >= 3
    assert _folder(tmp_path / "one") == _folder(tmp_path / "three")
    store.close()


def test_failed_worker_share_is_redone_in_parent(tmp_path: Path) -> None:
    parent = os.getpid()

    def write(share: list[int]) -> None:
        if os.getpid() != parent and 1 in share:
            raise RuntimeError("worker failure")  # the child holding item 1 fails before writing
        for i in share:
            (tmp_path / f"{i}.txt").write_text(str(os.getpid() == parent))

    fanout.forked_map(write, list(range(9)), 3)
    written = {p.stem: p.read_text() for p in tmp_path.glob("*.txt")}
    assert sorted(written, key=int) == [str(i) for i in range(9)]
    if hasattr(os, "fork"):
        assert {written[str(i)] for i in (1, 4, 7)} == {"True"}  # redone by the parent
        assert {written[str(i)] for i in (2, 5, 8)} == {"False"}  # written by the other worker


def test_default_workers_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fanout.default_workers(10) == 1  # too few pages to be worth a fork
    monkeypatch.setenv(fanout.ENV_WORKERS, "1")
    assert fanout.default_workers(100_000) == 1


def test_rewritten_folder_holds_only_this_runs_pages(tmp_path: Path) -> None:
    """Writing a purpose's pack over a full pack leaves exactly the purpose's pages (stale ones removed,
    the others rewritten)."""
    store = build_store(tmp_path / "s.duckdb")
    write_outputs(store, config(), tmp_path / "o")
    full_pages = {p.name for p in (tmp_path / "o" / "panel" / "cases").glob("case_*.html")}
    write_outputs(store, config(), tmp_path / "fresh", purpose="marac")
    write_outputs(store, config(), tmp_path / "o", purpose="marac")
    pages = {p.name for p in (tmp_path / "o" / "panel" / "cases").glob("case_*.html")}
    assert pages < full_pages
    assert _folder(tmp_path / "o") == _folder(tmp_path / "fresh")
    store.close()
