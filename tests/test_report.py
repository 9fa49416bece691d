"""write_outputs: the public output contract, spreadsheet safety, escaping and audit, on the fixture store."""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_report_fixtures import FORMULA, XSS, build_store, config

from ecins_link.report import write_outputs
from ecins_link.report.charts import MAX_NODES, network_svg, timeline_svg

CONTRACT = {
    "accounting.csv": ["source", "rows_read", "rows_accepted", "rows_quarantined"],
    "quarantine.csv": ["source", "row_number", "record_key", "reason", "raw"],
    "worklist.csv": ["rank", "case", "rules", "score", "agencies", "invisible_to_single_agency",
                     "entity_type", "entity_id", "guidance"],
}
PARQUET = {
    "persons.parquet": ["source", "record_key", "person_id", "cluster_confidence"],
    "addresses.parquet": ["source", "record_key", "uprn", "location_id", "match_confidence", "match_level",
                          "match_reason"],
    "flags.parquet": ["flag_id", "rule", "entity_type", "entity_id", "person_ids", "uprns", "score", "rank",
                      "agencies", "visible_to_single_agency", "evidence", "first_met", "last_met", "status"],
}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, object]:
    tmp = tmp_path_factory.mktemp("full")
    store = build_store(tmp / "s.duckdb")
    result = write_outputs(store, config(), tmp / "out")
    yield tmp / "out", result, store
    store.close()


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_contract_files_and_columns(full_run) -> None:
    out, result, store = full_run
    for name, cols in CONTRACT.items():
        header = next(csv.reader((out / name).open(encoding="utf-8")))
        assert set(cols) <= set(header), name
    for name, cols in PARQUET.items():
        assert set(cols) <= set(pq.read_schema(out / name).names), name
    assert (out / "panel" / "index.html").exists()
    persons = pd.read_parquet(out / "persons.parquet")
    assert len(persons) == store.count("person_clusters") == result["counts"]["persons"]
    flags = pd.read_parquet(out / "flags.parquet")
    assert len(flags) == store.count("flags")
    assert isinstance(flags.loc[0, "person_ids"].tolist(), list)
    acc = pd.read_csv(out / "accounting.csv")
    assert (acc.rows_read == acc.rows_accepted + acc.rows_quarantined).all()


def test_worklist_ranked_cases_and_invisible_marker(full_run) -> None:
    out, _, store = full_run
    work = _rows(out / "worklist.csv")
    assert [int(r["rank"]) for r in work] == list(range(1, len(work) + 1))
    n_entities = store.con.execute("SELECT count(DISTINCT (entity_type, entity_id)) FROM flags").fetchone()[0]
    assert len(work) == n_entities
    truth = dict(store.con.execute(
        "SELECT entity_type || ':' || entity_id, bool_or(NOT visible_to_single_agency) FROM flags GROUP BY 1"
    ).fetchall())
    for r in work:
        assert (r["invisible_to_single_agency"] == "yes") == truth[r["case"]]
        assert (out / "panel" / r["page"]).exists()
    best = store.con.execute("SELECT entity_type || ':' || entity_id FROM flags ORDER BY rank LIMIT 1").fetchone()[0]
    assert work[0]["case"] == best


def test_csv_cells_are_spreadsheet_safe(full_run) -> None:
    out, _, _ = full_run
    risky = re.compile(r"^(\s*[=+\-@]|[\t\r])")
    seen_neutralised = 0
    for name in ("accounting.csv", "quarantine.csv", "worklist.csv"):
        for row in _rows(out / name):
            for value in row.values():
                assert not risky.match(value or ""), (name, value)
                seen_neutralised += (value or "").startswith("'=")
    assert seen_neutralised >= 2  # the formula raw row and the formula guidance, kept as text
    raws = [r["raw"] for r in _rows(out / "quarantine.csv")]
    assert any(r.startswith("'=HYPERLINK") for r in raws)


def test_html_escapes_and_is_self_contained(full_run) -> None:
    out, _, _ = full_run
    pages = [out / "panel" / "index.html", *sorted((out / "panel" / "cases").glob("*.html"))]
    assert len(pages) == 1 + len(_rows(out / "worklist.csv"))
    escaped = XSS.replace("<", "&lt;").replace(">", "&gt;")
    found = False
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "<script" not in html.lower()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I), page.name
        assert "<link" not in html.lower()
        found |= escaped in html
    assert found, "the <script> name must be shown as text"


