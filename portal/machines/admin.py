"""Admin for machine tokens: look, rename, revoke. Tokens are made by joining a campaign, never here,
and revoked, never deleted: a revocation closes the machine's connections and keeps its history."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.audit.models import AuditEntry
from portal.audit.services import audit_record
from portal.machines import services
from portal.machines.models import MachineToken


class ActiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class FlaggedFilter(admin.SimpleListFilter):
    title = "bad data"
    parameter_name = "flagged"

    def lookups(self, request, model_admin):
        return [("yes", "Flagged"), ("no", "Not flagged")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.flagged()
        if self.value() == "no":
            return queryset.filter(flagged_at__isnull=True)
        return queryset


class DeletesTokensMixin:
    """For the admins of what owns tokens (users, campaigns): deleting one deletes its tokens too,
    which revokes them (portal.machines.signals). The token admin's missing delete permission is
    about deleting single tokens, so it must not block these deletions."""

    def get_deleted_objects(self, objs, request):
        to_delete, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(MachineToken._meta.verbose_name)
        return to_delete, model_count, perms_needed, protected


@admin.register(MachineToken)
class MachineTokenAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "user",
        "campaign",
        "prefix",
        "created",
        "last_seen",
        "client_version",
        "samples",
        "episodes",
        "rejections",
        "is_flagged",
        "is_active",
    )
    list_filter = (ActiveFilter, FlaggedFilter, "campaign")
    search_fields = ("name", "prefix", "user__username", "user__email", "campaign__slug")
    list_select_related = ("user", "campaign")
    # key_hash is neither shown nor editable: nothing useful can be done with it here.
    fields = (
        "name",
        "user",
        "campaign",
        "prefix",
        "created",
        "last_seen",
        "revoked_at",
        "client_version",
        "samples",
        "episodes",
        "rejections",
        "flagged_at",
    )
    readonly_fields = tuple(f for f in fields if f != "name")
    actions = ["revoke_tokens", "unflag_tokens"]

    @admin.display(boolean=True, description="flagged", ordering="flagged_at")
    def is_flagged(self, obj: MachineToken) -> bool:
        return obj.flagged_at is not None

    @admin.display(boolean=True, description="active")
    def is_active(self, obj: MachineToken) -> bool:
        return obj.is_active

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # offer "Revoke" instead (it also hides the bulk "delete selected" action)

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[MachineToken]) -> None:
        count = 0
        for token in queryset:
            if token.is_active:
                services.token_revoke(token=token)
                audit_record(actor=request.user, action=AuditEntry.Action.REVOKE, target=token)
                count += 1
        self.message_user(request, f"Revoked {count} token(s).", level=messages.SUCCESS)

    @admin.action(description="Unflag selected tokens (end their bad-data throttling)")
    def unflag_tokens(self, request: HttpRequest, queryset: QuerySet[MachineToken]) -> None:
        count = 0
        for token in queryset:
            if token.flagged_at is not None:
                count += 1
                audit_record(actor=request.user, action=AuditEntry.Action.UNFLAG, target=token)
            services.token_unflag(token=token)
        self.message_user(request, f"Unflagged {count} token(s).", level=messages.SUCCESS)
