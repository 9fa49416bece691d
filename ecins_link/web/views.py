"""Views of the panel workspace (server-rendered; every page works without JavaScript).

Every view is login-only; a panel member's view is their purpose's (``report.views.view_for``) and a case
outside it is a 404.  Every view, search, lookup, export and decision writes an audit row.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
import urllib.parse
from importlib import resources

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from ecins_link.api.listing import STATUSES
from ecins_link.report.labels import agency_label, entity_label
from ecins_link.report.tables import FORMULA_RE
from ecins_link.report.views import View, view_for
from ecins_link.web import setup
from ecins_link.web.audit import audit
from ecins_link.web.casepage import build_case_page
from ecins_link.web.data import PAGE_SIZE, SnapshotHolder, WorklistQuery, worklist_page
from ecins_link.web.lookup import known_to_partners
from ecins_link.web.models import DECISIONS, AuditEntry, Decision, OverrideRequest

_holder: dict[str, SnapshotHolder] = {}
SORT_OPTIONS = (("rank", "rank"), ("score", "score"), ("last_date", "most recent"), ("first_date", "oldest first"),
                ("label", "name / address"))


def holder() -> SnapshotHolder:
    """The process's snapshot holder (made on first use)."""
    from django.conf import settings

    if "h" not in _holder:
        _holder["h"] = SnapshotHolder(setup.project_config(), settings.ECINS_WEB_DIR)
    return _holder["h"]


def _view(request: HttpRequest) -> View | None:
    """The user's view: analysts the full view (or their purpose, if one is set), panel members their purpose."""
    profile = getattr(request.user, "profile", None)
    if profile is None:
        return None
    try:
        if profile.role == "analyst":
            return view_for(setup.project_config(), profile.purpose or None)
        if profile.role == "panel" and profile.purpose:
            return view_for(setup.project_config(), profile.purpose)
    except ValueError:
        return None
    return None


def _context(request: HttpRequest, view: View, snap, **extra) -> dict:  # noqa: ANN001, ANN003
    profile = request.user.profile
    return {"view": view, "purpose": view.name or "full view", "role": profile.role,
            "run_id": snap.run_id if snap else "", "run_finished": snap.finished_at[:16] if snap else "", **extra}


def _no_run(request: HttpRequest, view: View) -> HttpResponse:
    return render(request, "web/no_run.html", _context(request, view, None), status=503)


