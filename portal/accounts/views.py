"""The volunteer's profile: their machines and what those gave each campaign, their public page's
visibility, their data as JSON, and deleting their account."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from portal.accounts import services
from portal.campaigns import selectors
from portal.volunteers import selectors as volunteer_selectors
from portal.volunteers import services as volunteer_services


@login_required
@require_safe
def profile(request: HttpRequest) -> HttpResponse:
    volunteer = volunteer_selectors.profile_of(request.user)
    context = {
        "tokens": selectors.user_machine_tokens(user=request.user),
        "contributions": selectors.user_contributions(user=request.user),
        "page_hidden": bool(volunteer and volunteer.hidden),
        "name_hidden": bool(volunteer and volunteer.name_hidden),
        "team": volunteer.team if volunteer else None,
    }
    return render(request, "accounts/profile.html", context)


@login_required
@require_POST
def profile_visibility(request: HttpRequest) -> HttpResponse:
    hidden = request.POST.get("hidden") == "1"
    volunteer_services.profile_set_hidden(user=request.user, hidden=hidden)
    messages.success(
        request,
        "Your public page is hidden: boards show you as “hidden volunteer”."
        if hidden
        else "Your public page is shown, and boards show your name.",
    )
    return redirect("accounts:profile")


@login_required
@require_safe
def profile_export(request: HttpRequest) -> HttpResponse:
    data = volunteer_services.user_data_export(user=request.user)
    response = HttpResponse(json.dumps(data, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="soulsai-{request.user.pk}.json"'
    return response


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def profile_delete(request: HttpRequest) -> HttpResponse:
    """Deleting needs the username typed again; contributions stay in the totals, without the name."""
    if request.method == "POST":
        if request.POST.get("confirm", "").strip() != request.user.username:
            messages.error(request, "Type your username exactly to delete your account.")
            return render(request, "accounts/delete.html", status=400)
        user = request.user
        logout(request)
        services.user_delete(user=user)
        volunteer_services.boards_forget()  # the name leaves the boards now, not at the next refresh
        messages.success(
            request, "Your account is deleted. What your machines gave stays in the totals, unnamed."
        )
        return redirect("home")
    return render(request, "accounts/delete.html")
