"""Campaign pages, joining a campaign, and the immutable model-file URLs clients download."""

from __future__ import annotations

import re
import secrets

from django import forms
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from portal.campaigns import selectors
from portal.campaigns.models import Campaign
from portal.core.storage import stream_file
from portal.leaderboards.selectors import leaderboard_get, live_data_available
from portal.livestats.services import is_boss_fight
from portal.machines.services import token_join

RECENT_CHECKPOINTS_SHOWN = 5
TOP_CONTRIBUTORS_SHOWN = 5


class JoinForm(forms.Form):
    machine_name = forms.CharField(
        max_length=60,
        required=False,
        label="Machine name",
        help_text="So you can tell your machines apart; change it to “gaming PC” or the like if you wish.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


# (pattern in the User-Agent, what a volunteer calls that machine), first match wins.
_SYSTEMS = (
    (r"iPhone|iPad", "iPhone"),
    (r"Android", "Android phone"),
    (r"Windows", "Windows PC"),
    (r"Macintosh|Mac OS X", "Mac"),
    (r"CrOS", "Chromebook"),
    (r"Linux|X11", "Linux PC"),
)
# The session key that carries a just-made token from the join POST to the page that shows it once.
JOINED_SESSION_KEY = "soulsai_joined_token"


def default_machine_name(user_agent: str) -> str:
    """A name a volunteer recognises: the system their browser runs on and a short id, e.g. 'Windows PC 3f2a'."""
    system = next((name for pattern, name in _SYSTEMS if re.search(pattern, user_agent or "")), "PC")
    return f"{system} {secrets.token_hex(2)}"


def _campaign_or_404(request: HttpRequest, slug: str) -> Campaign:
    campaign = selectors.campaign_get_public(slug=slug, include_drafts=request.user.is_staff)
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


def _server_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


@require_safe
def campaign_list(request: HttpRequest) -> HttpResponse:
    campaigns = selectors.campaign_list_public()
    drafts = Campaign.objects.filter(status=Campaign.Status.DRAFT) if request.user.is_staff else None
    return render(request, "campaigns/list.html", {"campaigns": campaigns, "drafts": drafts})


def _render_detail(
    request: HttpRequest, campaign: Campaign, form: JoinForm, status: int = 200
) -> HttpResponse:
    context = {
        "campaign": campaign,
        "boss_strength": selectors.boss_strength(campaign),
        "checkpoints": selectors.checkpoint_list(campaign=campaign, limit=RECENT_CHECKPOINTS_SHOWN),
        "form": form,
        "can_join": campaign.status != Campaign.Status.STOPPED,
        "boss_fight": is_boss_fight(campaign),
        "top_contributors": leaderboard_get(campaign=campaign, period="all")["entries"][:TOP_CONTRIBUTORS_SHOWN],
        "live_down": not live_data_available(),
    }
    return render(request, "campaigns/detail.html", context, status=status)


@require_safe
def campaign_detail(request: HttpRequest, slug: str) -> HttpResponse:
    form = JoinForm(initial={"machine_name": default_machine_name(request.headers.get("User-Agent", ""))})
    return _render_detail(request, _campaign_or_404(request, slug), form)


@require_safe
def campaign_history(request: HttpRequest, slug: str) -> HttpResponse:
    """Every checkpoint of the agent: evaluation, a chart over versions, downloads."""
    campaign = _campaign_or_404(request, slug)
    checkpoints = list(selectors.checkpoint_list(campaign=campaign))
    for model in checkpoints:
        # Evaluations finish in version order: one past the campaign's newest complete one is still being
        # played, and its first few fights (say 0 of 9 won) are no figure to show yet.
        model.eval_in_progress = model.version > (campaign.eval_version or 0)
    chart = [
        {"version": m.version, "eval_return": None if m.eval_in_progress else m.eval_return,
         "win_rate": None if m.eval_in_progress else m.eval_win_rate, "mean_return": m.mean_return_recent}
        for m in reversed(checkpoints)
    ]  # fmt: skip
    context = {"campaign": campaign, "checkpoints": checkpoints, "chart": chart, "boss_fight": is_boss_fight(campaign)}
    return render(request, "campaigns/history.html", context)


@never_cache  # the page holds a secret that is shown once: no cache may keep a copy
@require_POST
def campaign_join(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = _campaign_or_404(request, slug)
    if not request.user.is_authenticated:
        # Back to the campaign page after logging in: the join URL itself only takes POSTs.
        return redirect_to_login(campaign.get_absolute_url())
    form = JoinForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, campaign, form, status=400)
    name = form.cleaned_data["machine_name"] or default_machine_name(request.headers.get("User-Agent", ""))
    try:
        token, plain = token_join(user=request.user, campaign=campaign, name=name)
    except ValidationError as exc:
        form.add_error(None, exc.messages[0])
        return _render_detail(request, campaign, form, status=409)
    # Post/redirect/get: refreshing the token page must not make another token. The secret rides the
    # session to the one GET that shows it, and is gone from there once shown.
    request.session[JOINED_SESSION_KEY] = {"id": token.pk, "plain": plain}
    return redirect(reverse("campaigns:joined", kwargs={"slug": campaign.slug, "token_id": token.pk}))


@never_cache  # the page holds a secret that is shown once: no cache may keep a copy
@require_safe
def campaign_joined(request: HttpRequest, slug: str, token_id: int) -> HttpResponse:
    """The token just made by joining, shown once; a refresh says it was shown and what to do instead."""
    campaign = _campaign_or_404(request, slug)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    token = selectors.user_machine_tokens(user=request.user).filter(pk=token_id, campaign=campaign).first()
    if token is None:
        raise Http404("No such machine token of yours.")
    held = request.session.get(JOINED_SESSION_KEY) or {}
    plain = None
    if held.get("id") == token.pk:
        plain = held.get("plain")
        del request.session[JOINED_SESSION_KEY]
    context = {"campaign": campaign, "token": token, "plain_token": plain, "server_url": _server_url(request)}
    return render(request, "campaigns/joined.html", context)


@require_safe
def model_file(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    """A model version's safetensors weights. The URL never changes content, so caches may keep it forever."""
    model = selectors.model_version_get_public(slug=slug, version=version)
    if model is None:
        raise Http404("No such model version (it may have been pruned; checkpoints are kept).")
    etag = f'"{model.sha256}"'
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "ETag": etag,
        "X-Content-SHA256": model.sha256,
    }
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponseNotModified()
    else:
        # Streamed from storage (the local folder or the SFTP server) a bounded chunk at a time.
        response = StreamingHttpResponse(
            stream_file(request, model.weights.storage, model.weights.name), content_type="application/octet-stream"
        )
        response["Content-Length"] = str(model.size_bytes)
        response["Content-Disposition"] = f'inline; filename="{slug}-v{version}.safetensors"'
    for name, value in headers.items():
        response[name] = value
    return response
