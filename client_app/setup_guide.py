"""The volunteer's Dark Souls III set-up, written once: the download page and docs/client.md show this.

SoulsGym 1.1.0 plays the game by pressing keys and writing its memory, so the game must be set up
exactly as its own setup guide says (docs/getting_started/setup.rst at its v1.1.0 tag): offline,
a fresh knight save, SoulsGym's key bindings, windowed 800×450. This module holds those steps in
the order that works, as plain text with two kinds of markup (``**bold**`` and ```code```), and
renders them as Markdown (``markdown()``, the block between the markers in docs/client.md) and as
HTML (``html()``, the download page). ``python -m client_app.setup_guide --write`` rewrites the
docs block; tests/client_app/test_setup_guide.py fails when either copy differs from this one.
"""

from __future__ import annotations

import html as _html
import re
import sys
from pathlib import Path

from client_app import __version__
from client_app.gamewin import GAME_VERSION, REQUIRED_CLIENT_SIZE, US_LAYOUT

WIDTH, HEIGHT = REQUIRED_CLIENT_SIZE
UNSET = "---"  # SoulsGym's mark for a binding that must be explicitly unbound

#: SoulsGym 1.1.0's key table (setup.rst, "Key settings"), row for row: (action, keyboard, mouse).
#: "---" must be unset; an empty cell can be anything. keys.yaml's bindings are the same keys.
KEY_TABLE: tuple[tuple[str, str, str], ...] = (
    ("Run (forward)", "W", ""),
    ("Run (backward)", "S", ""),
    ("Run (left)", "A", ""),
    ("Run (right)", "D", ""),
    ("Dash/Backstep/Roll", "Space", ""),
    ("Jump", "Space", ""),
    ("Tilt camera up", "J", ""),
    ("Tilt camera down", "K", ""),
    ("Tilt camera left", "O", ""),
    ("Tilt camera right", "P", ""),
    ("Camera reset / Lock-on", "Q", ""),
    ("Attack (right hand)", "L", UNSET),
    ("Strong attack (right hand)", "H", ""),
    ("Attack (left hand)", UNSET, ""),
    ("Strong attack (left hand)", "M", ""),
    ("Use item", "", ""),
    ("Interact", "E", ""),
    ("Two-hand weapon", "", ""),
)

KEY_TABLE_NOTE = (
    f"{UNSET} means: unbind it (no key, no mouse button). The mouse attack in particular must be "
    "unbound, or a click on the game window attacks. Empty cells can be anything."
)

TITLE = "Set up Dark Souls III for SoulsGym"

INTRO = (
    "Boss campaigns drive the real game through SoulsGym 1.1.0, on Windows only. The client presses "
    "keys and writes the game's memory, so set it up exactly like this, in this order. "
    "`soulsai-client doctor` checks what it can without touching the game."
)

