"""The protocol's bounds on what a client may send: per-environment episode bounds, the decoding budget."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest

from client_app import protocol as P
from client_app.spaces import space_to_spec


def cartpole_schema() -> P.ChunkSchema:
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    return P.ChunkSchema.from_spaces(
        observation_space=space_to_spec(env.observation_space),
        action_space=space_to_spec(env.action_space),
        bounds=P.bounds_for("CartPole-v1"),
    )


def episode_chunk(steps: int = 4, *, ret: float | None = None, length: int | None = None) -> dict:
    """An episode's last chunk as the relay reads it off the wire."""
    chunk = P.Chunk(
        id="c-1",
        model_version=0,
        obs=np.zeros((steps + 1, 4), np.float32),
        actions=np.zeros(steps, np.int64),
        rewards=np.ones(steps, np.float32),
        terminated=True,
        episode_return=float(steps) if ret is None else ret,
        episode_length=steps if length is None else length,
    )
    return P.unpack(P.pack(chunk.to_wire()), client=True)


def test_every_supported_environment_has_bounds_and_kwargs_can_set_the_time_limit():
    assert P.bounds_for("CartPole-v1").max_length == 500
    assert P.bounds_for("soulsai/IudexArena-v0").boss_fight
    assert not P.bounds_for("LunarLander-v2").boss_fight
    assert P.bounds_for("CartPole-v1", {"max_episode_steps": 50}).max_length == 50
    assert P.bounds_for("Unknown-v0").return_possible(1e9, 1000)
    assert not P.bounds_for("Unknown-v0").return_possible(1e308, 2)
    assert P.bounds_for("CartPole-v1").return_range(10) == pytest.approx((10.0, 10.0), abs=0.02)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"ret": 1e308}, P.R_OUT_OF_RANGE),
        ({"ret": 5.0}, P.R_OUT_OF_RANGE),
        ({"length": 501, "ret": 501.0}, P.R_OUT_OF_RANGE),
    ],
)
def test_an_episode_the_steps_cannot_produce_is_refused(kwargs, code):
    with pytest.raises(P.ProtocolError) as refused:
        P.decode_chunk(episode_chunk(**kwargs), schema=cartpole_schema())
    assert refused.value.code == code
    assert P.decode_chunk(episode_chunk(), schema=cartpole_schema()).episode_return == 4.0


def test_made_times_too_old_or_in_the_future_are_refused():
    now = time.time()
    message = episode_chunk()
    assert P.decode_chunk({**message, "made": int(now) - 3600}, schema=cartpole_schema(), now=now).made
    for made, code in ((int(now - P.MAX_AGE_S - 60), P.R_EXPIRED), (int(now + P.MAX_AHEAD_S + 60), P.R_OUT_OF_RANGE)):
        with pytest.raises(P.ProtocolError) as refused:
            P.decode_chunk({**message, "made": made}, schema=cartpole_schema(), now=now)
        assert refused.value.code == code


def test_a_client_frame_holds_a_bounded_number_of_objects():
    frame = P.pack(episode_chunk())
    assert P.unpack(frame, client=True)["type"] == P.CHUNK
    inner: object = {}
    for _ in range(6):
        inner = [inner] * 8
    with pytest.raises(P.ProtocolError) as refused:
        P.unpack(msgpack.packb({"type": "chunk", "x": inner}), client=True)
    assert refused.value.code == P.R_MALFORMED and "maps and arrays" in refused.value.message
    # Server frames (a welcome lists the spaces' bounds) keep the looser limits.
    assert P.unpack(msgpack.packb({"type": "welcome", "low": [0.0] * 500}))["low"][499] == 0.0


def test_a_shape_whose_size_overflows_is_a_shape_error():
    with pytest.raises(P.ProtocolError) as refused:
        P.decode_array({"dtype": "<f4", "shape": [0, 8388608, 8388608, 8388608], "data": b""}, "obs")
    assert refused.value.code == P.R_SHAPE
