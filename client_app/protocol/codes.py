"""The protocol's names: message types, reason codes (in ``reject`` and ``error``) and close codes."""

from __future__ import annotations

# Message types: the ``type`` key of every message (docs/protocol.md, "Messages").
HELLO = "hello"  # client -> server, first message
WELCOME = "welcome"  # server -> client, answer to hello
CHUNK = "chunk"  # client -> server
EVAL = "eval"  # client -> server: the result of a greedy evaluation episode the server asked for
ACK = "ack"  # server -> client: the chunk is stored (or was already)
REJECT = "reject"  # server -> client: the chunk was refused, the connection stays usable
MODEL = "model"  # server -> client: a new model version is published
STATUS = "status"  # server -> client: the campaign was paused, resumed or stopped
ERROR = "error"  # server -> client: fatal, the server closes the connection after it
# server -> client: the server offers a newer signed client (older clients skip it: their receive loop
# ignores types it does not know)
RELEASE = "release"

# Websocket close codes (4000-4999 are free for applications).
CLOSE_PROTOCOL = 4400  # malformed handshake or unknown message
CLOSE_AUTH = 4401  # missing, unknown or revoked token
CLOSE_CLOSED = 4403  # the campaign does not take experience (stopped or not launched)
CLOSE_UPGRADE = 4426  # protocol version not supported: the client must be upgraded
CLOSE_SERVER_ERROR = 1011  # the server failed unexpectedly: not fatal, the client reconnects
# Too many live connections from this address or with this token (the close's reason says which):
# not fatal, the client reconnects with its back-off; sent as a bare close, so clients that predate it
# retry too.
CLOSE_TOO_MANY = 4429
# The server cannot reach its store (Redis, the database) for a moment (RFC 6455's "try again later"):
# not fatal, the client reconnects with its back-off and resends what was not acknowledged.
CLOSE_TRY_AGAIN = 1013

# Reason codes, in REJECT and ERROR messages.
R_MALFORMED = "malformed"
R_SCHEMA = "schema"
R_SHAPE = "shape"
R_DTYPE = "dtype"
R_NOT_FINITE = "not_finite"
R_OUT_OF_RANGE = "out_of_range"
R_MASKED = "masked"  # an action that the chunk's own action mask forbids
R_TOO_LARGE = "too_large"
R_MODEL_VERSION = "model_version"
R_NOT_RUNNING = "not_running"
R_RATE_LIMITED = "rate_limited"  # too many chunks per second from this token: keep it, resend after wait_ms
R_AUTH = "auth_failed"
R_UPGRADE = "upgrade_required"
R_CLOSED = "campaign_closed"
R_SERVER = "server_error"
# An evaluation result for an episode the server did not hand to this machine (or one more than it
# handed): dropped for good, counted nowhere.
R_NOT_REQUESTED = "not_requested"
# A chunk or result made longer ago than the relay remembers ids (its ``made`` time): it may have been
# stored before, so it is dropped for good and counted nowhere, never counted twice.
R_EXPIRED = "expired"
# Fatal (in an ERROR, then the connection closes): the connection kept sending frames that could not be
# read or came faster than its limit. The client reconnects later.
R_ABUSE = "too_many_bad_frames"

# Rejections after which the client keeps the chunk and sends it again later: nothing is wrong with
# the chunk itself. Every other reject code refuses the chunk for good.
RETRY_LATER_CODES = frozenset({R_NOT_RUNNING, R_RATE_LIMITED})

# The longest hold-off a client takes from one ack or refusal. The relay asks for at most a few
# seconds (a full queue, a rate window, a flagged machine); a larger wait_ms comes from a broken or
# hostile server and must not park a volunteer's client for days.
MAX_WAIT_MS = 60_000


class ProtocolError(ValueError):
    """A message that breaks the protocol; ``code`` is one of the reason codes above."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
