"""The SoulsAI wire protocol between a volunteer client and the relay (see docs/protocol.md).

Every websocket message is one binary frame holding a msgpack map with a ``type`` key. This package
is the single definition of the protocol: the client imports it to speak, the relay to listen.

- ``codes``: message types, reason codes, close codes and ``ProtocolError``;
- ``versions``: the protocol version and how client versions compare;
- ``framing``: ``pack``/``unpack`` of one frame, arrays on the wire, size caps;
- ``messages``: every message as a typed value with its ``to_wire()``/``from_wire()``;
- ``bounds``: what each environment's episodes can be (length, reward per step, boss fights);
- ``validation``: what a client's chunk or evaluation result must be (``ChunkSchema``,
  ``decode_chunk``, ``decode_eval``) and reading back a stored chunk;
- ``trace``: an evaluation episode's step-by-step trace for its replay (``FIGHT_FIELDS``,
  ``decode_trace``).

``from client_app import protocol as P`` gives all of them as ``P.<name>``.
"""

from client_app.protocol.bounds import ENV_BOUNDS, EnvBounds, bounds_for
from client_app.protocol.codes import (
    ACK,
    CHUNK,
    CLOSE_AUTH,
    CLOSE_CLOSED,
    CLOSE_PROTOCOL,
    CLOSE_SERVER_ERROR,
    CLOSE_UPGRADE,
    ERROR,
    EVAL,
    HELLO,
    MODEL,
    R_ABUSE,
    R_AUTH,
    R_CLOSED,
    R_DTYPE,
    R_EXPIRED,
    R_MALFORMED,
    R_MASKED,
    R_MODEL_VERSION,
    R_NOT_FINITE,
    R_NOT_REQUESTED,
    R_NOT_RUNNING,
    R_OUT_OF_RANGE,
    R_RATE_LIMITED,
    R_SCHEMA,
    R_SERVER,
    R_SHAPE,
    R_TOO_LARGE,
    R_UPGRADE,
    REJECT,
    RELEASE,
    RETRY_LATER_CODES,
    STATUS,
    WELCOME,
    ProtocolError,
)
from client_app.protocol.framing import ALLOWED_DTYPES, MAX_FRAME_BYTES, decode_array, pack, unpack
from client_app.protocol.messages import (
    SERVER_MESSAGES,
    Ack,
    Chunk,
    Error,
    EvalResult,
    Hello,
    ModelNotice,
    Reject,
    ReleaseNotice,
    ServerMessage,
    Status,
    Welcome,
    hello,
)
from client_app.protocol.trace import FIGHT_FIELDS, MAX_TRACE_BYTES, STEP_FIELDS, decode_trace, fields_for
from client_app.protocol.validation import (
    CHUNK_ID,
    MAX_ABS_REWARD,
    MAX_AGE_S,
    MAX_AHEAD_S,
    MAX_CHUNK_STEPS,
    MIN_LOGP,
    ChunkSchema,
    decode_chunk,
    decode_eval,
    decode_outcome,
    decode_stored_chunk,
    obs_tolerance,
)
from client_app.protocol.versions import PROTOCOL_VERSION, parse_version, version_older

__all__ = [
    "ACK", "ALLOWED_DTYPES", "FIGHT_FIELDS", "MAX_TRACE_BYTES", "STEP_FIELDS", "decode_trace", "fields_for",
    "Ack", "CHUNK", "CHUNK_ID", "CLOSE_AUTH", "CLOSE_CLOSED", "CLOSE_PROTOCOL",
    "CLOSE_SERVER_ERROR", "CLOSE_UPGRADE", "Chunk", "ChunkSchema", "ENV_BOUNDS", "ERROR", "EVAL",
    "EnvBounds", "Error", "EvalResult", "HELLO", "Hello", "MAX_ABS_REWARD", "MAX_AGE_S", "MAX_AHEAD_S",
    "MAX_CHUNK_STEPS", "MAX_FRAME_BYTES", "MIN_LOGP", "MODEL", "ModelNotice", "PROTOCOL_VERSION",
    "ProtocolError", "REJECT", "RELEASE", "RETRY_LATER_CODES", "ReleaseNotice", "R_ABUSE", "R_AUTH", "R_CLOSED", "R_DTYPE", "R_EXPIRED",
    "R_MALFORMED", "R_MASKED", "R_MODEL_VERSION", "R_NOT_FINITE", "R_NOT_REQUESTED", "R_NOT_RUNNING",
    "R_OUT_OF_RANGE", "R_RATE_LIMITED", "R_SCHEMA", "R_SERVER", "R_SHAPE", "R_TOO_LARGE", "R_UPGRADE",
    "Reject", "SERVER_MESSAGES", "STATUS", "ServerMessage", "Status", "WELCOME", "Welcome", "bounds_for",
    "decode_array", "decode_chunk", "decode_eval", "decode_outcome", "decode_stored_chunk", "hello",
    "obs_tolerance", "pack", "parse_version", "unpack", "version_older",
]
