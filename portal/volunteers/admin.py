"""Moderating public names in the admin: hide or show a volunteer's or team's name, rename a team.
Each change is written to the staff audit log (usernames are renamed on the user's admin page)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.volunteers import services
from portal.volunteers.models import Profile, Team


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "hidden", "name_hidden", "team")
    list_filter = ("hidden", "name_hidden")
    search_fields = ("user__username",)
    readonly_fields = ("user", "hidden", "name_hidden", "team", "team_joined")
    actions = ["hide_names", "show_names"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Hide the usernames (boards show “hidden volunteer”, no public page)")
    def hide_names(self, request: HttpRequest, queryset: QuerySet) -> None:
        for profile in queryset.select_related("user"):
            services.user_name_hide(actor=request.user, user=profile.user, hidden=True)
        self.message_user(request, f"Hid {queryset.count()} username(s).", messages.SUCCESS)

    @admin.action(description="Show the usernames again")
    def show_names(self, request: HttpRequest, queryset: QuerySet) -> None:
        for profile in queryset.select_related("user"):
            services.user_name_hide(actor=request.user, user=profile.user, hidden=False)
        self.message_user(request, f"Showed {queryset.count()} username(s).", messages.SUCCESS)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "name_hidden", "founder", "created")
    list_filter = ("name_hidden",)
    search_fields = ("name",)
    fields = ("name", "description", "name_hidden")
    actions = ["hide_names", "show_names"]

    def save_model(self, request: HttpRequest, obj: Team, form, change: bool) -> None:
        if not change:
            raise PermissionError("teams are founded by volunteers on /teams/")
        if "name" in form.changed_data:
            new_name = obj.name
            obj.name = form.initial["name"]
            services.team_rename(actor=request.user, team=obj, new_name=new_name)
        if "name_hidden" in form.changed_data:
            services.team_name_hide(actor=request.user, team=obj, hidden=obj.name_hidden)
        if "description" in form.changed_data:
            obj.save(update_fields=["description"])

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Hide the team names (shown as “hidden team”, no team page)")
    def hide_names(self, request: HttpRequest, queryset: QuerySet) -> None:
        for team in queryset:
            services.team_name_hide(actor=request.user, team=team, hidden=True)
        self.message_user(request, f"Hid {queryset.count()} team name(s).", messages.SUCCESS)

    @admin.action(description="Show the team names again")
    def show_names(self, request: HttpRequest, queryset: QuerySet) -> None:
        for team in queryset:
            services.team_name_hide(actor=request.user, team=team, hidden=False)
        self.message_user(request, f"Showed {queryset.count()} team name(s).", messages.SUCCESS)
