"""Every message of the protocol as a typed value, each with ONE definition of its wire form.

The relay builds these and sends ``pack(message.to_wire())``; the client reads a server message with
``<Type>.from_wire(unpack(frame))`` (and the other way round for ``hello``). The wire form is a
msgpack map whose keys and key order are those of docs/protocol.md: change them only with the
protocol version.

Chunks and evaluation results are validated on the way in against the campaign's spaces, so their
readers live in ``client_app.protocol.validation`` (``decode_chunk``, ``decode_eval``); here they
only say how they are written. Readers of server messages are lenient where the client always was
(a missing ``wait_ms`` is 0, an unknown ``id`` is None) and raise KeyError, TypeError, ValueError or
ProtocolError for a message the client cannot use.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from client_app.protocol.codes import (
    ACK,
    CHUNK,
    ERROR,
    EVAL,
    HELLO,
    MAX_WAIT_MS,
    MODEL,
    R_SCHEMA,
    REJECT,
    RELEASE,
    STATUS,
    WELCOME,
    ProtocolError,
)
from client_app.protocol.versions import PROTOCOL_VERSION

log = logging.getLogger(__name__)

CLIENT_VERSION_CHARS = 32  # the portal keeps this many characters of a client's version


def _optional_id(message: dict[str, Any]) -> str | None:
    value = message.get("id")
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------------------------------------
# Client -> server


@dataclass(frozen=True)
class Hello:
    """The client's first message: which protocol and client version it speaks."""

    client_version: str
    machine: str
    env_id: str | None = None
    protocol: Any = PROTOCOL_VERSION  # whatever the client sent: the relay answers a wrong one readably

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": HELLO,
            "protocol": self.protocol,
            "client_version": self.client_version,
            "machine": self.machine,
            "env_id": self.env_id,
        }

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> Hello:
        env_id = message.get("env_id")
        return cls(
            client_version=str(message.get("client_version") or "unknown")[:CLIENT_VERSION_CHARS],
            machine=str(message.get("machine") or ""),
            env_id=env_id if isinstance(env_id, str) else None,
            protocol=message.get("protocol"),
        )


def hello(*, client_version: str, machine: str, env_id: str | None = None) -> dict[str, Any]:
    """The hello message's wire map (``Hello(...).to_wire()``)."""
    return Hello(client_version=client_version, machine=machine, env_id=env_id).to_wire()


@dataclass
class Chunk:
    """T consecutive steps of one episode, as a sequence: ``obs`` holds T+1 observations.

    A chunk never spans two episodes: it ends at the latest when its episode does, so ``obs[T]`` is
    the observation after the last step (the final one when the episode ended), and next observations
    are never sent twice. ``episode_return`` and ``episode_length`` are set on an episode's last chunk.
    Read from the wire by ``validation.decode_chunk`` (a client's) or ``decode_stored_chunk`` (the
    stream's, already validated).
    """

    id: str
    model_version: int
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool = False
    truncated: bool = False
    episode_return: float | None = None
    episode_length: int | None = None
    masks: np.ndarray | None = None  # optional bool (T+1, n): the actions allowed at each observation
    # optional float32 (T,): log-probability of each action under the policy that chose it (PPO's
    # behaviour policy; epsilon-greedy Q-policies send none)
    logp: np.ndarray | None = None
    # optional, on an episode's last chunk of a boss fight: {"win": bool, "boss_hp": f, "player_hp": f}
    outcome: dict[str, Any] | None = None
    # unix seconds when the client made it (by default: when this value is built). The relay
    # requires it and refuses (``expired``) a chunk older than its de-duplication window, so a resend
    # after the window is never counted twice. None only for one read back without it.
    made: int | None = field(default_factory=lambda: int(time.time()))
    # A guided campaign's: the client's guide (the scripted player), not its model, played this
    # episode (the learner checks each step against the guide before it teaches the margin loss).
    guided: bool = False

    @property
    def steps(self) -> int:
        return int(self.actions.shape[0])

    @property
    def episode_done(self) -> bool:
        return self.terminated or self.truncated

    def to_wire(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": CHUNK,
            "id": self.id,
            "model_version": int(self.model_version),
            "obs": self.obs,
            "actions": self.actions,
            "rewards": self.rewards,
            "terminated": bool(self.terminated),
            "truncated": bool(self.truncated),
            "episode": None,
        }
        if self.episode_done:
            message["episode"] = {"return": float(self.episode_return), "length": int(self.episode_length)}
            if self.outcome is not None:
                message["episode"]["outcome"] = dict(self.outcome)
        if self.masks is not None:
            message["masks"] = self.masks
        if self.logp is not None:
            message["logp"] = np.asarray(self.logp, dtype=np.float32)
        if self.made is not None:
            message["made"] = int(self.made)
        if self.guided:
            message["guided"] = True
        return message

    to_message = to_wire  # the name callers used before every message had a to_wire


