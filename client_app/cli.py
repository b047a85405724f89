"""``soulsai-client`` (also ``python -m client_app``): the volunteer's command line.

``run`` is the default subcommand, so ``soulsai-client --server URL --token T`` and
``soulsai-client run --server URL --token T`` are the same. ``doctor`` checks the machine
(client_app.doctor, docs/soulsgym.md), ``status`` shows the saved settings, the spools and the
server's health, ``gui`` opens the window (also ``soulsai-client-gui``), ``record`` saves Iudex fights
as test data (client_app.record). Settings come from the flags,
then ``SOULSAI_SERVER`` / ``SOULSAI_TOKEN``, then the config file (client_app.userconfig).
See docs/client.md.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from client_app import __version__, updater, userconfig
from client_app.connection import http_url, probe_health, websocket_url
from client_app.manners import DEFAULT_IDLE_MINUTES, HoursError, MannersConfig, Watcher, parse_hours
from client_app.protocol import CLOSE_UPGRADE, R_UPGRADE
from client_app.runner import DEFAULT_SPOOL_MB, EXIT_FAILED, EXIT_FATAL, RunConfig, Runner
from client_app.spool import default_spool_root

COMMANDS = ("run", "doctor", "status", "gui", "record")
MAX_SPOOL_MB = 1024 * 1024  # --spool-max-mb at most 1 TB: a larger figure is a typo

DESCRIPTION = """\
Play a SoulsAI campaign on this machine and stream the experience to the server.