def _guarded(fn):  # noqa: ANN001, ANN202 - decorator: login, a valid view, a published snapshot
    @login_required
    def wrapper(request: HttpRequest, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        view = _view(request)
        if view is None:
            return HttpResponseForbidden("Your account has no valid role or purpose; ask an analyst.")
        snap = holder().get()
        if snap is None:
            return _no_run(request, view)
        return fn(request, view, snap, *args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _latest_decisions(keys: list[str] | None = None) -> dict[str, str]:
    """case_key -> its latest decision value."""
    out: dict[str, str] = {}
    rows = Decision.objects.order_by("case_key", "-created_at", "-id").values_list("case_key", "decision")
    if keys is not None:
        rows = rows.filter(case_key__in=keys)
    for key, decision in rows:
        out.setdefault(key, decision)
    return out


def _query(request: HttpRequest) -> WorklistQuery:
    g = request.GET
    try:
        page = max(1, int(g.get("page", "1")))
    except ValueError:
        page = 1

    def date(name: str) -> str:
        try:
            return dt.date.fromisoformat(g.get(name, "")).isoformat()
        except ValueError:
            return ""

    return WorklistQuery(rule=g.get("rule", "")[:100], status=g.get("status", "")[:20], agency=g.get("agency", "")[:100],
                         date_from=date("from"), date_to=date("to"), decision=g.get("decision", "")[:40],
                         q=g.get("q", "")[:200], sort=g.get("sort", "rank")[:20], page=page)


@require_GET
@_guarded
def worklist(request: HttpRequest, view: View, snap) -> HttpResponse:  # noqa: ANN001
    """The purpose's ranked cases, filterable, searchable, paged."""
    cases = snap.cases(view)
    query = _query(request)
    decisions = _latest_decisions()
    page, total = worklist_page(cases, query, decisions, view)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    rows = [{**r, "decision": dict(DECISIONS).get(decisions.get(r["case"], ""), ""),
             "score_text": f"{r['score']:.1f}" if r["score"] == r["score"] else "",
             "agency_words": ", ".join(agency_label(a) for a in r["agencies"]),
             "what": entity_label(r["entity_type"])} for r in page.to_dict("records")]
    params = {k: v for k, v in request.GET.items() if k != "page"}
    base = urllib.parse.urlencode(params)
    searched = bool(query.q.strip())
    audit(request, "search" if searched else "view_worklist", "worklist",
          {"filters": {k: v for k, v in params.items() if k != "q"}, "searched": searched,
           "q": query.q if searched else None, "page": query.page, "shown": len(rows), "matching": total},
          snap.run_id)
    rules = sorted({(r, lab) for rs, labs in zip(cases["rules"], cases["rule_labels"], strict=True)
                    for r, lab in zip(str(rs).split(";"), labs, strict=False)}) if len(cases) else []
    agencies = sorted({a for ags in cases["agencies"] for a in ags}) if len(cases) else []
    return render(request, "web/worklist.html", _context(
        request, view, snap, rows=rows, total=total, all_cases=len(cases), q=query, page=query.page, pages=pages,
        prev_url=f"?{base}&page={query.page - 1}" if query.page > 1 else "",
        next_url=f"?{base}&page={query.page + 1}" if query.page < pages else "", rules=rules,
        agencies=[(a, agency_label(a)) for a in agencies], statuses=STATUSES, decisions=DECISIONS[1:],
        search_fields=", ".join(f for f, ok in (("name", view.field("name")), ("date of birth", view.field("dob")),
                                                ("address", view.field("address"))) if ok) or "nothing (no field shared)",
        export_url=f"/export/worklist.csv?{base}", sort_options=SORT_OPTIONS))


def _case_or_404(view: View, snap, case_id: str) -> dict:  # noqa: ANN001
    cases = snap.cases(view)
    hit = cases[cases["case_id"] == case_id] if len(cases) else cases
    if not len(hit):
        raise Http404("No such case in your view.")
    return hit.iloc[0].to_dict()


class DecisionForm(forms.Form):
    """A panel's decision on a case."""

    decision = forms.ChoiceField(choices=DECISIONS, required=False)
    action = forms.CharField(max_length=500, required=False)
    owner = forms.CharField(max_length=200, required=False)
    review_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)


class OverrideForm(forms.Form):
    """Raise a case's priority (never lower it), with a reason."""

    rule = forms.CharField(max_length=100, required=False)
    raise_score = forms.FloatField(min_value=0.01, max_value=1000)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)

    def clean_raise_score(self) -> float:
        value = self.cleaned_data["raise_score"]
        if not math.isfinite(value) or value <= 0:
            raise forms.ValidationError("An override can only raise a priority (a positive number).")
        return value


def _decisions_for(case: dict) -> list[Decision]:
    ids = [str(f) for f in case["flag_ids"]]
    from django.db.models import Q

    return list(Decision.objects.filter(Q(case_key=case["case"]) | Q(flag_id__in=ids)))


@require_GET
@_guarded
def case_view(request: HttpRequest, view: View, snap, case_id: str) -> HttpResponse:  # noqa: ANN001
    """One case: who is at risk, the evidence in words, timeline, network, records, decisions."""
    case = _case_or_404(view, snap, case_id)
    page = build_case_page(snap, view, case, setup.project_config())
    audit(request, "view_case", case["case"], {"case_id": case_id, "flags": list(case["flag_ids"])}, snap.run_id)
    return _render_case(request, view, snap, case, page)


