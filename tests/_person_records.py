"""Hand-made person records for the pass tests: a DuckDB connection holding ``person_std`` as standardise writes it."""

from __future__ import annotations

import duckdb

from ecins_link.matching.person_febrl import append_person_std
from ecins_link.standardise.names import surname_variant_table


def person_std_of(rows: list[dict]) -> duckdb.DuckDBPyConnection:
    """A new in-memory connection with ``person_std`` built from ``rows`` (``append_person_std``), plus what
    standardise derives from the packaged vocabulary: the canonical surname (HUSSEIN -> HUSSAIN)."""
    con = duckdb.connect()
    append_person_std(con, rows)
    con.register("_sv", surname_variant_table())
    con.execute("ALTER TABLE person_std ADD COLUMN surname_canonical VARCHAR")
    con.execute("""UPDATE person_std SET surname_canonical = coalesce(
                       (SELECT canonical FROM _sv WHERE variant = person_std.surname_compact), surname_compact)""")
    con.unregister("_sv")
    return con