The client connects to the portal with your machine token (from the campaign's page), plays the
campaign's environment with the campaign's current model (random moves until the first model is
published), and sends what it plays in chunks. Unsent chunks wait on disk and are resent after a
restart or a lost connection. Press Ctrl-C to stop: nothing that was played is lost.
"""

EPILOG = f"""\
commands:
  run      play and send (the default): %(prog)s run --help
  doctor   check this machine and the token: %(prog)s doctor --help
  status   the saved settings, the chunks waiting in the spool, the server's health
  gui      the window (the same as soulsai-client-gui)
  record   play Iudex fights with a policy and save them as test data: %(prog)s record --help

environment variables:
  SOULSAI_SERVER   default for --server
  SOULSAI_TOKEN    default for --token (safer than --token: other users cannot see it in ps)

config file: {userconfig.default_path()}
  --save remembers --server, --token, --name, --spool-dir and the caps there (the token in the system
  keyring when the keyring package is installed); flags and environment variables override it.

exit codes:
  0  finished: --max-steps reached, Ctrl-C, or the campaign was stopped
  1  unexpected error (a bug: please report it with the output)
  2  cannot take part: bad options, token refused, campaign closed, client too old,
     or this machine cannot run the campaign's environment

check this machine first: %(prog)s doctor --help

spool: {default_spool_root()}/<campaign>-<token prefix> unless --spool-dir is given.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soulsai-client",
        usage="%(prog)s [run] --server URL --token TOKEN [options]\n"
        "       %(prog)s doctor [--env ID] [--server URL --token TOKEN]\n"
        "       %(prog)s status [--config FILE]\n"
        "       %(prog)s gui [--config FILE]\n"
        "       %(prog)s record --output FILE [--env ID] [--policy NAME|FILE] [--episodes N]",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        help="the portal's address, e.g. https://soulsai.example.org (env SOULSAI_SERVER, or the config file)",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="your machine token from the campaign's page on the portal (env SOULSAI_TOKEN, or the config file)",
    )
    parser.add_argument(
        "--name",
        metavar="NAME",
        help="this machine's name as the server shows it (default: the config file's, else the host name)",
    )
    parser.add_argument(
        "--spool-dir",
        metavar="DIR",
        type=Path,
        help=f"where unsent chunks wait, one subfolder per campaign and token (default: {default_spool_root()})",
    )
    parser.add_argument(
        "--max-steps",
        metavar="N",
        type=_positive_int,
        help="stop after N environment steps, once the server has the data (default: run until stopped)",
    )
    parser.add_argument(
        "--max-sps",
        metavar="R",
        type=_non_negative_float,
        default=0.0,
        help="the CPU cap for simulated fights (arena, gymnasium): play at most R environment steps per "
        "second; 0 = as fast as possible. Not applied to a Dark Souls III (SoulsGym) fight, which plays at "
        "the game's own pace (default: 0)",
    )
    parser.add_argument(
        "--max-upload-kbps",
        metavar="KB",
        type=_upload_kbps,
        default=None,
        help="the upload cap: send at most KB kilobytes (1024 bytes) per second on average; chunks are "
        "never split, and the progress line says when the cap holds them back; 0 = no cap (default: the "
        "config file's, else 0)",
    )
    parser.add_argument(
        "--spool-max-mb",
        metavar="MB",
        type=_spool_max_mb,
        default=None,
        help="the disk cap of the spool: at most MB megabytes of unsent chunks per campaign; when it is "
        "full the client stops playing until the server has taken some (default: the config file's, "
        f"else {DEFAULT_SPOOL_MB})",
    )
    parser.add_argument("--seed", metavar="S", type=int, help="seed for the environment and the exploration")
    parser.add_argument("--quiet", action="store_true", help="print errors only, no progress lines")
    _add_pause_options(parser)
    parser.add_argument(
        "--no-auto-update",
        action="store_true",
        help="never install a newer client by itself (default: install one the server offers, if the "
        "maintainers signed it, and restart with the same settings)",
    )
    _add_config_option(parser)
    parser.add_argument(
        "--save",
        action="store_true",
        help="remember --server, --token, --name, --spool-dir, --max-upload-kbps and --spool-max-mb in the "
        "config file for the next runs",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


PAUSE_DESCRIPTION = """\
The client makes way for you: it stops playing (the connection stays up and chunks already played
are still sent) while you use the keyboard or mouse, while a program you name runs, or outside the
hours you set, and plays again by itself. The window and the progress line say why it is paused.
--save remembers these too."""


def _add_pause_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("pausing for you", PAUSE_DESCRIPTION)
    group.add_argument(
        "--pause-on-input",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pause while you use the keyboard or mouse (X11 on Linux, Windows); in a Dark Souls III fight "
        "any key or click of yours pauses at once, since you share the game's keyboard (default: on)",
    )
    group.add_argument(
        "--idle-minutes",
        metavar="M",
        type=_idle_minutes,
        default=None,
        help="after your last input, play again once M minutes pass without any "
        f"(default: {DEFAULT_IDLE_MINUTES:g})",
    )
    group.add_argument(
        "--pause-while",
        metavar="PROGRAM",
        action="append",
        default=None,
        help="pause while this program runs, by its process name, e.g. --pause-while eldenring "
        "(case and .exe do not matter); repeat for several; --pause-while '' forgets the saved ones",
    )
    group.add_argument(
        "--hours",
        metavar="HH:MM-HH:MM",
        type=_hours,
        default=None,
        help="play only within these hours, local time, e.g. 22:00-08:00 (across midnight) or "
        "12:00-13:30,22:00-08:00; 'any' forgets saved hours (default: any hour)",
    )


def _idle_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of minutes, got {text!r}") from None
    if not 0 < value <= 24 * 60:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1440 minutes, got {text!r}")
    return value


def _hours(text: str) -> str:
    if text.strip().lower() == "any":
        return ""
    try:
        return str(parse_hours(text))
    except HoursError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _given_pause_settings(ns: argparse.Namespace) -> dict:
    """The pause settings given as flags (userconfig.UserConfig field names); the rest stay as saved."""
    given = {"pause_on_input": ns.pause_on_input, "idle_minutes": ns.idle_minutes, "hours": ns.hours}
    if ns.pause_while is not None:
        given["pause_while"] = tuple(p.strip() for p in ns.pause_while if p.strip())
    return {key: value for key, value in given.items() if value is not None}


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=None,
        help=f"the config file to read and --save to (default: {userconfig.default_path()})",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _upload_kbps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of KB per second (0 = no cap), got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be 0 (no cap) or more KB per second, got {text!r}")
    return value


def _spool_max_mb(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of MB, got {text!r}") from None
    if not 1 <= value <= MAX_SPOOL_MB:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_SPOOL_MB} MB, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> RunConfig:
    """Turn the command line into a RunConfig; exits with code 2 and a message on bad input."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run":
        args = args[1:]
    parser = build_parser()
    ns = parser.parse_args(args)
    saved = userconfig.load(ns.config)
    server, _ = userconfig.resolve(flag=ns.server, env_name="SOULSAI_SERVER", saved=saved.server)
    token, _ = userconfig.resolve(flag=ns.token, env_name="SOULSAI_TOKEN", saved=saved.token)
    if not server:
        parser.error(
            "--server is required (or set SOULSAI_SERVER, or save it once with --save), "
            "e.g. --server https://soulsai.example.org"
        )
    if not token.strip():
        parser.error(
            "--token is required (or set SOULSAI_TOKEN, or save it once with --save): "
            "copy it from the campaign's page on the portal"
        )
    try:
        websocket_url(server)
    except ValueError as exc:
        parser.error(str(exc))
    pause_settings = _given_pause_settings(ns)
    manners = userconfig.manners_config(replace(saved, **pause_settings))
    machine = ns.name or saved.machine or socket.gethostname()
    spool_dir = ns.spool_dir or (Path(saved.spool_dir) if saved.spool_dir else None)
    max_upload_kbps = ns.max_upload_kbps if ns.max_upload_kbps is not None else saved.max_upload_kbps
    if ns.save:
        kept = userconfig.save(
            userconfig.UserConfig(
                server=server, token=token.strip(), machine=ns.name or saved.machine,
                spool_dir=str(spool_dir or ""), **pause_settings,
                max_upload_kbps=max_upload_kbps, spool_max_mb=ns.spool_max_mb or saved.spool_max_mb,
            ),
            ns.config,
        )  # fmt: skip
        print(
            f"settings saved in {ns.config or userconfig.default_path()} ({kept.token_note})",
            file=sys.stderr,
            flush=True,
        )
    return RunConfig(
        server_url=server,
        token=token.strip(),
        machine=(machine or "").strip()[:60] or "unnamed",
        spool_dir=spool_dir,
        max_steps=ns.max_steps,
        max_sps=ns.max_sps,
        max_upload_kbps=max_upload_kbps,
        spool_max_mb=ns.spool_max_mb or saved.spool_max_mb or DEFAULT_SPOOL_MB,
        seed=ns.seed,
        quiet=ns.quiet,
        auto_update=not ns.no_auto_update,
        manners=manners,
    )


def _self_update(config: RunConfig, *, required: bool) -> bool:
    """Update to the server's newer client and restart into it (client_app.updater); on failure say
    why and go on with this one. False when updates are off for this run (one just did not take)."""
    log = logging.getLogger("client_app.updater")
    previous = updater.updated_from()
    if previous is not None:
        if previous == __version__:
            log.error(
                "the update did not take effect (this is still client %s); not updating again", __version__
            )
            return False
        log.info("updated the client from %s to %s", previous, __version__)
        return True
    try:
        log.info(updater.update(http_url(config.server_url), required=required))
    except updater.UpdateError as exc:
        log.warning("not updated, going on with client %s: %s", __version__, exc)
    return True


def _install_offered(runner: Runner) -> None:
    """Install the newer client the run verified and restart into it; on failure say why (and never
    try that version again in this process)."""
    offer, wheel = runner.updates.ready
    log = logging.getLogger("client_app.updater")
    log.info("updating the client from %s to %s", __version__, offer.version)
    try:
        updater.install_and_restart(offer, wheel)
    except updater.UpdateError as exc:
        log.warning("not updated, going on with client %s: %s", __version__, exc)
    finally:
        runner.updates.release_files()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``soulsai-client`` and ``python -m client_app``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "doctor":
        return doctor_command(args[1:])
    if args and args[0] == "status":
        return status_main(args[1:])
    if args and args[0] == "record":
        from client_app.record import main as record_main

        return record_main(args[1:])
    if args and args[0] == "gui":
        from client_app.gui import main as gui_main

        return gui_main(args[1:])
    config = parse_args(args)
    logging.basicConfig(
        level=logging.WARNING if config.quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # Third-party chatter (websockets' own retries, urllib) is not the volunteer's business.
    logging.getLogger("websockets").setLevel(logging.ERROR)
    # A service manager's SIGTERM ends the client the way Ctrl-C does: cleanly, spool kept.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        if config.auto_update and not _self_update(config, required=False):
            config = replace(config, auto_update=False)
        config = replace(config, restart_to_update=config.auto_update)
        runner = Runner(config)
        code = runner.run()
        while runner.updates.ready is not None:  # offered while running, verified, the run ended cleanly
            _install_offered(runner)  # restarts into the new client, or says why not
            runner = Runner(config)  # the old client goes on, with the same spool
            code = runner.run()
        fatal = runner.connection.fatal
        if (
            config.auto_update
            and fatal is not None
            and (fatal.code == R_UPGRADE or fatal.close_code == CLOSE_UPGRADE)
        ):
            _self_update(config, required=True)  # restarts into the new client, or says why not
        return code
    except OSError as exc:  # e.g. the spool directory cannot be written
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FATAL
    except Exception:
        logging.getLogger(__name__).exception("the client crashed; please report this with the output above")
        return EXIT_FAILED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------------------------------
# doctor and status


def doctor_command(args: list[str]) -> int:
    """``soulsai-client doctor``: the saved server and token are used unless given or in the environment."""
    from client_app.doctor import main as doctor_main

    if "-h" in args or "--help" in args:
        return doctor_main(args)
    saved = userconfig.load()
    extra: list[str] = []
    given = " ".join(args)
    if "--server" not in given and not os.environ.get("SOULSAI_SERVER") and saved.server:
        extra += ["--server", saved.server]
    if "--token" not in given and not os.environ.get("SOULSAI_TOKEN") and saved.token:
        extra += ["--token", saved.token]
    return doctor_main([*extra, *args])


STATUS_DESCRIPTION = """\
Show what the client would use and what is waiting: the config file, the server address, the
token (masked) and where it is kept, the machine name, the chunks waiting in the spool of each
campaign, and the server's answer to /healthz. Exit code 0 when the server answers healthy (or
none is set), 1 otherwise.
"""


def build_status_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soulsai-client status",
        description=STATUS_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--server", metavar="URL", help="the portal's address (default: env, then config file)"
    )
    parser.add_argument("--spool-dir", metavar="DIR", type=Path, help="the spool root to look into")
    _add_config_option(parser)
    return parser


def spool_summary(root: Path) -> list[tuple[str, int, int]]:
    """(folder name, chunks, bytes) of every campaign's spool under ``root``."""
    rows = []
    if not root.is_dir():
        return rows
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = list(folder.glob("*.chunk"))
        rows.append((folder.name, len(files), sum(f.stat().st_size for f in files)))
    return rows


