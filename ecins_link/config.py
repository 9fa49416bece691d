"""Project file (TOML) -> validated, typed configuration.

A project file describes a partnership: where each agency's extract lives, how its columns map to the
canonical fields, which agency codes and flag columns become which signals of the taxonomy, and which
purposes (information-sharing agreement views) may see what.  Every mistake is reported as one
:class:`ConfigError` naming the file, the key and the problem.  See ``docs/project-file.md``.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_DATE_FORMATS = ["%d/%m/%Y", "%Y-%m-%d", "%d-%b-%Y", "%d/%m/%y", "%Y%m%d"]
DEFAULT_DATETIME_FORMATS = ["%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M:%S"]


class ConfigError(Exception):
    """A project file (or rule/taxonomy file) that cannot be used; the message names file, key, problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonRef(_Model):
    """A foreign key from an event row to a person row of another (or the same) source.

    ``column``: this source's column(s); ``on``: the referenced source's column(s) they hold (default: its
    key).  When ``on`` is not the key several rows may match: the one in force on the event date (the
    referenced source's ``resident_from``/``resident_to``) is taken, else the reference is marked ambiguous.
    """

    source: str
    column: str | list[str]
    on: str | list[str] | None = None

    @property
    def columns(self) -> list[str]:
        return [self.column] if isinstance(self.column, str) else list(self.column)

    @property
    def on_columns(self) -> list[str] | None:
        """The referenced source's columns named in ``on`` (None: its key)."""
        if self.on is None:
            return None
        return [self.on] if isinstance(self.on, str) else list(self.on)


class PersonMapping(_Model):
    """Which columns of a source carry a person's identity.  All optional; at least a name is needed."""

    forenames: str | None = None
    surname: str | None = None
    full_name: str | None = None
    name_format: Literal["surname_comma_forenames", "forenames_surname", "auto"] = "auto"
    title: str | None = None
    dob: str | None = None
    sex: str | None = None
    address: str | None = None
    address_lines: list[str] = Field(default_factory=list)
    postcode: str | None = None
    uprn: str | None = None
    phone: str | None = None
    email: str | None = None
    resident_from: str | None = None
    resident_to: str | None = None
    # generic identifiers (exact and one-typo levels, used in blocking): name -> column, e.g.
    # { nhs_number = "NHS_NO", ni_number = "NINO" }; the same name in several sources is one comparison
    identifiers: dict[str, str] = Field(default_factory=dict)
    # the source's own reference for a person (a housing system's person reference, a client id): rows of this source
    # that share it are one person unless their dates of birth contradict (matching/person_source_ids.py); compared
    # only within this source and never a model comparison
    source_person_id: str | None = None
    # extra attributes compared (exact / similar) but never blocked on: { birth_place = "POB", occupation = "OCC" }
    attributes: dict[str, str] = Field(default_factory=dict)
    # "uk": a value not in UK format is nulled (with a field issue); "any": kept and compared as written
    postcode_format: Literal["uk", "any"] = "uk"
    phone_format: Literal["uk", "any"] = "uk"
    # dates of birth before this are quarantined as implausible (historical registers: set it far back)
    dob_earliest: dt.date = dt.date(1880, 1, 1)
    # a date of birth that is not a valid date in the source's formats: quarantine the row (default), or
    # "null": keep the person without a date of birth (with a field issue)
    invalid_dob: Literal["quarantine", "null"] = "quarantine"

    @field_validator("identifiers", "attributes")
    @classmethod
    def _field_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                raise ValueError(f"'{name}': identifier and attribute names use lower-case letters, digits and '_'")
        return v

    @model_validator(mode="after")
    def _needs_a_name(self) -> PersonMapping:
        if not (self.full_name or self.surname):
            raise ValueError("a person mapping needs 'surname' (with 'forenames') or 'full_name'")
        if self.address and self.address_lines:
            raise ValueError("give either 'address' (one text column) or 'address_lines', not both")
        return self


class CodeMap(_Model):
    """One agency code (optionally with a role) -> one taxonomy signal."""

    code: str
    signal: str
    role: str | None = None


