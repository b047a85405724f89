"""The client's env loop: play the campaign's env with the current policy, chunk, spool, report.

The loop is the only thing on the main thread. The websocket session (``connection``) and model
downloads (``fetcher``) run in their own threads; the loop only reads their state between steps, so
a slow network or a large model never stalls the game.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from client_app.chunker import Chunker
from client_app.connection import Connection, Welcome, http_url
from client_app.envs import make_env
from client_app.fetcher import ModelFetcher
from client_app.policy import Policy, RandomPolicy, describe
from client_app.protocol import Chunk, pack
from client_app.spaces import SpaceSpec, action_count, flat_dim, space_to_spec, spec_bounds
from client_app.spool import Spool, default_spool_root, spool_key

log = logging.getLogger(__name__)

EXIT_OK = 0  # finished: --max-steps reached, Ctrl-C, or the campaign was stopped
EXIT_FAILED = 1  # an unexpected error (a bug: please report it)
EXIT_FATAL = 2  # this client cannot take part: refused token, closed campaign, old client, bad setup


class ClientError(Exception):
    """A problem the user can fix, reported as one readable line (exit code 2)."""


@dataclass
class RunConfig:
    """What ``soulsai-client run`` was asked to do (one field per command-line option)."""

    server_url: str  # the portal's address, http(s)://host[:port]
    token: str  # the machine token from the campaign's page
    machine: str  # this machine's name, shown to the server
    spool_dir: Path | None = None  # root of the spools; None: the user's cache directory
    max_steps: int | None = None  # stop after this many env steps
    max_sps: float = 0.0  # env steps per second at most; 0: as fast as the env goes
    seed: int | None = None  # seeds the env and the exploration
    progress_every: float = 5.0  # seconds between progress lines; 0: only at exit
    quiet: bool = False  # print errors only
    drain_timeout: float = 15.0  # at --max-steps, how long to wait for the server to ack the spool
    window: int = 16  # chunks in flight at most


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


class Runner:
    """One run of the client, from connecting to exiting; ``run()`` returns the exit code."""

    def __init__(self, config: RunConfig, *, out: TextIO | None = None, err: TextIO | None = None):
        self.config = config
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.fetcher = ModelFetcher(server_url=http_url(config.server_url), token=config.token)
        self.connection = Connection(
            server_url=config.server_url,
            token=config.token,
            machine=config.machine,
            window=config.window,
            on_model=self.fetcher.request,
        )
        self.env: Any = None
        self.spool: Spool | None = None
        self.chunker: Chunker | None = None
        self.policy: Policy | RandomPolicy | None = None
        self.steps = 0
        self.episodes = 0
        self.chunks = 0
        self.returns: deque[float] = deque(maxlen=10)
        self._last_report = (time.monotonic(), 0)

    # -- the whole run -----------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.connection.start()
            self.fetcher.start()
            welcome = self._wait_for_welcome()
            if welcome is None:
                return self._fatal_exit()
            self._setup(welcome)
            reason = self._play()
            return self._finish(reason)
        except ClientError as exc:
            print(f"error: {exc}", file=self.err, flush=True)
            return EXIT_FATAL
        except KeyboardInterrupt:
            return self._interrupted()
        finally:
            self.connection.stop()
            self.fetcher.stop()
            if self.spool is not None:
                self.spool.close()
            if self.env is not None:
                self.env.close()

    def _wait_for_welcome(self) -> Welcome | None:
        self.say(f"connecting to {self.connection.url} as {self.config.machine!r}")
        while True:
            welcome = self.connection.wait_for_welcome(0.5)
            if welcome is not None or self.connection.fatal is not None or not self.connection.alive:
                return welcome

    def _setup(self, welcome: Welcome) -> None:
        campaign = welcome.campaign
        env_id = campaign.get("env_id")
        try:
            self.env = make_env(env_id, campaign.get("env_kwargs") or {})
        except RuntimeError as exc:
            raise ClientError(str(exc)) from None
        check_env_spaces(self.env, welcome)
        obs_space, act_space = welcome.observation_space, welcome.action_space
        self.fetcher.check = lambda policy: policy_mismatch(policy, obs_space, act_space)
        prefix = welcome.machine.get("prefix") or hashlib.sha256(self.config.token.encode()).hexdigest()[:12]
        root = self.config.spool_dir or default_spool_root()
        self.spool = Spool(Path(root) / spool_key(str(campaign.get("slug") or "campaign"), str(prefix)))
        self.chunker = Chunker(chunk_steps=min(welcome.chunk_steps, 1024), observation_space=obs_space)
        self.policy = RandomPolicy(action_count(act_space))
        left = len(self.spool)
        self.say(
            f"campaign {campaign.get('name')!r} ({env_id}, {campaign.get('algorithm')}), "
            f"chunks of {self.chunker.chunk_steps} steps; spool {self.spool.directory}"
            + (f" holds {left} chunks from an earlier run: resending them" if left else "")
        )
        self.connection.attach_spool(self.spool)

    # -- the env loop ------------------------------------------------------------------------------

    def _play(self) -> str:
        """Step the env until something ends the run; returns why: max_steps, stopped or fatal."""
        config, connection, chunker = self.config, self.connection, self.chunker
        rng = np.random.default_rng(config.seed)
        action_start = int(self.connection.welcome.action_space.get("start", 0))
        obs, _ = self.env.reset(seed=config.seed)
        chunker.start_episode(obs)
        pace_t0, pace_steps = time.monotonic(), 0
        next_report = time.monotonic() + config.progress_every
        while True:
            if config.max_steps is not None and self.steps >= config.max_steps:
                return "max_steps"
            now = time.monotonic()
            if config.progress_every and now >= next_report:
                self.report()
                next_report = now + config.progress_every
            if connection.fatal is not None:
                return "fatal"
            status = connection.campaign_status
            if status == "stopped":
                return "stopped"
            hold = connection.hold_remaining()
            if status != "running" or hold > 0:
                # Paused by the admins, or back-pressure from the server: keep the episode, wait.
                time.sleep(min(hold, 0.5) if status == "running" else 0.2)
                pace_t0, pace_steps = time.monotonic(), self.steps
                continue
            new_policy = self.fetcher.take()
            if new_policy is not None:
                self._store(chunker.flush())  # a chunk never mixes two model versions
                if self.policy.version == 0:
                    # Later swaps come every second or so: the progress line shows them.
                    self.say(f"first model arrived: now playing model v{new_policy.version}")
                self.policy = new_policy

            action = self.policy.act(obs, rng) + action_start
            obs, reward, terminated, truncated, _ = self.env.step(action)
            self.steps += 1
            chunk = chunker.step(
                action, reward, obs, terminated, truncated, model_version=self.policy.version
            )
            if chunk is not None:
                self._store(chunk)
            if terminated or truncated:
                self.episodes += 1
                self.returns.append(float(chunk.episode_return))
                obs, _ = self.env.reset()
                chunker.start_episode(obs)
            if config.max_sps > 0:
                ahead = pace_t0 + (self.steps - pace_steps) / config.max_sps - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    def _store(self, chunk: Chunk | None, *, wait: bool = True) -> bool:
        """Put a finished chunk in the spool; waits while the spool is full (the server is away)."""
        if chunk is None:
            return True
        frame = pack(chunk.to_message())
        next_report = time.monotonic() + (self.config.progress_every or 5.0)
        while not self.spool.add(chunk.id, frame, timeout=0.5 if wait else 0):
            if not wait or self.connection.fatal is not None or self.connection.campaign_status == "stopped":
                return False
            if time.monotonic() >= next_report:
                self.report(note="spool full, waiting for the server")
                next_report = time.monotonic() + (self.config.progress_every or 5.0)
        self.chunks += 1
        self.connection.wake()
        return True

    # -- endings -----------------------------------------------------------------------------------

    def _finish(self, reason: str) -> int:
        if reason == "fatal":
            return self._fatal_exit()
        if reason == "stopped":
            self.report()
            self.say("the campaign was stopped: thank you for contributing! Exiting.")
            return EXIT_OK
        # --max-steps: hand over the last partial chunk and give the server a moment to take the spool.
        self._store(self.chunker.flush(), wait=False)
        deadline = time.monotonic() + self.config.drain_timeout
        while len(self.spool) and time.monotonic() < deadline and self.connection.fatal is None:
            if self.connection.campaign_status == "stopped" or not self.connection.alive:
                break
            time.sleep(0.05)
        if self.connection.fatal is not None:
            return self._fatal_exit()
        self.report()
        left = len(self.spool)
        self.say(
            f"done: {self.steps} steps"
            + (
                f"; {left} chunks not acked yet stay in {self.spool.directory} for the next run"
                if left
                else ""
            )
        )
        return EXIT_OK

    def _fatal_exit(self) -> int:
        fatal = self.connection.fatal
        message = (
            fatal.message if fatal else (self.connection.snapshot().last_error or "the connection ended")
        )
        print(f"error: {message}", file=self.err, flush=True)
        return EXIT_FATAL

    def _interrupted(self) -> int:
        if self.chunker is not None and self.spool is not None:
            try:
                self._store(self.chunker.flush(), wait=False)
            except RuntimeError:
                pass
            self.report()
            left = len(self.spool)
            self.say(
                "interrupted"
                + (f": {left} chunks kept in {self.spool.directory} for the next run" if left else "")
            )
        else:
            self.say("interrupted")
        return EXIT_OK

    # -- output ------------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        if not self.config.quiet:
            print(f"{time.strftime('%H:%M:%S')} {text}", file=self.out, flush=True)

    def progress_line(self, note: str | None = None) -> str:
        """One line: connection, model, steps (and steps/s), episodes, recent return, spool."""
        state = self.connection.snapshot()
        now = time.monotonic()
        t0, steps0 = self._last_report
        sps = (self.steps - steps0) / (now - t0) if now > t0 else 0.0
        self._last_report = (now, self.steps)
        conn = state.state if state.campaign_status == "running" else state.campaign_status
        if state.hold_s > 0 and conn == "connected":
            conn = "server busy"
        model = describe(self.policy) if self.policy is not None else "none"
        if self.policy is not None and state.server_model_version > self.policy.version:
            model += f" (server has v{state.server_model_version})"
        mean = f"{sum(self.returns) / len(self.returns):.1f}" if self.returns else "-"
        parts = [
            conn,
            f"model {model}",
            f"{self.steps:,} steps ({sps:,.0f}/s)" if math.isfinite(sps) else f"{self.steps:,} steps",
            f"{self.episodes:,} episodes",
            f"mean return {mean} (last {len(self.returns)})",
            f"spool {len(self.spool) if self.spool is not None else 0}",
        ]
        if state.rejected:
            parts.append(f"{state.rejected} rejected")
        if note:
            parts.append(note)
        return " | ".join(parts)

    def report(self, note: str | None = None) -> None:
        self.say(self.progress_line(note))
