"""The public Python API (``from ecins_link import ...``) and the scriptable CLI output built on it.

Everything here imports only the names in ``ecins_link.__all__`` (plus the CLI's ``app`` for the CLI checks and
``conftest``'s fixtures): a researcher's notebook must be able to do all of it.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import tomllib
from pathlib import Path

import duckdb
import networkx as nx
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

import ecins_link
from ecins_link import STAGES, ConfigError, FlagExplanation, Project, RunResult, bridging_people, run_summary

REPO = Path(__file__).resolve().parents[1]
NAME_COLUMNS = {"forenames", "forename", "surname", "full_name", "display_name", "dob", "dob_raw",
                "postcode", "address_text", "phone", "email"}


def _cli():  # noqa: ANN202 - the CLI module is not part of the Python API; only these tests drive it
    from ecins_link.cli import app

    return app


# ---------------------------------------------------------------------------------------------- the names
def test_public_names_and_version() -> None:
    assert set(ecins_link.__all__) >= {"Project", "RunResult", "FlagExplanation", "Review", "run_summary",
                                       "bridging_people", "STAGES", "ConfigError", "StoreError", "__version__"}
    for name in ecins_link.__all__:
        assert getattr(ecins_link, name) is not None, name
    with pytest.raises(AttributeError):
        ecins_link.not_a_public_name  # noqa: B018
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert ecins_link.__version__ == importlib.metadata.version("ecins-link") == pyproject["project"]["version"]
    assert STAGES[0] == "ingest" and STAGES[-1] == "report" and len(STAGES) == len(set(STAGES)) == 8
    from ecins_link.pipeline import STAGE_NAMES

    assert list(STAGES) == STAGE_NAMES  # the public tuple is the order the pipeline runs


def test_public_callables_are_documented() -> None:
    """Every public class, method and function has a docstring (the API reference is built from them)."""
    undocumented = []
    for name in ecins_link.__all__:
        obj = getattr(ecins_link, name)
        if callable(obj):
            if not (obj.__doc__ or "").strip():
                undocumented.append(name)
            for attr, member in vars(obj).items() if isinstance(obj, type) else []:
                if not attr.startswith("_") and (callable(member) or isinstance(member, property | classmethod)):
                    fn = member.__func__ if isinstance(member, classmethod) else member
                    if not (getattr(fn, "__doc__", "") or "").strip():
                        undocumented.append(f"{name}.{attr}")
    assert not undocumented


def test_notebooks_use_only_the_public_api() -> None:
    """``grep -R "ecins_link\\.[a-z_]*\\." notebooks/`` finds nothing: no notebook reaches into a submodule."""
    hits = []
    for nb in (REPO / "notebooks").glob("*.ipynb"):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            text = "".join(cell["source"])
            hits += [f"{nb.name}: {m}" for m in re.findall(r"ecins_link\.[a-z_]*\.?[\w.]*", text)
                     if re.search(r"ecins_link\.[a-z_]*\.", m)]
            if cell["cell_type"] == "code":
                hits += [f"{nb.name}: {m}" for m in re.findall(r"from ecins_link\.\w+|import ecins_link\.\w+", text)]
    assert not hits


# ---------------------------------------------------------------------------------------------- errors
def test_clear_errors(tmp_path: Path, sample_run) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Project.open(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="purpose 'nope'"):
        Project.open(sample_run.project, purpose="nope")
    project = Project.open(sample_run.project, out=tmp_path / "no_output")
    with pytest.raises(ValueError, match="unknown stage 'teleport'"):
        project.run(stages=["teleport"])
    with pytest.raises(FileNotFoundError, match="run the pipeline"):
        project.worklist()
    with pytest.raises(KeyError):
        Project.open(sample_run.project).explain("F-no-such-flag")
    with pytest.raises(KeyError):
        Project.open(sample_run.project).case_graph("no-such-node")


# ---------------------------------------------------------------------------------------------- figures
@pytest.mark.slow
def test_api_run_reproduces_the_demo_figures(sample_run, tmp_path: Path) -> None:
    """A run through ``Project.run`` on a fresh copy of the sample town gives the same figures as the run the
    CLI/demo path made (``sample_run``): accounting, person partition, flags, worklist and evaluation."""
    town = tmp_path / "town"
    shutil.copytree(REPO / "data" / "samples" / "town", town, ignore=shutil.ignore_patterns("store.duckdb*", "output"))
    project = Project.open(town / "project.toml", user="researcher")
    result = project.run(out=tmp_path / "out")
    assert isinstance(result, RunResult) and list(result.stage_seconds) and set(result.stage_seconds) == set(STAGES)
    reference = Project.open(sample_run.project)

    pd.testing.assert_frame_equal(project.accounting(), reference.accounting())
    mine, theirs = project.persons(), reference.persons()
    assert len(mine) == len(theirs) > 1000

    def partition(df: pd.DataFrame) -> set[frozenset]:
        return {frozenset(g) for g in (df.source + ":" + df.record_key).groupby(df.person_id).agg(tuple)}

    assert partition(mine) == partition(theirs)
    cols = ["flag_id", "rule", "entity_type", "entity_id", "rank"]
    pd.testing.assert_frame_equal(project.flags()[cols], reference.flags()[cols])
    wl_cols = ["rank", "case", "rules", "score", "agencies", "invisible_to_single_agency", "n_persons"]
    pd.testing.assert_frame_equal(project.worklist()[wl_cols], reference.worklist()[wl_cols])

    # the demo's headline accuracy, from Python, equals what `ecins-link evaluate` prints
    metrics = project.evaluate(town / "truth")
    printed = CliRunner().invoke(_cli(), ["evaluate", str(town / "project.toml"), "--truth", str(town / "truth")])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == json.loads(json.dumps(metrics, default=str))
    assert metrics["ingest"]["accounting_balanced"] and metrics["persons"]["bcubed"]["precision"] >= 0.99
    assert metrics["scenarios"] == reference.evaluate(sample_run.truth_dir)["scenarios"]

    summary = run_summary(result)
    assert summary["run_id"] == result.run_id == project.run_summary()["run_id"]
    json.dumps(summary)


# ---------------------------------------------------------------------------------------------- reading
def test_tables_as_pandas_or_arrow(sample_run) -> None:
    project = Project.open(sample_run.project)
    for method in ("accounting", "quarantine", "persons", "addresses", "flags", "worklist"):
        df = getattr(project, method)()
        table = getattr(project, method)(as_arrow=True)
        assert isinstance(df, pd.DataFrame) and isinstance(table, pa.Table), method
        assert table.num_rows == len(df) and table.column_names == list(df.columns), method
    acc = project.accounting()
    assert (acc.rows_read == acc.rows_accepted + acc.rows_quarantined).all()
    assert set(project.worklist().case) == {f"{t}:{i}" for t, i in
                                            project.flags()[["entity_type", "entity_id"]].itertuples(index=False)}


def test_explain_gives_records_agencies_dates_and_link_weights(sample_run) -> None:
    project = Project.open(sample_run.project)
    flags = project.flags()
    multi = flags[flags.person_ids.map(len) > 1].iloc[0]
    why = project.explain(multi.flag_id)
    assert isinstance(why, FlagExplanation)
    assert why.flag["flag_id"] == multi.flag_id and why.flag["rule"] == multi.rule
    evidence = json.loads(multi.evidence)
    assert len(why.records) == len(evidence["records"]) > 0
    assert set(why.records.record_key) == {r["record_key"] for r in evidence["records"]}
    assert set(why.agencies) <= set(multi.agencies) and why.agencies
    assert why.dates[0] <= why.dates[1] and why.dates[0] >= str(multi.first_date)[:10]
    assert len(why.conditions) == len(evidence["conditions"]) and why.conditions.met.any()
    assert set(why.people.person_id) == set(multi.person_ids)
    assert set(why.links.person_id) == set(multi.person_ids)
    persons = project.persons()
    members = persons[persons.person_id.isin(multi.person_ids)]
    assert len(why.links) == len(members)  # every record of every person of the case, with its link
    model = why.links[why.links.link_basis == "model"]
    if len(model):
        assert model.match_weight.notna().all() and model.breakdown.str.contains(r"\(\+|\(-").all()
        waterfall = project.explain_link(model.unique_id.iloc[0], model.linked_to.iloc[0])
        assert waterfall.comparison.iloc[0] == "Prior" and waterfall.comparison.iloc[-1] == "Final score"
    for frame in (why.records, why.people, why.links, why.conditions):
        assert not NAME_COLUMNS & set(frame.columns)


def test_case_graph_is_networkx(sample_run) -> None:
    project = Project.open(sample_run.project)
    flags = project.flags()
    loc = flags[flags.entity_type == "location"].iloc[0]
    G = project.case_graph(loc.flag_id)
    assert isinstance(G, nx.MultiGraph)
    assert loc.entity_id in G and set(loc.person_ids) <= set(G.nodes)
    assert {d["node_type"] for _, d in G.nodes(data=True)} >= {"person", "location", "event"}
    assert nx.utils.graphs_equal(G, project.case_graph(loc.entity_id))
    person = loc.person_ids[0]
    H = project.case_graph(person)
    assert person in H and H.nodes[person]["node_type"] == "person"
    assert all(b["person_id"] in G for b in bridging_people(G))


def test_read_methods_open_the_store_read_only(sample_run) -> None:
    """While another read-only connection holds the store, every read method works; a writing one does not
    (DuckDB refuses a connection with a different configuration), and reading leaves the audit log as it was."""
    project = Project.open(sample_run.project)
    flag = project.flags().iloc[0]
    held = duckdb.connect(str(sample_run.store_path), read_only=True)
    try:
        before = held.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        project.explain(flag.flag_id)
        project.case_graph(flag.flag_id)
        project.explain_person(flag.person_ids[0])
        assert project.verify_audit() == []
        assert len(project.audit()) == before
        project.lineage()
        project.review.decisions()
        with pytest.raises(Exception, match="different configuration"):
            project.review.export(Path(sample_run.town_dir) / "never.csv")
    finally:
        held.close()


# ---------------------------------------------------------------------------------------------- writing
def test_review_round_trip(sample_run, tmp_path: Path) -> None:
    run = sample_run.copy(tmp_path / "town")
    project = Project.open(run.project, user="reviewer")
    path = project.review.export(limit=5)
    pairs = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert 0 < len(pairs) <= 5
    pairs.loc[pairs.index[0], "decision"] = "non_match"
    pairs.to_csv(path, index=False)
    counts = project.review.import_(path)
    assert counts["imported"] == counts["non_match"] == 1
    decisions = project.review.decisions()
    assert len(decisions) == 1 and decisions.reviewer.iloc[0] == "reviewer"
    assert {"clerical_review_export"} <= set(project.audit().action)


# ---------------------------------------------------------------------------------------------- the CLI
def test_cli_version() -> None:
    result = CliRunner().invoke(_cli(), ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"ecins-link {ecins_link.__version__}"


def test_cli_json_on_stdout_errors_on_stderr(sample_run, tmp_path: Path) -> None:
    run = sample_run.copy(tmp_path / "town")
    runner = CliRunner()
    result = runner.invoke(_cli(), ["run", str(run.project), "--stage", "score", "--stage", "report", "--json",
                                    "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    last_run = Project.open(run.project).audit().run_id.iloc[-1]
    assert summary["run_id"] == last_run
    assert (tmp_path / "out" / "worklist.csv").exists()

    audit = runner.invoke(_cli(), ["audit", str(run.project), "--json", "--verify"])
    assert audit.exit_code == 0, audit.output
    log = json.loads(audit.stdout)
    assert log["verified"] is True and log["broken_at"] == []
    assert any(r["action"] == "run_outputs_exported" for r in log["rows"])

    bad = runner.invoke(_cli(), ["run", str(tmp_path / "missing.toml"), "--json"])
    assert bad.exit_code == 2 and bad.stdout == "" and "not found" in bad.stderr


def test_a_purpose_sees_only_its_own_view(sample_run, tmp_path: Path) -> None:
    """A purpose-bound Project refuses an output folder written for the full view, and explains a flag of its
    own view with links only from the agencies the purpose may see in detail."""
    with pytest.raises(PermissionError, match="holds the full view, not purpose 'iom'"):
        Project.open(sample_run.project, purpose="iom").worklist()
    run = sample_run.copy(tmp_path / "town")
    with pytest.raises(PermissionError, match="no record in this store's audit log"):  # copied: cannot tell
        Project.open(run.project, purpose="iom").worklist()
    iom = Project.open(run.project, purpose="iom", user="iom-analyst")
    iom.run(stages=["report"], out=tmp_path / "iom")
    flags = iom.flags()
    assert len(flags) and set(flags.rule) <= {"iom_rfg", "cuckooing", "asb_hotspot", "professional_judgement"}
    agency_of = {s.name: s.agency for s in iom.config.sources}
    shown = 0
    for flag_id in flags.flag_id.head(5):
        links = iom.explain(flag_id).links
        assert {agency_of[s] for s in links.source} <= {"police"}
        shown += len(links)
    assert shown > 0
    G = iom.case_graph(flags.flag_id.iloc[0])  # ids only, and only the purpose's agencies' records
    assert G.number_of_nodes() and not any(d["label"] for _, d in G.nodes(data=True))
    assert {agency_of[d["source"]] for *_, d in G.edges(data=True) if d.get("source")} <= {"police"}
    with pytest.raises(PermissionError, match="purpose 'iom'"):
        Project.open(run.project, purpose="marac", out=tmp_path / "iom").flags()
