"""The client's download page and the wheel file itself."""

from __future__ import annotations

import logging

from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_safe

from client_app import setup_guide
from portal.campaigns.selectors import user_machine_tokens
from portal.core.storage import stream_file
from portal.downloads.services import client_wheel_info

log = logging.getLogger(__name__)

MACHINES_SHOWN = 5  # the logged-in volunteer's own tokens, as hints in the commands


@require_safe
def download_page(request: HttpRequest) -> HttpResponse:
    # Never built here: the wheel is built once (manage.py build_client_wheel) and read from storage,
    # so that every web host offers the same file.
    wheel = client_wheel_info()
    error = None
    if wheel is None:
        log.error("no client wheel in storage for this version: run manage.py build_client_wheel")
        error = "The client package is being prepared or could not be built. Please try again later."
    tokens = []
    if request.user.is_authenticated:
        tokens = list(user_machine_tokens(user=request.user).filter(revoked_at__isnull=True)[:MACHINES_SHOWN])
    context = {
        "wheel": wheel,
        "error": error,
        "server_url": request.build_absolute_uri("/").rstrip("/"),
        "tokens": tokens,
        # The same steps as docs/client.md's (client_app.setup_guide renders both; escaped there).
        "soulsgym_setup": mark_safe(setup_guide.html()),  # noqa: S308
        "install_steps": mark_safe(setup_guide.install_html(wheel.filename if wheel else setup_guide.WHEEL)),  # noqa: S308
    }
    return render(request, "downloads/download.html", context, status=200 if wheel else 503)


@require_safe
def download_file(request: HttpRequest, filename: str) -> StreamingHttpResponse:
    wheel = client_wheel_info()
    if wheel is None or filename != wheel.filename:
        raise Http404("No such file: the download page lists the current client.")
    # Streamed from storage (the local folder or the SFTP server) a bounded chunk at a time.
    response = StreamingHttpResponse(
        stream_file(request, default_storage, wheel.name), content_type="application/octet-stream"
    )
    response["Content-Length"] = str(wheel.size_bytes)
    response["Content-Disposition"] = f'attachment; filename="{wheel.filename}"'
    response["X-Content-SHA256"] = wheel.sha256
    response["ETag"] = f'"{wheel.sha256}"'
    return response
