"""Dark Souls III set-up as the client checks it, with a stand-in for the Windows calls (tests/client_app/gamefake.py).

What SoulsGym itself does on Windows cannot run here; what the client does around it can: the
Python pin and its message, the three kinds of set-up errors, the doctor's non-invasive checks and
its --report, the game unpaused and its window checked before an env is made, the kwargs each
SoulsGym env takes, and the phase feature.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from client_app import doctor, envs, gamewin, iudex
from client_app.runner import EXIT_FATAL, RunConfig, Runner
from client_app.spaces import space_to_spec
from tests.client_app.gamefake import FakeGame

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def game():
    with gamewin.use(FakeGame()) as fake:
        yield fake


# -- 2. The Python pin --------------------------------------------------------------------------------


def test_the_soulsgym_requirement_is_pinned_to_python_3_11_on_windows():
    for path in ("pyproject.toml", "requirements-client.txt"):
        lines = [line for line in (ROOT / path).read_text().splitlines() if "soulsgym==1.1.0;" in line]
        assert len(lines) == 1, path
        assert 'sys_platform == "win32"' in lines[0] and 'python_version == "3.11"' in lines[0], path
    from packaging.markers import Marker

    marker = Marker(lines[0].split(";", 1)[1].strip().rstrip("',"))
    base = {"sys_platform": "win32", "python_version": "3.11", "python_full_version": "3.11.9"}
    assert marker.evaluate(base)
    assert not marker.evaluate({**base, "python_version": "3.12", "python_full_version": "3.12.3"})
    assert not marker.evaluate({**base, "python_full_version": "3.11.1"})
    assert not marker.evaluate({**base, "sys_platform": "linux"})


def test_another_python_is_told_that_the_capture_module_links_against_3_11():
    problem = envs.soulsgym_python_problem((3, 12, 1), 64)
    assert (
        "Python 3.12.1" in problem
        and "window_capture.pyd" in problem
        and "linked against Python 3.11" in problem
    )
    assert "load your character" not in problem
    assert "3.11.2" in envs.soulsgym_python_problem((3, 11, 1), 64)
    assert "64-bit" in envs.soulsgym_python_problem((3, 11, 9), 32)
    assert envs.soulsgym_python_problem((3, 11, 9), 64) is None


def test_make_env_raises_a_separate_error_for_each_cause(game, monkeypatch):
    monkeypatch.setattr(envs, "python_version", lambda: (3, 12, 1))
    with pytest.raises(envs.WrongPython, match="linked against Python 3.11"):
        envs.make_env("SoulsGymIudex-v0")
    monkeypatch.setattr(envs, "python_version", lambda: (3, 11, 9))
    with pytest.raises(envs.SettingRefused, match="does not take 'phase'"):
        envs.make_env("SoulsGymIudexDemo-v0", {"phase": 2})
    # soulsgym is not installed here: a missing package is "no game", never "load your character".
    with pytest.raises(envs.GameMissing) as excinfo:
        envs.make_env("SoulsGymIudex-v0")
    assert "soulsgym==1.1.0" in str(excinfo.value) and "load" not in str(excinfo.value).lower()
    with gamewin.use(FakeGame(windows=False)), pytest.raises(envs.GameMissing, match="Windows"):
        envs.make_env("SoulsGymIudex-v0")
    # SoulsGym's own errors at creation, sorted into the same kinds.
    kinds = {
        ImportError("DLL load failed while importing window_capture"): envs.CaptureModuleMissing,
        RuntimeError("Process DarkSoulsIII.exe not open"): envs.GameMissing,
        RuntimeError(
            "Image autocrop failed ... Please set the game resolution to 800x450."
        ): envs.SettingRefused,
        type("InjectionFailure", (Exception,), {})("x"): envs.SettingRefused,
        type("GameStateError", (Exception,), {})("Player is not loaded into the game"): envs.PlayerNotLoaded,
    }
    for exc, kind in kinds.items():
        assert type(envs._classify_soulsgym_error("SoulsGymIudex-v0", exc)) is kind, exc


def test_run_on_another_python_exits_2_saying_why(relay, game, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(envs, "python_version", lambda: (3, 12, 1))
    relay.env_id = "SoulsGymIudex-v0"
    relay.spaces = {
        "observation": space_to_spec(iudex.encoded_space()),
        "action": space_to_spec(iudex.action_space()),
    }
    runner = Runner(
        RunConfig(server_url=relay.url, token="t", machine="m", spool_dir=tmp_path, progress_every=0)
    )
    assert runner.run() == EXIT_FATAL
    err = capsys.readouterr().err
    assert "error: SoulsGymIudex-v0: this is Python 3.12.1" in err and "linked against Python 3.11" in err
    assert "Traceback" not in err and "load your character" not in err


# -- 3. The doctor: non-invasive, --create-env, --report ------------------------------------------


def test_the_doctor_reads_the_game_without_touching_it(game):
    game.width, game.height, game.layouts = 1280, 720, ["00000409", "00000407"]
    checks = doctor.run_checks("SoulsGymIudex-v0", platform=game)
    lines = {c.what: c for c in checks}
    assert game.touched() == []  # no focus, no speed, no env: the game is left as it is
    assert lines["Dark Souls III is running (DarkSoulsIII.exe)"].ok
    window = lines["the game window is 1280×720 at 100% scaling"]
    assert not window.ok and "exactly 800×450" in window.fix
    layouts = lines["keyboard layouts: 00000409, 00000407"]
    assert not layouts.ok and "English (US)" in layouts.fix
    assert lines["Dark Souls III 1.15.2.0"].ok
    assert "not created" in checks[-1].what and "--create-env" in checks[-1].what

    game.width, game.height, game.layouts, game.version, game.scale = 800, 450, ["00000409"], "1.8.0.0", 1.25
    lines = {c.what: c for c in doctor.run_checks("SoulsGymIudex-v0", platform=game)}
    assert "keyboard layout: English (US) only (00000409)" in lines
    old = next(c for what, c in lines.items() if what.startswith("Dark Souls III 1.8.0.0"))
    assert not old.ok and "1.15.2" in old.fix
    assert "display scaling is 125%" in lines["the game window is 800×450 at 125% scaling"].fix


def test_creating_the_env_needs_the_flag_and_is_refused_while_playing(game):
    playing = doctor.run_checks("SoulsGymIudex-v0", create_env=True, playing=True, platform=game)
    assert not playing[-1].ok and "the client is playing" in playing[-1].what
    window = doctor.run_checks("SoulsGymIudex-v0", playing=True, platform=game)  # the window's button
    assert window[-1].ok and "not created: the client is playing" in window[-1].what
    created = doctor.run_checks("SoulsGymIudex-v0", create_env=True, platform=game)
    assert created[-1].what == "cannot create SoulsGymIudex-v0"  # soulsgym is not installed here
    assert game.touched() == []


def test_ascii_paths_and_the_capture_module_are_checked():
    bad = doctor.check_ascii_paths(
        {"python": "C:\\Users\\Jürgen\\AppData\\Local\\Programs\\Python\\Python311\\python.exe"}
    )
    assert not bad.ok and "non-ASCII" in bad.what and "C:\\Python311" in bad.fix
    assert doctor.check_ascii_paths({"python": "C:\\Python311\\python.exe", "soulsgym": None}).ok
    missing = doctor.check_capture_module()  # no soulsgym here: said as a missing package
    assert not missing.ok and "soulsgym is not installed" in missing.fix


def test_doctor_report_collects_what_a_volunteer_sends_back(game, tmp_path, capsys):
    game.width, game.height, game.layouts = 816, 489, ["00000409", "00000809"]
    out = tmp_path / "report.json"
    assert doctor.main(["--env", "SoulsGymIudex-v0", "--report", "--output", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == report
    assert (
        report["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
        and report["python"]["bits"] == 64
    )
    assert report["window"]["width"] == 816 and report["window"]["height"] == 489
    assert report["window"]["required"] == [800, 450] and report["window"]["problem"]
    assert report["keyboard_layouts"] == ["00000409", "00000809"] and report["layout_problem"]
    assert (
        report["game"]["executable_version"] == "1.15.2.0" and report["game"]["required_version"] == "1.15.2"
    )
    assert report["paths"]["ascii_only"] is True and "gymnasium" in report["packages"]
    assert any("not created" in c["what"] for c in report["checks"])
    assert game.touched() == []
    assert doctor.main(["--env", "SoulsGymIudex-v0", "--report", "text"]) == 0
    text = capsys.readouterr().out
    assert "window.width: 816" in text and 'keyboard_layouts: ["00000409", "00000809"]' in text


# -- 5. Before the env is made: unpaused, restored, the window's size ------------------------------


def test_prepare_game_unpauses_restores_and_checks_the_window(game):
    game.paused, game.minimised = True, True  # a client killed mid-episode, a minimised game
    envs.prepare_game("SoulsGymIudex-v0", game)
    assert not game.paused and not game.minimised
    assert game.touched() == ["speed 1", "restore"]
    game.width = 1024
    with pytest.raises(envs.SettingRefused, match="needs exactly 800×450"):
        envs.prepare_game("SoulsGymIudex-v0", game)
    game.has_window = False
    with pytest.raises(envs.GameMissing, match="no window"):
        envs.prepare_game("SoulsGymIudex-v0", game)
    game.pid = None
    with pytest.raises(envs.GameMissing, match="not running"):
        envs.prepare_game("SoulsGymIudex-v0", game)


# -- 6. SoulsGym kwargs per env id; the phase feature ------------------------------------------------


def test_soulsgym_kwargs_are_checked_per_env_id():
    assert envs.soulsgym_kwargs("SoulsGymIudex-v0", {"game_speed": 2, "phase": 2}) == {
        "game_speed": 2.0,
        "phase": 2,
    }
    assert envs.soulsgym_kwargs("SoulsGymIudexDemo-v0", {"init_pose_randomization": True})
    for env_id, kwargs, says in (
        ("SoulsGymIudexDemo-v0", {"phase": 2}, "does not take 'phase'"),
        ("SoulsGymIudex-v0", {"phase": 3}, "phase must be 1 or 2"),
        ("SoulsGymIudex-v0", {"phase": True}, "phase must be 1 or 2"),
        ("SoulsGymIudex-v0", {"boss_damage": 0.4}, "does not take 'boss_damage'"),
        ("SoulsGymIudex-v0", {"init_pose_randomization": "yes"}, "true or false"),
    ):
        with pytest.raises(envs.SettingRefused, match=says):
            envs.declared_spaces(env_id, kwargs)


class _IudexLikeGame(gym.Env):
    """SoulsGym 1.1.0's IudexEnv as far as phase goes: takes ``phase``, reports 1 whatever it is."""

    def __init__(self, observation: dict, phase: int):
        self.observation_space, self.action_space = iudex.observation_space(), iudex.action_space()
        self._obs, self.phase = dict(observation, phase=1), phase

    def reset(self, *, seed=None, options=None):
        return dict(self._obs), {"allowed_actions": [19]}

    def step(self, action):
        return dict(self._obs), 0.0, False, False, {"allowed_actions": [19]}


