from django.contrib import admin

from portal.community.models import Announcement, CampaignListing


@admin.register(Announcement)
class AnnouncementAdmin(admin.ModelAdmin):
    list_display = ("title", "published", "pinned", "author", "created")
    list_filter = ("published", "pinned")
    search_fields = ("title", "body")


@admin.register(CampaignListing)
class CampaignListingAdmin(admin.ModelAdmin):
    list_display = ("campaign", "visibility")
    list_filter = ("visibility",)
