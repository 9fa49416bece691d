"""``ecins-link users add|list|disable``: the app's logins (Django auth; passwords hashed with argon2)."""

from __future__ import annotations

from dataclasses import dataclass

from ecins_link.config import ProjectConfig

ROLE_NAMES = ("analyst", "panel")


@dataclass(frozen=True)
class UserRow:
    """One login as listed."""

    name: str
    role: str
    purpose: str
    active: bool
    last_login: str


def add_user(config: ProjectConfig, name: str, role: str, purpose: str | None, password: str) -> None:
    """Create a login (or reset an existing one's role, purpose and password, and enable it).

    A panel member must have a purpose of the project file; passwords are checked by Django's validators
    (at least 12 characters, not common, not all digits) and stored hashed (argon2)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError
    from django.db import transaction

    from ecins_link.web.models import Profile

    if role not in ROLE_NAMES:
        raise ValueError(f"role must be one of {list(ROLE_NAMES)}, not {role!r}")
    if role == "panel" and not purpose:
        raise ValueError("a panel member needs --purpose (one of the project's purposes)")
    if purpose and purpose not in config.purposes:
        raise ValueError(f"purpose {purpose!r} is not in the project file; known: {sorted(config.purposes)}")
    if not name or len(name) > 150 or not all(c.isalnum() or c in "@.+-_" for c in name):
        raise ValueError("a user name is 1-150 letters, digits or @ . + - _")
    User = get_user_model()  # noqa: N806 - Django's idiom
    user = User.objects.filter(username=name).first() or User(username=name)
    try:
        validate_password(password, user)
    except ValidationError as err:
        raise ValueError("password refused: " + " ".join(err.messages)) from None
    with transaction.atomic():
        user.set_password(password)
        user.is_active = True
        user.save()
        Profile.objects.update_or_create(user=user, defaults={"role": role, "purpose": purpose or ""})


def list_users() -> list[UserRow]:
    """Every login with role, purpose and state."""
    from django.contrib.auth import get_user_model

    rows = []
    for u in get_user_model().objects.select_related("profile").order_by("username"):
        profile = getattr(u, "profile", None)
        rows.append(UserRow(u.username, getattr(profile, "role", ""), getattr(profile, "purpose", ""), u.is_active,
                            u.last_login.isoformat(timespec="minutes") if u.last_login else ""))
    return rows


def disable_user(name: str) -> None:
    """Disable a login (kept for the audit trail) and end its sessions."""
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.models import Session

    user = get_user_model().objects.filter(username=name).first()
    if user is None:
        raise ValueError(f"no user {name!r}")
    user.is_active = False
    user.save()
    for s in Session.objects.all():  # end every session of the user now (not only at expiry)
        if str(s.get_decoded().get("_auth_user_id")) == str(user.pk):
            s.delete()
