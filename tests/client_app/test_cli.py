"""The whole client (``soulsai-client``) against a scripted relay on real loopback sockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from client_app import __version__, connection
from client_app import protocol as P
from client_app.cli import main
from harness import wait_for
from tests.client_app.scripted_relay import ScriptedRelay

TOKEN = "sai_abc123def456_secret"
REPO = Path(__file__).resolve().parents[2]


def run_client(relay, spool_root, *args: str) -> int:
    return main(
        ["--server", relay.url, "--token", TOKEN, "--spool-dir", str(spool_root), "--seed", "0", *args]
    )


def spooled(spool_root: Path) -> list[Path]:
    return sorted(spool_root.glob("*/*.chunk"))


def unique_steps(relay) -> int:
    return sum(chunk.steps for chunk in relay.stored.values())


def test_chunks_are_sent_acked_and_the_spool_ends_empty(relay, tmp_path, capsys):
    assert run_client(relay, tmp_path, "--max-steps", "300") == 0

    out = capsys.readouterr().out
    assert relay.auth_headers == [f"Bearer {TOKEN}"]
    hello = relay.hellos[0]
    assert hello["type"] == P.HELLO and hello["client_version"] == __version__ and hello["protocol"] == 1
    assert unique_steps(relay) == 300 and not relay.rejects
    assert all(chunk.model_version == 0 for chunk in relay.stored.values())
    assert (tmp_path / "cartpole-demo-abc123def456").is_dir() and spooled(tmp_path) == []
    assert "300 steps" in out and "episodes" in out and "spool 0" in out and "model random" in out


def test_run_subcommand_is_the_same_command(relay, tmp_path):
    assert (
        main(
            [
                "run",
                "--server",
                relay.url,
                "--token",
                TOKEN,
                "--spool-dir",
                str(tmp_path),
                "--max-steps",
                "20",
            ]
        )
        == 0
    )
    assert unique_steps(relay) == 20


def test_a_model_notice_is_downloaded_and_played(relay, tmp_path, model_v3, capsys):
    path, data, sha256 = model_v3
    relay.files[path] = data

    async def publish_after_first_chunk(server, ws, stored):
        if stored == 1:
            await server.publish_model(ws, 3, path, sha256)

    relay.after_chunk = publish_after_first_chunk
    assert run_client(relay, tmp_path, "--max-steps", "600", "--max-sps", "600") == 0

    out = capsys.readouterr().out
    assert relay.downloads == [(path, f"Bearer {TOKEN}")]
    versions = [chunk.model_version for chunk in relay.stored.values()]
    assert versions[0] == 0 and versions[-1] == 3 and versions == sorted(versions)
    assert "now playing model v3" in out and "model v3 |" in out
    assert unique_steps(relay) == 600 and spooled(tmp_path) == []


def test_a_model_with_a_wrong_checksum_is_not_played(relay, tmp_path, model_v3, caplog):
    path, data, _ = model_v3
    relay.files[path] = data
    relay.model = {"version": 3, "url": path, "sha256": "0" * 64}
    relay.published_version = 3
    assert run_client(relay, tmp_path, "--max-steps", "300", "--max-sps", "600") == 0

    assert len(relay.downloads) >= 1
    assert {chunk.model_version for chunk in relay.stored.values()} == {0}
    assert any("sha256" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_after_a_dropped_connection_the_client_resends_everything_unacked(relay, tmp_path, capsys):
    relay.drop_after = 5
    assert run_client(relay, tmp_path, "--max-steps", "400") == 0

    assert relay.connections == 2
    ids = [r.chunk.id for r in relay.received]
    session = ids[0].rsplit("-", 1)[0]
    seqs = sorted({int(i.rsplit("-", 1)[1]) for i in ids})
    assert seqs == list(range(len(seqs)))  # every chunk the client made reached the server
    assert unique_steps(relay) == 400 and all(i.startswith(session) for i in ids)
    # The chunk that was received but never acked came again, and the relay's de-duplication saw it.
    assert ids.count(f"{session}-4") == 2
    assert spooled(tmp_path) == []


def test_a_server_error_is_not_fatal_the_client_reconnects_and_finishes(relay, tmp_path, capsys):
    async def fail_once(relay, ws, stored):
        if stored == 3 and relay.connections == 1:
            await relay.send(ws, {"type": P.ERROR, "code": P.R_SERVER, "message": "the server hit an unexpected error"})
            await ws.close(P.CLOSE_SERVER_ERROR)

    relay.after_chunk = fail_once
    assert run_client(relay, tmp_path, "--max-steps", "300") == 0

    assert relay.connections == 2
    assert unique_steps(relay) == 300
    assert spooled(tmp_path) == []


def test_chunks_left_by_an_earlier_run_are_resent(relay, tmp_path):
    relay.answer = False  # the first run's chunks are never acked: they stay in its spool
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "client_app",
            "--server",
            relay.url,
            "--token",
            TOKEN,
            "--spool-dir",
            str(tmp_path),
            "--max-steps",
            "100",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Until all 100 steps went out (unacked): the run is then waiting for acks, and its spool
        # holds all of them. Stopped earlier, on a busy machine, it would have played fewer.
        wait_for(
            lambda: sum(r.chunk.steps for r in relay.received) >= 100 or first.poll() is not None,
            60,
            "the first run to send all its 100 steps",
            interval=0.05,
        )
    finally:
        first.terminate()  # SIGTERM: a clean exit that keeps the spool
        out, _ = first.communicate(timeout=30)
    assert first.returncode == 0, out
    left = spooled(tmp_path)
    assert len(left) >= 3 and "kept in" in out

    second = ScriptedRelay().start()
    try:
        assert run_client(second, tmp_path, "--max-steps", "10") == 0
        sessions = {chunk_id.rsplit("-", 1)[0] for chunk_id in second.stored}
        assert len(sessions) == 2  # the old run's chunks and the new run's
        assert unique_steps(second) == 110
        assert spooled(tmp_path) == []
    finally:
        second.stop()


@pytest.mark.parametrize("at_connect", [False, True], ids=["after-hello", "before-hello"])
def test_a_refused_token_exits_2_with_the_servers_message(relay, tmp_path, capsys, at_connect):
    relay.fatal = (P.R_AUTH, "The server does not know this machine token, or it was revoked.", P.CLOSE_AUTH)
    relay.fatal_at_connect = at_connect
    assert run_client(relay, tmp_path, "--max-steps", "100") == 2

    err = capsys.readouterr().err
    assert "The server does not know this machine token, or it was revoked." in err
    assert "Traceback" not in err
    assert relay.connections == 1  # never retried


async def relay_until(predicate, timeout: float) -> None:
    """In the scripted relay's event loop: poll until ``predicate()`` holds (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def test_paused_campaign_keeps_the_chunks_sent_before_its_notice_and_resumes(relay, tmp_path):
    async def pause_then_resume(server, ws, stored):
        if stored == 2:
            # As on the real relay, the status changes before its notice reaches the client: the
            # store script keeps the chunks of a paused campaign, so those in between are stored.
            server.status = "paused"
            before = len(server.received)

            async def notify_then_resume():
                # The notice goes out once a chunk came in between (the client played on meanwhile).
                await relay_until(lambda: len(server.received) > before, 30)
                await server.set_status(ws, "paused", "paused by the admins")
                await asyncio.sleep(0.7)  # how long the admins pause: no event to wait for, a length
                await server.set_status(ws, "running")

            asyncio.get_running_loop().create_task(notify_then_resume())

    relay.after_chunk = pause_then_resume
    assert run_client(relay, tmp_path, "--max-steps", "300", "--max-sps", "500") == 0
    assert any(r.status == "paused" for r in relay.received) and not any(r.held for r in relay.received)
    assert unique_steps(relay) == 300 and spooled(tmp_path) == []


