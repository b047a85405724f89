"""Identity changes made outside our services still act as revocations, at once.

Staff deactivate and delete accounts through ``portal.accounts.services`` (the admin calls it), and
tokens are revoked, never deleted, in the admin. But code elsewhere (a shell, a data migration,
allauth, a campaign deleted with its tokens) can still save ``user.is_active = False`` or delete
token rows. Two receivers, connected in ``MachinesConfig.ready``, make those revocations too:

- ``post_save`` of a user that is not active revokes the user's live tokens (``tokens_revoke_for_user``);
- ``pre_delete`` of a live token (alone, or cascaded from its user or campaign) puts it into the
  campaign's ``revoked`` set and closes its connections on commit (``token_deleted``).

``QuerySet.update(is_active=False)`` sends no signal: call ``portal.accounts.services.user_deactivate``.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_save, pre_delete

from portal.machines import services
from portal.machines.models import MachineToken


def _user_saved(sender, instance, update_fields=None, **kwargs) -> None:
    if instance.is_active or (update_fields is not None and "is_active" not in update_fields):
        return
    services.tokens_revoke_for_user(user=instance)


def _token_deleting(sender, instance: MachineToken, **kwargs) -> None:
    services.token_deleted(token=instance)


def connect() -> None:
    post_save.connect(_user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="machines.user_saved")
    pre_delete.connect(_token_deleting, sender=MachineToken, dispatch_uid="machines.token_deleting")
