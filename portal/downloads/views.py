"""The client's download page and the wheel file itself."""

from __future__ import annotations

import logging

from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_safe

from client_app import setup_guide
from client_app.release_key import RELEASE_PUBLIC_KEY
from portal.campaigns.selectors import user_machine_tokens
from portal.core.storage import stream_file
from portal.downloads import bootstrap
from portal.downloads.services import client_signature, client_wheel_info

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
        "python_version": bootstrap.PYTHON_VERSION,
        # The same steps as docs/client.md's (client_app.setup_guide renders both; escaped there).
        "soulsgym_setup": mark_safe(setup_guide.html()),  # noqa: S308
        "install_steps": mark_safe(setup_guide.install_html(wheel.filename if wheel else setup_guide.WHEEL)),  # noqa: S308
    }
    return render(request, "downloads/download.html", context, status=200 if wheel else 503)


@require_safe
def release(request: HttpRequest) -> JsonResponse:
    """The newest client as the clients' updater reads it (client_app.updater): version, file, sha256,
    size, and whether the maintainers signed it (clients install only signed wheels)."""
    wheel = client_wheel_info()
    if wheel is None:
        return JsonResponse({"error": "the client package is being prepared"}, status=503)
    signed = client_signature(wheel) is not None
    return JsonResponse(
        {
            "version": wheel.version,
            "filename": wheel.filename,
            "sha256": wheel.sha256,
            "size_bytes": wheel.size_bytes,
            "url": f"/download/{wheel.filename}",
            "signature_url": f"/download/{wheel.filename}.sig" if signed else None,
        }
    )


@require_safe
def installer(request: HttpRequest, script: str) -> HttpResponse:
    """``install.sh`` / ``install.ps1``: the client with its own interpreter, in one line (bootstrap.py).
    The release key is rendered from this server's code, never read from storage as the wheel is."""
    context = {
        "server_url": request.build_absolute_uri("/").rstrip("/"),
        "release_key": RELEASE_PUBLIC_KEY,
        "python_version": bootstrap.PYTHON_VERSION,
        "windows": bootstrap.PYTHON_BUILDS["windows-x86_64"],
        "posix_builds": [(k, b) for k, b in bootstrap.PYTHON_BUILDS.items() if k != "windows-x86_64"],
    }
    response = render(request, f"downloads/{script}", context, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{script}"'
    return response


@require_safe
def download_file(request: HttpRequest, filename: str) -> HttpResponse:
    wheel = client_wheel_info()
    if wheel is not None and filename == wheel.filename + ".sig":
        signature = client_signature(wheel)
        if signature is None:
            raise Http404("This client is not signed yet.")
        response = HttpResponse(signature, content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
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
