"""``soulsai-client doctor``: check, line by line, whether this machine can take part, and how to fix it.

Each check prints one line, ``✓`` or ``✗`` with what was found, and for a failure what to do. The
exit code is 0 when every check passed and 1 otherwise. Nothing here raises a traceback at the
volunteer: every failure is a line.

The checks never touch the game by default: for a SoulsGym fight they look at the process, the
window and its size, the keyboard layouts, the install paths and the game executable's version
(client_app.gamewin), and import soulsgym's compiled module, none of which writes the game's memory.
Creating the env does (SoulsGym sets the character's stats, and closing the env kills it): it needs
``--create-env`` and is refused while the client plays. ``--report`` prints, as JSON, what a
volunteer sends back after a first real run (docs/soulsgym.md, "What only Windows can tell").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import platform as platform_module
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from client_app import __version__, gamewin
from client_app.envs import (
    NO_GAME_HINT,
    SETUP_PAGE,
    capture_module_problem,
    is_soulsgym,
    python_bits,
    soulsgym_python_problem,
)

GAME_PROCESS = gamewin.GAME_PROCESS
MIN_PYTHON = (3, 10)  # the client's own minimum (pyproject.toml)
DEFAULT_ENV = "SoulsGymIudex-v0"

DESCRIPTION = """\
Check whether this machine can play a SoulsAI campaign: Python and package versions, the operating
system and Dark Souls III (for SoulsGym fights: the process, the window and its size, the keyboard
layouts, the install paths, the game's version, soulsgym's compiled module), and, with --server and
--token, whether the server answers and accepts your token. Exit code 0 when all pass.

Nothing here touches the game unless you pass --create-env: creating a SoulsGym env writes the game's
memory and closing it kills your SoulsAI character. --report prints what to send us, as JSON.
"""


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    ok: bool
    what: str
    fix: str = ""


# ---------------------------------------------------------------------------------------------------
# The checks


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < MIN_PYTHON:
        return Check(False, f"Python {version}", "install Python 3.11 (3.10 at the oldest)")
    return Check(True, f"Python {version}")


def check_soulsgym_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    problem = soulsgym_python_problem()
    if problem:
        return Check(False, f"Python {version} ({python_bits()}-bit) cannot run soulsgym 1.1.0", problem)
    return Check(True, f"Python {version} ({python_bits()}-bit) is the one soulsgym 1.1.0 needs (3.11)")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_package(
    package: str, *, prefix: str | None = None, below: str | None = None, why: str = ""
) -> Check:
    """The package is installed (at ``prefix``.x, or below version ``below``)."""
    version = _version(package)
    pin = f"{package}=={prefix}.*" if prefix else (f"{package}<{below}" if below else package)
    if version is None:
        return Check(False, f"{package} is not installed", f'pip install "{pin}"')
    if prefix and not (version == prefix or version.startswith(prefix + ".")):
        return Check(False, f"{package} {version}", f'{why}: pip install "{pin}"'.lstrip(": "))
    if below:
        from client_app.protocol import parse_version

        if parse_version(version) >= parse_version(below):
            return Check(False, f"{package} {version}", f'{why}: pip install "{pin}"'.lstrip(": "))
    return Check(True, f"{package} {version}")


def check_os() -> Check:
    name = f"{platform.system() or sys.platform} {platform.release()}".strip()
    if sys.platform == "win32":
        return Check(True, f"{name}: SoulsGym runs on Windows")
    return Check(False, f"{name}: SoulsGym runs only on Windows", NO_GAME_HINT)


def game_running() -> bool | None:
    """Whether Dark Souls III runs on this machine: True, False, or None when it cannot tell."""
    try:
        if sys.platform == "win32":
            out = subprocess.run(
                ["tasklist", "/FI", f"IMAGENAME eq {GAME_PROCESS}", "/NH"],
                capture_output=True, text=True, timeout=10, check=False,
            ).stdout  # fmt: skip
            return GAME_PROCESS.lower() in out.lower()
        proc = Path("/proc")
        if proc.is_dir():
            # Linux, e.g. the game under Proton or Wine: the Windows exe shows in the command line.
            for entry in proc.iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if GAME_PROCESS.lower().encode() in cmdline.lower():
                    return True
            return False
        out = subprocess.run(
            ["ps", "-axo", "command"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        return GAME_PROCESS.lower() in out.lower()
    except (OSError, subprocess.SubprocessError):
        return None


def _game_pid(platform: gamewin.GamePlatform) -> int | None | bool:
    """The game's process id on Windows; elsewhere True/False/None from ``game_running`` (Proton, Wine)."""
    if getattr(platform, "windows", False):
        return platform.game_pid()
    return game_running()


