"""Space specs: what the server stores for a campaign and sends in the handshake."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np

from client_app import protocol as P
from client_app.spaces import normalize_spec, space_to_spec, spec_bounds


def test_cartpole_spec_marks_unbounded_sides_as_null():
    spec = space_to_spec(gym.make("CartPole-v1").observation_space)
    # Velocities are bounded by float32's largest value, which gymnasium means as "unbounded".
    assert spec["high"][1] is None and spec["high"][3] is None
    assert spec["high"][0] == np.float32(4.8) and isinstance(spec["high"][0], float)
    low, high = spec_bounds(spec)
    assert np.isinf(high[1]) and np.isinf(low[3])


def test_a_spec_that_came_back_from_a_database_with_integers_is_packable_again():
    # PostgreSQL's jsonb gives back 1e20 as the integer 100000000000000000000, beyond msgpack's ints.
    stored = json.loads('{"type": "box", "shape": [2], "dtype": "float32", '
                        '"low": [-100000000000000000000, 0], "high": [100000000000000000000, null]}')
    assert isinstance(stored["high"][0], int)
    spec = normalize_spec(stored)
    assert spec["high"] == [1e20, None] and spec["low"] == [-1e20, 0.0]
    assert all(isinstance(v, float) for v in spec["low"])
    assert P.unpack(P.pack({"type": "welcome", "spaces": {"observation": spec}}))["spaces"]["observation"] == spec


def test_discrete_specs_pass_through_unchanged():
    spec = space_to_spec(gym.spaces.Discrete(20, start=-1))
    assert spec == {"type": "discrete", "n": 20, "start": -1}
    assert normalize_spec(spec) == spec