#: (heading, text, with ``**bold**`` and ```code``` only). The key table follows the step "Key bindings".
STEPS: tuple[tuple[str, str], ...] = (
    (
        "Python 3.11, 64-bit, in an ASCII-only folder",
        "Install the 64-bit Python 3.11 (3.11.2 or a later 3.11) from python.org, into a folder whose "
        "path has only plain letters, digits and punctuation, e.g. `C:\\Python311`, and create the "
        "client's virtual environment in such a folder too. Not 3.12 or newer: SoulsGym's compiled "
        "screen-capture module (`window_capture.pyd`) is linked against Python 3.11 and does not load "
        "on any other version. Not a folder with accents or other non-ASCII characters (as in many "
        "user names): SoulsGym hands the path of its speed-hack DLL to the game as ASCII.",
    ),
    (
        f"Game version: Dark Souls III {GAME_VERSION}",
        f"Dark Souls III from Steam, updated to version {GAME_VERSION}, with all DLCs and without mods: "
        "SoulsGym reads and writes the game's memory at the addresses of that version.",
    ),
    (
        "Offline mode",
        "In the game's main menu: **System → Network → Launch setting: Play Offline**, then restart "
        "the game. Online play with a memory-writing tool risks a ban.",
    ),
    (
        "A fresh offline knight save",
        "Back up your saves (`%APPDATA%\\DarkSoulsIII\\`), then start a **new game** with the "
        "**Knight** class, offline, used only for SoulsAI. Do not change the character afterwards. "
        "SoulsGym overwrites its stats and equipment, moves it to the Iudex Gundyr fight, and kills it "
        "when the environment closes (each time the client stops): never use a character you care "
        "about. Load into the game with it and rest at the **Cemetery of Ash** bonfire. Delete this "
        "save before you play online again.",
    ),
    (
        f"Windowed, {WIDTH}×{HEIGHT}, at 100% display scaling",
        f"**Graphics → Screen mode: Windowed, Resolution: {WIDTH}x{HEIGHT}.** This is the required size, "
        f"not a minimum: SoulsGym crops its screen capture to exactly {WIDTH}×{HEIGHT} and refuses "
        "other sizes. Set Windows' display scaling to **100%** (Settings → System → Display → Scale): "
        "any other scaling changes the window's size in pixels.",
    ),
    (
        "Key bindings: SoulsGym's table",
        "Not the game's defaults: in the game, **System → Input device → Key bindings**, set every key "
        "of the table below (SoulsGym's own table, copied). Unplug gamepads.",
    ),
    (
        "English (US) as the only keyboard layout",
        "SoulsGym presses keys by their key codes: with any other layout, or a second layout installed "
        "next to English (US), keys land on the wrong actions (SoulsGym issues #47 and #49). In "
        "**Settings → Time & language → Language & region**, keep only **English (United States)** "
        f"with the **US** keyboard (layout {US_LAYOUT}); remove every other keyboard.",
    ),
    (
        "Antivirus",
        "SoulsGym changes the game's speed by injecting its speed-hack DLL (`SpeedHackDLL.dll`, in "
        "the `soulsgym` package's folder) into the game. Antivirus programs may block or quarantine "
        "it: if the client reports that the speed hack failed, allow that folder in your antivirus.",
    ),
    (
        "While it plays",
        "Start the game, load the knight at the Cemetery of Ash, run `soulsai-client doctor`, then "
        "press **Start**. Leave the game window in front and do not touch the keyboard or the mouse: "
        "the client keeps the game focused, and its own buttons never take the keyboard focus. "
        "`soulsai-client doctor --report` collects what to send us if something goes wrong.",
    ),
)
KEY_TABLE_AFTER = "Key bindings: SoulsGym's table"

WHEEL = f"soulsai_client-{__version__}-py3-none-any.whl"  # the docs' name; the download page has the real one

#: Installing on Windows, in the order that works as written: Python (with Tk) before anything uses it,
#: the commands run in the folder the wheel was saved in, no virtual environment to activate (PowerShell
#: refuses activation scripts by default) unless the reader opts in. (heading, text, commands); ``{wheel}``
#: is the wheel's file name.
INSTALL_STEPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Python 3.11, 64-bit, with Tcl/Tk",
        "Download the Windows installer of Python 3.11 (64-bit) from python.org/downloads/windows. In the "
        "installer tick **Add python.exe to PATH**, choose **Customize installation**, keep **tcl/tk and "
        "IDLE** ticked (the client's window needs Tcl/Tk) and install into a folder whose path is plain "
        "ASCII, e.g. `C:\\Python311`. Dark Souls III fights need exactly this Python; the other "
        "campaigns run on any Python from 3.10.",
        (),
    ),
    (
        "The client, saved in Downloads",
        "On the portal's **Download** page, download `{wheel}` (the page shows its sha256). Your browser "
        "saves it in your **Downloads** folder.",
        (),
    ),
    (
        "Install it from PowerShell, in that folder",
        "Open **PowerShell** (Start menu, type `powershell`), go to the folder the wheel was saved in, and "
        "install it with the Python 3.11 launcher. No virtual environment, so there is no activation "
        "script for PowerShell's execution policy to refuse. `[keyring]` keeps your token in the Windows "
        "Credential Manager; add `box2d` (`[keyring,box2d]`) for LunarLander campaigns.",
        (
            "cd $HOME\\Downloads",
            "py -3.11 -m pip install --upgrade pip",
            'py -3.11 -m pip install ".\\{wheel}[keyring]"',
        ),
    ),
    (
        "Start the window",
        "Type `soulsai-client-gui` in PowerShell. If Windows says the command is not found, pip warned "
        "that its `Scripts` folder is not on PATH: the same window starts with `py -3.11 -m client_app gui`. "
        "Paste the server address and your token, press **Check this machine**, then **Start**.",
        ("soulsai-client-gui",),
    ),
    (
        "A virtual environment, if you want one",
        "Only if you prefer the client in its own environment: PowerShell refuses the activation script "
        "until you allow local scripts for your account, once.",
        (
            "py -3.11 -m venv soulsai",
            "Set-ExecutionPolicy -Scope CurrentUser -ExecutionPolicy RemoteSigned",
            ".\\soulsai\\Scripts\\Activate.ps1",
            'pip install ".\\{wheel}[keyring]"',
        ),
    ),
)

