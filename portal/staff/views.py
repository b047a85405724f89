"""Staff pages: launch and steer campaigns, write announcements, look after flagged machines, read
the audit log.

Thin views over the services of campaigns, community and machines; staff only (others are sent to
the admin login). Every action is written to the audit log (portal.audit) with who did it.
"""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from portal.audit import selectors as audit_selectors
from portal.audit.models import AuditEntry
from portal.audit.services import audit_record
from portal.campaigns import services as campaign_services
from portal.campaigns.models import Campaign
from portal.community import services as community_services
from portal.community.models import Announcement, CampaignListing
from portal.machines import selectors as machine_selectors
from portal.machines.models import MachineToken
from portal.machines.services import token_revoke, token_unflag, token_void
from portal.staff import hyperparams
from portal.staff.forms import SUGGESTED_ENVS, AnnouncementForm, CampaignLaunchForm
from portal.training.selectors import learner_reports

ACTIONS = {
    "launch": (campaign_services.campaign_launch, "Launched"),
    "pause": (campaign_services.campaign_pause, "Paused"),
    "resume": (campaign_services.campaign_resume, "Resumed"),
    "stop": (campaign_services.campaign_stop, "Stopped"),
}


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    order = Case(
        *(When(status=s, then=Value(i)) for i, s in enumerate(["running", "paused", "draft", "stopped"])),
        output_field=IntegerField(),
    )
    campaigns = list(Campaign.objects.select_related("listing").annotate(rank=order).order_by("rank", "-created"))
    # Which host trains each running campaign, on which device; or that it waits for a learner.
    reports = learner_reports(campaign_ids=[c.id for c in campaigns if c.status == Campaign.Status.RUNNING])
    context = {
        "campaigns": [(c, reports.get(c.id)) for c in campaigns],
        "flagged_count": MachineToken.objects.flagged().filter(revoked_at__isnull=True).count(),
        "announcement_count": Announcement.objects.count(),
        "two_factor": Authenticator.objects.filter(user=request.user).exists(),
    }
    return render(request, "staff/dashboard.html", context)


@staff_member_required
@require_http_methods(["GET", "HEAD", "POST"])
def campaign_new(request: HttpRequest) -> HttpResponse:
    form = CampaignLaunchForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and not form.needs_confirmation:
        data = form.cleaned_data
        try:
            campaign = campaign_services.campaign_create(
                slug=data["slug"], name=data["name"], description=data["description"], env_id=data["env_id"],
                algorithm=data["algorithm"], hyperparams=data["hyperparams"], chunk_steps=data["chunk_steps"],
                min_client_version=data["min_client_version"], max_policy_lag=data["max_policy_lag"],
            )  # fmt: skip
        except ValidationError as exc:
            _errors_to_form(form, exc)
        else:
            community_services.campaign_visibility_set(campaign=campaign, visibility=data["visibility"])
            if data["launch_now"]:
                campaign = campaign_services.campaign_launch(campaign=campaign)
                audit_record(actor=request.user, action=AuditEntry.Action.LAUNCH, target=campaign)
                messages.success(
                    request, f"Launched “{campaign.name}”: a learner is starting, clients may join."
                )
            else:
                messages.success(
                    request, f"Saved “{campaign.name}” as a draft: launch it from the list when ready."
                )
            return redirect(campaign.get_absolute_url())
    status = 400 if request.method == "POST" else 200
    context = {
        "form": form,
        "env_ids": SUGGESTED_ENVS,
        "warnings": getattr(form, "warnings", []),
        "hyperparam_defaults": hyperparams.defaults_table(list(SUGGESTED_ENVS)),
    }
    return render(request, "staff/campaign_new.html", context, status=status)


