"""Both notebooks execute end to end (nbclient, kernel ``python3``) on the sample town and do what they say.

To keep the suite fast the notebooks do not run the pipeline again: each gets its own copy of the session's
finished run (``sample_run.copy``) through the ``ECINS_NB_TOWN`` environment variable, which the notebooks
read in their first cell (without it they copy ``../data/samples/town`` and run the pipeline themselves).
The walkthrough still re-runs the persons stage after its clerical review (~1 min).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
pytestmark = pytest.mark.slow


def _execute(name: str, town: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run a notebook from the notebooks folder on ``town``; nbclient raises on the first failing cell."""
    monkeypatch.setenv("ECINS_NB_TOWN", str(town))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


def _outputs(nb: nbformat.NotebookNode, source_contains: str) -> list:
    cells = [c for c in nb.cells if c.cell_type == "code" and source_contains in c.source]
    assert cells, f"no code cell containing {source_contains!r}"
    return [o for c in cells for o in c.outputs]


def _text(outputs: list) -> str:
    parts = []
    for o in outputs:
        parts.append(o.get("text", ""))
        parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _has_chart(outputs: list) -> bool:
    return any("vegaEmbed" in o.get("data", {}).get("text/html", "")
               or any(k.startswith("application/vnd.vegalite") for k in o.get("data", {})) for o in outputs)


def test_kernel_is_this_python(tmp_path: Path) -> None:
    """The ``python3`` kernelspec resolves to the interpreter running the tests (the venv's)."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    cmd = km.format_kernel_cmd()
    assert Path(cmd[0]).resolve() == Path(sys.executable).resolve()


def test_walkthrough(sample_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = sample_run.copy(tmp_path / "town")
    nb = _execute("01_analyst_walkthrough.ipynb", run.town_dir, monkeypatch)

    assert "every row accounted for: True" in _text(_outputs(nb, "accounting = pd.read_csv"))
    n_cases = int(re.search(r"(\d+) cases;", _text(_outputs(nb, "worklist = pd.read_csv"))).group(1))
    assert n_cases == len(pd.read_csv(run.out_dir / "worklist.csv")) > 0
    assert _has_chart(_outputs(nb, "spring_layout")), "case network chart"
    assert _has_chart(_outputs(nb, "waterfall_chart(store")), "waterfall chart"
    assert "audit chain intact: True" in _text(_outputs(nb, "verify_audit"))

    review = pd.read_csv(run.town_dir / "review" / "uncertain_pairs.csv", dtype=str, keep_default_na=False)
    assert len(review) > 0 and (review.decision != "").sum() == 2

    con = duckdb.connect(str(run.store_path), read_only=True)
    try:
        decisions = con.execute("SELECT unique_id_l, unique_id_r, decision, reviewer FROM clerical_decisions").df()
        assert len(decisions) == 2 and set(decisions.reviewer) == {"analyst"}
        person = dict(con.execute("SELECT unique_id, person_id FROM person_clusters").fetchall())
        for d in decisions.itertuples():
            together = person[d.unique_id_l] == person[d.unique_id_r]
            assert together == (d.decision == "match"), d
        runs = con.execute("SELECT count(*) FROM runs WHERE command = 'notebook' AND status = 'ok'").fetchone()[0]
        assert runs == 1
    finally:
        con.close()


def test_research_export(sample_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = sample_run.copy(tmp_path / "town")
    nb = _execute("02_research_pseudonymised.ipynb", run.town_dir, monkeypatch)

    export = run.town_dir / "research_export"
    manifest = json.loads((export / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["row_counts"]["persons"] > 0 and manifest["row_counts"]["signals"] > 0
    forbidden = {"forenames", "surname", "full_name", "dob", "dob_raw", "postcode", "address_text", "uprn", "phone",
                 "email", "record_key", "unique_id", "person_id", "location_id", "display_name"}
    texts: set[str] = set()
    for path in export.glob("*.parquet"):
        df = pd.read_parquet(path)
        assert not forbidden & set(df.columns), path.name
        for col in df.columns:
            if df[col].dtype == object:
                texts |= {str(v) for v in df[col].dropna() if isinstance(v, str)}
    assert not (run.town_dir / "research_export" / "research_2026.key").exists(), "key travels with the extract"

    con = duckdb.connect(str(run.store_path), read_only=True)
    try:
        names = {r[0] for r in con.execute(
            "SELECT DISTINCT unnest([surname, forenames, strftime(dob, '%Y-%m-%d'), postcode]) FROM person_records"
        ).fetchall() if r[0] and len(r[0]) >= 2}
        audit = con.execute("SELECT category, purpose FROM audit_log WHERE action = 'research_export'").fetchall()
    finally:
        con.close()
    assert len(names) > 100 and not names & texts
    assert audit == [("disclosure", "research")]

    chart = _outputs(nb, "mark_rect")
    assert _has_chart(chart), "co-occurrence heatmap"
    cooc_text = _text(_outputs(nb, "SUPPRESS_BELOW = 5"))
    assert int(re.search(r"(\d+) category pairs seen across agencies", cooc_text).group(1)) > 0
