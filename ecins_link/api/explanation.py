"""Why a case is flagged: the flag's evidence plus the link weights of the people it rests on."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from ecins_link.store import Store

RECORD_COLUMNS = ["source", "record_key", "agency", "signal", "date", "role", "person_id", "link_confidence"]
CONDITION_COLUMNS = ["id", "label", "met", "count", "agencies", "metric", "metric_value"]
PEOPLE_COLUMNS = ["person_id", "age", "is_child", "sex", "n_records", "agencies"]
LINK_COLUMNS = ["person_id", "unique_id", "source", "record_key", "cluster_confidence", "linked_to",
                "match_weight", "match_probability", "link_basis", "breakdown"]
FLAG_FIELDS = ("flag_id", "rule", "label", "entity_type", "entity_id", "score", "rank", "agencies", "person_ids",
               "uprns", "visible_to_single_agency", "first_date", "last_date", "guidance")


@dataclass(frozen=True)
class FlagExplanation:
    """Everything that explains one flag, without names.

    Attributes
    ----------
    flag : dict
        The flag's headline: ``flag_id, rule, label, entity_type, entity_id, score, rank, agencies,
        person_ids, uprns, visible_to_single_agency, first_date, last_date, guidance`` (as in
        ``flags.parquet``), plus the rule's window (``window_start``, ``window_end``) and
        ``conditions_met`` / ``conditions_needed``.
    conditions : pandas.DataFrame
        One row per rule condition: ``id, label, met, count, agencies, metric, metric_value``.
    records : pandas.DataFrame
        The source records behind the flag: ``source, record_key, agency, signal, date, role, person_id,
        link_confidence`` (the probability that links the record to its person).
    people : pandas.DataFrame
        The people of the case: ``person_id, age, is_child, sex, n_records, agencies`` (no names, no dates
        of birth).
    links : pandas.DataFrame
        For every record of every person of the case, the strongest edge that linked it into its person:
        ``person_id, unique_id, source, record_key, cluster_confidence, linked_to, match_weight,
        match_probability, link_basis`` (``model``, ``clerical``, ``single record`` or ``no stored edge``)
        and ``breakdown`` (per-field levels and log2 weights).  Records of agencies the purpose may not see
        in detail are left out.
    """

    flag: dict[str, Any]
    conditions: pd.DataFrame
    records: pd.DataFrame
    people: pd.DataFrame
    links: pd.DataFrame = field(repr=False)

    @property
    def agencies(self) -> list[str]:
        """The agencies whose records the flag rests on (from :attr:`records`), sorted."""
        return sorted({a for a in self.records["agency"].dropna()})

    @property
    def dates(self) -> tuple[str | None, str | None]:
        """First and last dates of the evidence records (ISO text), or ``(None, None)``."""
        dates = self.records["date"].dropna().astype(str)
        return (dates.min(), dates.max()) if len(dates) else (None, None)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist") and not isinstance(value, str):
        return value.tolist()
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return value


def build_explanation(store: Store, flag: pd.Series, shown: Callable[[str], bool]) -> FlagExplanation:
    """Assemble a :class:`FlagExplanation` from one row of ``flags.parquet`` and the store (read-only).

    ``shown(source)`` says whether a source's records may be shown in detail (the purpose's view).
    """
    from ecins_link.matching.explain import explain_person

    evidence = json.loads(flag["evidence"]) if isinstance(flag.get("evidence"), str) and flag["evidence"] else {}
    head = {k: _plain(flag[k]) for k in FLAG_FIELDS if k in flag.index}
    head.update({k: evidence.get(k) for k in ("window_start", "window_end", "conditions_met", "conditions_needed")})
    conditions = pd.DataFrame(evidence.get("conditions") or [])
    conditions = conditions.reindex(columns=[c for c in CONDITION_COLUMNS if c in conditions.columns] or
                                    CONDITION_COLUMNS)
    records = pd.DataFrame(evidence.get("records") or [], columns=None)
    records = records.reindex(columns=RECORD_COLUMNS)
    person_ids = sorted({str(p) for p in (head.get("person_ids") or [])})

    people = pd.DataFrame(columns=PEOPLE_COLUMNS)
    if person_ids and store.has_table("person_attributes"):
        people = store.df(f"""SELECT {", ".join(PEOPLE_COLUMNS)} FROM person_attributes
                              WHERE list_contains(?::VARCHAR[], person_id) ORDER BY person_id""", [person_ids])
    parts = []
    if store.has_table("person_clusters"):
        for pid in person_ids:
            try:
                links = explain_person(store, pid)
            except KeyError:  # a person of an older run, merged since
                continue
            parts.append(links[links["source"].map(shown)].assign(person_id=pid))
    links = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LINK_COLUMNS)
    return FlagExplanation(flag=head, conditions=conditions.reset_index(drop=True), records=records,
                           people=people.reset_index(drop=True), links=links[LINK_COLUMNS])
