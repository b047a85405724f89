"""The manners' sources on this machine: the /proc program watch against real child processes, the
X11 idle time against a real X server (Xvfb) moved by xdotool, and the watcher that combines them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from client_app.manners import MannersConfig, Watcher, parse_hours
from client_app.manners.idle import Unavailable, X11Idle
from client_app.manners.programs import ProgramWatch

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
needs_xvfb = pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xdotool")), reason="Xvfb and xdotool are needed"
)


def until(predicate, timeout: float = 10.0, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


@pytest.fixture
def program(tmp_path):
    """Start a copy of ``sleep`` under a name of the test's choosing; yields the starter."""
    children: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        path = tmp_path / name
        shutil.copy(shutil.which("sleep"), path)
        child = subprocess.Popen([str(path), "60"])
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()
        child.wait(5)


@linux_only
def test_a_configured_program_is_seen_while_it_runs_and_not_after(program):
    name = f"mnrs{uuid.uuid4().hex[:8]}"  # 12 characters: comm holds it whole
    long_name = f"manners-long-{uuid.uuid4().hex}.exe"  # past comm's 15 characters: found through argv[0]
    watch = ProgramWatch([name.upper(), long_name.removesuffix(".exe"), "not-running-anywhere"])
    assert watch.running() == ()
    child = program(name)
    assert until(lambda: watch.running() == (name.upper(),)), watch.running()
    other = program(long_name)
    assert until(lambda: len(watch.running()) == 2), watch.running()
    child.kill()
    child.wait(5)
    other.kill()
    other.wait(5)
    assert until(lambda: watch.running() == ()), watch.running()


@pytest.fixture
def xvfb():
    """A real X server on a free display (Xvfb -displayfd says which, once it is ready)."""
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-nolisten", "tcp", "-screen", "0", "320x240x24"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as f:
            number = f.readline().strip()  # blocks until the server accepts connections
        assert number.isdigit(), "Xvfb did not start"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def xdotool(display: str, *args: str) -> None:
    subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, check=True, timeout=10)


@needs_xvfb
def test_x11_idle_time_grows_and_input_resets_it(xvfb):
    source = X11Idle(display=xvfb)
    first = source.idle_seconds()
    assert first is not None and first >= 0
    assert until(lambda: source.idle_seconds() >= 0.5, timeout=5)  # idle grows while nobody touches it
    before = source.idle_seconds()
    xdotool(xvfb, "mousemove", "100", "100")
    after = source.idle_seconds()
    assert after < before and after < 0.5, (before, after)
    assert until(lambda: source.idle_seconds() >= 0.3, timeout=5)
    xdotool(xvfb, "key", "a")
    assert source.idle_seconds() < 0.3
    source.close()


@needs_xvfb
def test_an_x_server_that_goes_away_makes_the_source_unknown_not_the_process_exit():
    """Xlib exits the process on a broken connection unless the display has an exit handler."""
    code = (
        "import subprocess, sys, time\n"
        "from client_app.manners.idle import X11Idle\n"
        "server = subprocess.Popen(['Xvfb', ':'+sys.argv[1], '-nolisten', 'tcp'], stderr=subprocess.DEVNULL)\n"
        "deadline = time.monotonic() + 20\n"
        "while True:\n"
        "    try:\n"
        "        source = X11Idle(':'+sys.argv[1]); break\n"
        "    except Exception:\n"
        "        assert time.monotonic() < deadline; time.sleep(0.05)\n"
        "assert source.idle_seconds() is not None\n"
        "server.kill(); server.wait()\n"
        "print('after', source.idle_seconds(), source.idle_seconds(), flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(4000 + os.getpid() % 1000)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "after None None" in out.stdout


def test_x11_without_a_display_is_unavailable_not_an_error():
    with pytest.raises(Unavailable, match=r"\$DISPLAY is not set"):
        X11Idle(display="")
    with pytest.raises(Unavailable, match="cannot open the X display"):
        X11Idle(display=":4917")  # nothing listens there


@needs_xvfb
def test_the_watcher_pauses_on_input_and_plays_again_after_the_idle_time(xvfb):
    said: list[str] = []
    config = MannersConfig(idle_minutes=1.5 / 60)  # 1.5 s
    watcher = Watcher(config, say=said.append, inputs=X11Idle(display=xvfb), poll_s=0.05)
    watcher.start()
    try:
        assert not watcher.verdict.paused
        time.sleep(0.1)  # input must come after the watcher's start to count
        xdotool(xvfb, "mousemove", "10", "20")
        assert until(lambda: watcher.verdict.paused, timeout=5), watcher.verdict
        assert "you used the keyboard or mouse" in str(watcher.verdict)
        assert until(lambda: not watcher.verdict.paused, timeout=10), watcher.verdict
    finally:
        watcher.stop()
    assert said == []


def test_sources_that_cannot_work_here_are_said_once_and_left_out(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    said: list[str] = []
    watcher = Watcher(MannersConfig(hours=parse_hours("00:00-23:59")), say=said.append, minute=lambda: 60.0)
    for _ in range(3):
        assert not watcher.poll().paused
    assert said == ["pausing on keyboard or mouse input is off: no X display ($DISPLAY is not set)"]
    assert watcher.unavailable == said
