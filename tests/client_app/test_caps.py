"""The volunteer's caps: upload (KB/s), spool (MB on disk), and their messages, against a scripted relay."""

from __future__ import annotations

import io
import re
import threading

import pytest

from client_app import cli, userconfig
from client_app.pacing import KB
from client_app.runner import RunConfig, Runner
from client_app.spool import MB
from harness import WaitTimeout, wait_for
from tests.client_app.test_cli import TOKEN, run_client


def test_the_upload_cap_holds_the_bytes_per_second_the_relay_receives(relay, tmp_path, capsys):
    cap_kbps = 40
    # About 200 KB of CartPole chunks (one per episode, about 1 KB each): uncapped, well under a second.
    assert run_client(relay, tmp_path, "--max-steps", "6000", "--max-upload-kbps", str(cap_kbps)) == 0
    out = capsys.readouterr().out
    chunks = relay.arrivals  # every frame after the hello
    assert sum(chunk.steps for chunk in relay.stored.values()) == 6000 and len(chunks) == len(relay.stored)
    total = sum(size for _, size in chunks)
    elapsed = chunks[-1][0] - chunks[0][0]
    # One second's allowance may go at once; after it, the cap.
    rate = (total - cap_kbps * KB) / elapsed / KB
    print(f"{total / KB:.0f} KB in {elapsed:.2f} s: {rate:.1f} KB/s after the first second's allowance")
    assert cap_kbps * 0.6 <= rate <= cap_kbps * 1.05
    assert "upload capped at 40 KB/s" in out and "wait to be sent" in out


def test_a_full_spool_stops_play_and_says_so_with_the_figures(relay, tmp_path):
    relay.chunk_steps = 256
    relay.answer = False  # the server takes chunks and never acks them: the spool only grows
    out = io.StringIO()
    # offline_backlog high: the spool's disk cap, not the offline rule, is what stops play here.
    config = RunConfig(
        server_url=relay.url, token=TOKEN, machine="m", spool_dir=tmp_path, spool_max_mb=1,
        offline_backlog=10**6, progress_every=0, seed=0,
    )  # fmt: skip
    runner = Runner(config, out=out)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: runner.snapshot().held_back, 30, "the spool to fill", interval=0.05)
        # CartPole's chunks are small: the spool's 1,000 chunks fill its 1 MB about together.
        assert re.search(
            r"spool full: (1,000 chunks \()?1 MB of 1 MB\)? waiting for the server; not playing until it drains",
            out.getvalue(),
        )
        steps = runner.steps
        assert runner.spool.size_bytes >= MB or len(runner.spool) == runner.spool.max_chunks
        # Still not playing a moment later (nothing drained).
        with pytest.raises(WaitTimeout):
            wait_for(lambda: runner.steps > steps, 0.5, "play to go on", interval=0.05)
        # The server takes half the spool (as acks would): play goes on, and says so once.
        for chunk_id in runner.spool.pending()[: len(runner.spool) // 2 + 1]:
            runner.spool.ack(chunk_id)
        assert wait_for(lambda: runner.steps > steps, 10, "play to go on", interval=0.05)
        assert runner.snapshot().held_back is None
        assert "the spool has room again: playing at full speed again" in out.getvalue()
    finally:
        runner.request_stop()
        thread.join(20)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--spool-max-mb", "0", "between 1 and"),
        ("--spool-max-mb", "lots", "a whole number of MB"),
        ("--spool-max-mb", "1.5", "a whole number of MB"),
        ("--spool-max-mb", str(2**40), "between 1 and"),
        ("--max-upload-kbps", "-1", "0 (no cap) or more"),
        ("--max-upload-kbps", "nan", "0 (no cap) or more"),
        ("--max-upload-kbps", "fast", "a number of KB per second"),
    ],
)
def test_bad_cap_values_are_refused_readably(option, value, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.parse_args(["--server", "http://127.0.0.1:9", "--token", TOKEN, option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and words in err


def test_caps_default_and_are_remembered_by_save(tmp_path, capsys):
    base = ["--server", "http://127.0.0.1:9", "--token", TOKEN, "--config", str(tmp_path / "c.json")]
    config = cli.parse_args(base)
    assert (config.max_upload_kbps, config.spool_max_mb) == (0.0, 512)
    cli.parse_args([*base, "--max-upload-kbps", "250", "--spool-max-mb", "64", "--save"])
    saved = userconfig.load(tmp_path / "c.json")
    assert (saved.max_upload_kbps, saved.spool_max_mb) == (250.0, 64)
    config = cli.parse_args(base)
    assert (config.max_upload_kbps, config.spool_max_mb) == (250.0, 64)
    assert cli.parse_args([*base, "--max-upload-kbps", "0"]).max_upload_kbps == 0  # a flag beats the file
