"""Environments a client can play, made through gymnasium: only those on ``SUPPORTED_ENV_IDS``.

- gymnasium's CartPole-v1, Acrobot-v1, MountainCar-v0 and LunarLander-v2;
- the Dark Souls III fights ``SoulsGymIudex-v0`` and ``SoulsGymIudexDemo-v0`` through soulsgym, which
  needs Windows with the game running;
- ``soulsai/IudexArena-v0``, the simulator that stands in for SoulsGymIudex-v0 (client_app.arena).

The list is an allow-list, checked before gymnasium sees the id, on the server (campaign creation
imports it from here) and on every client (the welcome names the env): gymnasium imports the module
of an id written ``module:Env``, so an id from a staff form or from a server must never reach
``gymnasium.make`` unchecked.

Iudex envs (the game and the arena) are wrapped with ``client_app.iudex.IudexEncoder``, so the client
sees the flat Box the campaign declares, whatever the game's dict looks like.
"""

from __future__ import annotations

import importlib
import logging
import struct
import sys
from typing import Any

import gymnasium as gym

from client_app import gamewin, iudex
from client_app.spaces import SpaceSpec, space_to_spec

SOULSGYM_PREFIX = "SoulsGym"

# gymnasium's own envs with a flat Box observation and a Discrete action space (no extra module to
# import: LunarLander needs box2d, which the client's [box2d] extra installs).
GYMNASIUM_ENV_IDS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v2")
SUPPORTED_ENV_IDS: tuple[str, ...] = (*GYMNASIUM_ENV_IDS, iudex.ARENA_ID, *iudex.SOULSGYM_IUDEX_IDS)


log = logging.getLogger(__name__)


class UnsupportedEnv(RuntimeError):
    """An env id that is not on ``SUPPORTED_ENV_IDS``: it is never handed to gymnasium."""


def check_env_id(env_id: object) -> str:
    """``env_id`` if it is on the allow-list; raises UnsupportedEnv with a readable message otherwise.

    Checked before anything else touches the id: ``gymnasium.make("module:Env")`` imports ``module``.
    """
    if isinstance(env_id, str) and env_id in SUPPORTED_ENV_IDS:
        return env_id
    shown = repr(env_id) if len(repr(env_id)) <= 80 else repr(env_id)[:77] + "..."
    raise UnsupportedEnv(
        f"{shown} is not an environment SoulsAI supports; the supported ones are "
        + ", ".join(SUPPORTED_ENV_IDS)
    )


NO_GAME_HINT = (
    "Dark Souls III fights run only on Windows, with the game installed and running. "
    f"To try the client without the game, use a campaign on {iudex.ARENA_ID}, the Iudex simulator."
)
SOULSGYM_PYTHON = (3, 11)  # soulsgym 1.1.0's compiled window_capture.pyd is built for CPython 3.11
SOULSGYM_MIN_PATCH = 2  # and soulsgym requires 3.11.2+ (random.choice with numpy on 3.11.0/1)
CAPTURE_MODULE = "soulsgym.core.game_window._C.window_capture"
SETUP_PAGE = "docs/client.md, Dark Souls III set-up (the download page shows the same)"

#: The keyword arguments each SoulsGym env's constructor takes (soulsgym 1.1.0): a campaign with any
#: other is refused when it is created, not on every volunteer's machine. IudexEnvDemo takes no phase.
SOULSGYM_KWARGS: dict[str, frozenset[str]] = {
    "SoulsGymIudex-v0": frozenset({"game_speed", "phase", "init_pose_randomization"}),
    "SoulsGymIudexDemo-v0": frozenset({"game_speed", "init_pose_randomization"}),
}


class GameSetupError(RuntimeError):
    """This machine cannot play a SoulsGym fight as it is set up; the message says what to change."""


class GameMissing(GameSetupError):
    """No game here: not Windows, soulsgym not installed, or Dark Souls III not running."""


class WrongPython(GameSetupError):
    """Not the 64-bit Python 3.11 that soulsgym's compiled capture module is built for."""


class CaptureModuleMissing(GameSetupError):
    """soulsgym is installed but its compiled screen-capture module does not load."""


class SettingRefused(GameSetupError):
    """A setting is refused: a campaign's env kwarg, or a game setting SoulsGym cannot work with."""


class PlayerNotLoaded(GameSetupError):
    """The game runs but no character is loaded (SoulsGym's GameStateError at creation)."""


