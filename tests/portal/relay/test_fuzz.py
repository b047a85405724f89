"""Hostile input against the relay's edge: decoding and validation (client_app.protocol) fuzzed.

Whatever a remote party sends, ``unpack`` and ``decode_chunk`` either raise ProtocolError (which the
relay turns into a reject with a reason code) or return a Chunk that satisfies every invariant the
learner relies on. No other exception type may escape: it would close the connection with 1011.
"""

from __future__ import annotations

import math

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client_app import protocol as P

# SoulsGym-like spaces: bounded and half-bounded dims, and a Discrete that starts at -1.
OBS_SPACE = {
    "type": "box",
    "shape": [3],
    "dtype": "float32",
    "low": [0.0, -1.0, None],
    "high": [10.0, 1.0, None],
}
ACT_SPACE = {"type": "discrete", "n": 4, "start": -1}
MAX_STEPS = 16
SCHEMA = P.ChunkSchema.from_spaces(observation_space=OBS_SPACE, action_space=ACT_SPACE, max_steps=MAX_STEPS)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid_message(steps: int = 5, *, done: bool = False, masks: bool = False) -> dict:
    obs = np.zeros((steps + 1, 3), np.float32)
    obs[:, 0] = 5.0
    message = P.Chunk(
        id="fuzz-0",
        model_version=0,
        obs=obs,
        actions=np.zeros(steps, np.int64),
        rewards=np.full(steps, 0.5, np.float32),
        terminated=done,
        episode_return=0.5 * steps if done else None,
        episode_length=steps if done else None,
        masks=np.ones((steps + 1, 4), bool) if masks else None,
    ).to_message()
    return message


def decode(frame: bytes) -> P.Chunk | None:
    """What the relay does with a frame: None when refused with a ProtocolError."""
    try:
        message = P.unpack(frame, client=True)  # the relay's limits on a client's frame
        assert isinstance(message, dict) and isinstance(message["type"], str)
        return P.decode_chunk(message, schema=SCHEMA)
    except P.ProtocolError as exc:
        assert exc.code and exc.message
        return None


def assert_invariants(chunk: P.Chunk) -> None:
    """Everything the learner may assume of a chunk that passed validation."""
    steps = chunk.steps
    assert 1 <= steps <= MAX_STEPS
    assert P.CHUNK_ID.match(chunk.id)
    assert 0 <= chunk.model_version < 2**53
    assert chunk.actions.shape == (steps,) and chunk.actions.dtype.kind in "iu"
    assert ((chunk.actions >= -1) & (chunk.actions <= 2)).all()
    assert chunk.rewards.shape == (steps,) and chunk.rewards.dtype.kind == "f"
    assert np.isfinite(chunk.rewards).all() and (np.abs(chunk.rewards) <= P.MAX_ABS_REWARD).all()
    assert chunk.obs.shape == (steps + 1, 3) and chunk.obs.dtype == np.float32
    assert np.isfinite(chunk.obs).all()
    assert (chunk.obs[:, 0] >= -1.0).all() and (chunk.obs[:, 0] <= 11.0).all()  # Box(0, 10), slack 1
    assert (chunk.obs[:, 1] >= -2.0).all() and (chunk.obs[:, 1] <= 2.0).all()  # Box(-1, 1), slack 1
    if chunk.masks is not None:
        assert chunk.masks.shape == (steps + 1, 4) and chunk.masks.dtype == np.bool_
        assert chunk.masks.any(axis=1).all()
        assert chunk.masks[np.arange(steps), chunk.actions.astype(np.int64) + 1].all()
    if chunk.episode_done:
        assert math.isfinite(chunk.episode_return) and chunk.episode_length >= steps
    else:
        assert chunk.episode_return is None and chunk.episode_length is None


def check(frame: bytes) -> None:
    chunk = decode(frame)
    if chunk is not None:
        assert_invariants(chunk)


# -- strategies ----------------------------------------------------------------------------------

DTYPES = ["|b1", "|i1", "|u1", "<i2", "<i4", "<i8", "<u2", "<u4", "<f4", "<f8", "|O", ">f4", "<f2", "xx", 7]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=64)
)
shapes = st.lists(
    st.integers(min_value=-3, max_value=2**40) | st.sampled_from([0, 1, 3, 4, 5, 6]), max_size=6
)
huge_or_odd_shape = shapes | st.just("not a list") | st.lists(st.floats(), max_size=3)


