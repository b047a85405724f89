"""The token stays off command lines (process lists, shell history): the join page suggests the
environment variable or the saved config, and clients started for the demo and the tests get it
through the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import wait_for
from portal.machines.models import MachineToken
from portal.machines.services import token_create
from tests.conftest import start_client
from tests.portal.live_http import LiveBrowser

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_join_page_keeps_the_token_off_the_command_line(asgi_server, alice, cartpole_campaign):
    browser = LiveBrowser(asgi_server.url)
    browser.login_as(alice)
    browser.get(cartpole_campaign.get_absolute_url())
    page = browser.post(f"/campaigns/{cartpole_campaign.slug}/join/", {"machine_name": "pc"})
    assert page.status == 200
    row = MachineToken.objects.get(user=alice)
    text = page.text
    assert "--token" not in text  # no command with the token in it for the shell's history
    assert "SOULSAI_TOKEN" in text and "--save" in text
    assert f"soulsai-client --server {asgi_server.url}" in text
    assert row.prefix in text


def test_clients_started_for_the_demo_and_tests_get_the_token_from_the_environment(
    asgi_server, alice, cartpole_campaign, tmp_path
):
    row, raw = token_create(user=alice, campaign=cartpole_campaign, name="demo-like")
    client = start_client(asgi_server.url, raw, tmp_path / "spool", tmp_path, "--max-steps", "200")
    try:
        proc = Path(f"/proc/{client.pid}")
        # Read once the client runs (a process just forked shows an empty command line for a moment).
        cmdline = wait_for(
            lambda: "client_app" in (text := (proc / "cmdline").read_bytes().decode(errors="replace")) and text,
            30,
            "the client process to start",
            client,
        )
        environ = (proc / "environ").read_bytes().decode(errors="replace")
        assert raw not in cmdline and "--token" not in cmdline
        assert f"SOULSAI_TOKEN={raw}" in environ.split("\0")
        # ... and the client connects with it.
        wait_for(
            lambda: MachineToken.objects.get(pk=row.pk).last_seen, 60, "the client to connect", client
        )
    finally:
        client.stop()