def test_chunks_refused_as_not_running_are_kept_and_resent(relay, tmp_path, monkeypatch):
    # The relay refuses chunks as "not running" while its Redis knows the campaign as neither running
    # nor paused: here its status key is gone (Redis restarted empty) until the supervisor restores
    # it. No status notice comes (the campaign never changed), so the client resends what it holds
    # after HELD_RETRY_S, shortened here.
    monkeypatch.setattr(connection, "HELD_RETRY_S", 0.3)

    async def lose_then_restore(server, ws, stored):
        if stored == 2:
            server.status = None
            before = len(server.received)

            async def restore():
                await relay_until(lambda: len(server.received) > before, 30)
                server.status = "running"

            asyncio.get_running_loop().create_task(restore())

    relay.after_chunk = lose_then_restore
    assert run_client(relay, tmp_path, "--max-steps", "300", "--max-sps", "500") == 0
    assert any(r.held for r in relay.received)
    assert unique_steps(relay) == 300 and spooled(tmp_path) == []


def test_a_stopped_campaign_ends_the_client_cleanly(relay, tmp_path, capsys):
    async def stop_after_three(server, ws, stored):
        if stored == 3:
            await server.set_status(
                ws, "stopped", "The campaign has been stopped. Thank you for contributing!"
            )

    relay.after_chunk = stop_after_three
    assert run_client(relay, tmp_path, "--max-sps", "500") == 0
    assert "stopped" in capsys.readouterr().out
    assert relay.connections == 1


