"""Graph stage on a small realistic partnership: households, co-involvement, churn, clusters, exports."""

from __future__ import annotations

import datetime as dt

import networkx as nx
import pandas as pd
import pytest

from ecins_link.config import parse_config
from ecins_link.graph import (
    address_churn,
    bridging_people,
    build_graph,
    case_subgraph,
    ego_network,
    export_graph,
)
from ecins_link.scratch_steps import Step, scratch, sql_step
from ecins_link.store import Store, StoreError

AS_OF = dt.date(2024, 6, 30)
D = dt.date.fromisoformat

PR_COLS = ["source", "agency", "record_key", "row_number", "title", "forenames", "surname", "full_name", "dob",
           "dob_raw", "sex", "address_text", "postcode", "uprn", "phone", "email", "resident_from", "resident_to",
           "unsafe"]
EV_COLS = ["source", "agency", "record_key", "event_seq", "signal", "raw_code", "role", "event_date", "event_ts",
           "location_text", "location_postcode", "person_source", "person_record_key"]


TYPES = {"row_number": "BIGINT", "dob": "DATE", "resident_from": "DATE", "resident_to": "DATE",
         "unsafe": "BOOLEAN", "event_seq": "INT", "event_date": "DATE", "event_ts": "TIMESTAMP"}


def _typed(store: Store, name: str, df: pd.DataFrame) -> None:
    """Write with the contract's column types (VARCHAR unless a date/number/flag)."""
    store.con.register("_df", df)
    cols = ", ".join(f'CAST("{c}" AS {TYPES.get(c, "VARCHAR")}) AS "{c}"' for c in df.columns)
    store.con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT {cols} FROM _df')
    store.con.unregister("_df")


def _config():
    return parse_config({"project": {"name": "t", "as_of": AS_OF.isoformat()}, "sources": [
        {"name": "housing", "agency": "housing", "path": "h.csv", "key": "tenancy", "person": {"full_name": "n"}},
        {"name": "nominals", "agency": "police", "path": "n.csv", "key": "nominal", "person": {"full_name": "n"}},
        {"name": "council", "agency": "council", "path": "c.csv", "key": "id", "person": {"full_name": "n"}},
        {"name": "occurrences", "agency": "police", "path": "o.csv", "key": ["occ", "nominal"],
         "event": {"code": "type", "date": "d", "role": "role", "location": "loc",
                   "person_ref": {"source": "nominals", "column": "nominal"}}},
    ]})


class Town:
    """Person records, events and address matches written as the upstream stages would."""

    def __init__(self) -> None:
        self.persons: list[list] = []
        self.clusters: list[list] = []
        self.events: list[list] = []
        self.addresses: list[list] = []

    def record(self, person_id, source, key, forenames, surname, dob=None, sex=None, location=None,
               res_from=None, res_to=None):
        agency = {"housing": "housing", "nominals": "police", "council": "council"}[source]
        self.persons.append([source, agency, key, len(self.persons) + 1, None, forenames, surname, None,
                             D(dob) if dob else None, dob, sex, "addr", None, None, None, None,
                             D(res_from) if res_from else None, D(res_to) if res_to else None, False])
        self.clusters.append([f"{source}:{key}", source, key, person_id, 0.99])
        if location:
            self.addresses.append([source, agency, key, "person", location, location])

    def occurrence(self, occ, nominal, code, role, date, location=None):
        key = f"{occ}|{nominal}"
        self.events.append(["occurrences", "police", key, 1, code, code, role, D(date), None, None, None,
                            "nominals", nominal])
        if location:
            self.addresses.append(["occurrences", "police", key, "event", location, location])

    def write(self, store: Store) -> None:
        _typed(store, "person_records", pd.DataFrame(self.persons, columns=PR_COLS))
        store.write_table("person_clusters", pd.DataFrame(
            self.clusters, columns=["unique_id", "source", "record_key", "person_id", "cluster_confidence"]))
        ev = pd.DataFrame(self.events, columns=EV_COLS)
        ev["event_ts"] = pd.to_datetime(ev["event_ts"])
        _typed(store, "event_records", ev)
        a = pd.DataFrame(self.addresses, columns=["source", "agency", "record_key", "origin", "address_text",
                                                  "location_id"])
        store.write_table("address_records", a.assign(postcode="AB1 2CD", uprn=None).drop(columns="location_id"))
        store.write_table("address_matches", pd.DataFrame({
            "source": a.source, "record_key": a.record_key, "uprn": a.location_id.str[1:],
            "location_id": a.location_id, "match_confidence": 0.98, "match_method": "exact_key"}))


