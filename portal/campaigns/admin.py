"""Admin for campaigns: create through campaign_create's checks, change status only through the services."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.audit.services import audit_record
from portal.campaigns import services
from portal.campaigns.models import Campaign, ModelVersion
from portal.machines.admin import DeletesTokensMixin
from trainer.config import config_for

admin.site.site_header = "SoulsAI administration"
admin.site.site_title = "SoulsAI admin"
admin.site.index_title = "Campaigns, volunteers and machines"

# Filled in by campaign_create (spaces) or by the stats roll-up and the learner (figures): never typed in.
FIGURES = (
    "model_version",
    "samples_total",
    "episodes_total",
    "updates_total",
    "clients_active",
    "mean_return_recent",
)
SYSTEM_FIELDS = (
    "status",
    "observation_space",
    "action_space",
    "created",
    "updated",
    "launched_at",
    "stopped_at",
)
# What may not change once a campaign exists: clients and the learner were made for these.
# What staff edit: the campaign itself, then the relay's policy for its clients.
SETUP_FIELDS = ["slug", "name", "description", "env_id", "env_kwargs", "algorithm", "hyperparams", "chunk_steps"]
RELAY_FIELDS = ["min_client_version", "max_policy_lag"]
FIXED_AFTER_CREATE = ("slug", "env_id", "env_kwargs", "algorithm")
FIXED_AFTER_LAUNCH = ("hyperparams", "chunk_steps")


class CampaignForm(forms.ModelForm):
    """Validates like ``campaign_create``: a known algorithm's hyperparameters and an environment that gym can make."""

    class Meta:
        model = Campaign
        fields = SETUP_FIELDS + RELAY_FIELDS

    def clean(self):
        cleaned = super().clean()
        for name in ("hyperparams", "env_kwargs"):
            if name in cleaned and cleaned[name] is None:
                cleaned[name] = {}  # an emptied JSON box means "no overrides"
        env_id = cleaned.get("env_id", self.instance.env_id)
        if "hyperparams" in self.fields and "hyperparams" in cleaned and env_id:
            try:
                algorithm = cleaned.get("algorithm", self.instance.algorithm)
                config_for(env_id, cleaned["hyperparams"] or {}, algorithm=algorithm)
            except ValueError as exc:
                self.add_error("hyperparams", str(exc))
        if "env_id" in self.fields and env_id and not self.has_error("env_id"):
            try:
                services.env_spaces(env_id, cleaned.get("env_kwargs") or {})
            except ValidationError as exc:
                self.add_error("env_id", exc.messages)
        return cleaned


def _status_action(service: Callable[..., Campaign], verb: str, description: str):
    """An admin action that calls ``service`` per selected campaign, reports each outcome and writes
    each success to the audit log."""
    verb_name = service.__name__.removeprefix("campaign_")

    def action(modeladmin: CampaignAdmin, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset:
            try:
                service(campaign=campaign)
            except ValidationError as exc:
                modeladmin.message_user(request, " ".join(exc.messages), level=messages.ERROR)
            else:
                audit_record(actor=request.user, action=verb_name, target=campaign)
                modeladmin.message_user(
                    request, f"{verb} campaign '{campaign.slug}'.", level=messages.SUCCESS
                )

    action.__name__ = f"{verb_name}_campaigns"
    return admin.action(description=description)(action)


@admin.register(Campaign)
class CampaignAdmin(DeletesTokensMixin, admin.ModelAdmin):
    form = CampaignForm
    list_display = (
        "name",
        "slug",
        "env_id",
        "algorithm",
        "status",
        "model_version",
        "samples_total",
        "clients_active",
    )
    list_filter = ("status", "algorithm", "env_id")
    search_fields = ("name", "slug", "env_id")
    prepopulated_fields = {"slug": ("name",)}
    actions = [
        _status_action(services.campaign_launch, "Launched", "Launch selected campaigns"),
        _status_action(services.campaign_pause, "Paused", "Pause selected campaigns"),
        _status_action(services.campaign_resume, "Resumed", "Resume selected campaigns"),
        _status_action(services.campaign_stop, "Stopped", "Stop selected campaigns"),
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        fixed = FIXED_AFTER_CREATE
        if obj.status != Campaign.Status.DRAFT:
            fixed += FIXED_AFTER_LAUNCH
        return fixed + SYSTEM_FIELDS + FIGURES

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj is not None else self.prepopulated_fields

    def get_fieldsets(self, request, obj=None):
        editable = [(None, {"fields": SETUP_FIELDS}), ("Relay", {"fields": RELAY_FIELDS})]
        if obj is None:
            return editable
        return [
            *editable,
            ("Status", {"fields": ["status", "created", "updated", "launched_at", "stopped_at"]}),
            ("Figures", {"fields": list(FIGURES)}),
            ("Spaces", {"fields": ["observation_space", "action_space"], "classes": ["collapse"]}),
        ]

    def save_model(self, request, obj: Campaign, form: CampaignForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            if "min_client_version" in form.changed_data:
                services.campaign_min_client_announce(campaign=obj)
            return
        # A new campaign is made by the service, exactly as anywhere else; the admin then carries on
        # (log entry, redirect) with the saved row.
        data = form.cleaned_data
        created = services.campaign_create(
            slug=data["slug"],
            name=data["name"],
            env_id=data["env_id"],
            algorithm=data["algorithm"],
            hyperparams=data["hyperparams"] or {},
            env_kwargs=data["env_kwargs"] or {},
            description=data["description"],
            chunk_steps=data["chunk_steps"],
            min_client_version=data["min_client_version"],
            max_policy_lag=data["max_policy_lag"],
        )
        obj.pk = created.pk
        obj._state.adding = False
        obj.observation_space, obj.action_space = created.observation_space, created.action_space
        obj.created, obj.updated = created.created, created.updated


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Published by the learner; the admin only looks."""

    list_display = (
        "campaign",
        "version",
        "is_checkpoint",
        "sha256",
        "size_bytes",
        "samples_total",
        "held_back",
        "created",
    )
    list_filter = ("is_checkpoint", "campaign")
    search_fields = ("campaign__slug", "sha256")
    list_select_related = ("campaign",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
