"""Django application config of the panel workspace."""

from django.apps import AppConfig


class WebConfig(AppConfig):
    """The ``ecins_web`` app: models for profiles, decisions, overrides requested in the UI, and audit."""

    name = "ecins_link.web"
    label = "ecins_web"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "ecins-link panel workspace"

    def ready(self) -> None:
        """Audit log-ins and failed log-ins (user name only; never the password)."""
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from ecins_link.web.models import AuditEntry

        def logged_in(sender, request, user, **kwargs) -> None:  # noqa: ANN001, ANN003
            profile = getattr(user, "profile", None)
            AuditEntry.objects.create(user=user.get_username(), purpose=getattr(profile, "purpose", "") or "",
                                      action="login", entity="session",
                                      remote_addr=str(request.META.get("REMOTE_ADDR", ""))[:64] if request else "")

        def failed(sender, credentials, request=None, **kwargs) -> None:  # noqa: ANN001, ANN003
            AuditEntry.objects.create(user=str(credentials.get("username", ""))[:150], action="login_failed",
                                      entity="session",
                                      remote_addr=str(request.META.get("REMOTE_ADDR", ""))[:64] if request else "")

        user_logged_in.connect(logged_in, weak=False, dispatch_uid="ecins_login")
        user_login_failed.connect(failed, weak=False, dispatch_uid="ecins_login_failed")
