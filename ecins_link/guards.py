"""Checks that keep settings, paths and files from becoming something else (docs/governance.md).

* :func:`check_memory_limit` - a DuckDB memory size (``"6GB"``, ``"512 MiB"``) or an error; the value is then
  *bound* (``SET memory_limit = ?``), never pasted into SQL text.
* :func:`confine` - a path from a project file must resolve (symlinks followed) inside the project folder or a
  folder the project file explicitly allows.
* :func:`check_duckdb_file` - a store path is a DuckDB database file or absent; anything else is an error.
* :func:`is_disk_full` / :class:`DiskFullError` - a full disk is reported as a full disk.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

import duckdb

# a number and a unit DuckDB understands (1000^i or 1024^i); nothing else may reach the setting
MEMORY_LIMIT_RE = re.compile(r"^\s*(\d{1,7}(?:\.\d{1,3})?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)
_DUCKDB_MAGIC = b"DUCK"  # bytes 8..11 of every DuckDB database file


class DiskFullError(OSError):
    """No space left on the device while writing the store or an output folder."""

    def __init__(self, what: str, cause: BaseException | None = None) -> None:
        super().__init__(errno.ENOSPC, f"disk full (no space left on device) while {what}"
                         + (f": {cause}" if cause else ""))


def check_memory_limit(value: object) -> str:
    """``value`` as a canonical memory size (``"6GB"``); ``ValueError`` unless it is one number and one unit."""
    match = MEMORY_LIMIT_RE.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"memory_limit must be a number and a unit such as '6GB' or '512MiB', not {value!r}")
    unit = match.group(2)
    unit = unit.upper() if "i" not in unit.lower() else unit[0].upper() + "iB"
    return f"{match.group(1)}{unit}"


def set_memory_limit(con: duckdb.DuckDBPyConnection, value: str) -> None:
    """Validate ``value`` and apply it to ``con`` as a bound parameter."""
    con.execute("SET memory_limit = ?", [check_memory_limit(value)])


def confine(path: Path, root: Path, allowed: list[Path] | tuple[Path, ...] = (), what: str = "path") -> Path:
    """``path`` resolved; ``ValueError`` unless it lies inside ``root`` or one of the ``allowed`` folders."""
    resolved = Path(path).resolve()
    for folder in (Path(root), *allowed):
        folder = folder.resolve()
        if resolved == folder or folder in resolved.parents:
            return resolved
    raise ValueError(f"{what} {path} resolves to {resolved}, outside the project folder {Path(root).resolve()}; "
                     "list its folder in project.allow_paths_outside to allow it")


def check_duckdb_file(path: Path) -> None:
    """``ValueError`` if ``path`` exists and is not a DuckDB database file (a store is a DuckDB file or absent)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_file():
        raise ValueError(f"store {path} exists but is not a file")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if len(head) == 0:
        raise ValueError(f"store {path} is an empty file, not a DuckDB database; remove it or choose another path")
    if head[8:12] != _DUCKDB_MAGIC:
        raise ValueError(f"store {path} exists but is not a DuckDB database file; refusing to use or overwrite it")


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or its cause) says the device is full."""
    seen = 0
    while err is not None and seen < 5:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(err).lower()
        if "no space left on device" in text or "disk is full" in text or "disk quota exceeded" in text:
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False
