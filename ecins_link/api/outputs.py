"""Reading the files of a run's output folder (the public output contract) as pandas or Arrow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_CSV_TYPES: dict[str, dict[str, type] | None] = {"worklist.csv": {"case": str, "entity_id": str}}


def read_output(path: Path, as_arrow: bool = False) -> Any:
    """One output file as a pandas DataFrame, or a ``pyarrow.Table`` with ``as_arrow``.

    Parquet files keep their own types; ``quarantine.csv`` is read as text throughout (row text as received,
    empty cells as ``""``); other CSV files with pandas' type inference (ids as text).
    """
    import pandas as pd

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return table if as_arrow else table.to_pandas()
    if path.name == "quarantine.csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    else:
        df = pd.read_csv(path, dtype=_CSV_TYPES.get(path.name), encoding="utf-8-sig")
    if as_arrow:
        import pyarrow as pa

        return pa.Table.from_pandas(df, preserve_index=False)
    return df
