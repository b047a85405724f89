"""The real client, poisoned: it ignores its policy and always pushes the cart left, yet reports the
actions its policy chose. Every chunk is well-formed and within CartPole's bounds (rewards of 1, real
observations); only the actions do not match the observations. Run as the client is:
``python -m tests.e2e.poisoned_client run --server URL ...`` (token in SOULSAI_TOKEN)."""

from __future__ import annotations

import sys

import gymnasium as gym

import client_app.runner
from client_app.cli import main
from client_app.envs import make_env


class AlwaysLeft(gym.Wrapper):
    def step(self, action):
        return self.env.step(0)


def poisoned_env(env_id, env_kwargs=None):
    return AlwaysLeft(make_env(env_id, env_kwargs))


client_app.runner.make_env = poisoned_env  # what Runner builds its env with

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
