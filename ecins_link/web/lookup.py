""""Known to partners?": which agencies hold records about a person given name and date of birth (and an
address if known) -- existence only, within what the purpose may name.  A signpost, not a disclosure: no
record, person id or detail is returned."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

from ecins_link.report.views import View
from ecins_link.web.data import Snapshot


def _key(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(folded.upper().replace("-", " ").replace("'", "").split())


@dataclass(frozen=True)
class LookupResult:
    """Agencies holding records for the people matching the query (``persons``: how many matched)."""

    agencies: list[str]
    persons: int
    withheld: bool  # some matching records belong to agencies the purpose may not name


def known_to_partners(snap: Snapshot, view: View, forename: str, surname: str, dob: dt.date,
                      address: str = "") -> LookupResult:
    """People whose records carry this surname and date of birth and a forename starting the same way
    (and, if an address or postcode is given, a record at it); the agencies holding any of their records."""
    if not snap.has("records"):
        return LookupResult([], 0, False)
    sur, fore, addr = _key(surname), _key(forename), _key(address)
    if not sur:
        raise ValueError("a surname is needed")
    cur = snap.cursor()
    sql = """WITH hit AS (SELECT DISTINCT person_id FROM records
                          WHERE replace(replace(surname_key, '-', ' '), '''', '') = ? AND dob = ?
                            AND (? = '' OR starts_with(forename_key, ?) OR starts_with(?, split_part(forename_key, ' ', 1))))
             SELECT DISTINCT r.person_id, lower(r.agency) AS agency,
                    upper(coalesce(r.address_text, '') || ' ' || coalesce(r.postcode, '')) AS place
             FROM records r SEMI JOIN hit USING (person_id)"""
    rows = cur.execute(sql, [sur, dob, fore, fore, fore]).fetchall()
    if addr:
        at = {p for p, _, place in rows if addr in _key(place)}
        rows = [r for r in rows if r[0] in at]
    agencies = {a for _, a, _ in rows if a}
    named = view.visible_agencies(sorted(agencies))
    return LookupResult(agencies=named, persons=len({p for p, _, _ in rows}), withheld=len(named) < len(agencies))