def check_game(platform: gamewin.GamePlatform | None = None) -> Check:
    running = _game_pid(platform or gamewin.current())
    if running:
        return Check(True, f"Dark Souls III is running ({GAME_PROCESS})")
    if running is None and not getattr(platform or gamewin.current(), "windows", False):
        return Check(False, "could not tell whether Dark Souls III is running", "start the game if it is not")
    return Check(
        False,
        f"Dark Souls III is not running (no {GAME_PROCESS} process)",
        "start the game and load your SoulsAI knight save at the Cemetery of Ash bonfire",
    )


def check_window(platform: gamewin.GamePlatform) -> Check:
    window = platform.find_window()
    problem = gamewin.window_problem(window)
    if window is None:
        return Check(False, "the game window was not found", problem or "")
    size = f"{window.width}×{window.height}" + (f" at {window.scale:.0%} scaling" if window.scale else "")
    if problem:
        return Check(False, f"the game window is {size}", problem)
    return Check(True, f"the game window is {size}" + ("" if window.focused else " (not in front now)"))


def check_layouts(platform: gamewin.GamePlatform) -> Check:
    layouts = platform.keyboard_layouts()
    if not layouts:
        return Check(False, "could not read the keyboard layouts", "keep English (US) as the only layout")
    problem = gamewin.layout_problem(layouts)
    if problem:
        return Check(False, f"keyboard layouts: {', '.join(layouts)}", problem)
    return Check(True, f"keyboard layout: English (US) only ({layouts[0]})")


def install_paths() -> dict[str, str | None]:
    """The folders whose path SoulsGym hands to Windows as ASCII: Python's and soulsgym's."""
    paths: dict[str, str | None] = {"python": sys.executable, "prefix": sys.prefix, "soulsgym": None}
    try:
        dist = metadata.distribution("soulsgym")
        paths["soulsgym"] = str(dist.locate_file("soulsgym"))
    except metadata.PackageNotFoundError:
        pass
    return paths


def check_ascii_paths(paths: dict[str, str | None] | None = None) -> Check:
    paths = install_paths() if paths is None else paths
    for what, path in paths.items():
        problem = gamewin.ascii_problem(path, f"the {what} path")
        if problem:
            return Check(False, f"non-ASCII install path: {path}", problem)
    return Check(True, "install paths are ASCII-only")


def check_capture_module() -> Check:
    problem = capture_module_problem()
    if problem:
        return Check(False, "soulsgym's compiled screen-capture module does not import", problem)
    return Check(True, "soulsgym's compiled screen-capture module imports")


def check_game_version(platform: gamewin.GamePlatform) -> Check:
    exe = platform.game_executable()
    if exe is None:
        return Check(False, "could not find the game's executable", "start the game, then check again")
    version = platform.file_version(exe)
    problem = gamewin.version_problem(version)
    if version is None:
        return Check(
            False, f"could not read the version of {exe}", f"Dark Souls III must be {gamewin.GAME_VERSION}"
        )
    if problem:
        return Check(False, f"Dark Souls III {version} ({exe})", problem)
    return Check(True, f"Dark Souls III {version}")


def check_env_not_created(env_id: str, playing: bool) -> Check:
    """The line shown instead of creating a SoulsGym env: it would write the game's memory."""
    if playing:
        return Check(True, f"{env_id} not created: the client is playing (the game is in use)")
    return Check(
        True,
        f"{env_id} not created (it changes your character; --create-env to try, "
        "with the SoulsAI knight save loaded)",
    )