def _town() -> Town:
    t = Town()
    # the Smith household at U100: two adults (tenancies) and a child (council, undated)
    t.record("P1", "housing", "T1", "Jane", "Smith", "1985-03-02", "F", "U100", "2020-01-01")
    t.record("P1", "nominals", "N1", "Jane", "Smith", "1985-03-02", "F", "U100")
    t.record("P1", "council", "C1", "Jane", "Smyth", "1985-02-03", "F", "U100")
    t.record("P2", "housing", "T2", "John", "Smith", "1983-07-10", "M", "U100", "2021-06-01")
    t.record("P2", "nominals", "N2", "John", "Smith", "1983-07-10", "M", "U100")
    t.record("P3", "council", "C3", "Amy", "Smith", "2015-09-01", "F", "U100")
    # a previous tenant of U100, gone before the Smiths arrived
    t.record("P4", "housing", "T4", "Old", "Tenant <b>&", "1950-01-01", "M", "U100", "2010-01-01", "2019-12-01")
    # an outsider whose police record gives U100, seen there only in the last month (drug supply)
    t.record("P5", "nominals", "N5", "Dee", "Ler", "1999-01-01", "M", "U100")
    t.occurrence("O3", "N5", "DRUG_SUPPLY", "S", "2024-06-10", "U100")
    # DA at the Smiths' home with no location given: falls back to the victim's residence
    t.occurrence("O2", "N1", "DA_VICTIM", "V", "2024-05-20")
    t.occurrence("O2", "N2", "DA_SUSPECT", "S", "2024-05-20")
    # an ASB occurrence at U200 naming a neighbour (victim) and a suspect from U300
    t.record("P6", "nominals", "N6", "Nia", "Bour", "1970-01-01", "F", "U200")
    t.record("P7", "nominals", "N7", "Sus", "Pect", "2000-01-01", "M", "U300")
    t.occurrence("O1", "N6", "ASB_REPORT", "V", "2024-04-01", "U200")
    t.occurrence("O1", "N7", "ASB_REPORT", "S", "2024-04-01", "U200")
    # an ended tenancy plus an undated police record of the same address: the tenancy dates win
    t.record("P8", "housing", "T8", "Ann", "Ended", "1960-05-05", "F", "U400", "2012-01-01", "2018-06-30")
    t.record("P8", "nominals", "N8", "Ann", "Ended", "1960-05-05", "F", "U400")
    return t


@pytest.fixture(scope="module")
def graph_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("g") / "s.duckdb")
    _town().write(store)
    build_graph(store, _config())
    yield store
    store.close()


def _edges(store, edge_type):
    return {tuple(r) for r in store.con.execute(
        "SELECT src, dst FROM graph_edges WHERE edge_type = ?", [edge_type]).fetchall()}


def test_person_attributes(graph_store):
    pa = graph_store.df("SELECT * FROM person_attributes").set_index("person_id")
    assert pa.loc["P1", "display_name"] == "Jane Smith"  # most common form of three records
    assert pa.loc["P1", "dob"].isoformat()[:10] == "1985-03-02"  # modal DOB, not the transposed one
    assert pa.loc["P1", "age"] == 39 and not pa.loc["P1", "is_child"]
    assert pa.loc["P3", "age"] == 8 and pa.loc["P3", "is_child"]
    assert list(pa.loc["P1", "agencies"]) == ["council", "housing", "police"]
    assert pa.loc["P1", "n_records"] == 3


def test_residences_and_households(graph_store):
    r = graph_store.df("SELECT * FROM residences").set_index("person_id")
    assert str(r.loc["P1", "first_seen"])[:10] == "2020-01-01" and pd.isna(r.loc["P1", "last_seen"])
    assert str(r.loc["P4", "last_seen"])[:10] == "2019-12-01"
    assert str(r.loc["P5", "first_seen"])[:10] == "2024-06-10"  # dated by his event
    assert str(r.loc["P8", "last_seen"])[:10] == "2018-06-30" and r.loc["P8", "n_records"] == 2
    # an event's location is where it happened, not where the people in it live
    assert set(r.loc[["P7"]].location_id) == {"U300"}
    h = graph_store.df("SELECT * FROM households").set_index("person_id")
    assert h.loc["P1", "household_id"] == h.loc["P2", "household_id"] == h.loc["P3", "household_id"]
    assert h.loc["P4", "household_id"] != h.loc["P1", "household_id"]  # earlier tenant, no overlap
    assert bool(h.loc["P3", "is_child"]) and not bool(h.loc["P1", "is_child"])
    same = _edges(graph_store, "same_household")
    assert {("P1", "P2"), ("P1", "P3"), ("P2", "P3")} <= same
    assert not any("P4" in e for e in same)


