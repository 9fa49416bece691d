"""SQL fragments for ingest: quoting, date parsing, name splitting, unsafe-value detection."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

ISO_DATE_FORMATS = ["%Y-%m-%d"]

# Working columns live in a namespace no extract column can use: every header is stripped of surrounding
# whitespace when read (readers.clean_header), so no extract column name starts with a space.
NS = " _"
ROW, ISSUE, RAW = NS + "row", NS + "issue", NS + "raw"  # added by the readers
KEY, REASON, LONGEST, HASH, DUP = NS + "key", NS + "reason", NS + "longest", NS + "h", NS + "dup"
PKEY, PSRC = NS + "pkey", NS + "psrc"  # the resolved person reference of an event row
INTERNAL = (ROW, ISSUE, RAW)


def work(name: str) -> str:
    """A quoted working column (``name`` is one of the constants above)."""
    return q(name)


def dcol(col: str) -> str:
    """Working column: the parsed TIMESTAMP of date column ``col``."""
    return q(NS + "d_" + col)


def tcol(col: str) -> str:
    """Working column: whether date column ``col`` carries a time of day."""
    return q(NS + "t_" + col)
ISO_DATETIME_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """Quote a string literal."""
    return "'" + value.replace("'", "''") + "'"


def val(col: str) -> str:
    """A source column as trimmed text, NULL when empty."""
    return f"NULLIF(trim(CAST({q(col)} AS VARCHAR)), '')"


def ok_col(col: str, fn: str) -> str:
    """Working column saying whether ``col`` is valid as a ``fn`` ('pc', 'ph', 'em') field (computed once per row)."""
    return q(f"{NS}ok_{fn}_{col}")


def fmt_list(formats: list[str]) -> str:
    """A DuckDB list literal of strptime formats (duplicates dropped, order kept)."""
    seen = list(dict.fromkeys(formats))
    return "[" + ", ".join(lit(f) for f in seen) + "]"


def date_sql(col: str, date_formats: list[str], datetime_formats: list[str]) -> str:
    """TIMESTAMP parsed with the source's formats (datetime first), then ISO; NULL if none fits."""
    fmts = datetime_formats + date_formats + ISO_DATETIME_FORMATS + ISO_DATE_FORMATS
    return f"try_strptime({val(col)}, {fmt_list(fmts)})"


def has_time_sql(col: str, datetime_formats: list[str]) -> str:
    """Whether the value parses with a datetime (not just a date) format."""
    return f"(try_strptime({val(col)}, {fmt_list(datetime_formats + ISO_DATETIME_FORMATS)}) IS NOT NULL)"


@cache
def name_vocab() -> dict[str, list[str]]:
    """Titles, suffixes and surname particles from the shipped ``names.toml``."""
    text = (Path(__file__).parents[1] / "standardise" / "data" / "names.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def split_full_name(col: str, name_format: str) -> tuple[str, str]:
    """(forenames SQL, surname SQL) for a full-name column; ``auto`` = comma form when a comma is present."""
    v = f"regexp_replace({val(col)}, '\\s+', ' ', 'g')"
    vocab = name_vocab()
    particles = "|".join(vocab["surname_particles"])
    titles = "|".join(vocab["titles"])
    # a particle before the last word joins the surname ("Ludwig van Beethoven", "Sean O Brien", "Mr De Souza")
    # unless it is one letter and nothing but a title comes before it: "Mr O Wood" is Mr O. Wood
    # the match starts at a word: "Michael Wright" is not "Micha" + "el Wright", nor "Belal" "Bel" + "al ..."
    with_particles = f"regexp_extract({v}, '(?i)(?:^| )((?:(?:{particles}) )*[^ ]+)$', 1)"
    last_word = f"regexp_extract({v}, '([^ ]+)$', 1)"
    rest = f"trim(left({v}, length({v}) - length({with_particles})))"
    sur_last = (f"CASE WHEN regexp_full_match({rest}, '(?i)((?:{titles})\\.? ?)*') "
                f"AND regexp_matches({with_particles}, '^[^ ] ') THEN {last_word} "
                f"ELSE {with_particles} END")
    fore_last = f"NULLIF(trim(left({v}, length({v}) - length({sur_last}))), '')"
    sur_comma = f"NULLIF(trim(split_part({v}, ',', 1)), '')"
    fore_comma = f"NULLIF(trim(substr({v}, strpos({v}, ',') + 1)), '')"
    comma = f"strpos({v}, ',') > 0"
    if name_format == "forenames_surname":
        return fore_last, sur_last
    return (f"CASE WHEN {comma} THEN {fore_comma} ELSE {fore_last} END",
            f"CASE WHEN {comma} THEN {sur_comma} ELSE {sur_last} END")


def unsafe_sql(columns: list[str]) -> str:
    """TRUE when some value starts like a spreadsheet formula (= + - @) or contains HTML (< >).

    Plain signed numbers and phone numbers (+44 ..., -1.5) are not formulas.
    """
    if not columns:
        return "FALSE"
    # cheap screen over all values at once; the exact per-column test runs only on rows it flags
    joined = f"concat_ws(chr(31), {', '.join(q(c) for c in columns)})"
    screen = f"regexp_matches({joined}, '(?:^|\\x1f)\\s*[=+@-]|[<>]')"
    parts = []
    for c in columns:
        x = q(c)
        parts.append(f"(regexp_matches({x}, '^\\s*[=+@-]') AND NOT regexp_full_match(trim({x}), '[+-]?[0-9 ().,/-]*')"
                     f" OR regexp_matches({x}, '[<>]'))")
    return f"CASE WHEN {screen} THEN coalesce(" + " OR ".join(parts) + ", FALSE) ELSE FALSE END"
