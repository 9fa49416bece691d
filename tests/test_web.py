"""The panel workspace through Django's test client, on a copy of the sample town's finished run: login and
logout, CSRF, security headers, argon2 hashes, session expiry, disabled users, the purpose restriction
(a MARAC member gets 404 for an IOM-only case), search, lookup, decisions kept across a re-run, raise-only
overrides written to the store, and an audit row for every view, search, lookup, export and decision.

Django is configured once per process (settings are global), for this module's project copy.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time

import duckdb
import pytest

from ecins_link.report.views import view_for

PASSWORD = "correct horse battery staple"
USERS = {"mara": ("panel", "marac"), "ivan": ("panel", "iom"), "ana": ("analyst", None)}


@pytest.fixture(scope="module")
def web(sample_run, tmp_path_factory):  # noqa: ANN001, ANN201
    """The configured app on a private copy of the sample run, with three users."""
    run = sample_run.copy(tmp_path_factory.mktemp("web") / "town")
    from ecins_link.web import setup

    config = setup.configure(run.project)
    from ecins_link.web.users import add_user
    from ecins_link.web.views import holder

    for name, (role, purpose) in USERS.items():
        add_user(config, name, role, purpose, PASSWORD)
    snap = holder().publish()
    assert snap is not None
    return {"run": run, "config": config, "holder": holder()}


def client(name: str | None = None, csrf: bool = False):  # noqa: ANN201
    from django.test import Client

    c = Client(enforce_csrf_checks=csrf)
    if name:
        assert c.login(username=name, password=PASSWORD)
    return c


def case_ids(html: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r'href="/case/([0-9a-f]{16})/"', html)))


def all_case_ids(c) -> set[str]:  # noqa: ANN001
    """Every case id the worklist offers (following the pager)."""
    found, page = set(), 1
    while True:
        html = c.get("/", {"page": page}).content.decode()
        found |= set(case_ids(html))
        if 'rel="next"' not in html:
            return found
        page += 1


def store_cases(run, rules: set[str] | None) -> dict[str, set[str]]:  # noqa: ANN001
    """case id -> its rules, from the store's flags (independently of the app)."""
    from ecins_link.web.data import case_id_of

    con = duckdb.connect(str(run.store_path), read_only=True)
    try:
        rows = con.execute("SELECT entity_type, entity_id, rule FROM flags").fetchall()
    finally:
        con.close()
    out: dict[str, set[str]] = {}
    for etype, eid, rule in rows:
        if rules is None or rule in rules:
            out.setdefault(case_id_of(etype, eid), set()).add(rule)
    return out


def audit_rows(**filters):  # noqa: ANN003, ANN201
    from ecins_link.web.models import AuditEntry

    return list(AuditEntry.objects.filter(**filters))


def test_login_logout_and_login_required(web) -> None:  # noqa: ANN001
    c = client()
    r = c.get("/")
    assert r.status_code == 302 and r["Location"].startswith("/login/")
    bad = c.post("/login/", {"username": "mara", "password": "wrong password 123"})
    assert bad.status_code == 200 and b"did not match" in bad.content
    assert audit_rows(user="mara", action="login_failed")
    ok = c.post("/login/", {"username": "mara", "password": PASSWORD})
    assert ok.status_code == 302 and c.get("/").status_code == 200
    assert c.get("/logout/").status_code == 405  # logout only by POST (with the CSRF token)
    out = c.post("/logout/")
    assert out.status_code == 302 and c.get("/").status_code == 302


