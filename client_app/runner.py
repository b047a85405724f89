"""The client's env loop: play the campaign's env with the current policy, chunk, spool, report.

The loop runs in the thread that calls ``Runner.run()``: the main thread for the command line, a
background thread for the window (client_app.controller). The websocket session (``connection``) and
model downloads (``fetcher``) run in their own threads; the loop only reads their state between
steps, so a slow network or a large model never stalls the game. Other threads control a run through
``pause()``, ``resume()`` and ``request_stop()`` and read it through ``snapshot()``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sys
import threading
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
from client_app.masks import action_mask, episode_outcome
from client_app.policy import Policy, RandomPolicy, describe
from client_app.protocol import Chunk, EvalResult, pack
from client_app.spaces import SpaceSpec, action_count, flat_dim, space_to_spec, spec_bounds
from client_app.spool import Spool, default_spool_root, spool_key
from client_app.watchdog import EnvUnrecoverable, ResilientEnv

log = logging.getLogger(__name__)

EXIT_OK = 0  # finished: --max-steps reached, Ctrl-C, or the campaign was stopped
EXIT_FAILED = 1  # an unexpected error (a bug: please report it)
EXIT_FATAL = 2  # this client cannot take part: refused token, closed campaign, old client, bad setup


@dataclass(frozen=True)
class RunSnapshot:
    """The live figures of one run, consistent enough for a window to show (``Runner.snapshot()``)."""

    phase: str  # starting | playing | paused (by the volunteer) | finished
    connection: str  # connecting | connected | retrying | server busy | paused | stopped | failed
    campaign: dict[str, Any]  # the welcome's campaign (name, slug, env_id, algorithm, url); {} before it
    model_version: int  # the model this client plays; 0: random moves, no model yet
    server_model_version: int  # the newest model the server announced
    steps: int
    steps_per_s: float  # over the last few seconds
    episodes: int
    wins: int
    mean_return: float | None  # mean return of the last 10 episodes this machine played
    last_return: float | None
    spool: int  # chunks waiting on disk for the server's ack
    spool_dir: str | None
    acked: int  # chunks the server acknowledged in this run
    rejected: int  # chunks the server refused for good
    restarts: int  # game (env) restarts by the watchdog
    last_error: str | None  # the latest problem, as the client would print it
    exit_code: int | None  # set once the run is over


def _connection_label(state) -> str:
    """How the connection stands, in the words the progress line and the window show."""
    if state.fatal is not None:
        return "failed"
    if state.state == "connected" and state.campaign_status != "running":
        return state.campaign_status  # paused (or stopped) by the campaign's admins
    if state.state == "connected" and state.hold_s > 0:
        return "server busy"
    return state.state


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
        # Checkpoints the server asks this client to evaluate (greedy episodes, not trained on).
        self.eval_fetcher = ModelFetcher(server_url=http_url(config.server_url), token=config.token)
        self.connection = Connection(
            server_url=config.server_url,
            token=config.token,
            machine=config.machine,
            window=config.window,
            on_model=self.fetcher.request,
            on_evaluate=self._evaluation_asked,
        )
        self._eval_lock = threading.Lock()
        self._eval_owed: dict[int, int] = {}  # model version -> greedy episodes the server asked for
        self._eval_policy: Policy | None = None
        self.env: Any = None
        self.spool: Spool | None = None
        self.chunker: Chunker | None = None
        self.policy: Policy | RandomPolicy | None = None
        self.steps = 0
        self.episodes = 0
        self.wins = 0
        self.chunks = 0
        self.eval_episodes = 0
        self.returns: deque[float] = deque(maxlen=10)
        self._last_report = (time.monotonic(), 0)
        # Control from other threads (the window's controller): pause, resume, stop.
        self._go = threading.Event()
        self._go.set()
        self._stop_requested = threading.Event()
        self._paused = False  # the env loop has seen the pause and stands still
        self.phase = "starting"
        self.last_error: str | None = None  # the error the run ended with
        self.exit_code: int | None = None
        self._lock = threading.Lock()  # the episode figures and the steps/s samples
        self._rate_samples: deque[tuple[float, int]] = deque(maxlen=64)

    # -- control from other threads ----------------------------------------------------------------

    def pause(self) -> None:
        """Stop stepping the env after the current step; the spool keeps being sent."""
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def request_stop(self) -> None:
        """End the run as Ctrl-C does: the partial chunk goes into the spool, which stays on disk."""
        self._stop_requested.set()
        self._go.set()  # a paused loop wakes up to see the request

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    def snapshot(self) -> RunSnapshot:
        """The run's figures now; safe to call from any thread, never blocks on the network or the env."""
        state = self.connection.snapshot()
        now, steps = time.monotonic(), self.steps
        with self._lock:
            samples = self._rate_samples
            samples.append((now, steps))
            while len(samples) > 2 and now - samples[1][0] >= 5.0:
                samples.popleft()
            t0, steps0 = samples[0]
            sps = (steps - steps0) / (now - t0) if now - t0 > 0.05 else 0.0
            returns = list(self.returns)
            episodes, wins = self.episodes, self.wins
        connection = _connection_label(state)
        policy, spool, env = self.policy, self.spool, self.env
        welcome = self.connection.welcome
        return RunSnapshot(
            phase=self.phase,
            connection=connection,
            campaign=dict(welcome.campaign) if welcome is not None else {},
            model_version=policy.version if policy is not None else 0,
            server_model_version=state.server_model_version,
            steps=steps,
            steps_per_s=max(0.0, sps),
            episodes=episodes,
            wins=wins,
            mean_return=sum(returns) / len(returns) if returns else None,
            last_return=returns[-1] if returns else None,
            spool=len(spool) if spool is not None else 0,
            spool_dir=str(spool.directory) if spool is not None else None,
            acked=state.acked,
            rejected=state.rejected,
            restarts=getattr(env, "restarts", 0),
            last_error=self.last_error
            or (state.fatal.message if state.fatal else None)
            or state.last_error
            or getattr(env, "last_error", None)
            or self.fetcher.last_error,
            exit_code=self.exit_code,
        )

    # -- the whole run -----------------------------------------------------------------------------

    def run(self) -> int:
        """Connect, play until something ends the run, and return the exit code (any thread)."""
        code = EXIT_FAILED
        try:
            code = self._run()
            return code
        finally:
            self.exit_code = code
            self.phase = "finished"

    def _run(self) -> int:
        try:
            self.connection.start()
            self.fetcher.start()
            self.eval_fetcher.start()
            welcome = self._wait_for_welcome()
            if welcome is None:
                if self.stop_requested and self.connection.fatal is None:
                    self.say("stopped before the server answered")
                    return EXIT_OK
                return self._fatal_exit()
            self._setup(welcome)
            reason = self._play()
            return self._finish(reason)
        except ClientError as exc:
            self._error(str(exc))
            return EXIT_FATAL
        except EnvUnrecoverable as exc:
            self._store(self.chunker.flush() if self.chunker else None, wait=False)
            self._error(f"the game keeps failing, giving up: {exc}")
            return EXIT_FATAL
        except KeyboardInterrupt:
            return self._interrupted()
        except Exception as exc:
            self.last_error = f"the client crashed ({type(exc).__name__}: {exc}); please report this"
            raise
        finally:
            self.connection.stop()
            self.fetcher.stop()
            self.eval_fetcher.stop()
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
            if self.stop_requested:
                return None

    def _setup(self, welcome: Welcome) -> None:
        campaign = welcome.campaign
        env_id = campaign.get("env_id")
        env_kwargs = campaign.get("env_kwargs") or {}
        try:
            # The watchdog recreates a game that crashes or hangs; the episode it broke ends truncated.
            self.env = ResilientEnv(lambda: make_env(env_id, env_kwargs))
        except RuntimeError as exc:
            raise ClientError(str(exc)) from None
        check_env_spaces(self.env, welcome)
        obs_space, act_space = welcome.observation_space, welcome.action_space
        self.n_actions = action_count(act_space)
        self.fetcher.check = lambda policy: policy_mismatch(policy, obs_space, act_space)
        self.eval_fetcher.check = self.fetcher.check
        prefix = welcome.machine.get("prefix") or hashlib.sha256(self.config.token.encode()).hexdigest()[:12]
        root = self.config.spool_dir or default_spool_root()
        self.spool = Spool(Path(root) / spool_key(str(campaign.get("slug") or "campaign"), str(prefix)))
        self.chunker = Chunker(
            chunk_steps=min(welcome.chunk_steps, 1024), observation_space=obs_space, n_actions=self.n_actions
        )
        self.policy = RandomPolicy(self.n_actions)
        left = len(self.spool)
        self.say(
            f"campaign {campaign.get('name')!r} ({env_id}, {campaign.get('algorithm')}), "
            f"chunks of {self.chunker.chunk_steps} steps; spool {self.spool.directory}"
            + (f" holds {left} chunks from an earlier run: resending them" if left else "")
        )
        self.connection.attach_spool(self.spool)

    # -- the env loop ------------------------------------------------------------------------------

    def _play(self) -> str:
        """Step the env until something ends the run; returns why: max_steps, stopped, requested or fatal."""
        config, connection, chunker = self.config, self.connection, self.chunker
        rng = np.random.default_rng(config.seed)
        action_start = int(self.connection.welcome.action_space.get("start", 0))
        obs, info = self.env.reset(seed=config.seed)
        mask = action_mask(info, self.n_actions)
        chunker.start_episode(obs, mask)
        evaluating: Policy | None = None  # the checkpoint this episode evaluates (greedy, not sent as chunks)
        eval_return, eval_length = 0.0, 0
        pace_t0, pace_steps = time.monotonic(), 0
        next_report = time.monotonic() + config.progress_every
        self.phase = "playing"
        while True:
            if config.max_steps is not None and self.steps >= config.max_steps:
                return "max_steps"
            if self._stop_requested.is_set():
                return "requested"
            now = time.monotonic()
            if config.progress_every and now >= next_report:
                self.report()
                next_report = now + config.progress_every
            if connection.fatal is not None:
                return "fatal"
            status = connection.campaign_status
            if status == "stopped":
                return "stopped"
            # Paused by the volunteer (the window's Pause button).
            if not self._go.is_set():
                if not self._paused:
                    # Hand the partial chunk to the spool, so it is sent while the game stands still
                    # (the episode goes on after resume). A full spool keeps it here instead.
                    if self.spool.has_room():
                        self._store(chunker.flush(), wait=False)
                    self._paused, self.phase = True, "paused"
                    self.say("paused: not playing; chunks waiting in the spool are still sent")
                self._go.wait(0.2)
                pace_t0, pace_steps = time.monotonic(), self.steps
                continue
            if self._paused:
                self._paused, self.phase = False, "playing"
                self.say("resumed")
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

            if evaluating is not None:
                action, logp = evaluating.greedy(obs, mask), None
            else:
                action, logp = self.policy.step(obs, rng, mask)
            obs, reward, terminated, truncated, info = self.env.step(action + action_start)
            self.steps += 1
            done = terminated or truncated
            mask = None if done else action_mask(info, self.n_actions)
            outcome = episode_outcome(info) if done else None
            if evaluating is not None:
                eval_return += float(reward)
                eval_length += 1
            else:
                chunk = chunker.step(
                    action + action_start,
                    reward,
                    obs,
                    terminated,
                    truncated,
                    model_version=self.policy.version,
                    mask=mask,
                    logp=logp,
                    outcome=outcome,
                )
                if chunk is not None:
                    self._store(chunk)
            if done:
                if evaluating is not None:
                    if not info.get("restarted"):  # an episode the game broke says nothing of the model
                        self._store_eval(evaluating, eval_return, eval_length, outcome)
                else:
                    with self._lock:
                        self.episodes += 1
                        self.wins += 1 if outcome and outcome["win"] else 0
                        self.returns.append(float(chunk.episode_return))
                obs, info = self.env.reset()
                mask = action_mask(info, self.n_actions)
                # Between episodes: play the next one greedily if the server asked for an evaluation.
                evaluating = self._next_evaluation()
                eval_return, eval_length = 0.0, 0
                if evaluating is None:
                    chunker.start_episode(obs, mask)
            if config.max_sps > 0:
                ahead = pace_t0 + (self.steps - pace_steps) / config.max_sps - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    def _evaluation_asked(self, notice) -> None:
        """(connection thread) The server asks for one more greedy episode of ``notice``'s version."""
        with self._eval_lock:
            self._eval_owed[notice.version] = self._eval_owed.get(notice.version, 0) + 1
        self.eval_fetcher.request(notice)  # downloaded once per version

    def _next_evaluation(self) -> Policy | None:
        """(env loop) The checkpoint to play the next episode of greedily, if one is owed and loaded."""
        loaded = self.eval_fetcher.take()
        if loaded is not None:
            self._eval_policy = loaded
        policy = self._eval_policy
        if policy is None:
            return None
        with self._eval_lock:
            for version in [v for v in self._eval_owed if v < policy.version]:
                del self._eval_owed[version]  # superseded before its model arrived
            if self._eval_owed.get(policy.version, 0) <= 0:
                return None
            self._eval_owed[policy.version] -= 1
        return policy

    def _store_eval(self, policy: Policy, episode_return: float, length: int, outcome: dict | None) -> None:
        self.eval_episodes += 1
        result = EvalResult(
            id=f"{self.chunker.session}-e{self.eval_episodes}",
            model_version=policy.version,
            episode_return=episode_return,
            episode_length=length,
            outcome=dict(outcome) if outcome else None,
        )
        # Waits for room like a chunk does: a result dropped here would leave the learner waiting
        # for its evaluation until the server's time-out.
        self._spool(result.id, pack(result.to_message()))
        log.info(
            "evaluation episode of model v%d: return %.1f in %d steps", policy.version, episode_return, length
        )

    def _store(self, chunk: Chunk | None, *, wait: bool = True) -> bool:
        """Put a finished chunk in the spool; waits while the spool is full (the server is away)."""
        if chunk is None:
            return True
        if not self._spool(chunk.id, pack(chunk.to_message()), wait=wait):
            return False
        self.chunks += 1
        return True

    def _spool(self, item_id: str, frame: bytes, *, wait: bool = True) -> bool:
        """Put a frame in the spool and wake the sender; waits while the spool is full, unless the run ends."""
        next_report = time.monotonic() + (self.config.progress_every or 5.0)
        while not self.spool.add(item_id, frame, timeout=0.5 if wait else 0):
            if (
                not wait
                or self.connection.fatal is not None
                or self.connection.campaign_status == "stopped"
                or self._stop_requested.is_set()
            ):
                return False
            if time.monotonic() >= next_report:
                self.report(note="spool full, waiting for the server")
                next_report = time.monotonic() + (self.config.progress_every or 5.0)
        self.connection.wake()
        return True

    # -- endings -----------------------------------------------------------------------------------

    def _finish(self, reason: str) -> int:
        if reason == "fatal":
            return self._fatal_exit()
        if reason == "requested":
            return self._interrupted("stopped")
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
        self._error(message)
        return EXIT_FATAL

    def _error(self, message: str) -> None:
        self.last_error = message
        print(f"error: {message}", file=self.err, flush=True)

    def _interrupted(self, word: str = "interrupted") -> int:
        if self.chunker is not None and self.spool is not None:
            try:
                self._store(self.chunker.flush(), wait=False)
            except RuntimeError:
                pass
            self.report()
            left = len(self.spool)
            self.say(
                word + (f": {left} chunks kept in {self.spool.directory} for the next run" if left else "")
            )
        else:
            self.say(word)
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
        conn = _connection_label(state)
        if self._paused:
            conn += " (paused by you)"
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
        if self.wins:
            parts.append(f"{self.wins} won")
        if self.eval_episodes:
            parts.append(f"{self.eval_episodes} evaluation episodes")
        restarts = getattr(self.env, "restarts", 0)
        if restarts:
            parts.append(f"{restarts} game restarts")
        if state.rejected:
            parts.append(f"{state.rejected} rejected")
        if note:
            parts.append(note)
        return " | ".join(parts)

    def report(self, note: str | None = None) -> None:
        self.say(self.progress_line(note))