def is_soulsgym(env_id: str) -> bool:
    """True for the ids that soulsgym provides (they need the real game)."""
    return str(env_id).startswith(SOULSGYM_PREFIX)


def is_iudex(env_id: str) -> bool:
    """True for the envs whose observations are Iudex dicts (wrapped with the encoder)."""
    return env_id in iudex.IUDEX_ENV_IDS


def python_version() -> tuple[int, int, int]:
    """This interpreter's version (a function, so that tests can stand in another Python)."""
    return tuple(sys.version_info[:3])  # type: ignore[return-value]


def python_bits() -> int:
    return struct.calcsize("P") * 8


def soulsgym_python_problem(version: tuple[int, ...] | None = None, bits: int | None = None) -> str | None:
    """Why soulsgym 1.1.0 cannot run on this Python, or None: it needs a 64-bit CPython 3.11.2+ (3.11 only)."""
    version = tuple(version or python_version())
    bits = bits or python_bits()
    shown = ".".join(map(str, version))
    if tuple(version[:2]) != SOULSGYM_PYTHON:
        return (
            f"this is Python {shown}; SoulsGym 1.1.0's compiled screen-capture module (window_capture.pyd) "
            "is linked against Python 3.11 and loads on no other version. Install the 64-bit Python 3.11 "
            "from python.org into a folder with an ASCII-only path, then the client in it "
            f'(py -3.11 -m pip install soulsai_client-….whl; pip adds "soulsgym==1.1.0" there). See {SETUP_PAGE}.'
        )
    if len(version) > 2 and version[2] < SOULSGYM_MIN_PATCH:
        return f"this is Python {shown}; soulsgym 1.1.0 needs 3.11.2 or a later 3.11: update Python 3.11"
    if bits != 64:
        return f"this is a {bits}-bit Python {shown}; SoulsGym's modules are 64-bit: install the 64-bit Python 3.11"
    return None


