"""A real run makes way for the person at the machine: a configured program and keyboard-or-mouse input
on a real X server (Xvfb, moved by xdotool) pause it with the reason shown, the spool keeps draining to
the scripted relay, and it plays again once the program ends and the input has stopped."""

# ruff: noqa: F811 (the fixtures are imported from test_manners_sources)
from __future__ import annotations

import io
import threading
import uuid

import pytest

from client_app.controller import Controller, ControllerSnapshot
from client_app.gui.window import figures_of
from client_app.manners import MannersConfig
from client_app.runner import PAUSED_FOR_YOU, RunConfig, Runner
from harness import WaitTimeout, wait_for
from tests.client_app.test_cli import TOKEN
from tests.client_app.test_manners_sources import linux_only, needs_xvfb, program, xdotool, xvfb  # noqa: F401


@linux_only
@needs_xvfb
def test_a_run_pauses_for_a_program_and_for_input_then_plays_again(
    relay, tmp_path, program, xvfb, monkeypatch
):
    monkeypatch.setenv("DISPLAY", xvfb)  # the run finds the X server as a desktop session's client would
    name = f"mnrs{uuid.uuid4().hex[:8]}"
    manners = MannersConfig(idle_minutes=1.5 / 60, pause_while=(name,))  # play again 1.5 s after input
    out = io.StringIO()
    config = RunConfig(
        server_url=relay.url, token=TOKEN, machine="m", spool_dir=tmp_path, max_sps=300, progress_every=0,
        seed=0, manners=manners,
    )  # fmt: skip
    runner = Runner(config, out=out)
    child = program(name)  # running before the run starts: the run pauses as soon as it plays
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        snap = wait_for(
            lambda: (s := runner.snapshot()).phase == PAUSED_FOR_YOU and s, 30, "the pause for the program",
            interval=0.05,
        )  # fmt: skip
        assert snap.pause_reasons == (f"{name} is running",)
        assert f"(paused for you: {name} is running)" in runner.progress_line()
        controller_snap = ControllerSnapshot(state="running", run=snap, exit_code=None)
        assert figures_of(controller_snap)["state"] == f"paused for you: {name} is running"
        assert f"paused for you ({name} is running): not playing" in out.getvalue()
        # No steps while paused, and the spool drains to the relay.
        assert wait_for(lambda: len(runner.spool) == 0, 10, "the spool to drain", interval=0.05)
        steps = runner.steps
        with pytest.raises(WaitTimeout):
            wait_for(lambda: runner.steps > steps, 0.5, "a step while paused", interval=0.05)
        assert len(relay.stored) == runner.chunks

        child.kill()
        child.wait(5)
        assert wait_for(lambda: runner.steps > steps, 15, "play after the program ended", interval=0.05)
        assert runner.snapshot().pause_reasons == ()

        xdotool(xvfb, "mousemove", "50", "60")
        snap = wait_for(
            lambda: (s := runner.snapshot()).phase == PAUSED_FOR_YOU and s, 10, "the pause for input",
            interval=0.05,
        )  # fmt: skip
        assert snap.pause_reasons[0].startswith("you used the keyboard or mouse")
        assert "(plays again after 1.5 s without input)" in snap.pause_reasons[0]
        steps = runner.steps
        assert wait_for(
            lambda: runner.snapshot().phase == "playing", 15, "play after 1.5 s idle", interval=0.05
        )
        assert wait_for(lambda: runner.steps > steps, 10, "steps after the input pause", interval=0.05)
    finally:
        runner.request_stop()
        thread.join(20)
    assert not thread.is_alive()
    assert runner.manners is not None and runner.manners.unavailable == []
    assert out.getvalue().count("resumed") == 2


@linux_only
def test_the_volunteers_own_pause_and_the_pause_for_them_are_told_apart(relay, tmp_path, program):
    name = f"mnrs{uuid.uuid4().hex[:8]}"
    controller = Controller()
    config = RunConfig(
        server_url=relay.url, token=TOKEN, machine="m", spool_dir=tmp_path, max_sps=300,
        manners=MannersConfig(pause_on_input=False, pause_while=(name,)),
    )  # fmt: skip
    child = program(name)

    def state(words: str) -> ControllerSnapshot:
        def shown() -> ControllerSnapshot | None:
            snap = controller.snapshot()
            return snap if figures_of(snap)["state"] == words else None

        return wait_for(shown, 15, words, interval=0.05)

    controller.start(config)
    try:
        snap = state(f"paused for you: {name} is running")
        assert snap.state == "running"  # the window's button still says Pause
        controller.pause()
        assert state("paused by you: the spool is still being sent").state == "paused"
        controller.resume()
        state(f"paused for you: {name} is running")
        child.kill()
        child.wait(5)
        assert state("playing").run.pause_reasons == ()
    finally:
        controller.stop()
        assert controller.wait(20)
