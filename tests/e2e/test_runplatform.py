"""`manage.py runplatform` (what `make run` starts): the whole platform on embedded defaults.

Checks what a newcomer sees (the demo campaign's API figures moving) and that Ctrl-C stops every
process the platform started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest

from harness import ROOT, WaitTimeout, free_port, wait_for

pytestmark = pytest.mark.e2e


def test_runplatform_runs_the_demo_and_ctrl_c_leaves_nothing_behind(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        SOULSAI_VAR_DIR=str(tmp_path / "var"),
        EMBEDDED_REDIS_PORT=str(free_port()),
        PORT=str(port),
        DEMO_CLIENTS="1",
        ARENA_CLIENTS="1",
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "platform.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "runplatform"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    runner = psutil.Process(proc.pid)
    children: list[psutil.Process] = []
    try:
        url = f"http://127.0.0.1:{port}/api/campaigns/cartpole-demo/"
        arena_url = url.replace("cartpole-demo", "iudex-arena-demo")

        def get(address: str) -> dict:
            try:
                with urllib.request.urlopen(address, timeout=5) as response:
                    return json.loads(response.read())
            except OSError:
                return {}

        figures: dict[str, dict] = {}

        def demo_moved() -> bool:
            assert proc.poll() is None, log_path.read_text()
            figures["cartpole"], figures["arena"] = get(url), get(arena_url)
            seen, arena = figures["cartpole"], figures["arena"]
            # CartPole learns; the arena client's fights end and are counted with the HP left.
            return (
                seen.get("samples_total", 0) > 0
                and seen.get("model_version", 0) >= 2
                and arena.get("boss_hp_left_recent") is not None
            )

        try:
            wait_for(demo_moved, 180, "the demo campaigns to move", interval=0.5)
        except WaitTimeout:
            raise AssertionError(
                f"the demo never moved: {figures['cartpole']} {figures['arena']}\n{log_path.read_text()[-5000:]}"
            ) from None
        seen, arena = figures["cartpole"], figures["arena"]
        assert seen["status"] == "running" and seen["env_id"] == "CartPole-v1" and seen["algorithm"] == "dqn"
        assert (arena["status"], arena["env_id"]) == ("running", "soulsai/IudexArena-v0")  # the boss-fight demo
        assert arena["episodes_total"] > 0 and arena["win_rate_recent"] is not None
        assert 0 < arena["boss_hp_left_recent"] <= 1  # random play early on: Iudex is hardly scratched

        children = runner.children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for part in ("uvicorn", "celery", "beat", "client_app", "redis-server", "arena-client-1"):
            assert part in names, f"{part} was not started: {names}"
        password_note = log_path.read_text()
        assert "demo admin created: username 'admin', password '" in password_note
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
        code = proc.wait(timeout=60)
        gone, alive = psutil.wait_procs(children, timeout=5)
        for leftover in alive:
            leftover.kill()
    assert code == 0, log_path.read_text()[-3000:]
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    assert "nothing left running" in log_path.read_text()
