"""Hand-made person records for the pass tests: a DuckDB connection holding ``person_std`` as standardise writes it,
and one second-look pass run over them between two clusterings."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from ecins_link.matching.person_clusters import cluster
from ecins_link.matching.person_febrl import append_person_std
from ecins_link.matching.person_model import load_model_config
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


def run_pass(run: Callable[..., dict], section: str, rows: list[dict], pairs: list[tuple],
             held: list[str] | None = None, **cfg: object) -> tuple[dict, dict[str, str]]:
    """Cluster ``rows`` on the scored ``pairs`` with the packaged guard, run the pass ``run`` (a second-look pass:
    ``run(con, nodes, pairs, clusters, threshold, mc, held)``) with ``[section]`` of the packaged model updated by
    ``cfg``, cluster again; returns what the pass did and each record key's cluster.  A pair is ``(a, b, weight)``
    between two records of source ``s``, or ``(a, b, weight, source_a, source_b)``."""
    con = person_std_of(rows)
    con.execute("CREATE TABLE pp (unique_id_l VARCHAR, unique_id_r VARCHAR, match_weight DOUBLE, "
                "match_probability DOUBLE)")
    con.executemany("INSERT INTO pp VALUES (?, ?, ?, 1.0 / (1.0 + pow(2.0, -?)))",
                    [(f"{sa}:{min(a, b)}", f"{sb}:{max(a, b)}", w, w) for a, b, w, sa, sb in
                     ((*p, "s", "s") if len(p) == 3 else p for p in pairs)])
    mc = load_model_config()
    mc[section] = {**mc[section], **cfg}
    cluster(con, "person_std", "pp", 0.95, [], [], mc["guard"], "raw")
    done = run(con, "person_std", "pp", "raw", 0.95, mc, held)
    cluster(con, "person_std", "pp", 0.95, [], [], mc["guard"], "raw")
    cid = {k.split(":", 1)[1]: v for k, v in con.execute("SELECT unique_id, cluster_id FROM raw").fetchall()}
    con.close()
    return done, cid
