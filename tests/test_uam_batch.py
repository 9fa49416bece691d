"""How the locations stage calls uk_address_matcher: once per run, on distinct texts, with answers kept between runs.

Each test checks that the restructuring changes no answer: repeated texts matched once give every address the answer
it gets when sent on its own; a run whose texts are all kept does not call the matcher and writes the same
``address_matches`` as a run that does; another gazetteer or other settings never reuse a kept answer.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from ecins_link.config import load_config
from ecins_link.locations import uam, uam_cache
from ecins_link.locations.stage import load_location_rules
from ecins_link.store import Store


def _answers(table: pa.Table) -> dict[str, tuple]:
    return {r["akey"]: (r["uprn"], None if r["match_weight"] is None else round(r["match_weight"], 9),
                        None if r["dist"] is None or r["dist"] != r["dist"] else round(r["dist"], 9), r["reason"])
            for r in table.to_pylist()}


@pytest.mark.slow
def test_repeated_texts_are_matched_once_with_the_answers_each_gets_alone(sample_run, monkeypatch):
    """Addresses whose texts repeat (several akeys, one text) get, from one call on the distinct texts, exactly the
    answer each gets when every address is sent on its own row (no de-duplication) -- and the matcher sees each
    text once."""
    with duckdb.connect(str(sample_run.store_path), read_only=True) as store:
        canonical = store.execute(uam.canonical_sql()).to_arrow_table()
        texts = store.execute("""
            SELECT DISTINCT upper(address_text) AS address_concat, postcode FROM address_std
            WHERE address_text IS NOT NULL AND length(address_text) >= 3
            ORDER BY hash(address_concat, postcode) LIMIT 60""").to_arrow_table()
    con = duckdb.connect()
    con.register("texts", texts)
    # each text under 1-3 akeys (the way several spellings standardise to one text)
    messy = con.execute("""SELECT 'a' || row_number() OVER (ORDER BY address_concat, postcode, k) AS akey,
                                  address_concat, postcode
                           FROM texts, range(3) r(k) WHERE k <= hash(address_concat) % 3""").to_arrow_table()
    assert messy.num_rows > texts.num_rows
    settings = load_location_rules()["uk_address_matcher"]
    with uam.MatcherSession(canonical, settings) as session:
        alone = _answers(session.match(messy))
    assert len(alone) == messy.num_rows

    sent, got = [], {}
    real_match = uam.MatcherSession.match

    def counting(self, table):  # noqa: ANN001, ANN202
        sent.append(table.num_rows)
        return real_match(self, table)

    monkeypatch.setattr(uam.MatcherSession, "match", counting)
    monkeypatch.setattr(uam, "accept_matches", lambda _con, out, _s: got.update(_answers(out)) or 0)
    con.register("todo_in", messy)
    con.execute("CREATE TABLE todo AS SELECT * FROM todo_in")
    with uam.MatcherSession(canonical, settings) as session:
        uam.run_uk_address_matcher(con, "SELECT * FROM todo", settings, session=session)
    assert sent == [texts.num_rows]  # one call, each distinct text once
    assert got == alone


@pytest.mark.slow
def test_kept_answers_skip_the_matcher_and_change_nothing(sample_run, tmp_path, monkeypatch):
    """The sample run kept its matcher answers.  Re-running the locations stage reuses them all (the matcher is
    not called) and, with the homes stage after it as in the run, writes the same address_matches as that first
    run; with the cache off, the matcher is called and the answers are again the same."""
    from ecins_link.locations.homes import settle_homes
    from ecins_link.locations.stage import link_locations

    run = sample_run.copy(tmp_path / "town")
    config = load_config(run.project)
    query = "SELECT * FROM address_matches ORDER BY source, record_key"
    with Store(run.store_path) as store:
        first = store.con.execute(query).to_arrow_table()
        assert store.count(uam_cache.CACHE_TABLE) > 0
        kept = store.con.execute(f"SELECT * FROM {uam_cache.CACHE_TABLE} ORDER BY ALL").to_arrow_table()

        def no_call(*_a, **_k):  # noqa: ANN202
            raise AssertionError("the matcher was called although every text had a kept answer")

        with monkeypatch.context() as m:
            m.setattr(uam.MatcherSession, "match", no_call)
            link_locations(store, config)
        settle_homes(store, config)
        assert store.con.execute(query).to_arrow_table().equals(first)
        steps = store.con.execute("SELECT details->'$.steps' FROM audit_log WHERE action = 'link_locations' "
                                  "ORDER BY seq DESC LIMIT 1").fetchone()[0]
        assert '"uk_address_matcher_texts_cached"' in steps
        assert store.con.execute(f"SELECT * FROM {uam_cache.CACHE_TABLE} ORDER BY ALL").to_arrow_table().equals(kept)

        rules = tmp_path / "rules.toml"
        from ecins_link.locations.stage import RULES_FILE

        rules.write_text(RULES_FILE.read_text(encoding="utf-8").replace("answer_cache = true", "answer_cache = false"),
                         encoding="utf-8")
        calls = []
        real_match = uam.MatcherSession.match
        monkeypatch.setattr(uam.MatcherSession, "match", lambda self, t: calls.append(1) or real_match(self, t))
        link_locations(store, config, rules_path=rules)
        assert calls == [1]
        settle_homes(store, config, rules_path=rules)
        assert store.con.execute(query).to_arrow_table().equals(first)


def test_fingerprint_changes_with_the_gazetteer_settings_and_not_with_row_order():
    con = duckdb.connect()
    con.execute("CREATE TABLE g AS SELECT * FROM (VALUES ('1', '1 HIGH STREET, ALDTON', 'AL1 1AA'), "
                "('2', '2 HIGH STREET, ALDTON', NULL)) t(unique_id, address_concat, postcode)")
    sql = "SELECT * FROM g"
    base = uam_cache.fingerprint(con, sql, {"min_distinguishability": 7.0})
    assert base == uam_cache.fingerprint(con, "SELECT * FROM g ORDER BY unique_id DESC", {"min_distinguishability": 7.0})
    assert base != uam_cache.fingerprint(con, sql, {"min_distinguishability": 5.0})
    con.execute("UPDATE g SET postcode = 'AL1 1AB' WHERE unique_id = '2'")
    assert base != uam_cache.fingerprint(con, sql, {"min_distinguishability": 7.0})


def test_kept_answers_of_another_fingerprint_are_misses():
    """split_texts reuses only rows of the table it is given (one fingerprint); a text with no row goes to the
    matcher, a kept 'no answer' is a hit with no row."""
    con = duckdb.connect()
    con.execute("""CREATE TABLE _loc_uam_text AS SELECT * FROM (VALUES ('T1', '1 HIGH ST', 'AL1 1AA'),
                   ('T2', '2 HIGH ST', NULL), ('T3', '3 HIGH ST', NULL)) t(tkey, address_concat, postcode)""")
    con.execute("""CREATE TABLE kept AS SELECT * FROM (VALUES
                   ('fp', '1 HIGH ST', 'AL1 1AA', true, '11', 30.0, 9.0, 'splink'),
                   ('fp', '2 HIGH ST', NULL, false, NULL, NULL, NULL, NULL))
                   t(fingerprint, address_concat, postcode, answered, uprn, match_weight, dist, reason)""")
    assert uam_cache.split_texts(con, "kept") == 1
    assert con.execute("SELECT tkey FROM _loc_uam_miss").fetchall() == [("T3",)]
    assert con.execute("SELECT akey, uprn FROM _loc_uam_hits").fetchall() == [("T1", "11")]
    fresh = pa.table({"akey": ["T3"], "uprn": ["13"], "match_weight": [12.0], "dist": [float("nan")],
                      "reason": ["splink"]})
    nxt = uam_cache.new_cache(con, fresh, "fp2").to_pylist()
    assert [(r["address_concat"], r["answered"], r["uprn"]) for r in nxt] == [
        ("1 HIGH ST", True, "11"), ("2 HIGH ST", False, None), ("3 HIGH ST", True, "13")]
    assert {r["fingerprint"] for r in nxt} == {"fp2"}
