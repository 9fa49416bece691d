"""Agency extract *dialects*: each source of a town drawn from a catalogue of layouts (``data/dialects.toml``).

``classic`` is the sample town's layout (nothing changes).  ``random`` draws, per source and from the seed,
a separator, an encoding, a header style and quirk, a date style (month-first dates at one source at most),
a name layout, a foreign-key style and a code vocabulary, and rewrites both the extract and its project-file
entry to match, so the same people and events arrive in layouts no code may be tuned to.  Record keys and
truth are unchanged (only how things are written changes); a source that received injected bad rows keeps
the classic layout, since its raw bytes are written by :mod:`ecins_link.synth.badrows`.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from ecins_link.synth.writer import dump_toml, public, write_xlsx

DIALECTS = ("classic", "random")
_CATALOGUE = Path(__file__).resolve().parent / "data" / "dialects.toml"
_DEFAULT_FORMATS = ["%d/%m/%Y", "%Y-%m-%d", "%d-%b-%Y", "%d/%m/%y", "%Y%m%d"]
_DEFAULT_DT = ["%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M:%S"]


@cache
def catalogue() -> dict:
    """The layout catalogue (``data/dialects.toml``)."""
    return tomllib.loads(_CATALOGUE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Layout:
    """One source's drawn layout (names of catalogue entries; ``separator`` is the character)."""

    separator: str = ","
    declare_delimiter: bool = True
    encoding: str = "utf-8"
    header: str = "upper_snake"
    quirk: str = "none"
    dates: str = "classic"
    names: str = "split"
    foreign_key: str = "full_key"
    codes: str = "as_issued"

    def describe(self) -> dict:
        """The layout as a plain dict (for the project file's comment and the town summary)."""
        return asdict(self)


def _pick(rng: np.random.Generator, options: list[dict], exclude: set[str] = frozenset()) -> dict:
    opts = [o for o in options if o["name"] not in exclude]
    w = np.array([o.get("weight", 1) for o in opts], dtype=float)
    return opts[int(rng.choice(len(opts), p=w / w.sum()))]


def draw_layouts(rng: np.random.Generator, formats: dict[str, str], keep_classic: set[str]) -> dict[str, Layout]:
    """A layout per source (``formats``: source -> csv/xlsx/parquet); sources in ``keep_classic`` get Layout()."""
    cat = catalogue()
    out, us_taken = {}, False
    for name, fmt in formats.items():
        draws = {axis: _pick(rng, cat[axis]) for axis in ("separators", "encodings", "headers", "header_quirks",
                                                           "dates", "names", "foreign_keys", "codes")}
        if draws["dates"].get("us") and us_taken:
            draws["dates"] = _pick(rng, cat["dates"], {d["name"] for d in cat["dates"] if d.get("us")})
        declare = bool(rng.random() < cat["declare_delimiter"]["yes"] / sum(cat["declare_delimiter"].values()))
        if name in keep_classic:
            out[name] = Layout()
            continue
        us_taken |= bool(draws["dates"].get("us"))
        text = fmt == "csv"
        quirk = draws["header_quirks"]["name"]
        out[name] = Layout(separator=draws["separators"]["char"] if text else ",", declare_delimiter=declare,
                           encoding=draws["encodings"]["name"] if text else "utf-8", header=draws["headers"]["name"],
                           quirk=quirk if text or quirk != "trailing_delimiter" else "none",
                           dates=draws["dates"]["name"], names=draws["names"]["name"],
                           foreign_key=draws["foreign_keys"]["name"], codes=draws["codes"]["name"])
    return out


def header_name(col: str, style: str) -> str:
    """``NOMINAL_ID`` in a header style (upper_snake, title_spaces, lower_snake, camel)."""
    words = [w for w in col.split("_") if w]
    if style == "title_spaces":
        return " ".join(w.capitalize() for w in words)
    if style == "lower_snake":
        return "_".join(w.lower() for w in words)
    if style == "camel":
        return words[0].lower() + "".join(w.capitalize() for w in words[1:]) if words else col
    return col


def _date_style(name: str) -> dict:
    return next(d for d in catalogue()["dates"] if d["name"] == name)