def test_phase_means_the_same_in_the_game_and_the_arena():
    arena = envs.make_env(iudex.ARENA_ID, {"phase": 2})
    arena_obs, _ = arena.reset(seed=1)
    assert arena_obs[iudex.field_index("phase")] == 1.0
    recorded = json.loads((ROOT / "tests" / "data" / "iudex_recorded_episodes.json").read_text())[
        "observations"
    ][0]
    for phase in (1, 2):
        game = iudex.IudexEncoder(envs.PhaseFromEnv(_IudexLikeGame(recorded, phase)))
        obs, _ = game.reset()
        assert obs[iudex.field_index("phase")] == phase - 1
        obs, *_ = game.step(19)
        assert obs[iudex.field_index("phase")] == phase - 1
    assert np.isfinite(obs).all()


def test_check_this_machine_during_a_run_never_creates_the_env(game, tmp_path):
    from client_app.controller import Controller, run_config

    controller = Controller()
    # A run that is still connecting (nothing answers on port 9) counts as playing.
    controller.start(run_config(server="http://127.0.0.1:9", token="sai_x", machine="m", spool_dir=tmp_path))
    try:
        assert controller.running
        assert controller.run_doctor(env_id="SoulsGymIudex-v0") and controller.wait_doctor(60)
        checks = controller.snapshot().doctor.checks
        assert "not created: the client is playing" in checks[-1].what
        assert game.touched() == []
    finally:
        controller.stop()
        assert controller.wait(30)
