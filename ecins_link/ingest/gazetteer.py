"""Gazetteer rows of a source -> the ``gazetteer`` ingest table (BS7666 / AddressBase parts composed).

An LLPG or AddressBase extract gives a property's parts as BS7666 does: the secondary addressable object
(SAO: start and end number, their suffixes, and text, e.g. "FLAT" 2, or "FIRST FLOOR FLAT") and the primary
addressable object (PAO: start/end number + suffix, e.g. 12A or 12-14, and text, e.g. "BIRCH HOUSE").  The
ingest table keeps the one-column forms every later stage reads (``sub_building``, ``number``,
``building_name``), composed from the parts when the project maps the parts and not the one-column form, and
carries ``parent_uprn``, ``classification`` and the coordinates through as text.  Nothing is interpolated from
the project file but validated, quoted column names.
"""

from __future__ import annotations

from ecins_link.config import GazetteerMapping
from ecins_link.ingest.sql import val

COLUMNS = ("uprn VARCHAR, sub_building VARCHAR, number VARCHAR, building_name VARCHAR, organisation VARCHAR, "
           "street VARCHAR, locality VARCHAR, town VARCHAR, postcode VARCHAR, parent_uprn VARCHAR, "
           "classification VARCHAR, x VARCHAR, y VARCHAR")


def _opt(col: str | None) -> str:
    return val(col) if col else "CAST(NULL AS VARCHAR)"


def _number(num: str | None, suffix: str | None) -> str:
    """A BS7666 number and its suffix as one token ('12' + 'a' -> '12A'); NULL without a number."""
    n = f"regexp_replace({_opt(num)}, '\\.0+$', '')"  # a spreadsheet's 12.0
    return f"CASE WHEN {_opt(num)} IS NOT NULL THEN upper({n} || coalesce({_opt(suffix)}, '')) END"


def number_range_sql(start: str | None, start_suffix: str | None, end: str | None, end_suffix: str | None) -> str:
    """SQL: a BS7666 start/end number pair as one token: '12A', or '12-14' when an end number is given."""
    a, b = _number(start, start_suffix), _number(end, end_suffix)
    return f"CASE WHEN {b} IS NOT NULL AND {b} <> {a} THEN {a} || '-' || {b} ELSE {a} END"


def gazetteer_select(g: GazetteerMapping, rows: str) -> str:
    """SQL selecting the ``gazetteer`` table's columns (:data:`COLUMNS`) from the source rows ``rows``."""
    sao_num = number_range_sql(g.sao_start_number, g.sao_start_suffix, g.sao_end_number, g.sao_end_suffix)
    pao_num = number_range_sql(g.pao_start_number, g.pao_start_suffix, g.pao_end_number, g.pao_end_suffix)
    sao = f"nullif(concat_ws(' ', {_opt(g.sao_text)}, {sao_num}), '')"
    sub = f"coalesce({_opt(g.sub_building)}, {sao})" if g.sub_building else sao
    number = f"coalesce({_opt(g.number)}, {pao_num})" if g.number else pao_num
    building = f"coalesce({_opt(g.building_name)}, {_opt(g.pao_text)})" if g.building_name else _opt(g.pao_text)
    cols = [_opt(g.uprn), sub, number, building, _opt(g.organisation), _opt(g.street), _opt(g.locality),
            _opt(g.town), _opt(g.postcode), _opt(g.parent_uprn), _opt(g.classification), _opt(g.x), _opt(g.y)]
    names = [c.split()[0] for c in COLUMNS.split(", ")]
    return f"SELECT {', '.join(f'{c} AS {n}' for c, n in zip(cols, names, strict=True))} FROM {rows}"