def _reformat_dates(values: pd.Series, classic_dt: list[str], classic_d: list[str], style: dict) -> pd.Series:
    """Values parsed with the classic formats and written in ``style`` (unparsed values kept as they are)."""
    text = pd.Series([str(v) for v in values.fillna("")], index=values.index, dtype=object)
    out = text.copy()
    done = text.str.strip() == ""
    for fmts, target in ((classic_dt, style["datetime"]), (classic_d, style["date"])):
        for f in fmts:
            parsed = pd.to_datetime(text.where(~done, None), format=f, errors="coerce")
            hit = parsed.notna() & ~done
            if hit.any():
                out[hit] = parsed[hit].dt.strftime(target)
                done |= hit
    return out


def _date_columns(cfg: dict) -> list[str]:
    cols = [cfg.get("person", {}).get(k) for k in ("dob", "resident_from", "resident_to")]
    cols += [cfg.get("event", {}).get("date"), cfg.get("flags", {}).get("date")]
    return [c for c in cols if c]


def transform(df: pd.DataFrame, cfg: dict, layout: Layout) -> tuple[pd.DataFrame, dict]:
    """The extract and its project-file entry in ``layout`` (column names still classic: see :func:`rename`)."""
    out = public(df).copy()
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.items()}
    person, event = cfg.get("person"), cfg.get("event")
    if person and layout.names != "split" and person.get("forenames") and person.get("surname"):
        fore, sur = out[person["forenames"]].fillna("").astype(str), out[person["surname"]].fillna("").astype(str)
        if layout.names == "surname_comma_forenames":
            full = np.where((sur != "") & (fore != ""), sur + ", " + fore, sur + fore)
        else:
            full = (fore + " " + sur).str.strip()
        at = list(out.columns).index(person["forenames"])
        out = out.drop(columns=[person["forenames"], person["surname"]])
        out.insert(min(at, len(out.columns)), "FULL_NAME", full)
        del person["forenames"], person["surname"]
        person["full_name"], person["name_format"] = "FULL_NAME", layout.names
    if layout.dates != "classic" and "gazetteer" not in cfg:
        style = _date_style(layout.dates)
        classic_d = cfg.get("date_formats", _DEFAULT_FORMATS)
        classic_dt = cfg.get("datetime_formats", _DEFAULT_DT)
        for col in _date_columns(cfg):
            out[col] = _reformat_dates(out[col], classic_dt, classic_d, style)
        cfg["date_formats"], cfg["datetime_formats"] = [style["date"]], [style["datetime"]]
    if event and event.get("code") and event.get("codes") and layout.codes != "as_issued":
        col = event["code"]
        if layout.codes == "lower":
            out[col] = out[col].fillna("").astype(str).str.lower()
            event["codes"] = [{**c, "code": c["code"].lower()} for c in event["codes"]]
        else:
            local = {c: str(101 + k) for k, c in enumerate(dict.fromkeys(c["code"] for c in event["codes"]))}
            out[col] = out[col].map(lambda v: local.get(v, v))
            event["codes"] = [{**c, "code": local[c["code"]]} for c in event["codes"]]
    ref = event.get("person_ref") if event else None
    if ref and isinstance(ref.get("column"), list) and len(ref["column"]) > 1 and layout.foreign_key == "person_only":
        keep = ref["column"][-1]
        out = out.drop(columns=[c for c in ref["column"][:-1] if c not in cfg["key"] and c in out.columns])
        event["person_ref"] = {"source": ref["source"], "column": keep, "on": keep}
    if "person" in cfg:
        cfg["person"] = person
    if "event" in cfg:
        cfg["event"] = event
    return out, cfg


def rename(cfg: dict, style: str, styles: dict[str, str]) -> dict:
    """The project-file entry with every column name written in ``style`` (``person_ref.on`` in the
    referenced source's style, ``styles``: source -> header style)."""
    def n(c: str) -> str:
        return header_name(c, style)

    cfg = dict(cfg)
    cfg["key"] = [n(c) for c in cfg["key"]] if isinstance(cfg["key"], list) else n(cfg["key"])
    for part in ("person", "gazetteer"):
        if part in cfg:
            cfg[part] = {k: (v if k == "name_format" else [n(x) for x in v] if isinstance(v, list) else n(v))
                         for k, v in cfg[part].items()}
    if "event" in cfg:
        e = dict(cfg["event"])
        for k in ("code", "role", "date", "location", "location_postcode"):
            if k in e:
                e[k] = n(e[k])
        if "occurrence_key" in e:
            e["occurrence_key"] = n(e["occurrence_key"]) if isinstance(e["occurrence_key"], str) \
                else [n(c) for c in e["occurrence_key"]]
        if "person_ref" in e:
            ref = dict(e["person_ref"])
            col = ref["column"]
            ref["column"] = n(col) if isinstance(col, str) else [n(c) for c in col]
            if "on" in ref:
                ref["on"] = header_name(ref["on"], styles.get(ref["source"], "upper_snake"))
            e["person_ref"] = ref
        cfg["event"] = e
    if "flags" in cfg:
        f = dict(cfg["flags"])
        f["columns"] = {n(k): v for k, v in f["columns"].items()}
        if "date" in f:
            f["date"] = n(f["date"])
        cfg["flags"] = f
    return cfg


