"""Which scored pairs the persons stage keeps in ``person_pairs`` (read from the scratch table ``_pp_all``)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ecins_link.components import label_components
from ecins_link.matching.person_fields import table_columns


def kept_pairs(scratch: duckdb.DuckDBPyConnection, nodes: str, keep: float, threshold: float) -> pa.Table:
    """The scored pairs (``_pp_all``) that ``person_pairs`` keeps: those the model or the steps after it put at or
    above ``keep`` (one a step weighed down is kept while the model's score reaches it), and every pair inside a
    group of records joined by pairs at or above ``threshold`` (the over-merge guard's contradictions and side
    evidence).  An incremental run carries them and clusters as the full run did."""
    cols = table_columns(scratch, "_pp_all")
    extra = ", ".join(c if c in cols else f"NULL::{t} AS {c}" for c, t in
                      (("link_rule", "VARCHAR"), ("model_weight", "DOUBLE"), ("model_probability", "DOUBLE")))
    label_components(scratch, f'SELECT unique_id AS node FROM "{nodes}"',
                     f"SELECT unique_id_l AS a, unique_id_r AS b FROM _pp_all WHERE match_probability >= {threshold}",
                     "_pp_groups")
    try:
        return scratch.execute(f"""SELECT p.unique_id_l, p.unique_id_r, p.match_weight, p.match_probability, {extra}
            FROM _pp_all p LEFT JOIN _pp_groups x ON x.node = p.unique_id_l LEFT JOIN _pp_groups y ON y.node = p.unique_id_r
            WHERE greatest(p.match_probability, coalesce(p.model_probability, p.match_probability)) >= {keep}
               OR x.cid = y.cid""").to_arrow_table()
    finally:
        scratch.execute("DROP TABLE IF EXISTS _pp_groups")
