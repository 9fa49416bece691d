"""Read a Parquet extract into the all-text table of :mod:`ecins_link.ingest.readers`."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ecins_link.ingest.sniff import ReadError, clean_header, with_info
from ecins_link.ingest.sql import ISSUE, RAW, ROW


def _nested(typ: pa.DataType) -> bool:
    return pa.types.is_nested(typ) or pa.types.is_dictionary(typ) and pa.types.is_nested(typ.value_type)


def _as_text(col: pa.ChunkedArray, nested: bool) -> pa.ChunkedArray:
    """A Parquet column as text: Arrow's cast where it has one (timestamps to whole seconds, ISO), else
    DuckDB's (nested values become JSON).  Raises ValueError when neither can."""
    if pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.timestamp("s", tz=col.type.tz), safe=False)
    if not nested:
        try:
            return pc.cast(col, pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            pass
    import duckdb

    con = duckdb.connect()
    try:
        con.register("_ecins_col", pa.table({"v": col}))
        expr = "to_json(v)::VARCHAR" if nested else "CAST(v AS VARCHAR)"
        return con.execute(f"SELECT {expr} AS v FROM _ecins_col").to_arrow_table().column("v")
    except duckdb.Error as err:
        raise ValueError(str(err).splitlines()[0]) from None
    finally:
        con.close()


def read_parquet(path: Path, wanted: set[str] | None = None) -> pa.Table:
    """Read a Parquet file; every column as text (dates as ISO).

    Nested (struct, list, map) columns are ignored unless ``wanted`` (the mapped columns) names them, when
    they become JSON text; a column of a type that cannot be shown as text is ignored likewise, or is a
    :class:`ReadError` naming it when mapped.  Headers are cleaned as for CSV (:func:`clean_header`).
    """
    import pyarrow.parquet as pq

    if not path.exists():
        raise ReadError("file not found")
    try:
        t = pq.ParquetFile(path).read()  # by position: unlike read_table, copes with repeated column names
    except Exception as err:  # noqa: BLE001
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise ReadError(f"not a readable Parquet file ({type(err).__name__}: {detail})") from None
    names, notes = clean_header(t.schema.names)
    wanted = wanted or set()
    arrays = {ROW: pa.array(range(1, t.num_rows + 1), pa.int64()),
              ISSUE: pa.nulls(t.num_rows, pa.string()), RAW: pa.nulls(t.num_rows, pa.string())}
    ignored = []
    for k, name in enumerate(names):
        col = t.column(k)
        nested = _nested(col.type)
        if nested and name not in wanted:
            ignored.append({"column": name, "type": str(col.type), "problem": "nested column ignored (not mapped)"})
            continue
        try:
            arrays[name] = _as_text(col, nested)
        except (ValueError, pa.ArrowException) as err:
            if name in wanted:
                raise ReadError(f"mapped column {name!r} of type {col.type} cannot be read as text: {err}") from None
            ignored.append({"column": name, "type": str(col.type), "problem": f"column of type {col.type} ignored"})
    return with_info(pa.table(arrays), encoding="parquet", delimiter=None, header_notes=notes, ignored=ignored)
