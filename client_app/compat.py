"""Does this machine's env, and a downloaded policy, match what the campaign declared?

The campaign declares its observation and action spaces once (``client_app.spaces`` specs, sent in
the welcome); the relay refuses every chunk that does not fit them. The runner checks here, before
the first step, that the env this machine makes has exactly those spaces, and the model fetchers
check that a downloaded network takes those observations and has that many actions. A mismatch is
a problem the volunteer can fix (update the client or the game's packages), said in one line.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from client_app.connection import Welcome
from client_app.policy import Policy
from client_app.spaces import SpaceSpec, action_count, flat_dim, space_to_spec, spec_bounds


class ClientError(Exception):
    """A problem the user can fix, reported as one readable line (exit code 2).

    Raised for an env this machine cannot make or whose spaces are not the campaign's.
    """


def space_mismatch(declared: SpaceSpec, actual: SpaceSpec) -> str | None:
    """Why ``actual`` (this machine's env) differs from ``declared`` (the campaign's), or None."""
    if declared.get("type") != actual.get("type"):
        return f"type {actual.get('type')} instead of {declared.get('type')}"
    if actual["type"] == "discrete":
        for key in ("n", "start"):
            if int(declared.get(key, 0)) != int(actual.get(key, 0)):
                return f"{key}={actual.get(key)} instead of {declared.get(key)}"
        return None
    if list(declared["shape"]) != list(actual["shape"]):
        return f"shape {actual['shape']} instead of {declared['shape']}"
    if declared["dtype"] != actual["dtype"]:
        return f"dtype {actual['dtype']} instead of {declared['dtype']}"
    for name, mine, theirs in zip(("low", "high"), spec_bounds(actual), spec_bounds(declared), strict=True):
        if not np.allclose(mine, theirs, rtol=1e-6, atol=0.0, equal_nan=True):
            return f"different {name} bounds"
    return None


def check_env_spaces(env: Any, welcome: Welcome) -> None:
    """Refuse to play an env whose spaces are not the campaign's: the server would refuse its chunks."""
    env_id = welcome.campaign.get("env_id")
    for kind, space, declared in (
        ("observation", env.observation_space, welcome.observation_space),
        ("action", env.action_space, welcome.action_space),
    ):
        try:
            actual = space_to_spec(space)
        except ValueError as exc:
            raise ClientError(f"{env_id}: {exc}") from None
        reason = space_mismatch(declared, actual)
        if reason:
            raise ClientError(
                f"this machine's {env_id} has a different {kind} space than the campaign declares ({reason}); "
                "update the client and its packages to the versions the portal lists"
            )


def policy_mismatch(policy: Policy, observation_space: SpaceSpec, action_space: SpaceSpec) -> str | None:
    """Why a downloaded network cannot play these spaces, or None."""
    if policy.spec.obs_dim != flat_dim(observation_space):
        return f"it takes {policy.spec.obs_dim} inputs, the observations have {flat_dim(observation_space)}"
    if policy.spec.n_actions != action_count(action_space):
        return f"it has {policy.spec.n_actions} actions, the env {action_count(action_space)}"
    return None
