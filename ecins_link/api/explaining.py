"""The explaining verbs of :class:`~ecins_link.api.project.Project`: why a flag was raised, how a person's
records were linked, a pair's model weights, a case's network and the person-id lineage.

A mixin kept apart so that ``project.py`` stays one idea (opening, running and reading a project); every
method here only reads the store and the output folder, through the hooks :class:`Project` provides.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecins_link.api.explanation import FlagExplanation, build_explanation
from ecins_link.api.purpose import purpose_graph

if TYPE_CHECKING:
    import altair
    import networkx as nx
    import pandas as pd

    from ecins_link.store import Store


class ExplainingVerbs:
    """Explaining verbs shared by :class:`~ecins_link.api.project.Project` (see there)."""

    purpose: str | None
    _out: Path

    # hooks the project provides
    def flags(self, *, as_arrow: bool = False) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _reader(self) -> AbstractContextManager[Store]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _source_shown(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _flags_or_empty(self) -> pd.DataFrame:  # pragma: no cover - overridden
        raise NotImplementedError

    def explain(self, flag_id: str) -> FlagExplanation:
        """Why a flag was raised: its conditions, records, agencies, dates and link weights.

        Parameters
        ----------
        flag_id : str
            A ``flag_id`` of :meth:`flags` (stable across runs).

        Returns
        -------
        FlagExplanation

        Raises
        ------
        KeyError
            No such flag in the output folder's ``flags.parquet``.
        """
        flags = self.flags()
        row = flags[flags["flag_id"] == flag_id]
        if row.empty:
            raise KeyError(f"no flag {flag_id!r} in {self._out / 'flags.parquet'}")
        with self._reader() as store:
            return build_explanation(store, row.iloc[0], self._source_shown())

    def explain_person(self, person_id: str) -> pd.DataFrame:
        """The records of one person and, for each, the strongest edge that linked it (no names).

        Returns
        -------
        pandas.DataFrame
            ``unique_id, source, record_key, cluster_confidence, linked_to, match_weight,
            match_probability, link_basis, breakdown``.
        """
        from ecins_link.matching.explain import explain_person

        shown = self._source_shown()
        with self._reader() as store:
            links = explain_person(store, person_id)
        return links[links["source"].map(shown)].reset_index(drop=True)

    def explain_link(self, unique_id_l: str, unique_id_r: str) -> pd.DataFrame:
        """The linkage model's per-field weights for two records (Splink's waterfall as a table).

        Parameters
        ----------
        unique_id_l, unique_id_r : str
            Record ids, ``source:record_key``.

        Returns
        -------
        pandas.DataFrame
            One row per model term, prior first and final score last: ``comparison, level,
            bayes_factor, log2_weight, value_l, value_r, m_probability, u_probability, description``.
        """
        from ecins_link.matching.explain import explain_pair

        with self._reader() as store:
            return explain_pair(store, unique_id_l, unique_id_r)

    def link_chart(self, unique_id_l: str, unique_id_r: str, *, remove_sensitive_data: bool = True
                   ) -> altair.LayerChart:
        """Splink's waterfall chart for two records (an altair layer chart; compared values hidden by default)."""
        from ecins_link.matching.explain import waterfall_chart

        with self._reader() as store:
            return waterfall_chart(store, unique_id_l, unique_id_r, remove_sensitive_data=remove_sensitive_data)

    def case_graph(self, entity: str) -> nx.MultiGraph:
        """The network of one case as a networkx graph.

        Parameters
        ----------
        entity : str
            A ``flag_id``, a flagged entity (``entity_id`` of :meth:`flags`: a person, household or
            location), or any person or location id.

        Returns
        -------
        networkx.MultiGraph
            The case's people and locations, their events, the events' locations and the people's
            residences; one edge per record.  Nodes carry ``node_type`` and ``label``; edges
            ``edge_type, role, start_date, end_date, weight, source, record_key``.

        Raises
        ------
        KeyError
            ``entity`` is neither a flag, a flagged entity nor a node of the graph.

        Notes
        -----
        With a purpose in force, edges from records of agencies the purpose may not see in detail are left
        out (and events left with no edge), and every node's ``label`` is blank: the graph shows ids only.
        """
        from ecins_link.graph import case_subgraph

        flags = self._flags_or_empty()
        hit = flags[(flags["flag_id"] == entity) | (flags["entity_id"] == entity)] if len(flags) else flags
        with self._reader() as store:
            if len(hit):
                persons = sorted({str(p) for ids in hit["person_ids"] for p in (ids if ids is not None else [])})
                locations = sorted(set(hit.loc[hit["entity_type"] == "location", "entity_id"]))
            else:
                store.require("graph_nodes", stage="case_graph")
                node = store.con.execute("SELECT node_type FROM graph_nodes WHERE node_id = ?", [entity]).fetchone()
                if node is None or node[0] not in ("person", "location"):
                    raise KeyError(f"{entity!r} is not a flag, a flagged entity, a person or a location")
                persons, locations = ([entity], []) if node[0] == "person" else ([], [entity])
            graph = case_subgraph(store, persons, locations)
        return purpose_graph(graph, self._source_shown()) if self.purpose is not None else graph

    def lineage(self) -> pd.DataFrame:
        """Person-id lineage: ``run_id, old_person_id, new_person_id, reason, recorded_at``, one row each
        time a run merged or split people (ids are otherwise stable across runs)."""
        import pandas as pd

        with self._reader() as store:
            if not store.has_table("person_lineage"):
                return pd.DataFrame(columns=["run_id", "old_person_id", "new_person_id", "reason", "recorded_at"])
            return store.df("SELECT * FROM person_lineage ORDER BY recorded_at, old_person_id, new_person_id")
