"""``Project``: one partnership project (its project file, its store and its output folder) from Python."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecins_link.api.explaining import ExplainingVerbs
from ecins_link.api.outputs import read_output
from ecins_link.api.purpose import check_view, source_shown
from ecins_link.api.review import Review
from ecins_link.api.summary import run_summary

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ecins_link.config import ProjectConfig
    from ecins_link.pipeline import RunResult
    from ecins_link.store import Store

class Project(ExplainingVerbs):
    """A partnership project: the project file, its store and the output folder of its runs.

    Open one with :meth:`Project.open`.  The object holds no database connection: each call opens the
    store for as long as it needs it (read-only for every method that only reads), so a notebook can keep
    a ``Project`` while ``ecins-link`` commands run in a terminal.

    Parameters
    ----------
    config : ProjectConfig
        A validated project file (see :meth:`open`).
    user : str, optional
        Who is acting, recorded in the audit log (default: the operating-system user).
    purpose : str, optional
        The information-sharing purpose in force: runs build that purpose's view, and
        :meth:`explain` shows only the records that purpose may see in detail.
    out : str or Path, optional
        The output folder (default ``<project folder>/output``).

    Examples
    --------
    >>> from ecins_link import Project
    >>> project = Project.open("data/samples/town/project.toml")      # doctest: +SKIP
    >>> project.run()                                                   # doctest: +SKIP
    >>> project.worklist().head()                                       # doctest: +SKIP
    >>> project.explain(project.flags().flag_id[0]).records             # doctest: +SKIP
    """

    def __init__(self, config: ProjectConfig, *, user: str | None = None, purpose: str | None = None,
                 out: str | Path | None = None) -> None:
        from ecins_link.pipeline import default_out_dir

        self._config = config
        self.user = user
        self.purpose = self._checked_purpose(purpose)
        self._out = Path(out) if out is not None else default_out_dir(config)
        self._last: RunResult | None = None

    @classmethod
    def open(cls, path: str | Path, *, user: str | None = None, purpose: str | None = None,
             out: str | Path | None = None) -> Project:
        """Read and validate a project file.

        Parameters
        ----------
        path : str or Path
            The project file (TOML; see the project-file page of the docs).
        user, purpose, out
            As for :class:`Project`.

        Returns
        -------
        Project

        Raises
        ------
        ConfigError
            The file is missing or invalid; the message names the file, the key and the problem.
        ValueError
            ``purpose`` is not one of the project file's purposes.
        """
        from ecins_link.config import load_config

        return cls(load_config(path), user=user, purpose=purpose, out=out)

    # ------------------------------------------------------------------------------------------ facts
    @property
    def config(self) -> ProjectConfig:
        """The validated project file (read-only)."""
        return self._config

    @property
    def name(self) -> str:
        """The project's name (``[project] name``)."""
        return self._config.project.name

    @property
    def path(self) -> Path:
        """The project file."""
        return Path(self._config.file) if self._config.file else self.root / "project.toml"

    @property
    def root(self) -> Path:
        """The project folder, against which relative paths in the project file resolve."""
        return Path(self._config.root)

    @property
    def store_path(self) -> Path:
        """The project's DuckDB store."""
        return self._config.store_path

    @property
    def out_dir(self) -> Path:
        """The output folder that the table methods read (the last :meth:`run`'s, else the default)."""
        return self._out

    @property
    def purposes(self) -> list[str]:
        """The purposes of the information-sharing agreement named in the project file."""
        return sorted(self._config.purposes)

    @property
    def review(self) -> Review:
        """Clerical review of uncertain person matches: ``.export()``, ``.import_(...)``, ``.decisions()``."""
        return Review(self)

    def __repr__(self) -> str:
        return f"Project({self.name!r}, path={str(self.path)!r}, purpose={self.purpose!r})"

    # ------------------------------------------------------------------------------------------ running
    def run(self, stages: Iterable[str] | None = None, *, purpose: str | None = None,
            out: str | Path | None = None, progress: bool = False, allow_partial: bool = False) -> RunResult:
        """Run the pipeline (all stages, or the named ones) and write the output folder.

        Parameters
        ----------
        stages : iterable of str, optional
            Any of ``ingest, standardise, persons, locations, graph, score, report``; run in pipeline
            order whatever order they are given in.  Default: all.
        purpose : str, optional
            Build this purpose's view (default: the project's purpose, else the full view).
        out : str or Path, optional
            The output folder (default: the project's).  Later table reads use it.
        progress : bool
            Show a progress bar on the terminal.
        allow_partial : bool
            Carry on when a source is unreadable, misses a mapped column or has more than its
            ``max_quarantine_share`` of rows quarantined (default: such a run stops after ingest).

        Returns
        -------
        RunResult
            The run's id, store, output folder and seconds per stage; :func:`run_summary` turns it into
            the run summary.

        Raises
        ------
        ValueError
            An unknown stage or purpose.
        StoreLockedError
            Another process is writing the store.
        """
        from ecins_link.pipeline import STAGE_NAMES, run_project

        wanted = list(stages) if stages is not None else None
        for s in wanted or []:
            if s not in STAGE_NAMES:
                raise ValueError(f"unknown stage {s!r}; stages are {STAGE_NAMES}")
        purpose = self._checked_purpose(purpose) if purpose is not None else self.purpose
        out_dir = Path(out) if out is not None else self._out
        result = run_project(self.path, out_dir=out_dir, purpose=purpose, user=self.user, stages=wanted,
                             progress=progress, allow_partial=allow_partial)
        self._out, self._last = out_dir, result
        return result

    def run_summary(self) -> dict[str, Any]:
        """The summary of the last run: this object's last :meth:`run`, else the output folder's
        ``run_summary.json``.

        Raises
        ------
        FileNotFoundError
            No run through this object and no ``run_summary.json`` in the output folder.
        """
        import json

        if self._last is not None:
            return run_summary(self._last)
        path = self._out / "run_summary.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run the pipeline first (Project.run)")
        return json.loads(path.read_text(encoding="utf-8"))

    # ------------------------------------------------------------------------------------------ tables
    def accounting(self, *, as_arrow: bool = False) -> pd.DataFrame | pa.Table:
        """``accounting.csv``: per source, rows read, accepted and quarantined (they always add up)."""
        return self._output("accounting.csv", as_arrow)

    def quarantine(self, *, as_arrow: bool = False) -> pd.DataFrame | pa.Table:
        """``quarantine.csv``: every rejected row with ``source, row_number, record_key, reason, raw``."""
        return self._output("quarantine.csv", as_arrow)

    def persons(self, *, as_arrow: bool = False) -> pd.DataFrame | pa.Table:
        """``persons.parquet``: every accepted person-bearing record and its ``person_id``.

        Parameters
        ----------
        as_arrow : bool
            Return a ``pyarrow.Table`` instead of a pandas DataFrame.

        Returns
        -------
        pandas.DataFrame or pyarrow.Table
            ``source, record_key, person_id, cluster_confidence`` (at least).

        Raises
        ------
        FileNotFoundError
            The output folder has no such file yet (run the pipeline first).
        """
        return self._output("persons.parquet", as_arrow)

    def addresses(self, *, as_arrow: bool = False) -> pd.DataFrame | pa.Table:
        """``addresses.parquet``: every accepted record with an address, its UPRN and ``location_id``."""
        return self._output("addresses.parquet", as_arrow)

    def flags(self, *, as_arrow: bool = False) -> pd.DataFrame | pa.Table:
        """``flags.parquet``: one row per (entity, rule) flag, ranked, with its evidence as JSON text."""
        return self._output("flags.parquet", as_arrow)

    def worklist(self, *, as_arrow: bool = False) -> pd.DataFrame | pa.Table:
        """``worklist.csv``: one row per flagged case, ranked, with the rules, score and agencies."""
        return self._output("worklist.csv", as_arrow)

    # ------------------------------------------------------------------------------------------ governance
    def evaluate(self, truth_dir: str | Path) -> dict[str, Any]:
        """Linkage, location and scenario metrics of the store against ground truth.

        Parameters
        ----------
        truth_dir : str or Path
            A synthetic town's ``truth/`` folder.

        Returns
        -------
        dict
            ``{"ingest": ..., "persons": ..., "locations": ..., "scenarios": ...}``, as
            ``ecins-link evaluate`` prints.
        """
        from ecins_link.evaluation import evaluate_project

        return evaluate_project(self.path, truth_dir, user=self.user)

    def audit(self) -> pd.DataFrame:
        """The store's audit log, oldest first: ``seq, logged_at, user_name, run_id, command, category,
        purpose, action, details, row_counts`` and the hash chain columns."""
        with self._reader() as store:
            return store.audit_rows()

    def verify_audit(self) -> list[int]:
        """Sequence numbers whose audit hash chain does not verify; an empty list means untampered."""
        with self._reader() as store:
            return store.verify_audit()

    def export_research(self, out: str | Path, key_file: str | Path, *, min_cell: int | None = None
                        ) -> dict[str, Any]:
        """Write a pseudonymised research extract (keyed-hash ids, coarsened dates and places).

        Parameters
        ----------
        out : str or Path
            Folder for the extract (Parquet files and ``manifest.json``).
        key_file : str or Path
            The secret key for the keyed-hash pseudonyms; it never travels with the extract.
        min_cell : int, optional
            Withhold values shared by fewer persons (default: the exporter's).

        Returns
        -------
        dict
            What was written (``files``, ``row_counts``, ...); audited as a ``disclosure`` for purpose
            ``research``.
        """
        from ecins_link.export import export_pseudonymised

        key = Path(key_file)
        if not key.exists():
            raise FileNotFoundError(f"key file not found: {key}")
        options = {"min_cell": min_cell} if min_cell is not None else {}
        with self._writer("export", purpose="research") as store:
            return export_pseudonymised(store, Path(out), key, **options)

    # ------------------------------------------------------------------------------------------ private
    def _checked_purpose(self, purpose: str | None) -> str | None:
        if purpose is not None and purpose not in self._config.purposes:
            raise ValueError(f"purpose {purpose!r} is not in the project file; known: {sorted(self._config.purposes)}")
        return purpose

    @contextmanager
    def _reader(self) -> Iterator[Store]:
        from ecins_link.pipeline import open_store

        with open_store(self._config, user=self.user, command="api", purpose=self.purpose, read_only=True) as s:
            yield s

    @contextmanager
    def _writer(self, command: str, purpose: str | None = None) -> Iterator[Store]:
        from ecins_link.pipeline import open_store

        with open_store(self._config, user=self.user, command=command, purpose=purpose or self.purpose) as s:
            yield s

    def _output(self, name: str, as_arrow: bool) -> Any:
        path = self._out / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run the pipeline (with its report stage) first")
        self._check_view()
        return read_output(path, as_arrow)

    def _flags_or_empty(self) -> pd.DataFrame:
        import pandas as pd

        try:
            return self.flags()
        except FileNotFoundError:
            return pd.DataFrame(columns=["flag_id", "entity_type", "entity_id", "person_ids"])

    def _source_shown(self) -> Any:
        """``shown(source) -> bool``: whether the purpose in force may see a source's records in detail."""
        return source_shown(self._config, self.purpose)

    def _check_view(self) -> None:
        """Refuse an output folder not written for the purpose in force (see ``purpose.check_view``)."""
        if self.purpose is None:
            return
        exported = []
        if self.store_path.exists():
            with self._reader() as store:
                exported = [r[0] for r in store.con.execute(
                    "SELECT details FROM audit_log WHERE action = 'run_outputs_exported' ORDER BY seq DESC"
                ).fetchall()]
        check_view(self._out, self.purpose, exported)