def _render_case(request: HttpRequest, view: View, snap, case: dict, page, decision_form=None,  # noqa: ANN001
                 override_form=None, status: int = 200) -> HttpResponse:
    decisions = _decisions_for(case)
    pending = OverrideRequest.objects.filter(entity_type=case["entity_type"], entity_id=case["entity_id"]).order_by("-id")
    latest = decisions[0] if decisions else None
    initial = {"decision": latest.decision, "action": latest.action, "owner": latest.owner,
               "review_date": latest.review_date} if latest else {}
    return render(request, "web/case.html", _context(
        request, view, snap, case=case, page=page, decisions=decisions, latest=latest,
        decision_form=decision_form or DecisionForm(initial=initial), override_form=override_form or OverrideForm(),
        override_requests=pending, rules=list(dict.fromkeys(str(case["rules"]).split(";"))),
        what=entity_label(case["entity_type"])), status=status)


@require_POST
@_guarded
def decision_view(request: HttpRequest, view: View, snap, case_id: str) -> HttpResponse:  # noqa: ANN001
    """Record a decision (a new row; history kept) and go back to the case."""
    case = _case_or_404(view, snap, case_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _render_case(request, view, snap, case, build_case_page(snap, view, case, setup.project_config()), decision_form=form, status=400)
    d = form.cleaned_data
    row = Decision.objects.create(case_key=case["case"], flag_id=str(case["lead_flag"]),
                                  flag_ids=json.dumps([str(f) for f in case["flag_ids"]]), purpose=view.name or "",
                                  decision=d["decision"], action=d["action"], owner=d["owner"],
                                  review_date=d["review_date"], notes=d["notes"], user=request.user.get_username(),
                                  run_id=snap.run_id)
    audit(request, "decision", case["case"], {"decision_id": row.id, "decision": d["decision"],
                                              "flag_id": row.flag_id}, snap.run_id)
    return redirect(f"/case/{case_id}/#decisions")


@require_POST
@_guarded
def override_view(request: HttpRequest, view: View, snap, case_id: str) -> HttpResponse:  # noqa: ANN001
    """Ask for a raise-only override; written to the store now, or as soon as no batch holds it."""
    case = _case_or_404(view, snap, case_id)
    form = OverrideForm(request.POST)
    rules = str(case["rules"]).split(";")
    if form.is_valid() and form.cleaned_data["rule"] and form.cleaned_data["rule"] not in rules:
        form.add_error("rule", "Choose one of this case's rules (or none).")
    if not form.is_valid():
        return _render_case(request, view, snap, case, build_case_page(snap, view, case, setup.project_config()), override_form=form, status=400)
    d = form.cleaned_data
    req = OverrideRequest.objects.create(entity_type=case["entity_type"], entity_id=case["entity_id"], rule=d["rule"],
                                         raise_score=d["raise_score"], reason=d["reason"].strip(),
                                         user=request.user.get_username(), purpose=view.name or "")
    audit(request, "override", case["case"], {"request_id": req.id, "rule": d["rule"], "raise": d["raise_score"]},
          snap.run_id)
    from ecins_link.web.overrides_queue import apply_pending

    apply_pending(setup.project_config())
    return redirect(f"/case/{case_id}/#overrides")


class LookupForm(forms.Form):
    """Name and date of birth (address optional)."""

    forename = forms.CharField(max_length=100, required=False)
    surname = forms.CharField(max_length=100)
    dob = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="Date of birth")
    address = forms.CharField(max_length=200, required=False, label="Address or postcode (optional)")


@_guarded
def lookup_view(request: HttpRequest, view: View, snap) -> HttpResponse:  # noqa: ANN001
    """"Known to partners?": which agencies hold records (existence only); every lookup audited."""
    result = None
    if request.method == "POST":
        form = LookupForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            result = known_to_partners(snap, view, d["forename"], d["surname"], d["dob"], d["address"])
            audit(request, "lookup", f"{d['forename']} {d['surname']} {d['dob']}".strip(),
                  {"address_given": bool(d["address"]), "agencies": result.agencies, "matched": result.persons},
                  snap.run_id)
    elif request.method == "GET":
        form = LookupForm()
    else:
        return HttpResponse(status=405)
    return render(request, "web/lookup.html", _context(
        request, view, snap, form=form, result=result,
        agency_words=[agency_label(a) for a in result.agencies] if result else []))


