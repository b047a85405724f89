"""Volunteer accounts: deactivating or deleting one is a revocation of all its machine tokens, at once.

The admin (portal.accounts.admin) calls these. Changes made elsewhere (``user.is_active = False;
user.save()`` in a shell, a token row deleted by code) are caught by portal.machines.signals, so no
path leaves a machine streaming for an account that is gone.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from portal.audit.models import AuditEntry
from portal.audit.services import audit_record
from portal.machines.services import tokens_revoke_for_user


@transaction.atomic
def user_deactivate(*, user: AbstractBaseUser, actor=None) -> AbstractBaseUser:
    """Deactivate ``user``: no more logins, and every live machine token revoked (connections closed).

    ``actor``: the staff member who did it, for the audit log.
    """
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
    tokens_revoke_for_user(user=user)
    if actor is not None:
        audit_record(actor=actor, action=AuditEntry.Action.DEACTIVATE, target=user)
    return user


@transaction.atomic
def user_delete(*, user: AbstractBaseUser, actor=None) -> None:
    """Delete ``user``: its tokens are revoked first (their ids go to Redis and the notices out on
    commit), then the account and everything it owns is deleted."""
    if actor is not None:
        audit_record(actor=actor, action=AuditEntry.Action.DELETE_USER, target=user)
    tokens_revoke_for_user(user=user)
    user.delete()
