"""The client's env loop: play the campaign's env with the current policy, chunk, spool, report.

The loop runs in the thread that calls ``Runner.run()``: the main thread for the command line, a
background thread for the window (client_app.controller). The websocket session (``connection``) and
model downloads (``fetcher``) run in their own threads; the loop only reads their state between
steps, so a slow network or a large model never stalls the game. Other threads control a run through
``pause()``, ``resume()`` and ``request_stop()`` and read it through ``snapshot()``.

Around the loop: ``compat`` checks that the env and the models fit the campaign's spaces,
``evaluation`` plays the checkpoints the server asks to evaluate, ``progress`` words what the
command line and the window show.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from client_app import iudex
from client_app.autoupdate import UpdateWatcher
from client_app.chunker import Chunker
from client_app.compat import ClientError, check_env_spaces, policy_mismatch
from client_app.connection import Connection, Welcome, http_url
from client_app.envs import is_iudex, is_soulsgym, make_env, watchdog_settings
from client_app.evaluation import EvalEpisode, Evaluations
from client_app.fetcher import ModelFetcher
from client_app.gamewin import FocusKeeper
from client_app.manners import MannersConfig, Watcher
from client_app.masks import action_mask, episode_outcome
from client_app.policy import Policy, RandomPolicy, uniform_action
from client_app.progress import RecentRate, RunSnapshot, connection_label, progress_line
from client_app.protocol import Chunk, pack
from client_app.spaces import action_count
from client_app.spool import MB, Spool, default_spool_root, spool_key
from client_app.watchdog import EnvUnrecoverable, ResilientEnv

EXIT_OK = 0  # finished: --max-steps reached, Ctrl-C, or the campaign was stopped
EXIT_FAILED = 1  # an unexpected error (a bug: please report it)
EXIT_FATAL = 2  # this client cannot take part: refused token, closed campaign, old client, bad setup

# The phase of a run that waits for the server with a backlog in the spool (RunConfig.offline_backlog).
OFFLINE = "offline: waiting for the server"
# The phase of a run that makes way for the person at the machine (RunConfig.manners, client_app.manners).
PAUSED_FOR_YOU = "paused for you"
DEFAULT_SPOOL_MB = 512  # --spool-max-mb (client_app.spool.DEFAULT_MAX_BYTES)
# How a cap that holds data back is said (RunSnapshot.held_back starts with one of these).
UPLOAD_CAPPED = "upload capped"
SPOOL_FULL = "spool full"


@dataclass
class RunConfig:
    """What ``soulsai-client run`` was asked to do (one field per command-line option)."""

    server_url: str  # the portal's address, http(s)://host[:port]
    token: str  # the machine token from the campaign's page
    machine: str  # this machine's name, shown to the server
    spool_dir: Path | None = None  # root of the spools; None: the user's cache directory
    max_steps: int | None = None  # stop after this many env steps
    # The CPU cap: env steps per second at most in a simulated fight (arena, gymnasium); 0: as fast as
    # the env goes. Never applied to a SoulsGym fight: the real game runs at its own pace.
    max_sps: float = 0.0
    max_upload_kbps: float = 0.0  # the upload cap: KB/s (KB = 1024 bytes) on average; 0: none
    spool_max_mb: int = DEFAULT_SPOOL_MB  # the spool's disk cap, MB; play stops while it is full
    seed: int | None = None  # seeds the env and the exploration
    progress_every: float = 5.0  # seconds between progress lines; 0: only at exit
    quiet: bool = False  # print errors only
    auto_update: bool = True  # install a newer client the server offers, if signed (client_app.updater)
    # When the server offers a newer client while running: verify it, end the run at the current chunk's
    # end and leave it in ``Runner.updates.ready`` for the caller to install (the command line does);
    # False: only say it is available (client_app.autoupdate).
    restart_to_update: bool = False
    drain_timeout: float = 15.0  # at --max-steps, how long to wait for the server to ack the spool
    window: int = 16  # chunks in flight at most
    # Offline, stop playing once this many chunks wait in the spool: fights played with a model the
    # server may have replaced meanwhile teach the learner little and earn no wins (docs/client.md).
    offline_backlog: int = 8
    # With that backlog waiting, this long without a word from the server reads as offline too, before
    # the socket says the server is gone (a hung server's connection looks up until a ping times out).
    offline_silence_s: float = 3.0
    # When to make way for the person at the machine: input, programs, hours (client_app.manners); None:
    # never (the command line and the window pass the volunteer's settings).
    manners: MannersConfig | None = None


class Runner:
    """One run of the client, from connecting to exiting; ``run()`` returns the exit code."""

    def __init__(self, config: RunConfig, *, out: TextIO | None = None, err: TextIO | None = None):
        self.config = config
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.fetcher = ModelFetcher(server_url=http_url(config.server_url), token=config.token)
        # Checkpoints the server asks this client to evaluate (greedy episodes, not trained on).
        self.evaluations = Evaluations(
            server_url=http_url(config.server_url), token=config.token, spool=self._spool
        )
        self.updates = UpdateWatcher(
            http_url(config.server_url),
            restart_to_update=config.auto_update and config.restart_to_update,
            say=self.say,
        )
        self.connection = Connection(
            server_url=config.server_url,
            token=config.token,
            machine=config.machine,
            window=config.window,
            on_model=self.fetcher.request,
            on_evaluate=self.evaluations.asked,
            max_upload_kbps=config.max_upload_kbps,
            on_release=self.updates.offered,
        )
        self.env: Any = None
        # How the env is made: make_env; a test stands in a game-like env here (the Windows boundary).
        self.make_env = make_env
        # For Dark Souls III: keeps the game window in front (the agent's keys go to the focused window).
        self.focus: FocusKeeper | None = None
        self.spool: Spool | None = None
        self.chunker: Chunker | None = None
        self.policy: Policy | RandomPolicy | None = None
        self.steps = 0
        self.max_sps = config.max_sps  # the CPU cap; 0 in a SoulsGym fight (see _setup)
        self.episodes = 0
        self.wins = 0
        self.chunks = 0
        self.returns: deque[float] = deque(maxlen=10)
        self._last_report = (time.monotonic(), 0)
        # Control from other threads (the window's controller): pause, resume, stop.
        self._go = threading.Event()
        self._go.set()
        self._stop_requested = threading.Event()
        self._paused = False  # the env loop has seen the pause and stands still
        self.manners: Watcher | None = None  # polls the sources of RunConfig.manners once playing
        self.pause_reasons: tuple[str, ...] = ()  # why the run makes way for the person, while it does
        self.phase = "starting"
        self.held_back: str | None = None  # why a cap holds data back now, as said (see _hold_back)
        self.last_error: str | None = None  # the error the run ended with
        self.exit_code: int | None = None
        self._lock = threading.Lock()  # the episode figures and the steps/s samples
        self._rate = RecentRate()

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
            sps = self._rate.update(now, steps)
            returns = list(self.returns)
            episodes, wins = self.episodes, self.wins
        connection = connection_label(state)
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
            or self.fetcher.last_error
            or self.evaluations.fetcher.last_error,
            exit_code=self.exit_code,
            held_back=self.held_back,
            pause_reasons=self.pause_reasons,
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
            self.evaluations.start()
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
            self.evaluations.stop()
            if self.manners is not None:
                self.manners.stop()
            self.updates.stop()
            if self.spool is not None:
                self.spool.close()
            self._close_env()

    def _close_env(self) -> None:
        """Close the env; a game that crashed cannot always be closed, and that is said, not raised."""
        if self.env is None:
            return
        try:
            self.env.close()
        except Exception as exc:  # SoulsGym writes to a game that may be gone
            self._error(
                f"the game could not be closed cleanly ({type(exc).__name__}: {exc}); if Dark Souls III "
                "is still open, restart it before the next run"
            )
        finally:
            self.env = None

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
        make = self.make_env
        try:
            # The watchdog recreates a game that crashes or hangs; the episode it broke ends truncated.
            self.env = ResilientEnv(lambda: make(env_id, env_kwargs), **watchdog_settings(env_id))
        except RuntimeError as exc:
            raise ClientError(str(exc)) from None
        if is_soulsgym(env_id):
            if self.max_sps > 0:  # the CPU cap is for simulated fights only
                self.say(f"--max-sps {self.max_sps:g} is not applied: the real game plays at its own pace")
            self.max_sps = 0.0
            self.focus = FocusKeeper(on_lost=self._focus_lost)
        if self.config.manners is not None:
            # In a fight the agent's own key presses are not the person's (client_app.manners.idle).
            self.manners = Watcher(self.config.manners, fight=is_soulsgym(env_id), say=self.say).start()
            self.say(f"for you, this client {self.config.manners.describe()}")
        check_env_spaces(self.env, welcome)
        obs_space, act_space = welcome.observation_space, welcome.action_space
        self.n_actions = action_count(act_space)
        # A guided campaign's guide knows the Iudex fight only (trainer.config.DQNConfig.guide).
        self.guidable = is_iudex(env_id)
        self.fetcher.check = lambda policy: policy_mismatch(policy, obs_space, act_space)
        self.evaluations.fetcher.check = self.fetcher.check
        prefix = welcome.machine.get("prefix") or hashlib.sha256(self.config.token.encode()).hexdigest()[:12]
        root = self.config.spool_dir or default_spool_root()
        self.spool = Spool(
            Path(root) / spool_key(str(campaign.get("slug") or "campaign"), str(prefix)),
            max_bytes=self.config.spool_max_mb * MB,
        )
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
        if not self._wait_for_focus():
            return "requested"
        obs, info = self.env.reset(seed=config.seed)
        mask = action_mask(info, self.n_actions)
        chunker.start_episode(obs, mask, guided=self._guided(rng))
        evaluating: EvalEpisode | None = None  # the checkpoint this episode evaluates (not sent as chunks)
        pace_t0, pace_steps = time.monotonic(), 0
        next_report = time.monotonic() + config.progress_every
        self.phase = "playing"
        while True:
            if config.max_steps is not None and self.steps >= config.max_steps:
                return "max_steps"
            if self._stop_requested.is_set():
                return "requested"
            if self.updates.ready is not None and chunker.steps_buffered == 0:
                return "update"  # a verified newer client, and the current chunk is finished
            now = time.monotonic()
            if config.progress_every and now >= next_report:
                self.report()
                next_report = now + config.progress_every
            if connection.fatal is not None:
                return "fatal"
            status = connection.campaign_status
            if status == "stopped":
                return "stopped"
            # Paused by the volunteer (the window's Pause button), or making way for them (manners).
            reasons = self.manners.verdict.reasons if self.manners is not None else ()
            if not self._go.is_set() or reasons:
                self.pause_reasons = reasons
                phase = "paused" if not self._go.is_set() else PAUSED_FOR_YOU
                if self._paused and phase != self.phase:
                    self.phase = phase
                    self.say(
                        "paused by you" if phase == "paused" else "paused for you: " + "; ".join(reasons)
                    )
                if not self._paused:
                    # Hand the partial chunk to the spool, so it is sent while the game stands still
                    # (the episode goes on after resume). A full spool keeps it here instead.
                    if self.spool.has_room():
                        self._store(chunker.flush(), wait=False)
                    self._paused, self.phase = True, phase
                    why = "" if phase == "paused" else f" for you ({'; '.join(reasons)})"
                    self.say(f"paused{why}: not playing; chunks waiting in the spool are still sent")
                if phase == "paused":
                    self._go.wait(0.2)
                else:
                    self._stop_requested.wait(0.2)  # the manners' verdict changes at most once a second
                pace_t0, pace_steps = time.monotonic(), self.steps
                continue
            if self._paused:
                self._paused, self.phase, self.pause_reasons = False, "playing", ()
                self.say("resumed")
                if self.focus is not None:
                    self.focus.now()  # the Resume button had the focus: give it back to the game at once
            if self.focus is not None and not self.focus.tick():
                # Keys would go to another window (the client's own, a browser): wait for the game.
                self.phase = "waiting for the game window"
                time.sleep(0.2)
                pace_t0, pace_steps = time.monotonic(), self.steps
                continue
            if self.phase == "waiting for the game window":
                self.phase = "playing"
            # The backlog bounds what is played without the server: at most offline_backlog chunks plus
            # the in-flight window wait unacknowledged, however late the socket notices the server gone.
            # Below that, a window of chunks in flight while the server acks never stops play.
            backlog = len(self.spool)
            if backlog >= config.offline_backlog:
                hold = connection.hold_remaining()
                if not connection.connected or (
                    status == "running" and hold == 0 and connection.silence() >= config.offline_silence_s
                ):
                    if self.phase != OFFLINE:
                        self.phase = OFFLINE
                        self.say(
                            f"offline: {backlog} chunks wait for the server; not playing until it is back "
                            "(they are sent then)"
                        )
                    time.sleep(0.2)
                    pace_t0, pace_steps = time.monotonic(), self.steps
                    continue
                if status == "running" and backlog >= config.offline_backlog + connection.window:
                    if connection.upload_capped():
                        self._hold_back(self._upload_capped_words(backlog), UPLOAD_CAPPED)
                    time.sleep(0.02)  # every chunk the server may hold is out: wait for its acks
                    pace_t0, pace_steps = time.monotonic(), self.steps
                    continue
            if self.phase == OFFLINE:
                self.phase = "playing"
                self.say("the server is back: playing again")
            if self.held_back and self.held_back.startswith(UPLOAD_CAPPED) and not connection.upload_capped():
                self._hold_back(None, "the upload caught up with the play")
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
                action, logp = evaluating.act(obs, mask), None
            elif chunker.guided:
                action, logp = self._guide_action(info, mask, rng), None
            else:
                action, logp = self.policy.step(obs, rng, mask)
            obs, reward, terminated, truncated, info = self.env.step(action + action_start)
            self.steps += 1
            done = terminated or truncated
            mask = None if done else action_mask(info, self.n_actions)
            outcome = episode_outcome(info) if done else None
            if evaluating is not None:
                evaluating.record(reward, action=action, info=info)
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
                        self.evaluations.store(evaluating, outcome, session=chunker.session)
                else:
                    with self._lock:
                        self.episodes += 1
                        self.wins += 1 if outcome and outcome["win"] else 0
                        self.returns.append(float(chunk.episode_return))
                if not self._wait_for_focus():
                    return "requested"
                obs, info = self.env.reset()
                mask = action_mask(info, self.n_actions)
                # Between episodes: play the next one greedily if the server asked for an evaluation.
                evaluating = self.evaluations.next_episode()
                if evaluating is None:
                    chunker.start_episode(obs, mask, guided=self._guided(rng))
            if self.max_sps > 0:
                ahead = pace_t0 + (self.steps - pace_steps) / self.max_sps - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    def _guided(self, rng: np.random.Generator) -> bool:
        """Whether the guide plays the next training episode: the model's ``guide_share`` of them."""
        share = self.policy.guide_share
        return self.guidable and share > 0 and not self.policy.stochastic and rng.random() < share

    def _guide_action(self, info: dict[str, Any], mask: np.ndarray | None, rng: np.random.Generator) -> int:
        """The scripted player's action (``guide_epsilon`` of them at random among the allowed)."""
        from client_app.arena.scripted import scripted_action

        raw = info.get(iudex.RAW_OBS)
        if raw is None or rng.random() < self.policy.guide_epsilon:
            return uniform_action(rng, self.n_actions, mask)[0]
        action = int(scripted_action(raw))
        return action if mask is None or mask[action] else uniform_action(rng, self.n_actions, mask)[0]

    def _wait_for_focus(self) -> bool:
        """Before a reset (SoulsGym presses keys there too): the game in front; False when stopped."""
        while self.focus is not None and not self.focus.tick():
            if self._stop_requested.is_set() or self.connection.fatal is not None:
                return False
            self.phase = "waiting for the game window"
            time.sleep(0.2)
        return True

    def _focus_lost(self, message: str) -> None:
        self.last_error = message
        self.say(message)

    def _store(self, chunk: Chunk | None, *, wait: bool = True) -> bool:
        """Put a finished chunk in the spool; waits while the spool is full (the server is away)."""
        if chunk is None:
            return True
        if not self._spool(chunk.id, pack(chunk.to_wire()), wait=wait):
            return False
        self.chunks += 1
        return True

    def _spool(self, item_id: str, frame: bytes, *, wait: bool = True) -> bool:
        """Put a frame in the spool and wake the sender; waits while the spool is full, unless the run ends."""
        next_report = time.monotonic() + (self.config.progress_every or 5.0)
        while True:
            # Once full, the spool drains to half before play goes on: one line, not one per chunk acked.
            draining = bool(self.held_back and self.held_back.startswith(SPOOL_FULL)) and not self.spool.drained()
            if draining:
                time.sleep(0.1 if wait else 0)
            elif self.spool.add(item_id, frame, timeout=0.5 if wait else 0):
                break
            if (
                not wait
                or self.connection.fatal is not None
                or self.connection.campaign_status == "stopped"
                or self._stop_requested.is_set()
            ):
                return False
            if not draining:
                self._hold_back(self._spool_full_words(), SPOOL_FULL)
            if time.monotonic() >= next_report:
                self.report(note=self.held_back)
                next_report = time.monotonic() + (self.config.progress_every or 5.0)
        if self.held_back and self.held_back.startswith(SPOOL_FULL):
            self._hold_back(None, "the spool has room again")
        self.connection.wake()
        return True

    def _spool_full_words(self) -> str:
        spool = self.spool
        size, cap, count = spool.size_bytes / MB, spool.max_bytes / MB, len(spool)
        figures = f"{size:,.0f} MB of {cap:,.0f} MB"
        if count >= spool.max_chunks:  # the count cap came first
            figures = f"{count:,} chunks ({figures})"
        return f"{SPOOL_FULL}: {figures} waiting for the server; not playing until it drains"

    def _upload_capped_words(self, backlog: int) -> str:
        size = self.spool.size_bytes / MB
        return (
            f"{UPLOAD_CAPPED} at {self.config.max_upload_kbps:g} KB/s: {backlog} chunks ({size:,.1f} MB) "
            "wait to be sent; playing only as fast as they go out"
        )

    def _hold_back(self, words: str | None, why: str) -> None:
        """Say once that a cap holds data back (``words``), or that it stopped (``words`` None, ``why``)."""
        if words is None:
            if self.held_back is not None:
                self.held_back = None
                self.say(f"{why}: playing at full speed again")
            return
        kind = words.split(":", 1)[0]
        if self.held_back is None or not self.held_back.startswith(kind):
            self.say(words)
        self.held_back = words

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
        if reason == "update":
            self.say(f"stopping to install client {self.updates.ready[0].version}: the spool stays on disk")
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
        """One line: connection, model, steps (and steps/s since the last line), episodes, spool."""
        state = self.connection.snapshot()
        now = time.monotonic()
        t0, steps0 = self._last_report
        sps = (self.steps - steps0) / (now - t0) if now > t0 else 0.0
        self._last_report = (now, self.steps)
        return progress_line(
            state,
            paused=self._paused and self.phase == "paused",
            pause_reasons=self.pause_reasons if self._paused else (),
            policy=self.policy,
            steps=self.steps,
            steps_per_s=sps,
            episodes=self.episodes,
            returns=self.returns,
            wins=self.wins,
            eval_episodes=self.evaluations.episodes,
            spool=len(self.spool) if self.spool is not None else 0,
            restarts=getattr(self.env, "restarts", 0),
            note=note,
        )

    def report(self, note: str | None = None) -> None:
        self.say(self.progress_line(note or self.updates.note))
