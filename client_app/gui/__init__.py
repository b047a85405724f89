"""The SoulsAI client's window (Tkinter and ttk only, so it needs nothing beyond Python).

``soulsai-client-gui``, ``soulsai-client gui`` and ``python -m client_app gui`` open it. The window
(``ClientWindow``) only draws: ``client_app.controller`` runs the client in background threads and
the window polls it a few times a second, so neither the network nor the game ever blocks it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from client_app import __version__, userconfig

DESCRIPTION = """\
Open the SoulsAI client's window: paste the server address and your machine token once, check this
machine, then start, pause, resume and stop contributing while the window shows what the client does.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soulsai-client gui",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="the command line does the same without a window: soulsai-client --help",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help=f"the config file the window reads and saves (default: {userconfig.default_path()})",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``soulsai-client-gui``; returns the exit code once the window is closed."""
    ns = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    # Started without a console (pythonw on Windows) there is no stdout or stderr to write to.
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    try:
        import tkinter as tk

        root = tk.Tk()
    except (ImportError, RuntimeError) as exc:
        print(
            f"error: the window needs Tkinter ({exc}). On Windows, install Python from python.org with "
            '"tcl/tk and IDLE" ticked; or use the command line: soulsai-client --help',
            file=sys.stderr,
        )
        return 2
    except Exception as exc:  # tkinter.TclError: no display
        print(
            f"error: cannot open a window ({exc}); use the command line: soulsai-client --help",
            file=sys.stderr,
        )
        return 2
    logging.getLogger("websockets").setLevel(logging.ERROR)
    from client_app.gui.window import ClientWindow

    window = ClientWindow(root, config_path=ns.config)
    try:
        root.mainloop()
    except KeyboardInterrupt:
        window.controller.stop()
        window.controller.wait(15)
    return window.exit_code


__all__ = ["main"]
