"""The staff audit log: who did what to which campaign, machine, account or announcement, and when."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One staff action. Written by portal.audit.services.audit_record, never changed afterwards."""

    class Action(models.TextChoices):
        LAUNCH = "launch", "launch"
        PAUSE = "pause", "pause"
        RESUME = "resume", "resume"
        STOP = "stop", "stop"
        VISIBILITY = "visibility", "visibility"
        REVOKE = "revoke", "revoke"
        UNFLAG = "unflag", "unflag"
        VOID = "void", "void data"
        ANNOUNCEMENT = "announcement", "announcement"
        DEACTIVATE = "deactivate", "deactivate user"
        DELETE_USER = "delete_user", "delete user"
        RENAME = "rename", "rename"
        HIDE_NAME = "hide_name", "hide name"

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # The name stays readable when the staff account is deleted later (the key becomes NULL).
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=Action.choices)
    target = models.CharField(max_length=200, help_text="what was acted on, e.g. 'campaign cartpole-demo'")
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target}"
