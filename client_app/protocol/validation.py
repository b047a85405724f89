"""What a client's chunk or evaluation result must be before the relay stores it.

``ChunkSchema.from_spaces`` works out once, from a campaign's space specs, what its chunks must look
like; whoever validates many chunks (the relay, per connection) builds one and keeps it.
``decode_chunk`` and ``decode_eval`` raise ProtocolError with a reason code and a readable message on
the first problem found, and nothing else. ``decode_stored_chunk`` reads back a chunk the relay
already validated (the learner, from the stream).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from client_app.protocol.bounds import DEFAULT, MAX_ABS_REWARD, EnvBounds
from client_app.protocol.codes import (
    CHUNK,
    R_DTYPE,
    R_EXPIRED,
    R_MASKED,
    R_MODEL_VERSION,
    R_NOT_FINITE,
    R_OUT_OF_RANGE,
    R_SCHEMA,
    R_SHAPE,
    R_TOO_LARGE,
    ProtocolError,
)
from client_app.protocol.framing import decode_array, unpack
from client_app.protocol.messages import Chunk, EvalResult
from client_app.protocol.trace import decode_trace
from client_app.spaces import SpaceSpec

MAX_CHUNK_STEPS = 1024
CHUNK_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")  # ids of chunks and evaluation results
# A chunk or result the client made more than MAX_AGE_S ago is refused (``expired``): the relay
# remembers ids for MAX_AGE_S + MAX_AHEAD_S and a bit (portal.relay.store.DEDUP_TTL_SECONDS), so one
# accepted twice would have to be made after its first store by more than the clock may be ahead.
MAX_AGE_S = 6 * 24 * 3600
MAX_AHEAD_S = 24 * 3600  # how far a client's clock may be ahead of the server's
MIN_LOGP = -1e4  # log-probabilities below this are no probability at all (a broken or hostile client)


def decode_outcome(value: Any, bounds: EnvBounds | None = None) -> dict[str, Any] | None:
    """A boss fight's outcome: {"win": bool, "boss_hp": [0, 1], "player_hp": [0, 1]} (HP as fractions).

    With ``bounds``, an outcome is refused unless the environment is a boss fight."""
    if value is None:
        return None
    if bounds is not None and not bounds.boss_fight:
        raise ProtocolError(
            R_SCHEMA, "'outcome' (won, HP left) is for boss fights only; this campaign's environment has no winner"
        )
    if not isinstance(value, dict) or not isinstance(value.get("win"), bool):
        raise ProtocolError(R_SCHEMA, "'outcome' must be a map with a boolean 'win'")
    outcome: dict[str, Any] = {"win": value["win"]}
    for key in ("boss_hp", "player_hp"):
        hp = value.get(key)
        if hp is None:
            continue
        if not isinstance(hp, (int, float)) or isinstance(hp, bool) or not 0.0 <= hp <= 1.0:
            raise ProtocolError(R_OUT_OF_RANGE, f"'outcome.{key}' must be a fraction in [0, 1]")
        outcome[key] = float(hp)
    return outcome


def decode_eval(
    message: dict[str, Any], *, bounds: EnvBounds = DEFAULT, now: float | None = None, action_n: int = 2**31
) -> EvalResult:
    """Validate an evaluation result message against what the environment's episodes can be
    (``bounds``; with ``now``, its ``made`` time too; its optional ``trace`` against ``action_n``
    actions too, ``client_app.protocol.trace``); raises ProtocolError with a reason code."""
    chunk_id = _message_id(message, "eval")
    model_version = _require(message, "model_version", int)
    if not 1 <= model_version < 2**53:
        raise ProtocolError(R_MODEL_VERSION, "an evaluation needs a published model_version (>= 1)")
    episode_return = _finite_number(message.get("return"), "return")
    length = _require(message, "length", int)
    if not 1 <= length < 2**31:
        raise ProtocolError(R_OUT_OF_RANGE, "'length' must be a positive number of steps")
    _check_episode(episode_return, length, bounds, "")
    outcome = decode_outcome(message.get("outcome"), bounds)
    made = decode_made(message, now)
    trace = None
    if message.get("trace") is not None:
        trace = decode_trace(
            message["trace"], bounds=bounds, action_n=action_n, length=length, episode_return=episode_return,
            outcome=outcome,
        )
    return EvalResult(
        id=chunk_id,
        model_version=model_version,
        episode_return=episode_return,
        episode_length=length,
        outcome=outcome,
        made=made,
        trace=trace,
    )


def _check_episode(episode_return: float, length: int, bounds: EnvBounds, prefix: str) -> None:
    """An episode's length and return must be ones the environment can produce."""
    if length > bounds.max_length:
        raise ProtocolError(
            R_OUT_OF_RANGE, f"'{prefix}length' {length} is longer than this environment's episodes ({bounds.max_length} steps)"
        )
    if not bounds.return_possible(episode_return, length):
        low, high = length * bounds.reward_low, length * bounds.reward_high
        raise ProtocolError(
            R_OUT_OF_RANGE,
            f"'{prefix}return' {episode_return:g} is not one {length} steps can produce in this environment "
            f"(between {low:g} and {high:g})",
        )