@st.composite
def wire_arrays(draw):
    """Array maps that lie: any dtype, any shape (huge ones too), data of any length."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(huge_or_odd_shape)
    if (
        draw(st.booleans())
        and isinstance(shape, list)
        and all(isinstance(d, int) and 0 <= d < 64 for d in shape)
    ):
        try:
            size = math.prod(shape) * np.dtype(dtype).itemsize
        except TypeError:
            size = 0
        data = draw(st.binary(min_size=size, max_size=size)) if size < 4096 else b""
    else:
        data = draw(st.binary(max_size=128))
    arr = {"dtype": dtype, "shape": shape, "data": data}
    if draw(st.integers(0, 9)) == 0:
        arr[draw(st.text(max_size=5))] = draw(scalars)
    return arr


values = st.recursive(
    scalars | wire_arrays(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
CHUNK_KEYS = [
    "type",
    "id",
    "model_version",
    "obs",
    "actions",
    "rewards",
    "terminated",
    "truncated",
    "episode",
    "masks",
]


# -- the tests -----------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes(frame):
    check(frame)


@FUZZ
@given(st.integers(min_value=0), st.booleans(), st.booleans())
def test_truncated_valid_frames(cut, done, masks):
    frame = P.pack(valid_message(done=done, masks=masks))
    check(frame[: cut % len(frame)])


@FUZZ
@given(st.dictionaries(st.sampled_from(CHUNK_KEYS) | st.text(max_size=10), values, max_size=12))
def test_random_maps_with_wrong_types(message):
    if "type" in message and not isinstance(message["type"], str):
        message.setdefault("x", 0)
    check(msgpack.packb(message, use_bin_type=True))


@FUZZ
@given(st.sampled_from(CHUNK_KEYS + ["episode.return", "episode.length", "unknown"]), values)
def test_one_field_of_a_valid_chunk_replaced_by_anything(key, value):
    message = valid_message(done=True, masks=True)
    if key.startswith("episode."):
        message["episode"][key.split(".")[1]] = value
    else:
        message[key] = value
    check(P.pack(message))


@FUZZ
@given(
    st.sampled_from(["obs", "rewards"]),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e7, -1e7, 11.5, -1.5, 1e30]),
    st.integers(0, 5),
    st.integers(0, 2),
)
def test_nan_infinity_and_out_of_bounds_numbers(field, bad, row, col):
    message = valid_message(steps=5)
    if field == "obs":
        message["obs"] = message["obs"].copy()
        message["obs"][row, col] = bad
    else:
        message["rewards"] = message["rewards"].copy()
        message["rewards"][row % 5] = bad
    chunk = decode(P.pack(message))
    if field == "obs":
        accepted_range = [(-1.0, 11.0), (-2.0, 2.0), (-math.inf, math.inf)][col]  # bounds + slack
        acceptable = math.isfinite(bad) and accepted_range[0] <= bad <= accepted_range[1]
    else:
        acceptable = math.isfinite(bad) and abs(bad) <= P.MAX_ABS_REWARD
    assert (chunk is not None) == acceptable
    if chunk is not None:
        assert_invariants(chunk)


@FUZZ
@given(
    st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=MAX_STEPS + 4),
    st.sampled_from(["<i8", "<i4", "<u4", "|u1", "<f4"]),
)
def test_out_of_range_actions_and_wrong_lengths(actions, dtype):
    message = valid_message(steps=5)
    try:
        message["actions"] = np.array(actions).astype(np.dtype(dtype))
    except OverflowError:
        return
    check(P.pack(message))


@FUZZ
@given(
    st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=6, max_size=6),
    st.lists(st.integers(-1, 2), min_size=5, max_size=5),
)
def test_action_masks(rows, actions):
    message = valid_message(steps=5)
    message["actions"] = np.array(actions, np.int64)
    message["masks"] = np.array(rows, bool)
    chunk = decode(P.pack(message))
    allowed = all(rows[t][a + 1] for t, a in enumerate(actions)) and all(any(r) for r in rows)
    assert (chunk is not None) == allowed
    if chunk is not None:
        assert_invariants(chunk)


@pytest.mark.parametrize(
    "mutate, code",
    [
        (lambda m: m.update(obs={"dtype": "<f4", "shape": [2**40, 2**40], "data": b""}), P.R_SHAPE),
        (lambda m: m.update(actions=np.zeros(MAX_STEPS + 1, np.int64)), P.R_TOO_LARGE),
        (lambda m: m.update(rewards=np.zeros(4, np.float32)), P.R_SHAPE),
        (lambda m: m.update(rewards=np.full(5, 2e6, np.float32)), P.R_OUT_OF_RANGE),
        (lambda m: m.update(masks=np.zeros((6, 4), bool)), P.R_MASKED),
        (lambda m: m.update(masks=np.ones((6, 3), bool)), P.R_SHAPE),
        (lambda m: m.update(masks=np.ones((6, 4), np.uint8)), P.R_DTYPE),
        (lambda m: m.update(type="launch-missiles"), P.R_SCHEMA),
    ],
)
def test_named_hostile_cases_get_their_reason_code(mutate, code):
    message = valid_message(steps=5)
    mutate(message)
    with pytest.raises(P.ProtocolError) as refused:
        P.decode_chunk(P.unpack(P.pack(message)), schema=SCHEMA)
    assert refused.value.code == code


def test_observations_slightly_past_a_declared_bound_are_accepted():
    # SoulsGym reports animation durations past their declared Box(0, 10): within the slack is fine.
    message = valid_message(steps=5)
    message["obs"] = message["obs"].copy()
    message["obs"][2, 0] = 10.9
    assert decode(P.pack(message)) is not None
    message["obs"][2, 0] = 11.1
    with pytest.raises(P.ProtocolError) as refused:
        P.decode_chunk(P.unpack(P.pack(message)), schema=SCHEMA)
    assert refused.value.code == P.R_OUT_OF_RANGE


def test_masks_survive_the_round_trip_to_the_learner():
    message = valid_message(steps=5, masks=True)
    stored = P.decode_stored_chunk(P.pack(message))
    np.testing.assert_array_equal(stored.masks, message["masks"])


@pytest.mark.parametrize(
    "version, minimum, older",
    [
        ("0.1.0", "0.1.0", False),
        ("0.1", "0.1.0", False),
        ("0.9.0", "0.10.0", True),
        ("1.0", "0.10.2", False),
        ("garbage", "0.1.0", True),
        ("0.2.0rc1", "0.2.0", False),
        ("", "0.0.1", True),
    ],
)
def test_versions_compare_as_numbers(version, minimum, older):
    assert P.version_older(version, minimum) is older
