"""Synthetic partnership town: gazetteer, households, four agencies' extracts, planted scenarios and truth.

``generate_town(out_dir, persons, seed, bad_rows)`` writes a complete project folder (``project.toml``, the
extracts, ``truth/``) and returns a :class:`TownSummary`.  Same seed and size give byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ecins_link.synth import vocab
from ecins_link.synth.activity import background, membership
from ecins_link.synth.decoys import plant_decoys
from ecins_link.synth.llpg_forms import add_forms, llpg_table
from ecins_link.synth.people import build_households
from ecins_link.synth.places import FormStyle, build_gazetteer
from ecins_link.synth.render import Town, housing, police
from ecins_link.synth.render_more import council, fire
from ecins_link.synth.scenarios import KINDS, Planner
from ecins_link.synth.truth import write_truth
from ecins_link.synth.writer import project_toml, write_csv, write_parquet, write_xlsx

__all__ = ["TownSummary", "generate_town", "SOURCES"]

# source name -> (agency, relative path)
SOURCES = {
    "llpg": ("council", "gazetteer/llpg.csv"),
    "police_nominals": ("police", "police/nominals.csv"),
    "police_occurrences": ("police", "police/occurrences.csv"),
    "housing_tenancies": ("housing", "housing/tenancies.parquet"),
    "housing_cases": ("housing", "housing/cases.csv"),
    "fire_incidents": ("fire", "fire/incidents.csv"),
    "fire_safe_well": ("fire", "fire/safe_and_well.xlsx"),
    "council_people": ("council", "council/people.csv"),
    "council_contacts": ("council", "council/contacts.csv"),
}


@dataclass
class TownSummary:
    """What ``generate_town`` wrote: counts per source, scenario counts and paths."""

    out_dir: Path
    persons: int
    seed: int
    bad_rows: int
    as_of: str
    project: Path
    truth_dir: Path
    rows: dict[str, int] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    scenarios: dict[str, int] = field(default_factory=dict)
    decoys: int = 0
    layouts: dict[str, dict] = field(default_factory=dict)  # source -> drawn extract layout (dialect "random")
    address_conventions: dict = field(default_factory=dict)  # the gazetteer's drawn shares and conventions


def generate_town(out_dir: Path, persons: int, seed: int, bad_rows: int = 0, dialect: str = "classic") -> TownSummary:
    """Generate a town of ``persons`` people into ``out_dir`` (created; existing files overwritten).

    ``dialect``: ``classic`` (the sample town's extract layouts) or ``random`` (each source's layout drawn
    from ``synth/data/dialects.toml`` by the seed; see :mod:`ecins_link.synth.dialect`).
    """
    from ecins_link.synth.dialect import DIALECTS, apply_dialect, draw_layouts, write_source

    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {DIALECTS}")
    if persons < 10:
        raise ValueError("a town needs at least 10 persons")
    if bad_rows < 0:
        raise ValueError("bad_rows must be >= 0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def rng(k: int) -> np.random.Generator:
        return np.random.default_rng([seed, k])

    t = vocab.town()
    as_of = np.datetime64(str(t["as_of"]), "D")
    n_res = int(persons / 2.1 / t["people"]["occupancy"]) + 10
    # the address forms (stream 9) rename properties in place: streams 2-6 draw exactly as without them
    gaz, shells, conventions = add_forms(rng(9), build_gazetteer(rng(1), n_res))
    # stream 11 re-draws a forename repeated in one family: stream 2 draws exactly as without it (the records' noise,
    # stream 6, draws name by name, so it does not)
    _hh, people = build_households(rng(2), persons, gaz, as_of, names_rng=rng(11))
    gaz = gaz.set_index("UPRN", drop=False)
    planner = Planner(rng(3), people, gaz, as_of)
    excluded = planner.used.copy()
    per_kind = max(3, persons // 250)
    planner.plant_all(per_kind, KINDS)
    plant_decoys(planner, max(2, persons // 500))
    members = membership(rng(4), people)
    bg, bg_visits = background(rng(5), people, gaz, members, as_of, np.flatnonzero(planner.used & ~excluded))
    planned = planner.events()
    planned["occ"] = np.where(planned["occ"] >= 0, planned["occ"] + int(bg["occ"].max()) + 1, -1)
    events = pd.concat([bg, planned], ignore_index=True)
    for col in ("person", "occ", "minute"):
        events[col] = events[col].astype("int64")
    events["date"] = events["date"].to_numpy().astype("datetime64[D]")
    visits = pd.concat([bg_visits, planner.visits_frame()], ignore_index=True)
    visits["person"] = visits["person"].astype("int64")
    visits["date"] = visits["date"].to_numpy().astype("datetime64[D]")

    style = FormStyle.draw(rng(10))
    style.shells = shells
    town = Town(rng(6), people, gaz, as_of, style)
    tables: dict[str, pd.DataFrame] = {"llpg": llpg_table(gaz.reset_index(drop=True), shells, conventions)}
    nominals, occ = police(town, events, np.array(planner.police_dups, dtype=int))
    tables["police_nominals"] = nominals.sort_values("NOMINAL_ID").reset_index(drop=True)
    tables["police_occurrences"] = occ
    ten, cases = housing(town, events)
    tables["housing_tenancies"] = ten.sort_values(["TENANCY_REF", "PERSON_REF"]).reset_index(drop=True)
    tables["housing_cases"] = cases
    cpeople, contacts = council(town, events)
    tables["council_people"] = cpeople.sort_values("PERSON_ID").reset_index(drop=True)
    tables["council_contacts"] = contacts
    inc, sw = fire(town, events, visits)
    tables["fire_incidents"], tables["fire_safe_well"] = inc, sw

    encodings: dict[str, str] = {}
    bad = None
    if bad_rows:
        from ecins_link.synth.badrows import inject

        bad = inject(rng(7), tables, bad_rows, encodings, people)
    summary = TownSummary(out_dir=out_dir, persons=persons, seed=seed, bad_rows=bad_rows, as_of=str(as_of),
                          project=out_dir / "project.toml", truth_dir=out_dir / "truth",
                          address_conventions=conventions.describe())
    project = project_toml(f"Northtown synthetic partnership (seed {seed})", str(as_of), encodings)
    frames: dict[str, pd.DataFrame] = {}
    if dialect == "random":
        formats = {n: rel.rsplit(".", 1)[-1] for n, (_a, rel) in SOURCES.items()}
        layouts = draw_layouts(rng(8), formats, set(bad.raw_csv) if bad is not None else set())
        summary.layouts = {n: lay.describe() for n, lay in layouts.items()}
        frames, project = apply_dialect(tables, project, layouts, project.split("\n", 1)[0])
    for name, (_agency, rel) in SOURCES.items():
        path = out_dir / rel
        df = tables[name]
        if name in frames:
            write_source(frames[name], path, rel.rsplit(".", 1)[-1], layouts[name])
        elif bad is not None and name in bad.raw_csv:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bad.raw_csv[name])
        elif rel.endswith(".parquet"):
            write_parquet(df, path)
        elif rel.endswith(".xlsx"):
            write_xlsx(df, path, "Visits")
        else:
            write_csv(df, path)
        summary.paths[name] = path
        summary.rows[name] = len(df) + (bad.extra_rows.get(name, 0) if bad is not None else 0)
    summary.project.write_text(project, encoding="utf-8")
    counts = write_truth(summary.truth_dir, tables, people, planner, bad)
    summary.scenarios, summary.decoys = counts["scenarios"], counts["decoys"]
    return summary
