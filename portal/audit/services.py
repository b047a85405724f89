"""Writing the staff audit log. Callers are the staff pages and the admin's actions (the interfaces
where a person acts), not the campaign or machine services, which also run for the system itself."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from portal.audit.models import AuditEntry


def audit_target(obj) -> str:
    """A short, lasting name for what was acted on (the row itself may be deleted later)."""
    from portal.campaigns.models import Campaign
    from portal.community.models import Announcement
    from portal.machines.models import MachineToken

    if isinstance(obj, Campaign):
        return f"campaign {obj.slug}"
    if isinstance(obj, MachineToken):
        return f"machine {obj.name} ({obj.prefix}…) of {obj.user.username} on {obj.campaign.slug}"[:200]
    if isinstance(obj, Announcement):
        return f"announcement “{obj.title}”"[:200]
    if isinstance(obj, get_user_model()):
        return f"user {obj.get_username()}"
    return str(obj)[:200]


def audit_record(*, actor, action: str, target, detail: str = "") -> AuditEntry:
    """Write one line of the audit log: ``actor`` (a staff user) did ``action`` (an
    ``AuditEntry.Action``) to ``target`` (a model instance or a description)."""
    if action not in AuditEntry.Action.values:
        raise ValueError(f"unknown audit action {action!r}")
    return AuditEntry.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=actor.get_username() if actor is not None else "system",
        action=action,
        target=target if isinstance(target, str) else audit_target(target),
        detail=str(detail)[:500],
    )
