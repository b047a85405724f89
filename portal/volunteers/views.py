"""Public pages of volunteers and teams, the team forms, and the privacy page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from portal.leaderboards.selectors import PERIOD_LABELS, PERIODS
from portal.volunteers import credit, selectors, services


@require_safe
def volunteer_page(request: HttpRequest, username: str) -> HttpResponse:
    user = selectors.volunteer_get_public(username=username)
    own = request.user.is_authenticated and request.user.username == username
    if user is None and own:
        user = request.user  # a volunteer sees their own hidden page, with a note that nobody else does
    if user is None:
        raise Http404("No such volunteer.")
    context = {"volunteer": selectors.volunteer_summary(user=user), "own": own,
               "hidden": own and selectors.volunteer_get_public(username=username) is None,
               "half_life_days": int(credit.HALF_LIFE.days)}  # fmt: skip
    return render(request, "volunteers/volunteer.html", context)


@require_safe
def team_board(request: HttpRequest) -> HttpResponse:
    period = request.GET.get("period", "all")
    status, error = 200, None
    if period not in PERIODS:
        error = f"There is no period “{period}”: pick all time, the last 7 days or the last 24 hours."
        period, status = "all", 400
    profile = selectors.profile_of(request.user) if request.user.is_authenticated else None
    context = {
        "entries": selectors.team_board(period=period),
        "teams": selectors.team_list(),
        "period": period,
        "periods": PERIOD_LABELS,
        "error": error,
        "my_team": profile.team if profile else None,
    }
    return render(request, "volunteers/teams.html", context, status=status)


@require_safe
def team_page(request: HttpRequest, slug: str) -> HttpResponse:
    team = selectors.team_get_public(slug=slug)
    if team is None:
        raise Http404("No such team.")
    profile = selectors.profile_of(request.user) if request.user.is_authenticated else None
    context = {"team": team, "summary": selectors.team_summary(team=team),
               "member": profile is not None and profile.team_id == team.pk}  # fmt: skip
    return render(request, "volunteers/team.html", context)


@login_required
@require_POST
def team_create(request: HttpRequest) -> HttpResponse:
    try:
        team = services.team_create(
            founder=request.user,
            name=request.POST.get("name", "")[:500],
            description=request.POST.get("description", "")[:2000],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("volunteers:teams")
    messages.success(request, f"You founded {team.name}; your credit from now on counts for it.")
    return redirect("volunteers:team", slug=team.slug)


@login_required
@require_POST
def team_join(request: HttpRequest, slug: str) -> HttpResponse:
    team = selectors.team_get_public(slug=slug)
    if team is None:
        raise Http404("No such team.")
    services.team_join(user=request.user, team=team)
    messages.success(request, f"You joined {team.name}; your credit from now on counts for it.")
    return redirect("volunteers:team", slug=team.slug)


@login_required
@require_POST
def team_leave(request: HttpRequest) -> HttpResponse:
    profile = selectors.profile_of(request.user)
    if profile is None or profile.team is None:
        messages.info(request, "You are not in a team.")
        return redirect("volunteers:teams")
    name = profile.team.public_name
    services.team_leave(user=request.user)
    messages.success(request, f"You left {name}; what you gave it stays with it.")
    return redirect("volunteers:teams")


@require_safe
def privacy(request: HttpRequest) -> HttpResponse:
    return render(request, "volunteers/privacy.html", {"half_life_days": int(credit.HALF_LIFE.days)})