def check_env(env_id: str, env_kwargs: dict | None = None) -> Check:
    from client_app.envs import make_env
    from client_app.spaces import space_to_spec

    try:
        env = make_env(env_id, env_kwargs or {})
    except RuntimeError as exc:
        return Check(False, f"cannot create {env_id}", str(exc))
    except Exception as exc:  # a broken install: say what, not where
        return Check(False, f"cannot create {env_id}: {type(exc).__name__}: {exc}", "reinstall the client")
    try:
        obs = space_to_spec(env.observation_space)
        shape = obs.get("shape") or [obs.get("n")]
        return Check(True, f"{env_id} created: observations {shape}, {env.action_space.n} actions")
    except Exception as exc:
        return Check(False, f"{env_id} created, but its spaces are not supported: {exc}", "")
    finally:
        try:
            env.close()
        except Exception:  # closing a half-made game env must not fail the report
            pass


def check_server(server: str, timeout: float = 10.0) -> Check:
    from client_app.connection import probe_health

    try:
        probe = probe_health(server, timeout=timeout)
    except ValueError as exc:
        return Check(False, f"--server {server!r} is not a URL", str(exc))
    url, status = probe.url, probe.status
    if status is None:
        return Check(
            False,
            f"the server does not answer at {url} ({probe.reason})",
            "check --server and your internet connection",
        )
    if status >= 400:
        return Check(
            False,
            f"the server answered {url} with HTTP {status}",
            "try again later or tell the server's admins",
        )
    try:
        health = json.loads(probe.body)
    except ValueError:
        health = {}
    detail = f" ({health.get('status')})" if isinstance(health, dict) and health.get("status") else ""
    return Check(status == 200, f"the server answers at {url}{detail}")


async def _handshake(server: str, token: str, timeout: float) -> dict:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from client_app import protocol as P
    from client_app.connection import websocket_url

    async with connect(
        websocket_url(server),
        additional_headers={"Authorization": f"Bearer {token}"},
        user_agent_header=f"soulsai-client/{__version__} (doctor)",
        open_timeout=timeout,
        max_size=P.MAX_FRAME_BYTES,
    ) as ws:
        try:
            await ws.send(
                P.pack(P.hello(client_version=__version__, machine=f"{socket.gethostname()[:50]} (doctor)"))
            )
        except ConnectionClosed:
            pass  # the server may refuse the token before our hello; its error frame is still buffered
        return P.unpack(await asyncio.wait_for(ws.recv(), timeout))


def check_token(server: str, token: str, timeout: float = 10.0) -> tuple[Check, dict | None]:
    """Open the client websocket with the token; returns the check and the campaign when welcomed."""
    from client_app import protocol as P

    try:
        message = asyncio.run(_handshake(server, token, timeout))
    except Exception as exc:  # refused upgrade, closed socket, time-out: all "not accepted"
        return Check(False, f"the websocket handshake failed ({type(exc).__name__}: {exc})",
                     "check --server; if the server answers, tell its admins"), None  # fmt: skip
    if message.get("type") == P.WELCOME:
        campaign = message.get("campaign") or {}
        return Check(
            True, f"token accepted: campaign {campaign.get('name')!r} on {campaign.get('env_id')}"
        ), campaign
    if message.get("type") == P.ERROR:
        return Check(
            False,
            f"the server refused the token: {message.get('message') or message.get('code')}",
            "copy a fresh token from the campaign's page on the portal",
        ), None
    return Check(
        False, f"unexpected answer from the server: {message.get('type')!r}", "update the client"
    ), None


# ---------------------------------------------------------------------------------------------------
# The report


def soulsgym_checks(platform: gamewin.GamePlatform | None = None) -> list[Check]:
    """The SoulsGym lines, none of which touches the game: only Windows can make them all pass."""
    platform = platform or gamewin.current()
    checks = [check_soulsgym_python(), check_os()]
    soulsgym_version = _version("soulsgym")
    checks.append(
        Check(True, f"soulsgym {soulsgym_version}")
        if soulsgym_version
        else Check(
            False,
            "soulsgym is not installed",
            'on Windows with the 64-bit Python 3.11: pip install "soulsgym==1.1.0"',
        )
    )
    checks.append(check_ascii_paths())
    if getattr(platform, "windows", False) and soulsgym_version:
        checks.append(check_capture_module())
    checks.append(check_game(platform))
    if getattr(platform, "windows", False):
        checks += [check_window(platform), check_layouts(platform), check_game_version(platform)]
    return checks


