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


# ---- `make run` survives its terminal -------------------------------------------------------------


def _platform_env(tmp_path, *, redis_port: int, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        SOULSAI_VAR_DIR=str(tmp_path / "var"), EMBEDDED_REDIS_PORT=str(redis_port), PORT=str(port),
        DEMO_CLIENTS="0", ARENA_CLIENTS="0", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    return env


def _start_platform(env: dict[str, str], log_path) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "manage.py", "runplatform"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip


def _platform_processes(var_dir: str, redis_port: int) -> list[psutil.Process]:
    """Every process of this platform, whoever its parent is now: found by the var folder in its
    environment (children inherit it), or, for redis-server (which writes its title over its argv and
    environment), by its port."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid == os.getpid():
                continue
            if p.environ().get("SOULSAI_VAR_DIR") == var_dir or (
                "redis-server" in p.name() and f":{redis_port}" in " ".join(p.cmdline())
            ):
                found.append(p)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _assert_all_gone(var_dir: str, redis_port: int, log_path) -> None:
    _, alive = psutil.wait_procs(_platform_processes(var_dir, redis_port), timeout=10)
    names = [" ".join(p.cmdline())[:120] for p in alive]
    for leftover in alive:
        leftover.kill()
    assert not alive, f"left behind: {names}\n{log_path.read_text()[-3000:]}"


def _children_named(proc: subprocess.Popen, part: str) -> list[psutil.Process]:
    try:
        return [c for c in psutil.Process(proc.pid).children(recursive=True) if part in " ".join(c.cmdline())]
    except psutil.Error:
        return []


def test_sighup_in_start_up_sigterm_later_and_a_dead_redis_each_stop_everything_and_the_next_run_starts_cleanly(
    tmp_path,
):
    redis_port, port = free_port(), free_port()
    env = _platform_env(tmp_path, redis_port=redis_port, port=port)
    var_dir = env["SOULSAI_VAR_DIR"]
    healthz = f"http://127.0.0.1:{port}/healthz"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(healthz, timeout=2):
                return True
        except OSError:
            return False

    # 1. The terminal closes during start-up (the embedded Redis is up, migrations under way).
    log1 = tmp_path / "run1.log"
    proc = _start_platform(env, log1)
    try:
        wait_for(lambda: _children_named(proc, "redis-server"), 60, "the embedded Redis to start", interval=0.05)
    finally:
        proc.send_signal(signal.SIGHUP)
    code = proc.wait(timeout=60)
    _assert_all_gone(var_dir, redis_port, log1)
    assert code == 0 and "received SIGHUP: stopping" in log1.read_text(), log1.read_text()[-3000:]
    assert "Traceback" not in log1.read_text()

    # 2. A second run starts cleanly; its embedded Redis dies: the platform notices and stops everything.
    log2 = tmp_path / "run2.log"
    proc = _start_platform(env, log2)
    try:
        wait_for(lambda: proc.poll() is None and answers(), 180, "the second run to answer", interval=0.5)
        for redis_proc in _children_named(proc, "redis-server"):
            redis_proc.kill()
        code = proc.wait(timeout=90)  # noticed at once, even while still waiting for the web server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    _assert_all_gone(var_dir, redis_port, log2)
    assert code != 0 and "the embedded Redis server exited" in log2.read_text(), log2.read_text()[-3000:]

    # 3. A Redis left on the port by an earlier run (killed before it could stop it) is stopped and replaced,
    # without a traceback; SIGTERM once it runs stops everything, that Redis included.
    from portal.core.embedded import start_embedded_redis

    leftover = start_embedded_redis(port=redis_port, data_dir=tmp_path / "var" / "redis", persistent=True)
    log3 = tmp_path / "run3.log"
    proc = _start_platform(env, log3)
    try:
        wait_for(lambda: proc.poll() is None and answers(), 180, "the third run to answer", interval=0.5)
        assert "left running by an earlier run" in log3.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert leftover.wait(timeout=10) is not None  # shut down by the platform, not by us
    _assert_all_gone(var_dir, redis_port, log3)
    text = log3.read_text()
    assert code == 0 and "received SIGTERM: stopping" in text and "Traceback" not in text, text[-3000:]
