"""URL routes of the panel workspace."""

from django.urls import path, re_path

from ecins_link.web import views

urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("case/<str:case_id>/", views.case_view, name="case"),
    path("case/<str:case_id>/decision/", views.decision_view, name="decision"),
    path("case/<str:case_id>/override/", views.override_view, name="override"),
    path("lookup/", views.lookup_view, name="lookup"),
    path("export/worklist.csv", views.export_view, name="export"),
    path("audit/", views.audit_view, name="audit"),
    path("static/style.css", views.stylesheet, name="style"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    re_path(r"^print/(?P<rank>[0-9]{1,9})-(?P<case_id>[0-9a-f]{16})\.css$", views.print_css, name="print_css"),
]
