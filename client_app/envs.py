"""Environments a client can play, made through gymnasium.

gymnasium's CartPole-v1 and LunarLander-v2 for now; the SoulsGym fights and the arena simulator
register here in a later step, so importing this module is enough to make every id available.
"""

from __future__ import annotations

from typing import Any


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None):
    """Create the campaign's environment, with a readable error when it cannot be made here."""
    import gymnasium as gym

    try:
        return gym.make(env_id, **(env_kwargs or {}))
    except gym.error.DependencyNotInstalled as exc:
        raise RuntimeError(
            f"{env_id} needs extra packages on this machine: pip install 'soulsai-client[box2d]' ({exc})"
        ) from None
    except (gym.error.UnregisteredEnv, gym.error.DeprecatedEnv) as exc:
        raise RuntimeError(
            f"this client cannot make the environment {env_id!r} ({exc}); "
            "download the current client from the portal"
        ) from None
