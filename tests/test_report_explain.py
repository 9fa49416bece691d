"""Case pages explain each person's links with per-field match weights from a real trained Splink model."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_explain import build_linked_store

from ecins_link.config import parse_config
from ecins_link.report import write_outputs
from ecins_link.store import Store

PROJECT = {
    "project": {"name": "FEBRL explain", "as_of": "2026-10-31"},
    "sources": [{"name": n, "agency": n, "path": f"{n}.csv", "key": "rec_id", "person": {"full_name": "n"}}
                for n in ("police", "housing")],
    "purposes": {"police_only": {"agencies": ["police"], "categories": ["*"], "rules": ["*"], "fields": ["name"]}},
}


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("explainpack")
    store = Store(build_linked_store(tmp / "s.duckdb"))
    pid, keys = store.con.execute(
        """SELECT person_id, list(unique_id ORDER BY unique_id) FROM person_clusters GROUP BY person_id
           HAVING count(*) = 2 AND count(DISTINCT source) = 2 ORDER BY person_id LIMIT 1""").fetchone()
    flags = pd.DataFrame([{
        "flag_id": "F1", "rule": "multi_agency_concern", "label": "Multi-agency concern", "entity_type": "person",
        "entity_id": pid, "person_ids": [pid], "uprns": [], "score": 3.0, "rank": 1,
        "agencies": ["housing", "police"], "visible_to_single_agency": False,
        "evidence": json.dumps({"records": []}), "guidance": "Discuss", "first_date": None, "last_date": None}])
    with store.stage("flags"):
        store.write_table("flags", flags)
    yield store, tmp, pid, keys
    store.close()


def test_case_page_shows_per_field_weights(linked) -> None:
    store, tmp, pid, keys = linked
    result = write_outputs(store, parse_config(PROJECT, root=tmp), tmp / "full")
    assert result["counts"]["explained_links"] >= 1
    page = next((tmp / "full" / "panel" / "cases").glob("*.html")).read_text(encoding="utf-8")
    for comparison in ("forename: ", "surname: ", "dob: "):
        assert comparison in page
    assert "(+" in page or "(-" in page  # signed log2 weights per field
    housing_key = next(k for k in keys if k.startswith("housing:")).split(":", 1)[1]
    assert f"housing {housing_key}" in page  # the record each one was linked to


def test_partner_outside_the_view_is_withheld(linked) -> None:
    store, tmp, pid, keys = linked
    write_outputs(store, parse_config(PROJECT, root=tmp), tmp / "police", purpose="police_only")
    page = next((tmp / "police" / "panel" / "cases").glob("*.html")).read_text(encoding="utf-8")
    housing_key = next(k for k in keys if k.startswith("housing:")).split(":", 1)[1]
    assert "(withheld)" in page and housing_key not in page
    assert "Housing holds records" in page