def test_event_edges(graph_store):
    assert ("P6", "P7") in _edges(graph_store, "co_involved")
    assert ("P6", "P7") in _edges(graph_store, "victim_suspect")
    assert ("P1", "P2") in _edges(graph_store, "victim_suspect")  # victim -> suspect
    occ = graph_store.df("SELECT src, dst, role FROM graph_edges WHERE edge_type = 'occurred_at'").set_index("src")
    assert occ.loc["E:occurrences:O1", "dst"] == "U200" and occ.loc["E:occurrences:O1", "role"] == "own_address"
    assert occ.loc["E:occurrences:O2", "dst"] == "U100" and occ.loc["E:occurrences:O2", "role"] == "residence"
    inv = graph_store.df("SELECT src, dst, role FROM graph_edges WHERE edge_type = 'involved_in'")
    assert set(inv[inv.dst == "E:occurrences:O1"].src) == {"P6", "P7"}
    nodes = graph_store.df("SELECT node_type, count(*) AS n FROM graph_nodes GROUP BY 1").set_index("node_type")
    assert nodes.loc["event", "n"] == 3 and nodes.loc["person", "n"] == 8 and nodes.loc["location", "n"] == 4


def test_components(graph_store):
    c = dict(graph_store.con.execute("SELECT person_id, component_id FROM person_components").fetchall())
    assert len(c) == 8
    assert c["P1"] == c["P2"] == c["P3"] == c["P5"]
    assert c["P6"] == c["P7"] != c["P1"]
    assert c["P4"] not in {c["P1"], c["P6"]}


def test_churn_counts_outsider_not_established_household(graph_store):
    ch = graph_store.df("SELECT * FROM location_churn").set_index("location_id")
    assert str(ch.loc["U100", "window_end"])[:10] == AS_OF.isoformat()
    assert ch.loc["U100", "unrelated_persons"] == 1  # the outsider only
    assert ch.loc["U100", "distinct_persons"] == 3  # the two adult tenants and the outsider
    wide = address_churn(graph_store, window_days=3650).set_index("location_id")
    assert wide.loc["U100", "distinct_persons"] > ch.loc["U100", "distinct_persons"]


def test_ego_case_and_bridges(graph_store):
    g = ego_network(graph_store, person_id="P6", hops=2)
    assert {"P6", "P7", "E:occurrences:O1", "U200"} <= set(g.nodes)
    assert "P1" not in g.nodes
    case = case_subgraph(graph_store, ["P1"], ["U100"])
    assert {"P1", "U100", "E:occurrences:O2", "E:occurrences:O3"} <= set(case.nodes)
    assert isinstance(case, nx.MultiGraph)
    # P5 is the only link between the drug-supply event and the household of U100
    chain = nx.Graph([("A", "X"), ("X", "B")])
    nx.set_node_attributes(chain, "person", "node_type")
    assert [b["person_id"] for b in bridging_people(chain)] == ["X"]
    with pytest.raises(ValueError):
        ego_network(graph_store)
    with pytest.raises(KeyError):
        ego_network(graph_store, person_id="nobody")


def test_export_component_roundtrip(graph_store, tmp_path):
    cid = graph_store.con.execute("SELECT component_id FROM person_components WHERE person_id = 'P1'").fetchone()[0]
    paths = export_graph(graph_store, tmp_path / "c", component_id=cid)
    g = nx.read_graphml(paths["graphml"])
    assert {"P1", "P2", "P3", "P5", "U100"} <= set(g.nodes) and "P6" not in g.nodes
    assert len(pd.read_parquet(paths["edges"])) == g.number_of_edges()
    full = export_graph(graph_store, tmp_path / "all")
    g_all = nx.read_graphml(full["graphml"])
    assert g_all.nodes["P4"]["label"] == "Old Tenant <b>&"  # escaped in the file, intact when read back
    assert g_all.number_of_nodes() == graph_store.count("graph_nodes")
    with pytest.raises(KeyError):
        export_graph(graph_store, tmp_path / "x", component_id="C-none")