@dataclass
class EvalResult:
    """One greedy evaluation episode, played with model ``model_version`` because the server asked.

    Read from the wire by ``validation.decode_eval``.
    """

    id: str
    model_version: int
    episode_return: float
    episode_length: int
    outcome: dict[str, Any] | None = None
    made: int | None = field(default_factory=lambda: int(time.time()))  # as a Chunk's
    # optional float32 (length, columns): the episode step by step, for its replay
    # (``client_app.protocol.trace``: FIGHT_FIELDS in a boss fight, STEP_FIELDS elsewhere)
    trace: np.ndarray | None = None

    def to_wire(self) -> dict[str, Any]:
        message = {
            "type": EVAL,
            "id": self.id,
            "model_version": int(self.model_version),
            "return": float(self.episode_return),
            "length": int(self.episode_length),
            "outcome": dict(self.outcome) if self.outcome is not None else None,
        }
        if self.made is not None:
            message["made"] = int(self.made)
        if self.trace is not None:
            message["trace"] = np.asarray(self.trace, dtype=np.float32)
        return message

    to_message = to_wire


# ---------------------------------------------------------------------------------------------------
# Server -> client


@dataclass(frozen=True)
class ModelNotice:
    """A published model version: ``url`` is a path on the server (or an absolute URL).

    On the wire as a ``model`` message (``to_wire``) and, without its ``type``, as the welcome's
    ``model`` and an ack's ``evaluate`` field (``to_map``).
    """

    version: int
    url: str
    sha256: str

    def to_map(self) -> dict[str, Any]:
        return {"version": int(self.version), "url": self.url, "sha256": self.sha256}

    def to_wire(self) -> dict[str, Any]:
        return {"type": MODEL, **self.to_map()}

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> ModelNotice:
        return cls(
            version=int(message["version"]), url=str(message["url"]), sha256=str(message["sha256"]).lower()
        )

    from_message = from_wire  # the name callers used before


