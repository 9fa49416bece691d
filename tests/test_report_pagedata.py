"""Column-wise page pieces (ecins_link.report.pagedata): the same cells as cell-by-cell formatting, and every
text of the Python-built flag and person blocks escaped."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from test_report_fixtures import XSS

from ecins_link.report.cells import Cells, column
from ecins_link.report.pagedata import cell_column, flag_html, person_html, worklist_rows

HOSTILE = XSS + "\"'&"


def test_cell_column_matches_cell_by_cell() -> None:
    frame = pd.DataFrame({
        "text": [HOSTILE, None, "police", "police", ""],
        "number": [0.5, np.nan, 1.0, 2.123456, 0.5],
        "when": pd.to_datetime(["2026-01-02", None, "2026-01-02 13:45", "2025-12-31", "2026-01-02"], format="ISO8601"),
        "count": pd.array([1, None, 3, 3, 0], dtype="Int64"),
        "flag": [True, False, True, None, False],
        "lists": [["a", "b"], None, [], ["<x>"], ["a", "b"]],
    })
    for name in frame.columns:
        expected = [Cells().td(v) for v in column(frame[name])]
        assert cell_column(Cells(), frame[name]) == expected, name
    assert "<script" not in "".join(cell_column(Cells(), frame["text"]))


def test_flag_block_escapes_every_text() -> None:
    flag = {"label": HOSTILE, "rule": HOSTILE, "rank": 3, "score": 2.5, "first_date": dt.date(2026, 1, 2),
            "last_date": None, "guidance": HOSTILE, "evidence_text": '{"name": "' + HOSTILE + '"}',
            "sentences": [HOSTILE]}
    html = flag_html(flag)
    # label, evidence sentence, guidance and raw evidence (the rule id is no longer shown: plain labels)
    assert "<script" not in html and html.count("&lt;script&gt;") == 4
    assert "score 2.5, 2026-01-02 – )" in html
    bare = flag_html({**flag, "label": None, "guidance": "", "evidence_text": ""})
    assert "guidance" not in bare and "<details>" not in bare and bare.startswith("<h3>" + "&lt;script&gt;")


def test_person_block_escapes_every_text() -> None:
    person = {"label": HOSTILE, "person_id": HOSTILE, "dob": pd.Timestamp("1990-05-01"), "age": 36, "sex": HOSTILE,
              "is_child": False, "confidence": 0.987654, "rows": True, "head": "<th>source</th>",
              "body": "<tr><td>x</td></tr>\n"}
    html = person_html(person)
    assert "<script" not in html and html.count("&lt;script&gt;") == 3
    assert "born 1990-05-01, age 36" in html and "link confidence 0.988" in html and "<tbody><tr><td>x</td>" in html
    hidden = person_html({**person, "dob": None, "age": None, "sex": None, "confidence": None, "rows": False})
    assert "born" not in hidden and "age" not in hidden and "<table" not in hidden
    assert "No records shared for this purpose." in hidden


def test_worklist_rows_escape_every_text() -> None:
    case = {"rank": 1, "page": "cases/" + HOSTILE, "entity_type": "person", "entity_id": HOSTILE, "label": HOSTILE,
            "rules": "a;" + HOSTILE, "score": 3.25, "agencies": ["fire", HOSTILE], "invisible_to_single_agency": "yes",
            "first_date": "2026-01-01", "last_date": None}
    html = worklist_rows([case, {**case, "invisible_to_single_agency": "no"}])
    assert "<script" not in html and html.count("&lt;script&gt;") == 2 * 5 and html.count("<tr>") == 2
    assert html.count("invisible to any single agency") == 1 and "<td>a, &lt;script&gt;" in html
    assert 'href="cases/&lt;script&gt;' in html and "<td>2026-01-01 – </td>" in html
