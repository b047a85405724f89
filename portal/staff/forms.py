"""Staff forms: launching a campaign and writing announcements. Each says what is wrong, field by field."""

from __future__ import annotations

import json

from django import forms

from portal.campaigns.models import Campaign, version_validator
from portal.campaigns.services import SUPPORTED_ENVS
from portal.community.models import CampaignListing
from portal.staff import hyperparams

# Offered in the form's list, and the only ids accepted (client_app.envs.SUPPORTED_ENV_IDS).
SUGGESTED_ENVS = SUPPORTED_ENVS


class CampaignLaunchForm(forms.Form):
    name = forms.CharField(max_length=120)
    slug = forms.SlugField(max_length=50, help_text="in URLs: letters, digits, hyphens, e.g. iudex-dqn-2")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    env_id = forms.CharField(
        label="Environment",
        max_length=120,
        help_text="one of " + ", ".join(SUGGESTED_ENVS),
        widget=forms.TextInput(attrs={"list": "env-ids", "autocomplete": "off"}),
    )
    algorithm = forms.ChoiceField(choices=Campaign.Algorithm.choices, initial=Campaign.Algorithm.DQN)
    hyperparams = forms.CharField(
        label="Hyperparameters (JSON)",
        required=False,
        initial="{}",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono"}),
        help_text='overrides of the algorithm\'s defaults, e.g. {"batch_size": 64, "learning_starts": 1000}',
    )
    chunk_steps = forms.IntegerField(
        min_value=8,
        max_value=1024,
        required=False,
        help_text="steps per chunk clients send; empty: 1024 for PPO on gymnasium envs, else 128",
    )
    min_client_version = forms.CharField(
        max_length=32,
        initial="0.1.0",
        validators=[version_validator],
        help_text="older clients are asked to upgrade",
    )
    max_policy_lag = forms.IntegerField(min_value=0, initial=0, help_text="0: no limit")
    visibility = forms.ChoiceField(
        choices=CampaignListing.Visibility.choices, initial=CampaignListing.Visibility.PUBLIC
    )
    launch_now = forms.BooleanField(
        required=False, initial=True, label="Launch now (otherwise it is saved as a draft)"
    )
    confirm_warnings = forms.BooleanField(
        required=False, label="Create it anyway: I meant these values", widget=forms.CheckboxInput()
    )

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if Campaign.objects.filter(slug=slug).exists():
            raise forms.ValidationError(f"A campaign “{slug}” exists already: pick another slug.")
        return slug

    def clean_env_id(self) -> str:
        env_id = self.cleaned_data["env_id"].strip()
        if env_id not in SUPPORTED_ENVS:  # gymnasium would import the module of a "module:Env" id
            raise forms.ValidationError(
                f"“{env_id}” is not an environment SoulsAI supports. Pick one of: {', '.join(SUPPORTED_ENVS)}."
            )
        return env_id

    def clean_hyperparams(self) -> dict:
        text = (self.cleaned_data.get("hyperparams") or "").strip() or "{}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
            ) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError('Write a JSON object of names and values, e.g. {"batch_size": 64}.')
        return value

    def clean(self) -> dict:
        """Every hyperparameter problem at once, for the chosen algorithm and environment; and the
        warnings (``self.warnings``) that must be confirmed before the campaign is created."""
        data = super().clean()
        self.warnings: list[str] = []
        algorithm, env_id, overrides = data.get("algorithm"), data.get("env_id"), data.get("hyperparams")
        if algorithm and env_id and isinstance(overrides, dict):
            found = hyperparams.review(algorithm, env_id, overrides)
            for error in found.errors:
                self.add_error("hyperparams", error)
            self.warnings = found.warnings
        return data

    @property
    def needs_confirmation(self) -> bool:
        return bool(getattr(self, "warnings", None)) and not self.cleaned_data.get("confirm_warnings")


class AnnouncementForm(forms.Form):
    title = forms.CharField(max_length=140)
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text="blank lines between paragraphs; **bold**, *emphasis*, [words](https://…) and https:// links "
        "work; HTML shows as text. The clients' windows show it too.",
    )
    published = forms.BooleanField(required=False, initial=True, label="Published (on the home page)")
    pinned = forms.BooleanField(required=False, label="Pinned (shown first)")
