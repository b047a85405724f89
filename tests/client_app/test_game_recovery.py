"""Recovery and focus around a SoulsGym env, with stand-ins at the Windows boundary (gamefake.FakeGame,
and an arena env standing in for the game's env, since SoulsGym itself runs only on Windows).

- a crash's ``env.close()`` never raises through the runner;
- a hung reset's thread is abandoned into ``gamewin.InputGate``: its key presses go nowhere;
- SoulsGym gets reset and step time limits that fit its set-up and 15-minute reloads;
- SoulsGym's connections to a dead game process are dropped before a new env is made;
- the runner keeps the game window in front, and waits instead of pressing keys into another window.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import gymnasium as gym
import pytest

from client_app import envs, gamewin, iudex
from client_app.runner import EXIT_OK, RunConfig, Runner
from client_app.spaces import space_to_spec
from client_app.watchdog import ResilientEnv
from harness import wait_for
from tests.client_app.gamefake import FakeGame


@pytest.fixture
def game():
    with gamewin.use(FakeGame()) as fake:
        yield fake


def iudex_relay(relay):
    relay.env_id = "SoulsGymIudex-v0"
    relay.spaces = {
        "observation": space_to_spec(iudex.encoded_space()),
        "action": space_to_spec(iudex.action_space()),
    }
    return relay


def arena_as_the_game(env_id, env_kwargs):
    """What make_env returns for SoulsGymIudex-v0 on Windows, as far as the runner can tell."""
    return envs.make_env(iudex.ARENA_ID, {})


class CloseRaises(gym.Wrapper):
    def close(self):
        raise RuntimeError("Could not write to process memory: the game is gone")


def test_a_close_that_raises_after_a_crash_is_a_readable_line(relay, game, tmp_path, capsys):
    iudex_relay(relay)
    runner = Runner(RunConfig(server_url=relay.url, token="t", machine="m", spool_dir=tmp_path, max_steps=5,
                              progress_every=0, drain_timeout=2))  # fmt: skip
    runner.make_env = lambda env_id, kwargs: CloseRaises(arena_as_the_game(env_id, kwargs))
    assert runner.run() == EXIT_OK
    err = capsys.readouterr().err
    assert "error: the game could not be closed cleanly (RuntimeError: Could not write" in err
    assert "Traceback" not in err and runner.env is None


def test_the_runner_keeps_the_game_in_front_and_waits_while_it_cannot(relay, game, tmp_path):
    iudex_relay(relay)
    game.focused, game.focus_allowed = False, False  # another window in front, Windows refuses to switch
    runner = Runner(RunConfig(server_url=relay.url, token="t", machine="m", spool_dir=tmp_path, max_steps=40,
                              progress_every=0, drain_timeout=2, quiet=True))  # fmt: skip
    runner.make_env = arena_as_the_game
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: runner.phase == "waiting for the game window", 30, "the runner waiting for the game")
        assert runner.steps == 0 and "click on the game" in (runner.last_error or "")
        game.focus_allowed = True  # the volunteer clicks on the game, or Windows lets the client switch
        thread.join(60)
        assert not thread.is_alive() and runner.exit_code == EXIT_OK and runner.steps == 40
        assert "focus" in game.touched() and runner.focus.refocused >= 1
        game.focused = False  # focus lost mid-run: taken back at the next tick
        assert runner.focus.tick(now=1e9) and game.focused
    finally:
        runner.request_stop()
        thread.join(10)


class HungReset(gym.Env):
    """A game env whose first reset hangs, then presses a key the way SoulsGym's GameInput does."""

    observation_space = gym.spaces.Discrete(2)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, game_input, release: threading.Event, hang: bool):
        self.game_input, self.release, self.hang = game_input, release, hang

    def reset(self, *, seed=None, options=None):
        if self.hang:
            self.release.wait(30)
        self.game_input.USER32.SendInput(1, "key", 40)
        return 0, {}

    def step(self, action):
        self.game_input.USER32.SendInput(1, "key", 40)
        return 0, 0.0, False, False, {}


def test_a_hung_reset_is_abandoned_and_its_key_presses_are_dropped():
    sent: list[str] = []
    user32 = SimpleNamespace(SendInput=lambda *args: sent.append(threading.current_thread().name) or 1)
    game_input = SimpleNamespace(USER32=user32)  # soulsgym.core.game_input, as far as the gate goes
    gate = gamewin.InputGate()
    assert gate.install(game_input) and gate.install(game_input)  # twice: one proxy
    release = threading.Event()
    made = iter([True, False])
    env = ResilientEnv(lambda: HungReset(game_input, release, next(made)), reset_timeout_s=0.3,
                       restart_delay_s=0, on_abandon=gate.abandon)  # fmt: skip
    assert env.reset() == (0, {}) and env.restarts == 1
    assert sent == ["env-reset"]  # the second env's reset pressed its key
    release.set()  # the abandoned reset wakes up and presses its key: dropped
    wait_for(lambda: gate.dropped == 1, 10, "the abandoned thread's key press")
    assert sent == ["env-reset"]
    env.step(0)
    assert len(sent) == 2


def test_soulsgym_gets_time_limits_that_fit_its_set_up_and_reloads():
    game = envs.watchdog_settings("SoulsGymIudex-v0")
    assert game["reset_timeout_s"] >= 15 * 60 and game["step_timeout_s"] >= 30
    assert game["on_abandon"] == gamewin.INPUT_GATE.abandon
    env = ResilientEnv(lambda: gym.make("CartPole-v1"), **game)
    assert 9 * 60 <= env.give_up_after_s <= 15 * 60  # the game restarts and loads the save in minutes
    cartpole = ResilientEnv(lambda: gym.make("CartPole-v1"), **envs.watchdog_settings("CartPole-v1"))
    assert cartpole.give_up_after_s == 31 and cartpole.step_timeout_s is None


def test_soulsgyms_connections_to_a_dead_game_are_dropped(game):
    reader = SimpleNamespace(pid=4242)  # MemoryManipulator holds the process id
    utils = SimpleNamespace(
        Singleton=SimpleNamespace(_instances={"MemoryManipulator": reader, "SpeedHack": object()})
    )
    assert not gamewin.drop_stale_connections(game, utils)  # the same game: kept (the pipe takes one client)
    assert len(utils.Singleton._instances) == 2
    game.pid = 5151  # the game was restarted
    assert gamewin.drop_stale_connections(game, utils) and not utils.Singleton._instances
    assert not gamewin.drop_stale_connections(game, SimpleNamespace())  # soulsgym not imported
