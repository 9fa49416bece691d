"""mkdocs hooks for the docs site (``hooks:`` in mkdocs.yml).

Some pages are written alongside other parts of the engine (the governance page, the Spark backend page, the
rules guide). Pages link to them by name; so that ``mkdocs build --strict`` still checks every other link, a
page named here that is absent from ``docs/`` is generated as a short stub saying so. Once the real page is in
``docs/`` the hook does nothing for it.
"""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

PENDING_PAGES = {
    "governance.md": "Governance: purposes, the audit log, research export and purge",
    "spark.md": "The Spark backend for the persons stage",
    "rules-guide.md": "Rules guide: writing a partnership's own taxonomy and rules",
}


def on_files(files: Files, config: Any) -> Files:
    """Add a stub page for each pending page that is not in ``docs/``."""
    for name, title in PENDING_PAGES.items():
        if files.get_file_from_path(name) is None:
            content = (f"# {title}\n\nThis page is not part of this build of the documentation. "
                       "See the [home page](index.md) for the pages that are.\n")
            files.append(File.generated(config, name, content=content))
    return files
