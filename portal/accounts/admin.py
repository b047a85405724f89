"""The admin's user pages, where deactivating or deleting an account revokes its machine tokens."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.accounts import services
from portal.audit.models import AuditEntry
from portal.audit.services import audit_record
from portal.machines.admin import DeletesTokensMixin

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DeletesTokensMixin, DjangoUserAdmin):
    actions = ["deactivate_users"]

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        deactivating = change and "is_active" in form.changed_data and not obj.is_active
        renamed_from = form.initial.get("username") if change and "username" in form.changed_data else None
        super().save_model(request, obj, form, change)
        if renamed_from is not None:  # moderation of an offensive name: in the audit log
            audit_record(
                actor=request.user, action=AuditEntry.Action.RENAME, target=obj, detail=f"was {renamed_from}"
            )
        if deactivating:
            services.user_deactivate(user=obj, actor=request.user)

    def delete_model(self, request: HttpRequest, obj) -> None:
        services.user_delete(user=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for user in queryset:
            services.user_delete(user=user, actor=request.user)

    @admin.action(description="Deactivate selected users (revokes their machine tokens at once)")
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = 0
        for user in queryset.filter(is_active=True):
            services.user_deactivate(user=user, actor=request.user)
            count += 1
        self.message_user(
            request, f"Deactivated {count} user(s); their machine tokens are revoked.", messages.SUCCESS
        )
