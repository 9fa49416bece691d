"""Both notebooks execute end to end (nbclient, kernel ``python3``) on the sample town and do what they say.

To keep the suite fast the notebooks do not run the pipeline again: each gets its own copy of the session's
finished run (``sample_run.copy``) through the ``ECINS_NB_TOWN`` environment variable, which the notebooks
read in their first cell (without it they copy ``../data/samples/town`` and run the pipeline themselves).
The walkthrough still re-runs the persons stage after its clerical review (~1 min).

The notebooks use only the public API (``from ecins_link import ...``; ``test_public_api`` checks the source)
and draw their charts as SVG inside the kernel (altair's ``svg`` renderer through vl-convert): no output may
load anything from the network, and each chart must have rendered as an SVG image.  Where the machine allows
it (``unshare --net``, as root in CI), the kernel runs in a network namespace of its own with no network at all,
talking to the test over Unix sockets, so "renders offline" is tested, not assumed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import duckdb
import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
pytestmark = pytest.mark.slow


@cache
def _can_go_offline() -> bool:
    """Whether a process can be started with no network (a network namespace of its own)."""
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


def _client(nb: nbformat.NotebookNode, sockets: Path) -> nbclient.NotebookClient:
    """An nbclient for ``nb`` whose kernel has no network when the machine allows it (IPC sockets under
    ``sockets``), else an ordinary one."""
    options = {"timeout": 600, "resources": {"metadata": {"path": str(NOTEBOOKS)}}}
    if not _can_go_offline():
        return nbclient.NotebookClient(nb, kernel_name="python3", **options)
    from jupyter_client.manager import KernelManager

    class OfflineKernelManager(KernelManager):
        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            return ["unshare", "--net", "--", *super().format_kernel_cmd(extra_arguments)]

    sockets.mkdir(parents=True, exist_ok=True)
    km = OfflineKernelManager(kernel_name="python3", transport="ipc", ip=str(sockets / "kernel"))
    return nbclient.NotebookClient(nb, km=km, **options)


def _execute(name: str, town: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run a notebook from the notebooks folder on ``town``; nbclient raises on the first failing cell."""
    monkeypatch.setenv("ECINS_NB_TOWN", str(town))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    _client(nb, town.parent / "kernel_sockets").execute()
    return nb


def test_notebook_kernel_has_no_network(tmp_path: Path) -> None:
    """The kernel the notebooks run in cannot reach the network (so their charts are proven to render offline)."""
    if not _can_go_offline():
        pytest.skip("unshare --net is not permitted here: notebooks run with the network, offline not proven")
    probe = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=3)\n    print('online')\n"
        "except OSError as err:\n    print('offline:', err)")])
    _client(probe, tmp_path / "sockets").execute()
    assert probe.cells[0].outputs[0]["text"].startswith("offline:")


def _outputs(nb: nbformat.NotebookNode, source_contains: str) -> list:
    cells = [c for c in nb.cells if c.cell_type == "code" and source_contains in c.source]
    assert cells, f"no code cell containing {source_contains!r}"
    return [o for c in cells for o in c.outputs]


def _text(outputs: list) -> str:
    """The printed text (stream chunks joined as written: one print may arrive in several) and the
    plain-text form of every displayed value."""
    printed = "".join(o.get("text", "") for o in outputs)
    shown = [o.get("data", {}).get("text/plain", "") for o in outputs]
    return "\n".join([printed, *shown])


def _svgs(outputs: list) -> list[str]:
    return [o["data"]["image/svg+xml"] for o in outputs if "image/svg+xml" in o.get("data", {})]


def _has_chart(outputs: list) -> bool:
    """A chart rendered offline: an SVG image with drawn marks, and no vega-embed / CDN script."""
    svgs = _svgs(outputs)
    return bool(svgs) and all("<svg" in s and ("<path" in s or "<rect" in s) for s in svgs)


NETWORK = re.compile(r"cdn|jsdelivr|unpkg|<script[^>]*src=|vegaEmbed|https?://(?!www\.w3\.org/)", re.I)


def _assert_offline(nb: nbformat.NotebookNode) -> None:
    """No output refers to a network resource (only the SVG/XLink namespace URIs, which are names, not loads)."""
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            for mime, value in o.get("data", {}).items():
                text = value if isinstance(value, str) else json.dumps(value)
                assert not NETWORK.search(text), (mime, NETWORK.search(text).group(0), cell.source[:80])


def test_kernel_is_this_python(tmp_path: Path) -> None:
    """The ``python3`` kernelspec resolves to the interpreter running the tests (the venv's)."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    cmd = km.format_kernel_cmd()
    assert Path(cmd[0]).resolve() == Path(sys.executable).resolve()


def test_walkthrough(sample_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = sample_run.copy(tmp_path / "town")
    nb = _execute("01_analyst_walkthrough.ipynb", run.town_dir, monkeypatch)

    _assert_offline(nb)
    assert "every row accounted for: True" in _text(_outputs(nb, "accounting = project.accounting()"))
    n_cases = int(re.search(r"(\d+) cases;", _text(_outputs(nb, "worklist = project.worklist()"))).group(1))
    assert n_cases == len(pd.read_csv(run.out_dir / "worklist.csv")) > 0
    assert _has_chart(_outputs(nb, "spring_layout")), "case network chart"
    assert _has_chart(_outputs(nb, "project.link_chart(")), "waterfall chart"
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
        # the session's run, then the notebook's re-run of persons..report through Project.run
        runs = con.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone()[0]
        assert runs == 2
    finally:
        con.close()


def test_research_export(sample_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = sample_run.copy(tmp_path / "town")
    nb = _execute("02_research_pseudonymised.ipynb", run.town_dir, monkeypatch)
    _assert_offline(nb)

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
    # the chart is drawn from suppressed data only: no count under 5 in its data or on its cells
    charted = int(re.search(r"(\d+) cells charted", cooc_text).group(1))
    smallest = re.search(r"smallest count in the chart data: (\d+|none)", cooc_text).group(1)
    assert smallest == "none" if charted == 0 else int(smallest) >= 5
    drawn = [int(n) for svg in _svgs(chart) for n in re.findall(r"<text[^>]*>(\d+)</text>", svg)]
    cell_counts = re.findall(r'aria-label="[^"]*?people: (\d+)', " ".join(_svgs(chart)))
    assert cell_counts and all(int(n) >= 5 for n in cell_counts), cell_counts
    assert charted == 0 or drawn, "no count drawn on the heatmap"