def soulsgym_kwargs(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The kwargs, checked for this SoulsGym env id; raises SettingRefused with the reason."""
    allowed = SOULSGYM_KWARGS.get(env_id, frozenset())
    unknown = sorted(set(env_kwargs) - allowed)
    if unknown:
        raise SettingRefused(
            f"{env_id} does not take {', '.join(map(repr, unknown))}; it takes "
            + (", ".join(sorted(allowed)) or "no settings")
            + (" (the demo fights both phases: no phase)" if "phase" in unknown else "")
        )
    kwargs = dict(env_kwargs)
    if "game_speed" in kwargs:
        speed = kwargs["game_speed"]
        if not isinstance(speed, (int, float)) or isinstance(speed, bool) or not 0 < speed <= 5:
            raise SettingRefused(f"game_speed must be a number in (0, 5], got {speed!r}")
        kwargs["game_speed"] = float(speed)
    if "phase" in kwargs and (isinstance(kwargs["phase"], bool) or kwargs["phase"] not in (1, 2)):
        raise SettingRefused(f"phase must be 1 or 2, got {kwargs['phase']!r}")
    if "init_pose_randomization" in kwargs and not isinstance(kwargs["init_pose_randomization"], bool):
        raise SettingRefused(
            f"init_pose_randomization must be true or false, got {kwargs['init_pose_randomization']!r}"
        )
    return kwargs


_soulsgym_kwargs = soulsgym_kwargs  # the name declared_spaces used before


class PhaseFromEnv(gym.ObservationWrapper):
    """Reports the phase the env fights in ``obs["phase"]``: SoulsGymIudex-v0 leaves it at 1.

    soulsgym 1.1.0's IudexEnv takes ``phase`` (1 or 2) but its observation never sets the field (the
    game state's default, 1), while the arena and IudexEnvDemo report the phase they fight. The
    encoder's first feature then means the same thing on every Iudex env: the phase of the fight.
    """

    def observation(self, observation: dict) -> dict:
        phase = getattr(self.env.unwrapped, "phase", None)
        if phase in (1, 2) and isinstance(observation, dict):
            observation = {**observation, "phase": int(phase)}
        return observation


def capture_module_problem() -> str | None:
    """Why soulsgym's compiled screen-capture module does not import, or None. Touches no game."""
    try:
        importlib.import_module(CAPTURE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("soulsgym.core.game_window"):
            return f"soulsgym is not installed ({exc})"
        return f"soulsgym's compiled screen-capture module is missing ({exc}): reinstall soulsgym==1.1.0"
    except ImportError as exc:  # "DLL load failed", a .pyd built for another Python
        return (
            f"soulsgym's compiled screen-capture module does not load ({exc}): it needs the 64-bit "
            "Python 3.11 and the Microsoft Visual C++ Redistributable; reinstall soulsgym==1.1.0"
        )
    except Exception as exc:  # pragma: no cover - a broken install
        return f"soulsgym's screen-capture module fails to load ({type(exc).__name__}: {exc})"
    return None


def prepare_game(env_id: str, platform: gamewin.GamePlatform | None = None) -> None:
    """Before SoulsGym touches the game: it runs, is unpaused, not minimised, and its window is 800×450.

    A client killed mid-episode leaves the game paused (speed 0 through the speed hack), which can
    hang the next env's creation; a minimised or wrongly sized window makes SoulsGym's capture fail
    later with a less clear message. Raises GameMissing or SettingRefused.
    """
    platform = platform or gamewin.current()
    if platform.game_pid() is None:
        raise GameMissing(
            f"{env_id}: Dark Souls III is not running (no {gamewin.GAME_PROCESS}). Start the game, load "
            f"your SoulsAI knight save at the Cemetery of Ash, then start the client again ({SETUP_PAGE})."
        )
    if platform.set_game_speed(1.0):
        log.info("set the game's speed to 1 (a killed client may have left it paused)")
    window = platform.find_window()
    if window is not None and window.minimised:
        platform.restore_window()
        window = platform.find_window()
    problem = gamewin.window_problem(window)
    if problem:
        error = GameMissing if window is None else SettingRefused
        raise error(f"{env_id}: {problem} ({SETUP_PAGE}).")


def _classify_soulsgym_error(env_id: str, exc: BaseException) -> GameSetupError:
    """SoulsGym's creation errors as the volunteer's three cases: missing module, refused setting, no game."""
    name, text = type(exc).__name__, str(exc)
    if isinstance(exc, ImportError):
        return CaptureModuleMissing(
            f"{env_id}: soulsgym does not load ({text}). " + (capture_module_problem() or "")
        )
    if "not open" in text or "Window not found" in text:  # get_pid's RuntimeError, GameWindow's Exception
        return GameMissing(
            f"{env_id}: Dark Souls III is not running or has no window ({text}). Start the game and load "
            "your SoulsAI knight save, then start the client again."
        )
    if "800x450" in text or "resolution" in text.lower() or name == "InvalidGameSettings":
        return SettingRefused(
            f"{env_id}: SoulsGym refuses the game's settings ({text}): windowed, 800x450, display scaling "
            f"100% ({SETUP_PAGE})."
        )
    if name == "InjectionFailure":
        return SettingRefused(
            f"{env_id}: SoulsGym could not inject its speed hack into the game ({text}): allow the soulsgym "
            "folder in your antivirus and install Python in a folder with an ASCII-only path."
        )
    if name == "GameStateError":
        return PlayerNotLoaded(
            f"{env_id}: no character is loaded ({text}). Load your SoulsAI knight save, rest at the "
            "Cemetery of Ash bonfire, keep the game window in front, then start the client again."
        )
    return GameSetupError(f"{env_id} could not start ({name}: {text})")


def _make_soulsgym(env_id: str, env_kwargs: dict[str, Any]):
    kwargs = soulsgym_kwargs(env_id, env_kwargs)
    platform = gamewin.current()
    if not getattr(platform, "windows", False):
        raise GameMissing(f"{env_id}: soulsgym drives the game through Windows APIs. {NO_GAME_HINT}")
    problem = soulsgym_python_problem()
    if problem:
        raise WrongPython(f"{env_id}: {problem}")
    try:
        import soulsgym  # noqa: F401  (registers the SoulsGym ids with gymnasium)
    except ImportError as exc:
        raise GameMissing(
            f"{env_id} needs the soulsgym package and Dark Souls III ({exc}): "
            f'pip install "soulsgym==1.1.0". {NO_GAME_HINT}'
        ) from None
    except Exception as exc:  # soulsgym imports Windows-only modules (pywin32) at import time
        raise GameMissing(
            f"{env_id}: soulsgym cannot load on this machine ({type(exc).__name__}: {exc}). {NO_GAME_HINT}"
        ) from None
    problem = capture_module_problem()
    if problem:
        raise CaptureModuleMissing(f"{env_id}: {problem}")
    gamewin.drop_stale_connections(platform)  # a restarted game: SoulsGym's singletons hold the dead one
    prepare_game(env_id, platform)
    try:
        env = gym.make(env_id, **kwargs)
    except (gym.error.UnregisteredEnv, gym.error.DeprecatedEnv) as exc:
        raise GameMissing(
            f"the installed soulsgym does not provide {env_id!r} ({exc}); pip install soulsgym==1.1.0"
        ) from None
    except Exception as exc:  # RuntimeError("Process DarkSoulsIII.exe not open"), GameStateError, ...
        raise _classify_soulsgym_error(env_id, exc) from None
    gamewin.INPUT_GATE.install()  # soulsgym.core.game_input is imported now: gate its SendInput
    if env_id == "SoulsGymIudex-v0":
        env = PhaseFromEnv(env)
    return env


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None):
    """Create the campaign's environment, with a readable error when it cannot be made here.

    Raises RuntimeError with a message meant for the volunteer (no traceback needed) when this
    machine cannot run it: a missing package, no game, an id not on ``SUPPORTED_ENV_IDS``
    (UnsupportedEnv, raised before gymnasium is imported).
    """
    check_env_id(env_id)
    env_kwargs = dict(env_kwargs or {})
    if is_soulsgym(env_id):
        env = _make_soulsgym(env_id, env_kwargs)
    else:
        try:
            env = gym.make(env_id, **env_kwargs)
        except gym.error.DependencyNotInstalled as exc:
            raise RuntimeError(
                f"{env_id} needs extra packages on this machine: pip install 'soulsai-client[box2d]' ({exc})"
            ) from None
        except (gym.error.UnregisteredEnv, gym.error.DeprecatedEnv) as exc:
            raise RuntimeError(
                f"this client cannot make the environment {env_id!r} ({exc}); "
                "download the current client from the portal"
            ) from None
        except (TypeError, ValueError) as exc:  # an unknown keyword or a bad value in env_kwargs
            raise RuntimeError(f"{env_id} does not take the settings {env_kwargs}: {exc}") from None
    if is_iudex(env_id):
        env = iudex.IudexEncoder(env)
    return env


def watchdog_settings(env_id: str) -> dict[str, Any]:
    """``ResilientEnv``'s time limits for this env.

    SoulsGym's first reset sets the fight up (teleports, lock-on retries) and every 15 minutes a reset
    reloads the game (the player dies and respawns): minutes, not seconds. After a crash the game
    takes minutes to start and load the save again, so the wrapper waits about 10 minutes in all
    before it gives up. A hung SoulsGym reset's key presses are dropped (``gamewin.INPUT_GATE``).
    """
    if is_soulsgym(env_id):
        return {
            "reset_timeout_s": 900.0,
            "step_timeout_s": 60.0,
            "restart_delay_s": 5.0,
            "max_delay_s": 120.0,
            "max_restarts": 9,
            "on_abandon": gamewin.INPUT_GATE.abandon,
        }
    return {"reset_timeout_s": 120.0, "step_timeout_s": None, "restart_delay_s": 1.0, "max_delay_s": 30.0}


def declared_spaces(env_id: str, env_kwargs: dict[str, Any] | None = None) -> tuple[SpaceSpec, SpaceSpec]:
    """The (observation, action) specs a campaign on this env declares: what clients send.

    For the Iudex fights these are the encoder's Box and Discrete(20), known without the game, so
    the server (which never has Dark Souls III) can create SoulsGym campaigns. Other envs are made
    once to read their spaces. Raises RuntimeError when the env cannot be made, UnsupportedEnv (before
    gymnasium sees the id) when it is not on ``SUPPORTED_ENV_IDS``.
    """
    check_env_id(env_id)
    if is_iudex(env_id):
        if is_soulsgym(env_id):
            soulsgym_kwargs(env_id, dict(env_kwargs or {}))  # a bad setting fails here, not on clients
        else:  # the arena: made once, so that bad settings fail here too
            make_env(env_id, env_kwargs).close()
        return space_to_spec(iudex.encoded_space()), space_to_spec(iudex.action_space())
    env = make_env(env_id, env_kwargs)
    try:
        return space_to_spec(env.observation_space), space_to_spec(env.action_space)
    finally:
        env.close()
