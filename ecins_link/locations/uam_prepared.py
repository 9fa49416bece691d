"""uk_address_matcher's prepared gazetteer kept between runs, next to the store, for the same gazetteer and matcher.

Preparing the gazetteer side of the matcher (cleaning, term frequencies, road catalogue, inverted index, postcode-wide
name keys) is the locations stage's longest fixed cost: about 9 CPU seconds for a 144k-row gazetteer.  It depends
only on the gazetteer rows the matcher reads (:func:`ecins_link.locations.uam.canonical_sql`), the matcher's code and
DuckDB.  A weekly run on the same gazetteer therefore loads the result of the last preparation instead of repeating
it, and gets the same answers (``tests/test_uam_prepared.py`` checks that the answers are byte-identical).

The *fingerprint* names what the preparation depends on: an MD5 of every gazetteer row as the matcher reads it, the
versions of uk_address_matcher, Splink, DuckDB and pyarrow, the ``cleaning_chunks`` setting, and :data:`FORMAT` (the
layout of this cache, raised when this module or the session's own preparation step changes).  Another fingerprint
is a miss: the gazetteer is prepared again and the folder replaced.

Layout: folder ``<store file>.ukam-gazetteer/`` holding one sub-folder named by the fingerprint, with one Parquet
file per prepared relation and ``manifest.json`` (written last: a folder without it is ignored) recording each
relation's column types, which are cast back on load (:class:`Writer`: the parts may be written at different times,
the largest while the matcher already runs, and the fingerprint found last).  Only the last fingerprint is kept.  It holds gazetteer data
only (no person or event record); ``purge`` deletes it with the other derived data (:func:`drop`), and
``gazetteer_cache = false`` under ``[uk_address_matcher]`` in ``location_rules.toml`` turns it off.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb

from ecins_link.locations.uam_cache import gazetteer_digest, library_versions

log = logging.getLogger(__name__)

FORMAT = 1
SUFFIX = ".ukam-gazetteer"
MANIFEST = "manifest.json"
# the prepared relations of one matcher: name -> Parquet file
PARTS = ("addresses", "term_frequencies", "inverted_index", "roadlike_places")
_SETTINGS = ("cleaning_chunks",)  # the settings the preparation depends on


def folder_for(store_path: str | Path | None, settings: dict) -> Path | None:
    """Where a store keeps its prepared gazetteer, or None when the cache is off or the store is not a file."""
    if store_path is None or not settings.get("gazetteer_cache", True):
        return None
    path = Path(store_path)
    if str(path) in ("", ":memory:") or path.name.startswith(":memory:"):
        return None
    return path.with_name(path.name + SUFFIX)


def fingerprint(con: duckdb.DuckDBPyConnection, table: str, settings: dict, digest: str | None = None) -> str:
    """The gazetteer rows of ``table`` (unique_id, address_concat, postcode) on ``con``, the settings the
    preparation depends on, the library versions and :data:`FORMAT`, as one MD5.  ``digest``: those rows'
    :func:`~ecins_link.locations.uam_cache.gazetteer_digest` when already known (then ``table`` is not read)."""
    rows = digest if digest is not None else gazetteer_digest(con, f"SELECT * FROM {table}")
    versions = library_versions(("uk_address_matcher", "splink", "duckdb", "pyarrow"))
    text = json.dumps({"gazetteer": rows, "settings": {k: settings.get(k) for k in _SETTINGS},
                       "versions": versions, "format": FORMAT}, sort_keys=True, default=str)
    return con.execute("SELECT md5(?)", [text]).fetchone()[0]


def has_copy(folder: Path | None) -> bool:
    """Whether ``folder`` holds a finished copy of some fingerprint (if not, a run need not fingerprint the
    gazetteer before preparing it: nothing could be loaded)."""
    if folder is None:
        return False
    try:
        return any((p / MANIFEST).is_file() for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return False


def load(con: duckdb.DuckDBPyConnection, folder: Path | None, fp: str) -> dict[str, str] | None:
    """Create table ``ukam_prepared_<part>`` on ``con`` for each part kept under fingerprint ``fp``; return
    {part: table name} (only the parts that were kept), or None when there is no complete copy of ``fp``."""
    if folder is None:
        return None
    where = folder / fp
    try:
        manifest = json.loads((where / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("fingerprint") != fp or manifest.get("format") != FORMAT:
        return None
    tables: dict[str, str] = {}
    try:
        for part, columns in manifest["parts"].items():
            if part not in PARTS:
                return None
            cols = ", ".join(f"CAST({_ident(name)} AS {_type(kind)}) AS {_ident(name)}" for name, kind in columns)
            table = f"ukam_prepared_{part}"
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT {cols} FROM read_parquet(?)",
                        [str(where / f"{part}.parquet")])
            tables[part] = table
    except (duckdb.Error, KeyError, TypeError, ValueError) as err:
        log.warning("uk_address_matcher: the prepared gazetteer in %s is unreadable (%s); preparing it again",
                    where, type(err).__name__)
        for table in tables.values():
            con.execute(f"DROP TABLE IF EXISTS {table}")
        return None
    return tables


class Writer:
    """A prepared gazetteer written part by part into an unfinished folder, then named by its fingerprint
    (:meth:`finish`): a part can be written while the matcher already runs, and the fingerprint found last.

    A failure is logged, never raised (the cache only saves time): the unfinished folder is removed and the
    writer does nothing more (:attr:`failed`)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.failed = folder, False
        self.tmp = folder / f".tmp-{uuid.uuid4().hex}"
        self.parts: dict[str, list[tuple[str, str]]] = {}
        self._guard(lambda: self.tmp.mkdir(parents=True))

    def write(self, relations: dict[str, duckdb.DuckDBPyRelation]) -> bool:
        """Write each part (part -> relation) as Parquet; returns whether all were written."""
        def run() -> None:
            for part, rel in relations.items():
                if part not in PARTS:
                    raise ValueError(f"unknown part {part!r}")
                self.parts[part] = [(name, str(kind)) for name, kind in zip(rel.columns, rel.types, strict=True)]
                rel.write_parquet(str(self.tmp / f"{part}.parquet"))

        return self._guard(run)

    def finish(self, fp: str) -> bool:
        """Write the manifest (last: a folder without it is ignored), remove other fingerprints' copies and rename
        the folder into place as ``fp``; returns whether the copy was kept."""
        def run() -> None:
            (self.tmp / MANIFEST).write_text(json.dumps({"fingerprint": fp, "format": FORMAT, "parts": self.parts},
                                                        indent=1), encoding="utf-8")
            for old in self.folder.iterdir():
                # another fingerprint's copy, or an unfinished one left by a run that stopped over an hour ago (not
                # one another session may be writing now)
                stale = not old.name.startswith(".tmp-") or time.time() - old.stat().st_mtime > 3600
                if old != self.tmp and old.is_dir() and stale:
                    shutil.rmtree(old, ignore_errors=True)
            self.tmp.rename(self.folder / fp)

        return self._guard(run)

    def abandon(self) -> None:
        """Remove the unfinished folder (nothing is kept)."""
        self.failed = True
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _guard(self, step: Callable[[], None]) -> bool:
        if self.failed:
            return False
        try:
            step()
            return True
        except (OSError, duckdb.Error, ValueError) as err:
            log.warning("uk_address_matcher: could not keep the prepared gazetteer in %s (%s)", self.folder,
                        type(err).__name__)
            self.abandon()
            return False


def save(folder: Path | None, fp: str, relations: dict[str, duckdb.DuckDBPyRelation]) -> bool:
    """Write each part (``relations``: part -> relation) under fingerprint ``fp``, replacing any other
    fingerprint's folder; the manifest is written last and the folder renamed into place.  Returns whether it
    was written (a failure is logged, never raised: the cache only saves time)."""
    if folder is None:
        return False
    writer = Writer(folder)
    return writer.write(relations) and writer.finish(fp)


def drop(store_path: str | Path | None) -> bool:
    """Delete a store's prepared gazetteer (``purge``); returns whether there was one."""
    folder = folder_for(store_path, {})
    if folder is None or not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _type(kind: str) -> str:
    """A DuckDB type name from DESCRIBE, checked: letters, digits, brackets, commas, quotes of STRUCT fields."""
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_[](), \"")
    if not kind or set(kind) - allowed:
        raise ValueError(f"unexpected column type {kind!r}")
    return kind
