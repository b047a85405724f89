"""Admin for announcements and listings; changes are written to the staff audit log."""

from django.contrib import admin

from portal.audit.models import AuditEntry
from portal.audit.services import audit_record
from portal.community.models import Announcement, CampaignListing


@admin.register(Announcement)
class AnnouncementAdmin(admin.ModelAdmin):
    list_display = ("title", "published", "pinned", "author", "created")
    list_filter = ("published", "pinned")
    search_fields = ("title", "body")

    def save_model(self, request, obj: Announcement, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        detail = ("changed" if change else "written") + (", published" if obj.published else ", not published")
        audit_record(actor=request.user, action=AuditEntry.Action.ANNOUNCEMENT, target=obj, detail=detail)

    def delete_model(self, request, obj: Announcement) -> None:
        audit_record(actor=request.user, action=AuditEntry.Action.ANNOUNCEMENT, target=obj, detail="deleted")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            audit_record(actor=request.user, action=AuditEntry.Action.ANNOUNCEMENT, target=obj, detail="deleted")
        super().delete_queryset(request, queryset)


@admin.register(CampaignListing)
class CampaignListingAdmin(admin.ModelAdmin):
    list_display = ("campaign", "visibility")
    list_filter = ("visibility",)

    def save_model(self, request, obj: CampaignListing, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user, action=AuditEntry.Action.VISIBILITY, target=obj.campaign, detail=obj.visibility
        )
