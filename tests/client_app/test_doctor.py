"""``soulsai-client doctor`` and ``run`` on a machine without Dark Souls III: plain words, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, process_env, start_client

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="checks a machine without the game")


def doctor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client_app", "doctor", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**(env or os.environ), "PYTHONIOENCODING": "utf-8"},
    )


def test_doctor_checks_only_what_applies_to_the_campaigns_environment():
    # The arena needs no game, no Windows and no soulsgym pins: none of those lines, and it passes.
    result = doctor("--env", "soulsai/IudexArena-v0")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "soulsgym" not in out.lower() and "Dark Souls III" not in out and "only on Windows" not in out
    assert "✓ numpy" in out and "✓ gymnasium" in out


def test_doctor_says_plainly_that_soulsgym_needs_windows_and_the_game():
    result = doctor("--env", "SoulsGymIudex-v0")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out
    assert "✓ Python" in out and "✓ gymnasium 0.29" in out
    assert "✗" in out and "only on Windows" in out
    assert "Dark Souls III is not running" in out
    assert "soulsai/IudexArena-v0" in out
    # Creating a SoulsGym env writes the game's memory: only with --create-env.
    assert "✓ SoulsGymIudex-v0 not created" in out and "--create-env" in out
    created = doctor("--env", "SoulsGymIudex-v0", "--create-env")
    assert "✗ cannot create SoulsGymIudex-v0" in created.stdout and "Traceback" not in created.stdout
    assert "check(s) failed" in out.splitlines()[-1]


def test_doctor_passes_for_the_arena_on_this_machine():
    result = doctor("--env", "soulsai/IudexArena-v0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ soulsai/IudexArena-v0 created: observations [106], 20 actions" in result.stdout
    assert "✗" not in result.stdout


def test_doctor_help_lists_its_options():
    result = doctor("--help")
    assert result.returncode == 0
    for option in ("--env", "--server", "--token", "--create-env", "--report", "exit codes"):
        assert option in result.stdout


@pytest.mark.django_db(transaction=True)
def test_doctor_checks_the_server_and_the_token_and_run_refuses_a_soulsgym_campaign_plainly(
    asgi_server, django_user_model, tmp_path
):
    from portal.campaigns.services import campaign_create, campaign_launch, campaign_redis_sync
    from portal.machines.services import token_create

    user = django_user_model.objects.create_user("player", "p@example.com", "pw-12345678")
    arena = campaign_launch(
        campaign=campaign_create(slug="arena", name="Arena", env_id="soulsai/IudexArena-v0")
    )
    campaign_redis_sync(campaign=arena)
    _, arena_token = token_create(user=user, campaign=arena, name="rig")
    iudex = campaign_launch(
        campaign=campaign_create(
            slug="iudex", name="Iudex", env_id="SoulsGymIudex-v0", env_kwargs={"game_speed": 3}
        )
    )
    campaign_redis_sync(campaign=iudex)
    _, iudex_token = token_create(user=user, campaign=iudex, name="rig")
    env = process_env()

    good = doctor("--server", asgi_server.url, "--token", arena_token, env=env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "✓ the server answers" in good.stdout
    assert "✓ token accepted: campaign 'Arena' on soulsai/IudexArena-v0" in good.stdout
    assert "✓ soulsai/IudexArena-v0 created" in good.stdout  # the campaign's env, without --env

    bad = doctor("--server", asgi_server.url, "--token", "not-a-token", env=env)
    assert bad.returncode == 1 and "✗ the server refused the token" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr

    down = doctor("--server", "http://127.0.0.1:9", "--token", "x", "--env", "CartPole-v1", env=env)
    assert down.returncode == 1 and "✗ the server does not answer" in down.stdout
    # An address that is not a URL gets a plain line, not a traceback.
    typo = doctor("--server", "soulsai.example.org", "--token", "x", "--env", "CartPole-v1", env=env)
    assert typo.returncode == 1 and "✗ --server 'soulsai.example.org' is not a URL" in typo.stdout
    assert "Traceback" not in typo.stdout + typo.stderr

    client = start_client(asgi_server.url, iudex_token, tmp_path / "spool", tmp_path, "--max-steps", "10")
    try:
        assert client.proc.wait(timeout=60) == 2, client.output()
    finally:
        client.stop()
    output = client.output()
    assert "Traceback" not in output
    assert "error: SoulsGymIudex-v0: soulsgym drives the game through Windows APIs" in output
    assert "soulsai/IudexArena-v0" in output