@dataclass(frozen=True)
class Welcome:
    """The server's answer to hello: which campaign this token plays and how.

    ``campaign`` holds slug, name, env_id, env_kwargs, algorithm, status and url; ``model`` is the
    current model notice's map ({version, url, sha256}) or None before the first; ``machine`` is
    {name, prefix} of the token.
    """

    campaign: dict[str, Any]
    observation_space: dict[str, Any]
    action_space: dict[str, Any]
    chunk_steps: int
    model: dict[str, Any] | None
    machine: dict[str, Any]
    protocol: int = PROTOCOL_VERSION

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": WELCOME,
            "protocol": self.protocol,
            "campaign": self.campaign,
            "spaces": {"observation": self.observation_space, "action": self.action_space},
            "chunk_steps": self.chunk_steps,
            "model": self.model,
            "machine": self.machine,
        }

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> Welcome:
        protocol = message.get("protocol")
        try:
            return cls(
                campaign=dict(message["campaign"]),
                observation_space=dict(message["spaces"]["observation"]),
                action_space=dict(message["spaces"]["action"]),
                chunk_steps=int(message["chunk_steps"]),
                model=message.get("model"),
                machine=dict(message.get("machine") or {}),
                protocol=protocol if isinstance(protocol, int) else PROTOCOL_VERSION,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(R_SCHEMA, f"the server's welcome lacks {exc}") from None

    from_message = from_wire  # the name callers used before

    @property
    def model_notice(self) -> ModelNotice | None:
        """The welcome's model as a notice, or None before the first."""
        return ModelNotice.from_wire(self.model) if self.model else None


@dataclass(frozen=True)
class Ack:
    """A chunk or evaluation result is stored (or was already: ``duplicate``).

    ``wait_ms`` is back-pressure: hold off that long before producing more. ``evaluate``, on the ack
    of a chunk that ended an episode, asks this client for one greedy episode of that model.
    """

    id: str | None
    duplicate: bool = False
    model_version: int = 0  # the campaign's current model version (0 in an evaluation's ack)
    wait_ms: int = 0
    evaluate: ModelNotice | None = None

    def to_wire(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": ACK,
            "id": self.id,
            "duplicate": self.duplicate,
            "model_version": self.model_version,
            "wait_ms": self.wait_ms,
        }
        if self.evaluate is not None:
            message["evaluate"] = self.evaluate.to_map()
        return message

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> Ack:
        evaluate = message.get("evaluate")
        notice = None
        if isinstance(evaluate, dict):
            try:
                notice = ModelNotice.from_wire(evaluate)
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring a malformed evaluation request: %r", evaluate)
        return cls(
            id=_optional_id(message),
            duplicate=bool(message.get("duplicate")),
            model_version=int(message.get("model_version") or 0),
            wait_ms=_wait_ms(message),
            evaluate=notice,
        )


def _wait_ms(message: dict[str, Any]) -> int:
    """An answer's ``wait_ms`` (missing: 0), within [0, MAX_WAIT_MS]."""
    return min(MAX_WAIT_MS, max(0, int(message.get("wait_ms") or 0)))


@dataclass(frozen=True)
class Reject:
    """A chunk (or evaluation result) was refused; the connection stays usable.

    With a code in ``RETRY_LATER_CODES`` the client keeps it and sends it again later (after
    ``wait_ms``); with any other code it is refused for good.
    """

    id: str | None
    code: str
    message: str
    wait_ms: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {"type": REJECT, "id": self.id, "code": self.code, "message": self.message, "wait_ms": self.wait_ms}

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> Reject:
        text = message.get("message")
        return cls(
            id=_optional_id(message),
            code=str(message.get("code")),
            message="" if text is None else str(text),
            wait_ms=_wait_ms(message),
        )


@dataclass(frozen=True)
class Status:
    """The campaign's status changed: running, paused or stopped (the relay closes after stopped)."""

    status: str
    message: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"type": STATUS, "status": self.status, "message": self.message}

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> Status:
        return cls(status=str(message.get("status")), message=str(message.get("message") or ""))


@dataclass(frozen=True)
class Error:
    """Fatal (the server closes the connection after it), except ``server_error``: then reconnect."""

    code: str
    message: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": ERROR, "code": self.code, "message": self.message}

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> Error:
        return cls(code=str(message.get("code")), message=str(message.get("message") or ""))


@dataclass(frozen=True)
class ReleaseNotice:
    """The server offers client ``version``, newer than the one this client said in its hello.

    Only a hint: the client reads what to install from ``/download/release.json`` and installs it only
    if the release key signed it (client_app.updater), so a forged notice costs one download at most.
    """

    version: str

    def to_wire(self) -> dict[str, Any]:
        return {"type": RELEASE, "version": self.version}

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> ReleaseNotice:
        return cls(version=str(message["version"])[:CLIENT_VERSION_CHARS])


ServerMessage = Welcome | Ack | Reject | ModelNotice | Status | Error | ReleaseNotice

# The reader of each message type the server sends.
SERVER_MESSAGES: dict[str, type[ServerMessage]] = {
    WELCOME: Welcome,
    ACK: Ack,
    REJECT: Reject,
    MODEL: ModelNotice,
    STATUS: Status,
    ERROR: Error,
    RELEASE: ReleaseNotice,
}