class EventMapping(_Model):
    """How a source's rows become dated signals about a person and/or a place."""

    code: str | None = None
    codes: list[CodeMap] = Field(default_factory=list)
    role: str | None = None
    date: str
    location: str | None = None
    location_postcode: str | None = None
    person_ref: PersonRef | None = None
    unmapped: Literal["ignore", "quarantine"] = "ignore"
    # key column(s) naming one occurrence when several rows (one per person) describe it; optional
    occurrence_key: list[str] = Field(default_factory=list)

    @field_validator("occurrence_key", mode="before")
    @classmethod
    def _occurrence_key_list(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _codes_need_column(self) -> EventMapping:
        if self.codes and not self.code:
            raise ValueError("'codes' given but no 'code' column to read them from")
        return self


class FlagMapping(_Model):
    """Yes/no columns, each mapped to a signal (e.g. fire Safe and Well risk factors)."""

    columns: dict[str, str]
    true_values: list[str] = Field(default_factory=lambda: ["Y", "YES", "TRUE", "1", "T"])
    date: str | None = None


class GazetteerMapping(_Model):
    """Columns of an LLPG-like gazetteer source (BS7666 / AddressBase parts; every field but ``uprn`` optional).

    ``sub_building`` / ``number`` / ``building_name`` are the one-column forms; the ``sao_*`` / ``pao_*``
    columns are the BS7666 parts they are composed from when the one-column form is not mapped
    (docs/project-file.md, "Gazetteer columns").
    """

    uprn: str
    sub_building: str | None = None
    number: str | None = None
    building_name: str | None = None
    organisation: str | None = None
    street: str | None = None
    locality: str | None = None
    town: str | None = None
    postcode: str | None = None
    sao_start_number: str | None = None
    sao_start_suffix: str | None = None
    sao_end_number: str | None = None
    sao_end_suffix: str | None = None
    sao_text: str | None = None
    pao_start_number: str | None = None
    pao_start_suffix: str | None = None
    pao_end_number: str | None = None
    pao_end_suffix: str | None = None
    pao_text: str | None = None
    parent_uprn: str | None = None
    classification: str | None = None
    x: str | None = None
    y: str | None = None


class Source(_Model):
    """One agency extract."""

    name: str
    agency: str
    path: str
    format: Literal["csv", "parquet", "xlsx"] = "csv"
    encoding: str = "auto"
    delimiter: str = "auto"  # sniffed among , ; tab | when "auto"
    sheet: str | None = None
    key: list[str]
    date_formats: list[str] = Field(default_factory=lambda: list(DEFAULT_DATE_FORMATS))
    datetime_formats: list[str] = Field(default_factory=lambda: list(DEFAULT_DATETIME_FORMATS))
    person: PersonMapping | None = None
    event: EventMapping | None = None
    flags: FlagMapping | None = None
    gazetteer: GazetteerMapping | None = None
    max_field_chars: int = 10_000
    # a run stops (unless --allow-partial) when more than this share of the source's rows is quarantined
    max_quarantine_share: float = Field(0.05, ge=0.0, le=1.0)

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not v or not v.replace("_", "").replace("-", "").isalnum():
            raise ValueError("source names use letters, digits, '_' and '-' only")
        return v

    @model_validator(mode="after")
    def _has_role(self) -> Source:
        if not (self.person or self.event or self.flags or self.gazetteer):
            raise ValueError("a source needs at least one of [person], [event], [flags], [gazetteer]")
        if self.gazetteer and (self.person or self.event or self.flags):
            raise ValueError("a gazetteer source cannot also carry persons or events")
        if not self.key:
            raise ValueError("'key' must name at least one column")
        return self

    @model_validator(mode="after")
    def _occurrence_key_in_key(self) -> Source:
        occ = self.event.occurrence_key if self.event else []
        if occ and not set(occ) < set(self.key):
            raise ValueError("'event.occurrence_key' must be some (not all) of the source's 'key' columns")
        return self

    @property
    def kind(self) -> str:
        """'gazetteer', 'person', 'event' or 'person_event' (a row naming a person and carrying signals)."""
        if self.gazetteer:
            return "gazetteer"
        has_events = bool(self.event or self.flags)
        if self.person and has_events:
            return "person_event"
        return "person" if self.person else "event"


class Purpose(_Model):
    """One view of the information-sharing agreement: who may see what, for which purpose."""

    description: str = ""
    agencies: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    fields: list[str] = Field(default_factory=lambda: ["name", "dob", "address"])
    existence_only: bool = True


class LinkageSettings(_Model):
    """Person-linkage knobs a partnership may tune (defaults are measured; see docs)."""

    match_threshold: float = 0.95
    review_band: tuple[float, float] = (0.5, 0.95)
    max_pairs: int = 50_000_000
    # False: reuse the last trained model and score only pairs involving new / changed records (see
    # matching/persons.py); falls back to a full run when there is no earlier linkage in the store
    retrain: bool = True
    # sources that each hold at most one record per person (e.g. two de-duplicated registers): below the
    # threshold, a mutual best match between two of them with at least this probability joins two singletons
    one_to_one_sources: list[str] = Field(default_factory=list)
    one_to_one_min_probability: float = Field(0.5, ge=0.0, le=1.0)
    # the person model file (relative to the project file); default: the packaged person_model.toml
    model: str | None = None
    # comparisons the project accepts untrained (on their prior m probabilities); an untrained key comparison
    # (forename, surname, dob) not listed here fails the run
    allow_untrained: list[str] = Field(default_factory=list)


class EngineSettings(_Model):
    """Where the persons stage's scoring and clustering run (docs/spark.md).  Every other stage, and the
    store (runs, lineage, audit), stays on DuckDB."""

    backend: Literal["duckdb", "spark"] = "duckdb"
    # any Spark master URL: local[2], spark://host:7077, yarn, ...; ignored when a session already exists
    spark_master: str = "local[2]"
    # extra Spark settings, e.g. {"spark.sql.shuffle.partitions" = "8", "spark.driver.memory" = "4g"}
    spark_conf: dict[str, str] = Field(default_factory=dict)
    # folder for the Parquet hand-over (person_std out, pairs / clusters back) and Spark checkpoints;
    # relative to the project folder.  On a cluster: a folder mounted at the same path on the driver and every
    # executor (/Volumes/..., an NFS/EFS mount); object-store URLs are refused (docs/spark.md)
    work_dir: str = "spark_work"
    # how Splink breaks Spark's lineage between steps: Parquet files in work_dir (scales), or in memory
    # (persist: quicker for small local runs), or Delta tables (Databricks)
    break_lineage: Literal["parquet", "persist", "checkpoint", "delta_lake_table"] = "parquet"

    @field_validator("spark_conf", mode="before")
    @classmethod
    def _conf_strings(cls, v: object) -> object:
        return {str(k): str(x).lower() if isinstance(x, bool) else str(x) for k, x in v.items()} \
            if isinstance(v, dict) else v


class ProjectSettings(_Model):
    name: str
    store: str = "store.duckdb"
    as_of: dt.date | None = None
    taxonomy: str | None = None
    rules: str | None = None
    memory_limit: str | None = None
    # the persons stage's scoring runs on a second connection alongside the locations stage (each with its own
    # DuckDB memory limit, so the peak can be the sum); false = strictly one stage after another
    overlap_stages: bool = True
    # folders outside the project folder that paths (sources, store, rules, taxonomy) may point into; by
    # default every path must stay inside the project folder (docs/governance.md)
    allow_paths_outside: list[str] = Field(default_factory=list)
    # purged sources (ecins-link purge) the project explicitly admits again; any other purged source is refused
    readmit_purged: list[str] = Field(default_factory=list)

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit_ok(cls, v: str | None) -> str | None:
        from ecins_link.guards import check_memory_limit

        return None if v is None else check_memory_limit(v)


class ScoringSettings(_Model):
    """``[scoring]``: how far back the rules look and when a flag counts as current (see docs/rules-guide.md)."""

    # a rule's criterion may be met in any window inside the lookback; None = all the data
    lookback_days: int | None = Field(default=None, gt=0)
    # a flag whose criterion was last met more than this many days before as-of is 'lapsed'
    current_days: int = Field(default=365, gt=0)


class ProjectConfig(_Model):
    """A whole project file, with ``root`` the folder that relative paths resolve against."""

    project: ProjectSettings
    sources: list[Source]
    purposes: dict[str, Purpose] = Field(default_factory=dict)
    linkage: LinkageSettings = Field(default_factory=LinkageSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    root: Path = Path(".")
    file: Path | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> ProjectConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {dupes}")
        for s in self.sources:
            ref = s.event.person_ref if s.event else None
            if ref and ref.source not in names:
                raise ValueError(f"source '{s.name}': event.person_ref.source '{ref.source}' is not a source")
            if ref and ref.source != s.name:
                target = next(t for t in self.sources if t.name == ref.source)
                on = ref.on_columns or target.key
                if len(ref.columns) != len(on):
                    what = f"'on' names {len(on)}" if ref.on_columns else f"'{target.name}' has a {len(on)}-part key"
                    raise ValueError(
                        f"source '{s.name}': event.person_ref has {len(ref.columns)} column(s) but {what}"
                    )
        if sum(1 for s in self.sources if s.gazetteer) > 1:
            raise ValueError("at most one gazetteer source")
        if self.linkage.model and not self.path_of(self.linkage.model).is_file():
            raise ValueError(f"linkage.model: file '{self.linkage.model}' not found")
        return self

    def source(self, name: str) -> Source:
        """The source called ``name``."""
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)

    def path_of(self, relative: str) -> Path:
        """A path from the project file, resolved against the project folder; :class:`ConfigError` if it leads
        outside the project folder and the folders of ``project.allow_paths_outside``.  A config built in code
        without a file may still name absolute paths of its own choosing; its relative paths are confined."""
        from ecins_link.guards import confine

        given = Path(relative)
        p = given if given.is_absolute() else (self.root / given)
        if self.file is None and given.is_absolute():
            return p
        allowed = [Path(a) if Path(a).is_absolute() else self.root / a for a in self.project.allow_paths_outside]
        try:
            confine(p, self.root, allowed, what=f"path {relative!r}")
        except ValueError as err:
            where = f"{self.file}: " if self.file else ""
            raise ConfigError(f"{where}{err}") from None
        return p

    @property
    def store_path(self) -> Path:
        return self.path_of(self.project.store)

    def check_paths(self) -> None:
        """:class:`ConfigError` if any path of the project file (store, sources, rules, taxonomy) leads outside
        the project folder and the allowed folders."""
        for rel in [self.project.store, *(s.path for s in self.sources), self.project.taxonomy, self.project.rules]:
            if rel:
                self.path_of(rel)

    @property
    def gazetteer_source(self) -> Source | None:
        return next((s for s in self.sources if s.gazetteer), None)


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"key '{loc}': {first['msg']}"


def parse_config(data: dict, root: Path = Path("."), file: Path | None = None) -> ProjectConfig:
    """Validate a project dictionary (as read from TOML); raise :class:`ConfigError` on any mistake."""
    try:
        return ProjectConfig.model_validate({**data, "root": root, "file": file})
    except ValidationError as err:
        where = str(file) if file else "project"
        raise ConfigError(f"{where}: {_describe(err)}") from None


def read_toml(path: Path, what: str) -> dict:
    """Read a TOML file; a missing, non-UTF-8 or malformed file is one :class:`ConfigError` naming it."""
    if not path.exists():
        raise ConfigError(f"{path}: {what} not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def read_settings(path: Path, what: str, sections: tuple[str, ...]) -> dict:
    """Read a settings TOML file that must hold the named top-level ``sections``."""
    data = read_toml(path, what)
    for section in sections:
        if section not in data:
            raise ConfigError(f"{path}: missing section [{section}]")
    return data


def load_config(path: str | Path) -> ProjectConfig:
    """Read and validate a project TOML file."""
    path = Path(path)
    data = read_toml(path, "project file")
    config = parse_config(data, root=path.parent.resolve(), file=path)
    config.check_paths()
    return config
