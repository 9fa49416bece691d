"""Configure Django for one project, programmatically (no settings module, no manage.py)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ecins_link.config import ProjectConfig, load_config

SESSION_SECONDS = 30 * 60  # idle expiry: every request renews it (SESSION_SAVE_EVERY_REQUEST)


def web_dir_of(config: ProjectConfig) -> Path:
    """``<project folder>/web``: the app's database, secret key and published snapshots."""
    return Path(config.store_path).parent / "web"


def _secret_key(web_dir: Path) -> str:
    """The app's signing key, made once with ``secrets`` and kept (owner-readable only) in web/secret_key."""
    path = web_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    key = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key)
    return key


_state: dict = {}


def configure(project: Path | str, *, https: bool = False, debug: bool = False) -> ProjectConfig:
    """Load the project, configure Django for it (once per process) and bring the app's database up to date.

    ``https``: mark cookies Secure and send HSTS (set when served behind TLS; loopback HTTP otherwise)."""
    import django
    from django.conf import settings

    config = load_config(Path(project))
    web_dir = web_dir_of(config)
    web_dir.mkdir(parents=True, exist_ok=True)
    if settings.configured:
        if _state.get("project") != str(Path(project).resolve()):
            raise RuntimeError("Django is already configured for another project in this process")
        return config
    settings.configure(
        DEBUG=debug,
        SECRET_KEY=_secret_key(web_dir),
        ALLOWED_HOSTS=["*"] if debug else ["127.0.0.1", "localhost", "[::1]", "testserver",
                                           *filter(None, os.environ.get("ECINS_ALLOWED_HOSTS", "").split(","))],
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
                        "ecins_link.web.apps.WebConfig"],
        MIDDLEWARE=["django.middleware.security.SecurityMiddleware",
                    "django.contrib.sessions.middleware.SessionMiddleware",
                    "django.middleware.common.CommonMiddleware",
                    "django.middleware.csrf.CsrfViewMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware",
                    "django.middleware.clickjacking.XFrameOptionsMiddleware",
                    "ecins_link.web.security.SecurityHeadersMiddleware"],
        ROOT_URLCONF="ecins_link.web.urls",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(web_dir / "app.sqlite3"),
                               "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}}},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "APP_DIRS": True,
                    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                       "django.contrib.auth.context_processors.auth",
                                                       "django.template.context_processors.csrf"]}}],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.Argon2PasswordHasher",
                          "django.contrib.auth.hashers.PBKDF2PasswordHasher"],
        AUTH_PASSWORD_VALIDATORS=[
            {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
            {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
            {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"}],
        SESSION_ENGINE="django.contrib.sessions.backends.db",
        SESSION_COOKIE_AGE=SESSION_SECONDS, SESSION_SAVE_EVERY_REQUEST=True, SESSION_EXPIRE_AT_BROWSER_CLOSE=True,
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_SECURE=https,
        SESSION_COOKIE_NAME="ecins_session",
        CSRF_COOKIE_HTTPONLY=True, CSRF_COOKIE_SAMESITE="Strict", CSRF_COOKIE_SECURE=https,
        CSRF_FAILURE_VIEW="ecins_link.web.views.csrf_failure",
        SECURE_CONTENT_TYPE_NOSNIFF=True, SECURE_REFERRER_POLICY="same-origin",
        SECURE_CROSS_ORIGIN_OPENER_POLICY="same-origin", X_FRAME_OPTIONS="DENY",
        SECURE_HSTS_SECONDS=31536000 if https else 0, SECURE_SSL_REDIRECT=False,
        LOGIN_URL="/login/", LOGIN_REDIRECT_URL="/", USE_TZ=True, TIME_ZONE="Europe/London",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING={"version": 1, "disable_existing_loggers": False,
                 "handlers": {"console": {"class": "logging.StreamHandler"}},
                 "loggers": {"django.security": {"handlers": ["console"], "level": "WARNING"}}},
        ECINS_PROJECT=str(Path(project).resolve()), ECINS_WEB_DIR=str(web_dir),
    )
    django.setup()
    _state["project"] = str(Path(project).resolve())
    _state["config"] = config
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    return config


def project_config() -> ProjectConfig:
    """The configured project's config."""
    return _state["config"]