def server_health(server: str, timeout: float = 10.0) -> tuple[bool, str]:
    """Whether /healthz answers healthy, and its answer in one line."""
    try:
        probe = probe_health(server, timeout=timeout, max_bytes=2048)
    except ValueError as exc:
        return False, str(exc)
    if probe.status is None:
        return False, f"{probe.url}: no answer ({probe.reason})"
    text = f"{probe.url}: HTTP {probe.status} {probe.body.decode(errors='replace').strip()}"
    return probe.status == 200, text.strip() if probe.status >= 400 else text


def pause_lines(manners: MannersConfig) -> list[str]:
    """``status``'s lines on pausing: the settings, and what the sources say on this machine now."""
    watcher = Watcher(manners, say=lambda text: None, started=float("-inf"))  # any input counts here
    verdict = watcher.poll()
    lines = [f"pausing:     {manners.describe()}"]
    lines += [f"  {text}" for text in watcher.unavailable]
    if manners.watches_anything:
        lines.append(f"  now: {'would pause: ' + str(verdict) if verdict.paused else 'would play'}")
    return lines


def status_main(argv: Sequence[str]) -> int:
    """``soulsai-client status``: print the settings, the spools and the server's health."""
    ns = build_status_parser().parse_args(list(argv))
    path = ns.config or userconfig.default_path()
    saved = userconfig.load(path)
    server, server_from = userconfig.resolve(flag=ns.server, env_name="SOULSAI_SERVER", saved=saved.server)
    token, token_from = userconfig.resolve(flag=None, env_name="SOULSAI_TOKEN", saved=saved.token)
    where = {"file": "in the config file", "keyring": "in the system keyring"}.get(saved.token_store, "")
    token_source = "SOULSAI_TOKEN" if token_from == "SOULSAI_TOKEN" else where
    root = ns.spool_dir or (Path(saved.spool_dir) if saved.spool_dir else default_spool_root())
    lines = [
        f"config file: {path}"
        + ("" if Path(path).exists() else " (none yet: save settings with run --save or the window)"),
        f"server:      {server or '(not set)'}" + (f"  [{server_from}]" if server_from else ""),
        f"token:       {userconfig.mask_token(token)}" + (f"  [{token_source}]" if token else ""),
        f"machine:     {saved.machine or socket.gethostname()}",
        f"spool:       {root}",
    ]
    rows = spool_summary(root)
    for name, count, size in rows:
        lines.append(f"  {name}: {count} chunk{'s' if count != 1 else ''} waiting ({size / 1e6:.1f} MB)")
    if not rows:
        lines.append("  nothing waiting")
    lines += pause_lines(userconfig.manners_config(saved))
    ok = True
    if server:
        ok, answer = server_health(server)
        lines.append(f"server health: {answer}")
    else:
        lines.append("server health: no server set")
    print("\n".join(lines), flush=True)
    return 0 if ok else 1