def run_checks(
    env_id: str | None = None,
    server: str | None = None,
    token: str | None = None,
    *,
    create_env: bool = False,
    playing: bool = False,
    platform: gamewin.GamePlatform | None = None,
) -> list[Check]:
    """All checks, in the order printed. ``env_id`` None: the campaign's (with a token), else Iudex.

    A SoulsGym env is created only with ``create_env`` and never while ``playing`` (the window's
    "Check this machine" during a run): creating one writes the game's memory, closing it kills
    the character.
    """
    checks = [check_python()]
    for package in ("msgpack", "websockets", "safetensors"):
        checks.append(check_package(package))
    campaign = None
    if server:
        checks.append(check_server(server))
        if token:
            token_check, campaign = check_token(server, token)
            checks.append(token_check)
        else:
            checks.append(Check(False, "no token given", "pass --token (or set SOULSAI_TOKEN) to check it"))
    env_kwargs: dict = {}
    if env_id is None and campaign and campaign.get("env_id"):
        env_id, env_kwargs = campaign["env_id"], dict(campaign.get("env_kwargs") or {})
    env_id = env_id or DEFAULT_ENV
    # Only the checks that apply to the campaign's environment: soulsgym's pins and the game's lines
    # are for Dark Souls III campaigns; the arena and gymnasium's envs need neither.
    if is_soulsgym(env_id):
        checks.append(check_package("numpy", below="2", why="soulsgym needs numpy < 2"))
        checks.append(check_package("gymnasium", prefix="0.29", why="soulsgym 1.1.0 needs gymnasium 0.29"))
    else:
        checks += [check_package("numpy"), check_package("gymnasium")]
    if is_soulsgym(env_id):
        checks += soulsgym_checks(platform)
        if create_env and playing:
            checks.append(
                Check(False, f"{env_id} not created: the client is playing", "stop the run first, then check")
            )
        elif create_env:
            checks.append(check_env(env_id, env_kwargs))
        else:
            checks.append(check_env_not_created(env_id, playing))
    else:
        checks.append(check_env(env_id, env_kwargs))
    return checks


# ---------------------------------------------------------------------------------------------------
# --report: what a volunteer sends back (touches nothing)


def collect_report(
    env_id: str | None = None, platform: gamewin.GamePlatform | None = None, *, server: str | None = None
) -> dict:
    """Versions, paths, the window, the layouts and the checks, as a JSON-ready dict. Never the token."""
    platform = platform or gamewin.current()
    env_id = env_id or DEFAULT_ENV
    window = platform.find_window()
    exe = platform.game_executable()
    layouts = platform.keyboard_layouts()
    paths = install_paths()
    packages = {
        name: _version(name)
        for name in ("soulsai-client", "soulsgym", "numpy", "gymnasium", "pymem", "pywin32",
                     "opencv-python", "psutil", "msgpack", "websockets", "safetensors")
    }  # fmt: skip
    packages["soulsai-client"] = packages["soulsai-client"] or __version__
    checks = run_checks(env_id, platform=platform)
    return {
        "report": "soulsai-client doctor --report",
        "client_version": __version__,
        "env_id": env_id,
        "server": server,
        "python": {
            "version": ".".join(map(str, sys.version_info[:3])),
            "bits": python_bits(),
            "implementation": platform_module.python_implementation(),
            "executable": sys.executable,
            "prefix": sys.prefix,
            "soulsgym_problem": soulsgym_python_problem(),
        },
        "system": {
            "platform": sys.platform,
            "os": f"{platform_module.system()} {platform_module.release()}".strip(),
            "version": platform_module.version(),
            "machine": platform_module.machine(),
        },
        "packages": packages,
        "paths": {**paths, "ascii_only": all((p or "").isascii() for p in paths.values())},
        "capture_module": (capture_module_problem() or "imports")
        if getattr(platform, "windows", False) and packages["soulsgym"]
        else None,
        "game": {
            "pid": platform.game_pid(),
            "executable": str(exe) if exe else None,
            "executable_version": platform.file_version(exe) if exe else None,
            "required_version": gamewin.GAME_VERSION,
        },
        "window": None
        if window is None
        else {
            "width": window.width,
            "height": window.height,
            "minimised": window.minimised,
            "focused": window.focused,
            "scale": window.scale,
            "required": list(gamewin.REQUIRED_CLIENT_SIZE),
            "problem": gamewin.window_problem(window),
        },
        "keyboard_layouts": layouts,
        "layout_problem": gamewin.layout_problem(layouts),
        "setup": SETUP_PAGE,
        "checks": [{"ok": c.ok, "what": c.what, "fix": c.fix} for c in checks],
    }