def decode_made(message: dict[str, Any], now: float | None) -> int | None:
    """The ``made`` time (unix seconds). With ``now`` (the relay's clock) it is required, and refused
    when too old or in the future: only clients before 0.2.0 sent none, and the relay asks those to
    upgrade at hello, so a chunk or result without it is not a current client's."""
    made = message.get("made")
    if made is None:
        if now is None:
            return None  # reading without the relay's clock (tests, tools): 'made' stays optional
        raise ProtocolError(
            R_SCHEMA,
            "'made' is missing: SoulsAI clients from 0.2.0 on stamp every chunk and result with the time "
            "they made it, and without it the server cannot tell whether it stored this one already "
            "(more than 6 days ago), so it is not taken. Install the current client.",
        )
    if not isinstance(made, int) or isinstance(made, bool) or not 0 <= made < 2**40:
        raise ProtocolError(R_SCHEMA, "'made' must be unix seconds (an integer)")
    if now is not None:
        if now - made > MAX_AGE_S:
            raise ProtocolError(
                R_EXPIRED,
                f"made {(now - made) / 86400:.1f} days ago, longer than the server remembers ids "
                f"({MAX_AGE_S // 86400} days): it may be stored already, so it is dropped and counted nowhere",
            )
        if made - now > MAX_AHEAD_S:
            raise ProtocolError(
                R_OUT_OF_RANGE, f"'made' lies {(made - now) / 3600:.0f} hours in the future: check this computer's clock"
            )
    return made


def _message_id(message: dict[str, Any], kind: str) -> str:
    """The client-made id of a chunk or an eval result (the relay de-duplicates by it)."""
    message_id = _require(message, "id", str)
    if not CHUNK_ID.match(message_id):
        raise ProtocolError(R_SCHEMA, f"{kind} 'id' must be 1-80 characters of letters, digits and _.:-")
    return message_id


