"""Response headers Django's SecurityMiddleware does not set: a strict Content-Security-Policy (no script,
no external anything), no caching of personal data, and a Permissions-Policy denying device access."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")


class SecurityHeadersMiddleware:
    """Adds CSP, Cache-Control: no-store and Permissions-Policy to every response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CSP)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), usb=()")
        if not request.path.startswith("/static/"):
            response["Cache-Control"] = "no-store"
        return response
