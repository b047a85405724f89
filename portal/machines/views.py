"""Managing one's own machine tokens (they are made by joining a campaign: portal.campaigns.views)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from portal.machines import services
from portal.machines.models import MachineToken


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    # Someone else's token is a 404, not a 403: ids of other people's tokens are none of your business.
    token = get_object_or_404(MachineToken, pk=pk, user=request.user)
    services.token_revoke(token=token)
    messages.success(
        request, f"Revoked the token of “{token.name}” ({token.prefix}…): that machine can no longer connect."
    )
    return redirect("accounts:profile")