def test_long_chain_is_one_component(tmp_path):
    t = Town()
    for i in range(40):
        t.record(f"Q{i:02d}", "nominals", f"M{i}", "A", f"B{i}", "1990-01-01", "M", f"U{1000 + i}")
    for i in range(39):
        t.occurrence(f"K{i}", f"M{i}", "VIOLENCE", "V", "2024-01-01")
        t.occurrence(f"K{i}", f"M{i + 1}", "VIOLENCE", "S", "2024-01-01")
    with Store(tmp_path / "s.duckdb") as store:
        t.write(store)
        build_graph(store, _config())
        assert store.con.execute("SELECT count(DISTINCT component_id) FROM person_components").fetchone()[0] == 1


def test_missing_inputs_raise(tmp_path):
    with Store(tmp_path / "s.duckdb") as store:
        with pytest.raises(StoreError):
            build_graph(store, _config())


# ------------------------------------------------------------------ the scratch step runner (graph and score)
@pytest.fixture
def scratch_store(tmp_path) -> Store:
    s = Store(tmp_path / "scratch.duckdb")
    s.con.execute("CREATE TABLE base AS SELECT range AS i FROM range(1000)")
    s.con.execute("CREATE TABLE out AS SELECT 'old' AS v")  # a store table the stage replaces
    yield s
    s.close()


def _attached(store: Store) -> set[str]:
    return {r[0] for r in store.con.execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal")
            .fetchall()}


def test_steps_follow_their_predecessors_and_main_writes_commit_together(scratch_store: Store) -> None:
    store = scratch_store
    before = _attached(store)
    with scratch(store, "t") as work:
        steps = [
            sql_step("evens", "SELECT i FROM base WHERE i % 2 = 0"),
            sql_step("odds", "SELECT i FROM base WHERE i % 2 = 1"),
            # reads the scratch tables, not anything else of that name
            sql_step("out", "SELECT (SELECT count(*) FROM evens) + (SELECT count(*) FROM odds) AS v",
                     ("evens", "odds")),
            Step("n_out", lambda cur: cur.execute("SELECT v FROM out").fetchone()[0], ("out",)),
        ]
        with store.stage("t"):
            # started inside the transaction, after it began: each scratch table is still seen
            done = work.run(steps, main=[work.copy("out"), work.write("evens_too", "SELECT * FROM evens", ("evens",))])
        assert done["n_out"] == 1000
        assert done["store.out"] == 1 and done["store.evens_too"] == 500
        assert set(work.seconds) >= {"evens", "odds", "out", "store.out"}
    assert store.con.execute("SELECT v FROM out").fetchone()[0] == 1000
    assert store.count("evens_too") == 500
    assert _attached(store) == before  # scratch databases detached


def test_a_failing_step_stops_the_run_and_the_stage_writes_nothing(scratch_store: Store) -> None:
    store = scratch_store
    ran = []
    with scratch(store, "t") as work:
        steps = [
            sql_step("bad", "SELECT * FROM no_such_table"),
            Step("later", lambda cur: ran.append(1), ("bad",)),
        ]
        with pytest.raises(Exception, match="no_such_table"), store.stage("t"):
            work.run(steps, main=[work.write("out", "SELECT 'new' AS v", ()), work.copy("bad")])
    assert not ran
    assert store.con.execute("SELECT v FROM out").fetchone()[0] == "old"  # rolled back


@pytest.mark.parametrize("steps,main,message", [
    ([Step("a", lambda c: None, ("b",)), Step("b", lambda c: None, ("a",))], [], "circular"),
    ([Step("a", lambda c: None, ("nope",))], [], "unknown"),
    ([Step("a", lambda c: None), Step("a", lambda c: None)], [], "repeated"),
    ([Step("a", lambda c: None, ("m",))], [Step("m", lambda c: None)], "cannot follow a main step"),
])
def test_bad_step_orders_are_refused_before_anything_runs(scratch_store: Store, steps, main, message) -> None:
    with scratch(scratch_store, "t") as work, pytest.raises(ValueError, match=message):
        work.run(steps, main=main)
