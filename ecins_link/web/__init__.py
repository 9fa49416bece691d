"""The panel workspace: a Django web app where panels review flagged cases, record decisions and are audited.

``ecins-link serve PROJECT.toml`` configures Django programmatically (:mod:`ecins_link.web.setup`), keeps the
app's own data (users, decisions, notes, audit of every view) in ``<project>/web/app.sqlite3`` and serves the
latest completed run from a published read-only snapshot (:mod:`ecins_link.web.snapshot`), so it keeps working
while a batch holds the store.
"""