INSTALL_BEGIN = (
    "<!-- install-guide:begin (generated by python -m client_app.setup_guide --write; do not edit) -->"
)
INSTALL_END = "<!-- install-guide:end -->"

BEGIN = "<!-- setup-guide:begin (generated by python -m client_app.setup_guide --write; do not edit) -->"
END = "<!-- setup-guide:end -->"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "client.md"


def plain(text: str) -> str:
    """The text without its markup: what a reader sees on either page."""
    return text.replace("**", "").replace("`", "")


def _inline_html(text: str) -> str:
    escaped = _html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def markdown() -> str:
    """The set-up as Markdown (the block in docs/client.md)."""
    lines = [INTRO, ""]
    for number, (heading, text) in enumerate(STEPS, 1):
        lines.append(f"{number}. **{heading}.** {text}")
        if heading == KEY_TABLE_AFTER:
            lines += ["", "   | Type | Keyboard | Mouse |", "   | --- | --- | --- |"]
            lines += [f"   | {a} | {k} | {m} |" for a, k, m in KEY_TABLE]
            lines += ["", f"   {KEY_TABLE_NOTE}"]
    return "\n".join(lines) + "\n"


def html() -> str:
    """The set-up as an HTML fragment (the download page's Dark Souls III section)."""
    parts = [f'<p class="setup-intro">{_inline_html(INTRO)}</p>', '<ol class="steps setup-guide">']
    for heading, text in STEPS:
        item = f"<li><strong>{_inline_html(heading)}.</strong> {_inline_html(text)}"
        if heading == KEY_TABLE_AFTER:
            rows = "".join(
                f"<tr><td>{_html.escape(a)}</td><td>{_html.escape(k)}</td><td>{_html.escape(m)}</td></tr>"
                for a, k, m in KEY_TABLE
            )
            item += (
                '<div class="table-wrap"><table class="table key-table"><thead><tr><th>Type</th><th>Keyboard</th>'
                f"<th>Mouse</th></tr></thead><tbody>{rows}</tbody></table></div>"
                f'<p class="small muted">{_inline_html(KEY_TABLE_NOTE)}</p>'
            )
        parts.append(item + "</li>")
    parts.append("</ol>")
    return "\n".join(parts)


def install_markdown(wheel: str = WHEEL) -> str:
    """The Windows install steps as Markdown (their block in docs/client.md)."""
    lines = []
    for number, (heading, text, commands) in enumerate(INSTALL_STEPS, 1):
        lines.append(f"{number}. **{heading}.** {text.format(wheel=wheel)}")
        if commands:
            lines += [
                "",
                "   ```powershell",
                *(f"   {c.format(wheel=wheel)}" for c in commands),
                "   ```",
                "",
            ]
    return "\n".join(lines).rstrip("\n") + "\n"


def install_html(wheel: str = WHEEL) -> str:
    """The Windows install steps as an HTML fragment (the download page's first section)."""
    parts = ['<ol class="steps install-guide">']
    for heading, text, commands in INSTALL_STEPS:
        item = f"<li><strong>{_inline_html(heading)}.</strong> {_inline_html(text.format(wheel=wheel))}"
        if commands:
            code = "\n".join(_html.escape(c.format(wheel=wheel), quote=False) for c in commands)
            item += f'<pre class="code"><code>{code}</code></pre>'
        parts.append(item + "</li>")
    parts.append("</ol>")
    return "\n".join(parts)


def docs_block(text: str, begin: str = BEGIN, end: str = END) -> str | None:
    """The generated block inside ``text`` (docs/client.md), or None without the markers."""
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def write_docs(path: Path = DOCS) -> bool:
    """Rewrite the generated blocks in docs/client.md (the install steps, the set-up); True when changed."""
    text = path.read_text(encoding="utf-8")
    new = text
    for begin, end, body in ((INSTALL_BEGIN, INSTALL_END, install_markdown()), (BEGIN, END, markdown())):
        if docs_block(new, begin, end) is None:
            raise SystemExit(f"{path} has no {begin!r} … {end!r} block")
        head, rest = new.split(begin, 1)
        new = f"{head}{begin}\n{body}{end}{rest.split(end, 1)[1]}"
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m client_app.setup_guide [--write | --html]``: print the Markdown, or rewrite the docs."""
    args = sys.argv[1:] if argv is None else argv
    if "--write" in args:
        print("docs/client.md " + ("updated" if write_docs() else "already up to date"))
    elif "--html" in args:
        print(html())
    else:
        print(markdown(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
