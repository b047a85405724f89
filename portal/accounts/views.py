"""The volunteer's profile: their machines and what those gave each campaign."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from portal.campaigns import selectors


@login_required
@require_safe
def profile(request: HttpRequest) -> HttpResponse:
    context = {
        "tokens": selectors.user_machine_tokens(user=request.user),
        "contributions": selectors.user_contributions(user=request.user),
    }
    return render(request, "accounts/profile.html", context)