def test_an_env_this_client_cannot_make_is_a_readable_error(relay, tmp_path, capsys):
    relay.env_id = "SoulsGymIudex-v0"
    assert run_client(relay, tmp_path, "--max-steps", "10") == 2
    err = capsys.readouterr().err
    assert "SoulsGymIudex-v0" in err and "Traceback" not in err


def test_a_welcome_naming_an_env_off_the_list_is_refused_and_imports_nothing(relay, tmp_path, capsys, monkeypatch):
    # gymnasium.make("module:Env") imports the module: a hostile server could run code on every client.
    module = f"soulsai_canary_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\nclass Env: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    relay.env_id = f"{module}:Env"
    assert run_client(relay, tmp_path / "spool", "--max-steps", "10") == 2
    err = capsys.readouterr().err
    assert not marker.exists() and module not in sys.modules, f"the welcome's env id imported {module}"
    assert f"'{module}:Env' is not an environment SoulsAI supports" in err and "CartPole-v1" in err
    assert "Traceback" not in err
    assert not relay.stored


def test_spaces_that_differ_from_the_campaigns_are_refused(relay, tmp_path, capsys):
    relay.spaces = {**relay.spaces, "action": {"type": "discrete", "n": 3, "start": 0}}
    assert run_client(relay, tmp_path, "--max-steps", "10") == 2
    assert "different action space" in capsys.readouterr().err


def test_help_and_bad_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--server",
        "--token",
        "--name",
        "--spool-dir",
        "--max-steps",
        "--max-sps",
        "--seed",
        "--quiet",
    ):
        assert option in out
    assert "SOULSAI_TOKEN" in out and "exit codes" in out

    with pytest.raises(SystemExit) as exit_:
        main(["--server", "not a url", "--token", TOKEN])
    assert exit_.value.code == 2
    assert "--server must be the portal's address" in capsys.readouterr().err


def test_help_in_a_fresh_process_imports_no_server_code():
    script = (
        "import runpy, sys\n"
        "sys.argv = ['client_app', '--help']\n"
        "try:\n"
        "    runpy.run_module('client_app', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0\n"
        "import client_app.cli, client_app.runner, client_app.connection, client_app.fetcher\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'celery', 'torch', 'portal', 'trainer', 'channels', 'redis'})\n"
        "print('BAD=' + __import__('json').dumps(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage: soulsai-client" in result.stdout
    bad = json.loads(result.stdout.rsplit("BAD=", 1)[1])
    assert bad == []