def test_case_page_sections(full_run) -> None:
    out, _, store = full_run
    work = {r["case"]: r for r in _rows(out / "worklist.csv")}
    page = (out / "panel" / work["person:P3"]["page"]).read_text(encoding="utf-8")
    for section in ('id="summary"', 'id="timeline"', 'id="network"', 'id="persons"', 'id="provenance"',
                    'id="overrides"'):
        assert section in page
    assert page.count("<svg") >= 2  # timeline + network, inlined
    assert "Professional judgement: threats to kill disclosed" in page  # override history
    keys = [k for (k,) in store.con.execute("SELECT record_key FROM signals WHERE person_id = 'P3'").fetchall()]
    assert all(f"<td>{k}</td>" in page for k in keys)  # provenance of every fact
    assert "Meets MARAC potential-escalation criterion" in page
    assert "Darren Cole" in page  # the suspect: not flagged in this case, named in the full view


def test_missing_optional_tables_and_no_flags(tmp_path: Path) -> None:
    store = build_store(tmp_path / "s.duckdb", with_overrides=False)
    for table in ("graph_edges", "graph_nodes", "person_pairs", "gazetteer_std", "households"):
        store.con.execute(f"DROP TABLE {table}")
    result = write_outputs(store, config(), tmp_path / "a")
    assert result["counts"]["case_pages"] == store.con.execute(
        "SELECT count(DISTINCT (entity_type, entity_id)) FROM flags").fetchone()[0]
    store.con.execute("DROP TABLE flags")
    result = write_outputs(store, config(), tmp_path / "b")
    assert result["counts"]["worklist"] == 0
    assert _rows(tmp_path / "b" / "worklist.csv") == []
    assert "No case meets a rule" in (tmp_path / "b" / "panel" / "index.html").read_text(encoding="utf-8")


def test_disclosure_audited_without_names(full_run) -> None:
    _, result, store = full_run
    audit = store.audit_rows()
    rows = audit[(audit.category == "disclosure") & (audit.run_id == store.run_id)]
    assert {"panel_pack_built", "run_outputs_exported"} <= set(rows.action)
    text = " ".join(rows.details) + " ".join(rows.row_counts)
    for name in ("Amira", "Khan", "Jones", FORMULA, XSS):
        assert name not in text
    assert store.verify_audit() == []
    assert str(result["counts"]["case_pages"]) in text


def test_unknown_purpose_is_clear_error(tmp_path: Path) -> None:
    store = build_store(tmp_path / "s.duckdb")
    with pytest.raises(ValueError, match="known"):
        write_outputs(store, config(), tmp_path / "o", purpose="nosuch")


def test_network_svg_trims_and_escapes() -> None:
    people = [f"P{i}" for i in range(80)]
    edges = pd.DataFrame({"src": people, "dst": [f"L{i % 7}" for i in range(80)], "edge_type": "resides_at"})
    types = {p: "person" for p in people} | {f"L{i}": "location" for i in range(7)}
    labels = {"P0": XSS, "P1": "A & B"}
    svg = network_svg(edges, types, labels, seeds=["P0", "P1", "L0"])
    root = ET.fromstring(svg)  # well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}circle")) + len(root.findall(f"{ns}rect")) - 1 <= MAX_NODES
    texts = [t.text for t in root.iter(f"{ns}text")]
    titles = [t.text for t in root.iter(f"{ns}title")]  # full labels as tooltips; visible ones may be cut
    assert XSS in titles and any(t.startswith("<script>") for t in texts) and "A & B" in texts
    assert "<script" not in svg


def test_charts_only_for_top_ranked_cases(tmp_path: Path) -> None:
    store = build_store(tmp_path / "s.duckdb")
    write_outputs(store, config(), tmp_path / "o", max_charts=1)
    work = _rows(tmp_path / "o" / "worklist.csv")
    with_chart = [r["rank"] for r in work
                  if 'aria-label="signals by agency over time"' in (tmp_path / "o" / "panel" / r["page"]).read_text("utf-8")]
    assert with_chart == ["1"]


def test_timeline_svg_one_dot_per_dated_signal_and_escapes() -> None:
    signals = pd.DataFrame({"event_date": pd.to_datetime(["2025-01-03", "2025-06-30", None, "2026-02-11"]),
                            "agency": ["police", XSS, "fire", "police"], "signal": ["A", "B", "C", "D & E"],
                            "category": ["DA", "SUBSTANCE", "FIRE", None], "role": ["suspect", None, None, None]})
    svg = timeline_svg(signals)
    root = ET.fromstring(svg)  # well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    dots = [c for c in root.iter(f"{ns}circle") if c.find(f"{ns}title") is not None]
    assert len(dots) == 3  # the undated signal is listed in the table, not drawn
    tips = [c.find(f"{ns}title").text for c in dots]
    assert "2025-01-03 · police · A · suspect" in tips and any("D & E" in t for t in tips)
    assert any(XSS in t for t in tips) and "<script" not in svg  # axis labels are cut, tooltips in full
    assert any(t.text.startswith("<script>") for t in root.iter(f"{ns}text"))
    assert timeline_svg(signals.assign(event_date=pd.NaT)) is None
    assert timeline_svg(signals.to_dict("records")) == svg  # rows as dicts draw the same picture
