"""``ecins-link serve``: the workspace on waitress (a production WSGI server, pure Python, no build step,
multi-threaded), with a background thread that publishes each newly completed run and writes queued
overrides once no batch holds the store."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)
AUDIT_FLUSH_SECONDS = 3600.0


def _refresher(stop: threading.Event, every: float) -> None:
    from ecins_link.web import setup
    from ecins_link.web.overrides_queue import apply_pending, flush_audit
    from ecins_link.web.views import holder

    last_flush = time.monotonic()
    while not stop.wait(every):
        try:
            before = holder().get()
            after = holder().publish()
            config = setup.project_config()
            apply_pending(config)  # opens the store only when an override is waiting
            # the app's audit reaches the store's log right after a run was published (the store was just
            # free), or hourly: never on every tick, so the app does not take the store's lock while a batch
            # might be starting
            fresh = after is not None and (before is None or before.run_id != after.run_id)
            if fresh or time.monotonic() - last_flush > AUDIT_FLUSH_SECONDS:
                flush_audit(config)
                last_flush = time.monotonic()
        except Exception as err:  # noqa: BLE001 - keep serving the snapshot we have
            log.warning("snapshot refresh failed: %s", err)


def make_app(project: Path, https: bool = False):  # noqa: ANN201 - a WSGI callable
    """Configure Django for ``project``, publish the latest completed run, return the WSGI application."""
    from ecins_link.web import setup

    setup.configure(project, https=https)
    from django.core.wsgi import get_wsgi_application

    from ecins_link.web.views import holder

    holder().publish()
    return get_wsgi_application()


def serve(project: Path, host: str = "127.0.0.1", port: int = 8000, threads: int = 8, https: bool = False,
          refresh_seconds: float = 30.0) -> None:
    """Serve the workspace until interrupted."""
    import waitress

    app = make_app(project, https=https)
    stop = threading.Event()
    thread = threading.Thread(target=_refresher, args=(stop, refresh_seconds), daemon=True, name="ecins-refresh")
    thread.start()
    try:
        waitress.serve(app, host=host, port=port, threads=threads, ident="ecins-link", clear_untrusted_proxy_headers=True)
    finally:
        stop.set()
