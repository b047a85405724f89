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

from typing import Any

from client_app import iudex
from client_app.spaces import SpaceSpec, space_to_spec

SOULSGYM_PREFIX = "SoulsGym"

# gymnasium's own envs with a flat Box observation and a Discrete action space (no extra module to
# import: LunarLander needs box2d, which the client's [box2d] extra installs).
GYMNASIUM_ENV_IDS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v2")
SUPPORTED_ENV_IDS: tuple[str, ...] = (*GYMNASIUM_ENV_IDS, iudex.ARENA_ID, *iudex.SOULSGYM_IUDEX_IDS)


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


def is_soulsgym(env_id: str) -> bool:
    """True for the ids that soulsgym provides (they need the real game)."""
    return str(env_id).startswith(SOULSGYM_PREFIX)


def is_iudex(env_id: str) -> bool:
    """True for the envs whose observations are Iudex dicts (wrapped with the encoder)."""
    return env_id in iudex.IUDEX_ENV_IDS


def _soulsgym_kwargs(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(env_kwargs)
    if "game_speed" in kwargs:
        speed = kwargs["game_speed"]
        if not isinstance(speed, (int, float)) or isinstance(speed, bool) or not 0 < speed <= 5:
            raise RuntimeError(f"game_speed must be a number in (0, 5], got {speed!r}")
        kwargs["game_speed"] = float(speed)
    return kwargs


def _make_soulsgym(env_id: str, env_kwargs: dict[str, Any]):
    import gymnasium as gym

    kwargs = _soulsgym_kwargs(env_id, env_kwargs)
    try:
        import soulsgym  # noqa: F401  (registers the SoulsGym ids with gymnasium)
    except ImportError as exc:
        raise RuntimeError(
            f"{env_id} needs the soulsgym package and Dark Souls III ({exc}). {NO_GAME_HINT}"
        ) from None
    except Exception as exc:  # soulsgym imports Windows-only modules (pywin32) at import time
        raise RuntimeError(
            f"{env_id}: soulsgym cannot load on this machine ({type(exc).__name__}: {exc}). {NO_GAME_HINT}"
        ) from None
    try:
        return gym.make(env_id, **kwargs)
    except (gym.error.UnregisteredEnv, gym.error.DeprecatedEnv) as exc:
        raise RuntimeError(
            f"the installed soulsgym does not provide {env_id!r} ({exc}); pip install soulsgym==1.1.0"
        ) from None
    except RuntimeError as exc:  # soulsgym: "Process DarkSoulsIII.exe not open"
        if "not open" in str(exc):
            raise RuntimeError(
                f"{env_id}: Dark Souls III is not running. Start the game, load your character "
                "(rested at the Cemetery of Ash bonfire), then start the client again."
            ) from None
        raise RuntimeError(f"{env_id} could not start: {exc}") from None
    except Exception as exc:  # GameStateError ("not loaded into the game"), pymem errors, ...
        raise RuntimeError(
            f"{env_id} could not start ({type(exc).__name__}: {exc}). Load your character into the "
            "game and keep the game window in front, then start the client again."
        ) from None


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None):
    """Create the campaign's environment, with a readable error when it cannot be made here.

    Raises RuntimeError with a message meant for the volunteer (no traceback needed) when this
    machine cannot run it: a missing package, no game, an id not on ``SUPPORTED_ENV_IDS``
    (UnsupportedEnv, raised before gymnasium is imported).
    """
    check_env_id(env_id)
    import gymnasium as gym

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
            _soulsgym_kwargs(env_id, dict(env_kwargs or {}))  # a bad game_speed fails here, not on clients
        else:  # the arena: made once, so that bad settings fail here too
            make_env(env_id, env_kwargs).close()
        return space_to_spec(iudex.encoded_space()), space_to_spec(iudex.action_space())
    env = make_env(env_id, env_kwargs)
    try:
        return space_to_spec(env.observation_space), space_to_spec(env.action_space)
    finally:
        env.close()