def written_columns(columns: list[str], layout: Layout) -> tuple[list[str], list[int]]:
    """Header cells as written (styled, quirk applied) and the column positions to write (a duplicate repeats
    the last column)."""
    names = [header_name(c, layout.header) for c in columns]
    order = list(range(len(columns)))
    if layout.quirk == "padded":
        names = [f" {c}  " if k % 2 else f"{c} " for k, c in enumerate(names)]
    elif layout.quirk == "duplicate_column" and columns:
        names.append(names[-1])
        order.append(len(columns) - 1)
    return names, order


def csv_bytes(df: pd.DataFrame, layout: Layout) -> bytes:
    """The extract as delimited text in the layout's separator, encoding and header quirk."""
    names, order = written_columns(list(df.columns), layout)
    body = df.iloc[:, order].copy()
    body.columns = range(len(order))
    if layout.quirk == "trailing_delimiter":
        body[len(order)] = ""
        names = names + [""]
    text = body.to_csv(sep=layout.separator, index=False, header=names, lineterminator="\n")
    enc = layout.encoding
    if enc == "cp1252":
        try:
            return text.encode("cp1252")
        except UnicodeEncodeError:
            enc = "utf-8"
    return text.encode(enc)


def project_comment(layouts: dict[str, Layout]) -> str:
    """Comment lines naming each source's drawn layout (for the generated project file)."""
    lines = ["# Extract layouts drawn from ecins_link/synth/data/dialects.toml:"]
    for name, lay in layouts.items():
        d = lay.describe()
        d["separator"] = {"\t": "tab"}.get(d["separator"], d["separator"])
        lines.append(f"#   {name}: " + ", ".join(f"{k}={v}" for k, v in d.items()))
    return "\n".join(lines)


def apply_dialect(tables: dict[str, pd.DataFrame], classic_project: str, layouts: dict[str, Layout],
                  header_comment: str = "") -> tuple[dict[str, pd.DataFrame], str]:
    """Each drawn source's extract in its layout (classic column names; styled when written) and the project
    file describing them all."""
    data = tomllib.loads(classic_project)
    styles = {n: lay.header for n, lay in layouts.items()}
    frames = {}
    for cfg in data["sources"]:
        lay = layouts.get(cfg["name"])
        if lay is None or lay == Layout():
            continue
        df, new = transform(tables[cfg["name"]], cfg, lay)
        new = rename(new, lay.header, styles)
        if new.get("format", "csv") == "csv":
            new.pop("delimiter", None)
            new.pop("encoding", None)
            if lay.declare_delimiter:
                new["delimiter"] = lay.separator
        cfg.clear()
        cfg.update(new)
        frames[new["name"]] = df
    text = (header_comment + "\n" if header_comment else "") + project_comment(layouts) + "\n" + dump_toml(data)
    return frames, text.strip() + "\n"


def write_source(df: pd.DataFrame, path: Path, fmt: str, layout: Layout, sheet: str = "Visits") -> None:
    """Write one extract in its layout (byte-reproducible, as the classic writers)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        path.write_bytes(csv_bytes(df, layout))
        return
    names, order = written_columns(list(df.columns), layout)
    if fmt == "parquet":
        arrays = [pa.array(df.iloc[:, i].astype(object).where(df.iloc[:, i].notna(), None).tolist(), pa.string())
                  for i in order]
        pq.write_table(pa.Table.from_arrays(arrays, names=names), path, compression="zstd")
        return
    out = df.iloc[:, order].copy()
    out.columns = names
    write_xlsx(out, path, sheet)