def format_report_text(report: dict) -> str:
    """The report as ``key: value`` lines, for a volunteer who pastes it into a message."""
    lines: list[str] = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(value):
                walk(f"{prefix}[{i}]", item)
        else:
            lines.append(f"{prefix}: {json.dumps(value, ensure_ascii=False)}")

    walk("", report)
    return "\n".join(lines)


def _marks() -> tuple[str, str]:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
        return "✓", "✗"
    except (UnicodeEncodeError, LookupError):  # an old Windows console code page
        return "[ok]", "[!!]"


def format_report(checks: Sequence[Check]) -> str:
    yes, no = _marks()
    lines = []
    for check in checks:
        lines.append(f"{yes if check.ok else no} {check.what}")
        if not check.ok and check.fix:
            lines.append(f"    fix: {check.fix}")
    failed = sum(not c.ok for c in checks)
    lines.append(
        "all checks passed: this machine is ready"
        if not failed
        else f"{failed} check(s) failed: see the fixes above"
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soulsai-client doctor",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes:\n  0  every check passed (--report: the report was printed)\n"
        "  1  at least one check failed (the report says how to fix it)",
    )
    parser.add_argument(
        "--env",
        metavar="ID",
        help=f"the environment to check, e.g. {DEFAULT_ENV} or soulsai/IudexArena-v0 "
        f"(default: the campaign's with --token, else {DEFAULT_ENV})",
    )
    parser.add_argument("--server", metavar="URL", default=os.environ.get("SOULSAI_SERVER"),
                        help="the portal's address, to check it answers (env SOULSAI_SERVER)")  # fmt: skip
    parser.add_argument("--token", metavar="TOKEN", default=os.environ.get("SOULSAI_TOKEN"),
                        help="your machine token, to check the server accepts it (env SOULSAI_TOKEN)")  # fmt: skip
    parser.add_argument(
        "--create-env",
        action="store_true",
        help="also create the environment: for Dark Souls III this writes the game's memory (your "
        "SoulsAI knight's stats) and kills the character when it closes; refused while the client plays",
    )
    parser.add_argument(
        "--report",
        nargs="?",
        const="json",
        choices=("json", "text"),
        help="print what to send the SoulsAI team after a first real run (versions, paths, the window's "
        "size, the keyboard layouts, the checks), as JSON (default) or text; touches nothing",
    )
    parser.add_argument("--output", metavar="FILE", help="with --report: also write it to FILE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``soulsai-client doctor``: print the report; 0 when every check passed, else 1."""
    ns = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if ns.report:
        report = collect_report(ns.env, server=ns.server)
        text = (
            json.dumps(report, indent=2, ensure_ascii=False)
            if ns.report == "json"
            else format_report_text(report)
        )
        if ns.output:
            try:
                Path(ns.output).write_text(text + "\n", encoding="utf-8")
            except OSError as exc:
                print(f"error: cannot write {ns.output}: {exc}", file=sys.stderr)
                return 1
        print(text, flush=True)
        return 0
    try:
        checks = run_checks(ns.env, ns.server, (ns.token or "").strip() or None, create_env=ns.create_env)
    except KeyboardInterrupt:
        return 1
    print(format_report(checks), flush=True)
    return 0 if all(c.ok for c in checks) else 1
