"""``soulsai-client`` (also ``python -m client_app``): the volunteer's command line.

``run`` is the only subcommand and the default, so ``soulsai-client --server URL --token T`` and
``soulsai-client run --server URL --token T`` are the same. See docs/client.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from client_app import __version__
from client_app.connection import websocket_url
from client_app.runner import EXIT_FAILED, EXIT_FATAL, RunConfig, Runner
from client_app.spool import default_spool_root

DESCRIPTION = """\
Play a SoulsAI campaign on this machine and stream the experience to the server.

The client connects to the portal with your machine token (from the campaign's page), plays the
campaign's environment with the campaign's current model (random moves until the first model is
published), and sends what it plays in chunks. Unsent chunks wait on disk and are resent after a
restart or a lost connection. Press Ctrl-C to stop: nothing that was played is lost.
"""

EPILOG = f"""\
environment variables:
  SOULSAI_SERVER   default for --server
  SOULSAI_TOKEN    default for --token (safer than --token: other users cannot see it in ps)

exit codes:
  0  finished: --max-steps reached, Ctrl-C, or the campaign was stopped
  1  unexpected error (a bug: please report it with the output)
  2  cannot take part: bad options, token refused, campaign closed, client too old,
     or this machine cannot run the campaign's environment

spool: {default_spool_root()}/<campaign>-<token prefix> unless --spool-dir is given.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soulsai-client",
        usage="%(prog)s [run] --server URL --token TOKEN [options]",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("SOULSAI_SERVER"),
        help="the portal's address, e.g. https://soulsai.example.org (env SOULSAI_SERVER)",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        default=os.environ.get("SOULSAI_TOKEN"),
        help="your machine token from the campaign's page on the portal (env SOULSAI_TOKEN)",
    )
    parser.add_argument(
        "--name",
        metavar="NAME",
        default=socket.gethostname(),
        help="this machine's name as the server shows it (default: the host name)",
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
        help="play at most R environment steps per second; 0 = as fast as possible (default: 0)",
    )
    parser.add_argument("--seed", metavar="S", type=int, help="seed for the environment and the exploration")
    parser.add_argument("--quiet", action="store_true", help="print errors only, no progress lines")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


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


def parse_args(argv: Sequence[str] | None = None) -> RunConfig:
    """Turn the command line into a RunConfig; exits with code 2 and a message on bad input."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run":
        args = args[1:]
    parser = build_parser()
    ns = parser.parse_args(args)
    if not ns.server:
        parser.error(
            "--server is required (or set SOULSAI_SERVER), e.g. --server https://soulsai.example.org"
        )
    if not ns.token:
        parser.error(
            "--token is required (or set SOULSAI_TOKEN): copy it from the campaign's page on the portal"
        )
    try:
        websocket_url(ns.server)
    except ValueError as exc:
        parser.error(str(exc))
    return RunConfig(
        server_url=ns.server,
        token=ns.token.strip(),
        machine=(ns.name or "").strip()[:60] or "unnamed",
        spool_dir=ns.spool_dir,
        max_steps=ns.max_steps,
        max_sps=ns.max_sps,
        seed=ns.seed,
        quiet=ns.quiet,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``soulsai-client`` and ``python -m client_app``; returns the exit code."""
    config = parse_args(argv)
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
        return Runner(config).run()
    except OSError as exc:  # e.g. the spool directory cannot be written
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FATAL
    except Exception:
        logging.getLogger(__name__).exception("the client crashed; please report this with the output above")
        return EXIT_FAILED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
