"""Clerical review through the API: ``project.review.export()`` and ``project.review.import_(...)``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ecins_link.api.project import Project


class Review:
    """Clerical review of uncertain person matches for one project (``project.review``).

    Pairs whose match probability falls in the project's ``linkage.review_band`` are exported to a CSV; a
    person fills its ``decision`` column with ``match`` or ``non_match``; the import turns each decision
    into a must-link or cannot-link constraint that every later persons run applies.  Re-run the
    ``persons`` stage (and the stages after it) to see the effect.
    """

    def __init__(self, project: Project) -> None:
        self._project = project

    def export(self, path: str | Path | None = None, *, limit: int | None = None,
               band: tuple[float, float] | None = None) -> Path:
        """Write the uncertain pairs to a CSV for clerical review, most uncertain first.

        Parameters
        ----------
        path : str or Path, optional
            The CSV to write; default ``<project folder>/review/uncertain_pairs.csv``.
        limit : int, optional
            At most this many pairs.
        band : (float, float), optional
            ``(lower, upper)`` match-probability band; default the project's ``linkage.review_band``.

        Returns
        -------
        Path
            The CSV written.  Its columns: ``rank, unique_id_l, unique_id_r, decision`` (empty),
            ``note``, ``match_probability, match_weight``, the two records side by side and the per-field
            evidence.  The export is audited (``disclosure``).
        """
        from ecins_link.matching.review import export_review

        project = self._project
        out = Path(path) if path is not None else project.root / "review" / "uncertain_pairs.csv"
        lower, upper = band or project.config.linkage.review_band
        with project._writer("review export") as store:
            export_review(store, out, lower=lower, upper=upper, limit=limit)
        return out

    def import_(self, path: str | Path, *, reviewer: str | None = None) -> dict[str, Any]:
        """Validate a filled-in review CSV and record its decisions.

        Parameters
        ----------
        path : str or Path
            The CSV written by :meth:`export` with some ``decision`` cells filled in.
        reviewer : str, optional
            Who decided (default: the project's user).

        Returns
        -------
        dict
            Counts: ``rows, imported, match, non_match, skipped_blank``.

        Raises
        ------
        ValueError
            Listing every bad line (unknown record, unknown decision, conflicting decisions); nothing
            is imported then.
        """
        from ecins_link.matching.review import import_review

        with self._project._writer("review import") as store:
            return import_review(store, path, reviewer=reviewer or store.user)

    def decisions(self) -> pd.DataFrame:
        """Every clerical decision recorded so far, oldest first.

        Returns
        -------
        pandas.DataFrame
            ``unique_id_l, unique_id_r, decision, reviewer, decided_at, note`` (empty when none).
        """
        import pandas as pd

        cols = ["unique_id_l", "unique_id_r", "decision", "reviewer", "decided_at", "note"]
        with self._project._reader() as store:
            if not store.has_table("clerical_decisions"):
                return pd.DataFrame(columns=cols)
            return store.df(f"SELECT {', '.join(cols)} FROM clerical_decisions ORDER BY decided_at")