def test_csrf_is_enforced(web) -> None:  # noqa: ANN001
    c = client(csrf=True)
    assert c.post("/login/", {"username": "mara", "password": PASSWORD}).status_code == 403
    page = c.get("/login/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    assert c.post("/login/", {"username": "mara", "password": PASSWORD, "csrfmiddlewaretoken": token}).status_code == 302
    case = case_ids(c.get("/").content.decode())[0]
    assert c.post(f"/case/{case}/decision/", {"decision": "monitor"}).status_code == 403  # no token: refused


def test_security_headers_cookies_and_password_hashes(web) -> None:  # noqa: ANN001
    from django.contrib.auth import get_user_model

    c = client()
    r = c.post("/login/", {"username": "ana", "password": PASSWORD})
    cookie = r.cookies["ecins_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    page = c.get("/")
    assert "script-src" not in page["Content-Security-Policy"] and "default-src 'none'" in page["Content-Security-Policy"]
    assert page["X-Frame-Options"] == "DENY" and page["X-Content-Type-Options"] == "nosniff"
    assert page["Referrer-Policy"] == "same-origin" and page["Cache-Control"] == "no-store"
    assert b"<script" not in page.content
    hashed = get_user_model().objects.get(username="ana").password
    assert hashed.startswith("argon2") and PASSWORD not in hashed


def test_session_expires(web) -> None:  # noqa: ANN001
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    c = client("mara")
    assert c.get("/").status_code == 200
    key = c.cookies["ecins_session"].value
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    assert c.get("/").status_code == 302


def test_disabled_user_is_logged_out_and_cannot_log_in(web) -> None:  # noqa: ANN001
    from ecins_link.web.users import add_user, disable_user

    add_user(web["config"], "temp", "panel", "marac", PASSWORD)
    c = client("temp")
    assert c.get("/").status_code == 200
    disable_user("temp")
    assert c.get("/").status_code == 302
    assert not client().login(username="temp", password=PASSWORD)
    with pytest.raises(ValueError, match="password refused"):
        add_user(web["config"], "weak", "panel", "marac", "12345678")
    with pytest.raises(ValueError, match="purpose"):
        add_user(web["config"], "nopurpose", "panel", None, PASSWORD)


def test_panel_sees_exactly_its_purpose_and_gets_404_outside_it(web) -> None:  # noqa: ANN001
    config, run = web["config"], web["run"]
    marac_rules, iom_rules = set(config.purposes["marac"].rules), set(config.purposes["iom"].rules)
    expected = store_cases(run, marac_rules)
    mara = client("mara")
    assert all_case_ids(mara) == set(expected)
    iom_only = set(store_cases(run, iom_rules)) - set(store_cases(run, marac_rules))
    assert iom_only, "the sample town has IOM-only cases"
    forbidden = sorted(iom_only)[0]
    assert mara.get(f"/case/{forbidden}/").status_code == 404
    assert mara.post(f"/case/{forbidden}/decision/", {"decision": "monitor"}).status_code == 404
    assert client("ivan").get(f"/case/{forbidden}/").status_code == 200
    assert client("ana").get(f"/case/{forbidden}/").status_code == 200
    assert mara.get("/audit/").status_code == 404  # the audit log is for analysts


def test_case_page_words_and_purpose_limits(web) -> None:  # noqa: ANN001
    config = web["config"]
    marac = view_for(config, "marac")
    mara = client("mara")
    case = case_ids(mara.get("/").content.decode())[0]
    html = mara.get(f"/case/{case}/").content.decode()
    assert html.index('id="at-risk"') < html.index('id="evidence"')  # who is at risk first
    assert "threshold" in html and " — met." in html
    for code in ("DA_VICTIM", "SW_ALCOHOL", "police_occurrences", "_CONCERN"):
        assert code not in html  # labels, not codes
    con = duckdb.connect(str(web["run"].store_path), read_only=True)
    hidden = {k for (k,) in con.execute("SELECT record_key FROM person_records WHERE NOT list_contains(?, lower(agency))",
                                        [sorted(marac.agencies)]).fetchall()}
    con.close()
    shown = set(re.findall(r'<td class="nowrap">([^<]+)</td>', html))
    assert not (shown & hidden), "records of agencies outside the purpose are shown"


def test_search_is_limited_to_the_purpose(web) -> None:  # noqa: ANN001
    snap = web["holder"].get()
    marac, iom = view_for(web["config"], "marac"), view_for(web["config"], "iom")
    m_cases, i_cases = snap.cases(marac), snap.cases(iom)
    person = m_cases[(m_cases["entity_type"] == "person") & (m_cases["names"].map(len) > 0)].iloc[0]
    name = person["names"][0]
    found = case_ids(client("mara").get("/", {"q": name.lower()}).content.decode())
    assert person["case_id"] in found
    dob = person["dobs"][0]
    assert person["case_id"] in case_ids(client("mara").get("/", {"q": dob}).content.decode())
    only_iom = i_cases[~i_cases["case_id"].isin(m_cases["case_id"]) & (i_cases["names"].map(len) > 0)]
    other = only_iom.iloc[0]["names"][0]
    assert only_iom.iloc[0]["case_id"] not in case_ids(client("mara").get("/", {"q": other}).content.decode())
    rows = audit_rows(user="mara", action="search")
    assert rows and rows[0].purpose == "marac" and json.loads(rows[0].detail)["searched"]


def test_worklist_filters_sort_and_paging(web) -> None:  # noqa: ANN001
    ana = client("ana")
    first = case_ids(ana.get("/").content.decode())
    second = case_ids(ana.get("/", {"page": 2}).content.decode())
    assert len(first) == 50 and second and not set(first) & set(second)
    expected = store_cases(web["run"], {"cuckooing"})
    assert set(case_ids(ana.get("/", {"rule": "cuckooing"}).content.decode())) == set(expected)
    assert case_ids(ana.get("/", {"decision": "no_such"}).content.decode()) == []


def test_known_to_partners_lookup(web) -> None:  # noqa: ANN001
    con = duckdb.connect(str(web["run"].store_path), read_only=True)
    forenames, surname, dob, agencies = con.execute("""
        SELECT any_value(r.forenames), any_value(r.surname), any_value(r.dob), list(DISTINCT lower(r.agency) ORDER BY lower(r.agency))
        FROM person_clusters c JOIN person_records r USING (source, record_key)
        WHERE r.dob IS NOT NULL GROUP BY c.person_id HAVING count(DISTINCT r.agency) >= 3 ORDER BY c.person_id LIMIT 1""").fetchone()
    con.close()
    mara = client("mara")
    r = mara.post("/lookup/", {"forename": forenames, "surname": surname, "dob": dob.isoformat()})
    html = r.content.decode()
    assert r.status_code == 200 and "Records are held by" in html
    for agency in agencies:  # MARAC is existence_only: every holding agency is named, no detail
        assert agency.capitalize() in html
    assert surname not in html.split('id="answer"')[1]  # the answer names agencies, not the person
    miss = mara.post("/lookup/", {"forename": "Nobody", "surname": "Nonesuchperson", "dob": "1901-01-01"})
    assert b"No partner holds a record" in miss.content
    rows = audit_rows(user="mara", action="lookup")
    assert len(rows) >= 2 and rows[-1].purpose == "marac" and surname in rows[-1].entity + rows[0].entity


def test_decision_saved_audited_and_shown_after_a_rerun(web) -> None:  # noqa: ANN001
    from ecins_link.pipeline import run_project
    from ecins_link.web.models import Decision

    mara = client("mara")
    case = case_ids(mara.get("/").content.decode())[1]
    before = web["holder"].get().run_id
    r = mara.post(f"/case/{case}/decision/", {"decision": "refer", "action": "Refer to MARAC", "owner": "DS Smith",
                                             "review_date": "2026-12-01", "notes": "<b>not html</b>"})
    assert r.status_code == 302
    d = Decision.objects.get(action="Refer to MARAC")
    assert d.user == "mara" and d.flag_id and d.run_id == before
    assert audit_rows(user="mara", action="decision", entity=d.case_key)
    run_project(web["run"].project, web["run"].out_dir, user="tester", stages=["score", "report"])
    after = web["holder"].publish()
    assert after.run_id != before
    html = mara.get(f"/case/{case}/").content.decode()
    assert "Refer to MARAC" in html and "DS Smith" in html and "recorded on an earlier run" in html
    assert "&lt;b&gt;not html&lt;/b&gt;" in html and "<b>not html</b>" not in html
    listed = mara.get("/", {"decision": "refer"}).content.decode()
    assert case_ids(listed) == [case]


def test_override_raises_only_and_reaches_the_store(web) -> None:  # noqa: ANN001
    from ecins_link.web.models import OverrideRequest

    ana = client("ana")
    case = case_ids(ana.get("/").content.decode())[0]
    assert ana.post(f"/case/{case}/override/", {"raise_score": "-2", "reason": "lower it"}).status_code == 400
    assert ana.post(f"/case/{case}/override/", {"raise_score": "2", "reason": ""}).status_code == 400
    assert not OverrideRequest.objects.exists()
    assert ana.post(f"/case/{case}/override/", {"raise_score": "2.5", "reason": "known escalation"}).status_code == 302
    req = OverrideRequest.objects.get()
    assert req.override_id and not req.error
    con = duckdb.connect(str(web["run"].store_path), read_only=True)
    row = con.execute("SELECT raise_score, reason, user_name FROM overrides WHERE override_id = ?", [req.override_id]).fetchone()
    con.close()
    assert row == (2.5, "known escalation", "ana")
    assert audit_rows(user="ana", action="override")


def test_export_is_audited_and_spreadsheet_safe(web) -> None:  # noqa: ANN001
    r = client("mara").get("/export/worklist.csv")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    lines = r.content.decode().splitlines()
    assert lines[0].startswith("rank,case") and len(lines) - 1 == len(store_cases(web["run"], set(web["config"].purposes["marac"].rules)))
    assert not any(re.match(r'^[^,]*,"?[=+\-@]', line) for line in lines[1:])
    assert audit_rows(user="mara", action="export")


def test_every_consultation_is_audited(web) -> None:  # noqa: ANN001
    from ecins_link.web.models import AuditEntry

    mara = client("mara")
    start = AuditEntry.objects.count()
    case = case_ids(mara.get("/").content.decode())[0]
    mara.get(f"/case/{case}/")
    rows = list(AuditEntry.objects.order_by("id"))[start:]
    assert [r.action for r in rows] == ["view_worklist", "view_case"]
    assert all(r.user == "mara" and r.purpose == "marac" and r.run_id for r in rows)
    assert rows[-1].entity.split(":")[0] in ("person", "household", "location", "cluster")


def test_keeps_serving_while_a_batch_holds_the_store(web) -> None:  # noqa: ANN001
    """A newer run completed, but a second process holds the store read-write (as a batch does): publishing
    keeps the current snapshot in service until the store is free, then switches to the newer run."""
    from ecins_link.pipeline import run_project

    holder = web["holder"]
    current = holder.publish().run_id
    newer = run_project(web["run"].project, web["run"].out_dir, user="tester", stages=["report"]).run_id
    code = ("import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
            "time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(web["run"].store_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        assert holder.publish().run_id == current
        assert time.perf_counter() - started < 5
        assert client("mara").get("/").status_code == 200
    finally:
        proc.kill()
        proc.wait()
    assert holder.publish().run_id == newer != current


def test_app_audit_reaches_the_store_audit_log_without_names(web) -> None:  # noqa: ANN001
    from ecins_link.store import Store
    from ecins_link.web.overrides_queue import flush_audit

    mara = client("mara")
    case = case_ids(mara.get("/").content.decode())[0]
    mara.get(f"/case/{case}/")
    mara.post("/lookup/", {"forename": "Zed", "surname": "Secretname", "dob": "1990-01-01"})
    assert flush_audit(web["config"]) > 0
    assert flush_audit(web["config"]) == 0  # each app row is copied once
    with Store(web["run"].store_path, read_only=True) as store:
        rows = store.audit_rows()
        assert store.verify_audit() == []
    web_rows = rows[rows["action"].str.startswith("web_")]
    assert {"web_view_case", "web_lookup"} <= set(web_rows["action"])
    assert set(web_rows.loc[web_rows["action"] == "web_lookup", "category"]) == {"disclosure"}
    assert "Secretname" not in " ".join(web_rows["details"]) and "marac" in set(web_rows["purpose"])


def test_a_child_outside_the_purpose_is_at_risk_but_not_named(web) -> None:  # noqa: ANN001
    """Household cases need a child; when the child's records belong only to partners outside the purpose, the
    case page still says a child is at risk, without their name or age (here a purpose detailing police only)."""
    from dataclasses import replace

    from ecins_link.web.casepage import build_case_page

    police_only = replace(view_for(web["config"], "marac"), name="police_only", agencies=frozenset({"police"}))
    con = duckdb.connect(str(web["run"].store_path), read_only=True)
    rows = con.execute("""
        SELECT f.entity_id, h.person_id, a.display_name FROM flags f
        JOIN households h ON f.entity_type = 'household' AND h.household_id = f.entity_id
        JOIN person_attributes a ON a.person_id = h.person_id
        WHERE a.is_child AND list_contains(?::VARCHAR[], f.rule)
          AND NOT EXISTS (SELECT 1 FROM person_clusters c JOIN person_records r USING (source, record_key)
                          WHERE c.person_id = h.person_id AND lower(r.agency) = 'police')
        ORDER BY 1, 2""", [sorted(police_only.rules)]).fetchall()
    con.close()
    assert rows, "the sample town has household cases whose child is known to no police record"
    hid, pid, name = rows[0]
    snap = web["holder"].get()
    cases = snap.cases(police_only)
    case = cases[(cases["entity_type"] == "household") & (cases["entity_id"] == hid)].iloc[0].to_dict()
    page = build_case_page(snap, police_only, case, web["config"])
    child = [p for p in page.at_risk if p["person_id"] == pid]
    assert child and child[0]["age"] is None and child[0]["name"] == f"child {pid} (not shared for this purpose)"
    text = json.dumps([page.at_risk, page.persons, page.signals, page.links], default=str)
    assert name not in text


def test_users_cli_add_list_disable(web) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from ecins_link.cli import app

    runner, project = CliRunner(), str(web["run"].project)
    added = runner.invoke(app, ["users", "add", project, "clerk", "--role", "panel", "--purpose", "fire",
                                "--password-stdin"], input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    bad = runner.invoke(app, ["users", "add", project, "x", "--role", "panel", "--purpose", "nosuch",
                              "--password-stdin"], input=PASSWORD + "\n")
    assert bad.exit_code == 2 and "nosuch" in bad.output
    listed = runner.invoke(app, ["users", "list", project])
    assert listed.exit_code == 0 and "clerk" in listed.output and "fire" in listed.output
    assert runner.invoke(app, ["users", "disable", project, "clerk"]).exit_code == 0
    assert not client().login(username="clerk", password=PASSWORD)
