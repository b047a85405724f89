"""The client's download page and the wheel file itself."""

from __future__ import annotations

import logging

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from portal.campaigns.selectors import user_machine_tokens
from portal.downloads.services import WheelBuildError, client_wheel_ensure, client_wheel_info

log = logging.getLogger(__name__)

MACHINES_SHOWN = 5  # the logged-in volunteer's own tokens, as hints in the commands


@require_safe
def download_page(request: HttpRequest) -> HttpResponse:
    try:
        wheel = client_wheel_ensure()
        error = None
    except WheelBuildError as exc:
        log.error("client wheel unavailable: %s", exc)
        wheel, error = (
            None,
            "The client package is being prepared or could not be built. Please try again later.",
        )
    tokens = []
    if request.user.is_authenticated:
        tokens = list(user_machine_tokens(user=request.user).filter(revoked_at__isnull=True)[:MACHINES_SHOWN])
    context = {
        "wheel": wheel,
        "error": error,
        "server_url": request.build_absolute_uri("/").rstrip("/"),
        "tokens": tokens,
    }
    return render(request, "downloads/download.html", context, status=200 if wheel else 503)


@require_safe
def download_file(request: HttpRequest, filename: str) -> FileResponse:
    wheel = client_wheel_info()
    if wheel is None or filename != wheel.filename:
        raise Http404("No such file: the download page lists the current client.")
    response = FileResponse(
        wheel.path.open("rb"),
        as_attachment=True,
        filename=wheel.filename,
        content_type="application/octet-stream",
    )
    response["X-Content-SHA256"] = wheel.sha256
    return response