def _finite_number(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ProtocolError(R_NOT_FINITE, f"'{name}' must be a finite number")
    return float(value)


def _require(message: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = message.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ProtocolError(R_SCHEMA, f"'{key}' must be {names}, got {type(value).__name__}")
    return value


def obs_tolerance(low: float, high: float) -> float:
    """How far past a declared finite bound an observation may go before it is out of range.

    Real games overshoot their declared spaces (SoulsGym declares animation durations as Box(0, 10)
    and reports longer ones), and a policy learns nothing wrong from a value slightly past a bound,
    while a value far outside is a broken or hostile client. So each finite side gets a slack of
    ``max(1.0, 10% of the range)``; with the other side unbounded, 10% of the bound's own size.
    """
    span = high - low if math.isfinite(low) and math.isfinite(high) else max(
        abs(v) for v in (low, high) if math.isfinite(v)
    )
    return max(1.0, 0.1 * span)


@dataclass(frozen=True)
class ChunkSchema:
    """What a chunk must look like for one campaign, worked out once from its space specs.

    The relay makes one per connection (``ChunkSchema.from_spaces``), so validating a chunk does
    no parsing of JSON specs.
    """

    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    obs_low: np.ndarray | None  # lowest accepted observations (bounds minus slack), (rows, *shape); None: unbounded
    obs_high: np.ndarray | None
    action_start: int
    action_n: int
    max_steps: int
    bounds: EnvBounds = DEFAULT  # what the environment's episodes can be (client_app.protocol.bounds)

    @classmethod
    def from_spaces(
        cls,
        *,
        observation_space: SpaceSpec,
        action_space: SpaceSpec,
        max_steps: int = MAX_CHUNK_STEPS,
        bounds: EnvBounds = DEFAULT,
    ) -> ChunkSchema:
        if observation_space.get("type") != "box":
            raise ProtocolError(R_SCHEMA, "only box observation spaces are supported")
        if action_space.get("type") != "discrete":
            raise ProtocolError(R_SCHEMA, "only discrete action spaces are supported")
        shape = tuple(int(d) for d in observation_space["shape"])
        dtype = np.dtype(observation_space["dtype"])
        max_steps = min(int(max_steps), MAX_CHUNK_STEPS)
        lows = [-math.inf if v is None else float(v) for v in observation_space["low"]]
        highs = [math.inf if v is None else float(v) for v in observation_space["high"]]
        low = high = None
        if any(math.isfinite(v) for v in lows + highs):
            slack = [
                obs_tolerance(lo, hi) if math.isfinite(lo) or math.isfinite(hi) else 0.0
                for lo, hi in zip(lows, highs, strict=True)
            ]
            # In the observations' own float dtype (a mixed comparison makes temporaries), and for
            # small observations tiled to a whole chunk: comparing equal shapes is ~2x faster than
            # broadcasting a short row. Rows: max_steps + 1, or 1 (broadcast) for large observations.
            bound_dtype = dtype if dtype.kind == "f" else np.float64
            rows = max_steps + 1 if math.prod(shape) * (max_steps + 1) <= 65536 else 1
            low = np.broadcast_to((np.array(lows) - slack).astype(bound_dtype).reshape(shape), (rows, *shape)).copy()
            high = np.broadcast_to((np.array(highs) + slack).astype(bound_dtype).reshape(shape), (rows, *shape)).copy()
        return cls(
            obs_shape=shape,
            obs_dtype=dtype,
            obs_low=low,
            obs_high=high,
            action_start=int(action_space.get("start", 0)),
            action_n=int(action_space["n"]),
            max_steps=max_steps,
            bounds=bounds,
        )


def decode_chunk(
    message: dict[str, Any],
    *,
    schema: ChunkSchema | None = None,
    observation_space: SpaceSpec | None = None,
    action_space: SpaceSpec | None = None,
    max_steps: int = MAX_CHUNK_STEPS,
    now: float | None = None,
) -> Chunk:
    """Validate a chunk message against the campaign's declared spaces and return it as a Chunk.

    Pass a ``schema`` made once from the spaces (``ChunkSchema.from_spaces``), or, to validate one
    chunk, the spaces themselves (they are then parsed for this call). ``now`` (unix seconds, the
    relay's clock) also checks the chunk's ``made`` time. Raises ProtocolError with a reason code and
    a readable message on the first problem found, and nothing else.
    """
    if schema is None:
        schema = ChunkSchema.from_spaces(
            observation_space=observation_space, action_space=action_space, max_steps=max_steps
        )
    if message.get("type") != CHUNK:
        raise ProtocolError(R_SCHEMA, f"expected a '{CHUNK}' message, got {message.get('type')!r}")
    chunk_id = _message_id(message, "chunk")
    model_version = _require(message, "model_version", int)
    if model_version < 0 or model_version >= 2**53:
        raise ProtocolError(R_MODEL_VERSION, "model_version must lie in [0, 2**53)")
    terminated = _require(message, "terminated", bool)
    truncated = _require(message, "truncated", bool)
    made = decode_made(message, now)

    actions = decode_array(message.get("actions"), "actions")
    rewards = decode_array(message.get("rewards"), "rewards")
    obs = decode_array(message.get("obs"), "obs")

    max_steps = schema.max_steps
    if actions.ndim != 1:
        raise ProtocolError(R_SHAPE, f"'actions' must be one-dimensional, got shape {list(actions.shape)}")
    steps = actions.shape[0]
    if not 1 <= steps <= max_steps:
        raise ProtocolError(R_TOO_LARGE if steps > max_steps else R_SHAPE,
                            f"a chunk holds 1 to {max_steps} steps, this one {steps}")
    if rewards.shape != (steps,):
        raise ProtocolError(R_SHAPE, f"'rewards' must have shape [{steps}], got {list(rewards.shape)}")

    if actions.dtype.kind not in "iu":
        raise ProtocolError(R_DTYPE, f"'actions' must be integers, got {actions.dtype.str}")
    low, n = schema.action_start, schema.action_n
    if actions.min() < low or actions.max() >= low + n:
        raise ProtocolError(R_OUT_OF_RANGE, f"actions must lie in [{low}, {low + n - 1}]")

    if rewards.dtype.kind != "f":
        raise ProtocolError(R_DTYPE, f"'rewards' must be floats, got {rewards.dtype.str}")
    # One pass for the common case: NaN fails the comparison, so only a failure needs a closer look.
    if not (np.abs(rewards) <= MAX_ABS_REWARD).all():
        if not np.isfinite(rewards).all():
            raise ProtocolError(R_NOT_FINITE, "'rewards' holds NaN or infinity")
        raise ProtocolError(R_OUT_OF_RANGE, f"'rewards' must lie within +-{MAX_ABS_REWARD:g}")
    bounds = schema.bounds
    if bounds is not DEFAULT:
        slack = 1e-6 * max(1.0, abs(bounds.reward_low), abs(bounds.reward_high))
        if not ((rewards >= bounds.reward_low - slack) & (rewards <= bounds.reward_high + slack)).all():
            raise ProtocolError(
                R_OUT_OF_RANGE,
                f"'rewards' must lie in [{bounds.reward_low:g}, {bounds.reward_high:g}]: "
                "what one step of this environment can pay",
            )

    expected = (steps + 1, *schema.obs_shape)
    if obs.shape != expected:
        raise ProtocolError(R_SHAPE, f"'obs' must have shape {list(expected)} (steps + 1), got {list(obs.shape)}")
    if obs.dtype != schema.obs_dtype:
        raise ProtocolError(R_DTYPE, f"'obs' must be {schema.obs_dtype.name}, got {obs.dtype.name}")
    if obs.dtype.kind == "f" and not np.isfinite(obs).all():
        raise ProtocolError(R_NOT_FINITE, "'obs' holds NaN or infinity")
    if schema.obs_low is not None and (
        (obs < schema.obs_low[: steps + 1]).any() or (obs > schema.obs_high[: steps + 1]).any()
    ):
        raise ProtocolError(
            R_OUT_OF_RANGE,
            "'obs' lies outside the observation space's bounds (beyond the tolerance of "
            "max(1, 10% of the range) per side)",
        )

    masks = _decode_masks(message.get("masks"), actions, steps, low, n)
    logp = _decode_logp(message.get("logp"), steps)
    guided = message.get("guided", False)
    if not isinstance(guided, bool):
        raise ProtocolError(R_SCHEMA, f"'guided' must be true or false, got {type(guided).__name__}")

    episode = message.get("episode")
    episode_return = episode_length = outcome = None
    if terminated or truncated:
        if not isinstance(episode, dict):
            raise ProtocolError(R_SCHEMA, "the last chunk of an episode must carry 'episode' {return, length}")
        episode_return = _finite_number(episode.get("return"), "episode.return")
        episode_length = episode.get("length")
        if not isinstance(episode_length, int) or isinstance(episode_length, bool) or not steps <= episode_length < 2**53:
            raise ProtocolError(R_SCHEMA, "'episode.length' must be an integer of at least the chunk's steps")
        _check_episode(episode_return, episode_length, schema.bounds, "episode.")
        outcome = decode_outcome(episode.get("outcome"), schema.bounds)
    elif episode is not None:
        raise ProtocolError(R_SCHEMA, "'episode' is only allowed on the chunk that ends an episode")

    return Chunk(
        id=chunk_id,
        model_version=model_version,
        obs=obs,
        actions=actions,
        rewards=rewards,
        terminated=terminated,
        truncated=truncated,
        episode_return=episode_return,
        episode_length=episode_length,
        masks=masks,
        logp=logp,
        outcome=outcome,
        made=made,
        guided=guided,
    )


def _decode_logp(value: Any, steps: int) -> np.ndarray | None:
    """The optional behaviour log-probabilities: float32 (T,), finite, in [MIN_LOGP, 0]."""
    if value is None:
        return None
    logp = decode_array(value, "logp")
    if logp.dtype != np.float32:
        raise ProtocolError(R_DTYPE, f"'logp' must be float32, got {logp.dtype.str}")
    if logp.shape != (steps,):
        raise ProtocolError(R_SHAPE, f"'logp' must have shape [{steps}], got {list(logp.shape)}")
    if not ((logp <= 0.0) & (logp >= MIN_LOGP)).all():
        if not np.isfinite(logp).all():
            raise ProtocolError(R_NOT_FINITE, "'logp' holds NaN or infinity")
        raise ProtocolError(R_OUT_OF_RANGE, f"'logp' must lie in [{MIN_LOGP:g}, 0]")
    return logp


def _decode_masks(value: Any, actions: np.ndarray, steps: int, low: int, n: int) -> np.ndarray | None:
    """The optional action masks: bool (T+1, n), no row all False, every action allowed at its step."""
    if value is None:
        return None
    masks = decode_array(value, "masks")
    if masks.dtype != np.bool_:
        raise ProtocolError(R_DTYPE, f"'masks' must be bool, got {masks.dtype.str}")
    if masks.shape != (steps + 1, n):
        raise ProtocolError(R_SHAPE, f"'masks' must have shape [{steps + 1}, {n}], got {list(masks.shape)}")
    if not masks.any(axis=1).all():
        raise ProtocolError(R_MASKED, "'masks' has a row that allows no action")
    # int64 first: uint64 actions minus a negative start would turn into floats.
    if not masks[np.arange(steps), actions.astype(np.int64) - low].all():
        raise ProtocolError(R_MASKED, "an action is not allowed by the chunk's action mask at its step")
    return masks


def decode_stored_chunk(frame: bytes) -> Chunk:
    """Decode a chunk the relay already validated (read back from the stream by the learner)."""
    message = unpack(frame)
    return Chunk(
        id=message["id"],
        model_version=message["model_version"],
        obs=decode_array(message["obs"], "obs"),
        actions=decode_array(message["actions"], "actions"),
        rewards=decode_array(message["rewards"], "rewards"),
        terminated=message["terminated"],
        truncated=message["truncated"],
        episode_return=(message.get("episode") or {}).get("return"),
        episode_length=(message.get("episode") or {}).get("length"),
        masks=decode_array(message["masks"], "masks") if message.get("masks") is not None else None,
        logp=decode_array(message["logp"], "logp") if message.get("logp") is not None else None,
        outcome=(message.get("episode") or {}).get("outcome"),
        made=message.get("made"),
        guided=bool(message.get("guided", False)),
    )