def _errors_to_form(form: CampaignLaunchForm, exc: ValidationError) -> None:
    """Put a service's ValidationError next to the field it is about (or on top of the form)."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            target = field if field in form.fields else None
            if field == "env_kwargs" or field == "observation_space" or field == "action_space":
                target = "env_id"
            for error in errors:
                form.add_error(target, error.messages)
    else:
        message = " ".join(exc.messages)
        form.add_error("env_id" if "environment" in message else None, message)


@staff_member_required
@require_POST
def campaign_action(request: HttpRequest, slug: str, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404("No such action.")
    campaign = get_object_or_404(Campaign, slug=slug)
    service, verb = ACTIONS[action]
    reason = request.POST.get("reason", "")[:1000] if action == "pause" else ""
    try:
        service(campaign=campaign, reason=reason) if action == "pause" else service(campaign=campaign)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        audit_record(actor=request.user, action=action, target=campaign, detail=" ".join(reason.split())[:200])
        messages.success(request, f"{verb} “{campaign.name}”.")
    return redirect("staff:dashboard")


@staff_member_required
@require_POST
def campaign_visibility(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign, slug=slug)
    visibility = request.POST.get("visibility", "")
    if visibility not in CampaignListing.Visibility.values:
        messages.error(request, f"Unknown visibility “{visibility}”.")
    else:
        community_services.campaign_visibility_set(campaign=campaign, visibility=visibility)
        audit_record(actor=request.user, action=AuditEntry.Action.VISIBILITY, target=campaign, detail=visibility)
        messages.success(request, f"“{campaign.name}” is now {visibility}.")
    return redirect("staff:dashboard")


@staff_member_required
@require_http_methods(["GET", "HEAD", "POST"])
def announcements(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """The list of announcements, with a form to write one (or to change announcement ``pk``)."""
    editing = get_object_or_404(Announcement, pk=pk) if pk is not None else None
    initial = (
        {
            "title": editing.title,
            "body": editing.body,
            "published": editing.published,
            "pinned": editing.pinned,
        }
        if editing
        else None
    )
    form = AnnouncementForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        saved = community_services.announcement_save(announcement=editing, author=request.user, **form.cleaned_data)
        audit_record(
            actor=request.user,
            action=AuditEntry.Action.ANNOUNCEMENT,
            target=saved,
            detail=("changed" if editing else "written") + (", published" if saved.published else ", not published"),
        )
        messages.success(request, "Announcement saved." if editing else "Announcement published.")
        return redirect("staff:announcements")
    context = {
        "form": form,
        "editing": editing,
        "announcements": Announcement.objects.select_related("author"),
    }
    return render(
        request, "staff/announcements.html", context, status=400 if request.method == "POST" else 200
    )


@staff_member_required
@require_POST
def announcement_delete(request: HttpRequest, pk: int) -> HttpResponse:
    announcement = get_object_or_404(Announcement, pk=pk)
    audit_record(actor=request.user, action=AuditEntry.Action.ANNOUNCEMENT, target=announcement, detail="deleted")
    community_services.announcement_delete(announcement=announcement)
    messages.success(request, "Announcement deleted.")
    return redirect("staff:announcements")


@staff_member_required
def flagged_machines(request: HttpRequest) -> HttpResponse:
    return render(request, "staff/flagged.html", {"rows": machine_selectors.flagged_machines()})


@staff_member_required
@require_POST
def machine_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(MachineToken, pk=pk)
    token_revoke(token=token)
    audit_record(actor=request.user, action=AuditEntry.Action.REVOKE, target=token, detail="flagged machine")
    messages.success(
        request, f"Revoked “{token.name}” of {token.user.username}: its client is disconnected and refused."
    )
    return redirect("staff:flagged")


@staff_member_required
@require_POST
def machine_void(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(MachineToken, pk=pk)
    lost = token_void(token=token)
    detail = f"{lost.samples} samples, {lost.episodes} episodes, {lost.wins} wins taken back"
    audit_record(actor=request.user, action=AuditEntry.Action.VOID, target=token, detail=detail)
    messages.success(
        request,
        f"Voided “{token.name}” of {token.user.username}: the learner drops its samples, {detail}; "
        "the token is revoked.",
    )
    return redirect("staff:flagged")


@staff_member_required
@require_POST
def machine_unflag(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(MachineToken, pk=pk)
    token_unflag(token=token)
    audit_record(actor=request.user, action=AuditEntry.Action.UNFLAG, target=token)
    messages.success(
        request, f"Unflagged “{token.name}” of {token.user.username}: it is no longer throttled."
    )
    return redirect("staff:flagged")


@staff_member_required
@require_safe
def audit_log(request: HttpRequest) -> HttpResponse:
    """What staff did, newest first, a page at a time."""
    page = audit_selectors.audit_page(number=request.GET.get("page"))
    return render(request, "staff/audit.html", {"page": page})