def _csv_safe(value: object) -> str:
    """A cell a spreadsheet will not run as a formula (the same rule as the run's CSV files)."""
    text = "" if value is None else str(value)
    return "'" + text if re.match(FORMULA_RE, text) else text


@require_GET
@_guarded
def export_view(request: HttpRequest, view: View, snap) -> HttpResponse:  # noqa: ANN001
    """The filtered worklist as a spreadsheet-safe CSV (audited as an export)."""
    cases = snap.cases(view)
    query = _query(request)
    decisions = _latest_decisions()
    page, total = worklist_page(cases, query, decisions, view, page_size=max(1, len(cases)))
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["rank", "case", "who / where", "rules", "score", "status", "agencies", "first", "last", "decision"])
    for r in page.to_dict("records"):
        w.writerow([_csv_safe(x) for x in (r["rank"], r["case"], r["label"], "; ".join(r["rule_labels"]), r["score"],
                                           r["status"] or "", ", ".join(r["agencies"]), r["first_date"], r["last_date"],
                                           decisions.get(r["case"], ""))])
    audit(request, "export", "worklist", {"rows": total, "filters": dict(request.GET.items())}, snap.run_id)
    resp = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    resp["Content-Disposition"] = 'attachment; filename="worklist.csv"'
    return resp


@require_GET
@_guarded
def audit_view(request: HttpRequest, view: View, snap) -> HttpResponse:  # noqa: ANN001
    """The app's audit log (analysts only)."""
    if request.user.profile.role != "analyst":
        raise Http404("Not available for your role.")
    audit(request, "view_audit", "audit", {}, snap.run_id)
    rows = AuditEntry.objects.all()[:300]
    return render(request, "web/audit.html", _context(request, view, snap, rows=rows))


def login_view(request: HttpRequest) -> HttpResponse:
    """Django's login view with the app's template."""
    return auth_views.LoginView.as_view(template_name="web/login.html", redirect_authenticated_user=True)(request)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """Log out (POST with CSRF token) and go to the login page."""
    from django.contrib.auth import logout

    if request.user.is_authenticated:
        audit(request, "logout", "session")
    logout(request)
    return redirect("/login/")


def stylesheet(request: HttpRequest) -> HttpResponse:
    """The pack's stylesheet plus the workspace's own rules (served from the app: CSP allows 'self' only)."""
    base = resources.files("ecins_link.report") / "templates"
    css = (base / "style.css").read_text(encoding="utf-8")
    css += "\n" + (resources.files("ecins_link.web") / "templates" / "web" / "web.css").read_text(encoding="utf-8")
    resp = HttpResponse(css, content_type="text/css; charset=utf-8")
    resp["Cache-Control"] = "max-age=3600"
    return resp


def print_css(request: HttpRequest, rank: str, case_id: str) -> HttpResponse:
    """The running header of a printed case page (its rank and hex id: the URL pattern admits nothing else;
    a stylesheet, because the CSP allows no inline style)."""
    css = f'@page {{ @top-right {{ content: "Case {int(rank)} · {case_id}"; font: 9pt Arial, sans-serif; }} }}\n'
    return HttpResponse(css, content_type="text/css; charset=utf-8")


def favicon(request: HttpRequest) -> HttpResponse:
    """No icon (204), so browsers asking for one on a plain error page log no failed request."""
    return HttpResponse(status=204)


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness (no data)."""
    return HttpResponse("ok", content_type="text/plain")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A plain 403 for a missing or wrong CSRF token."""
    return HttpResponseForbidden("Form expired or not sent from this site; go back, reload and try again.")
