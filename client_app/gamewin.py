"""The client's own reach into Windows and the running Dark Souls III: the one per-OS module.

SoulsGym drives the game; the client needs a few things around it that SoulsGym does not do or does
invasively: find the game's process and window without touching its memory (the doctor), read the
window's client size, the display scaling, the installed keyboard layouts and the game executable's
version, give the game window the keyboard focus (the agent's key presses go to the focused window),
restore a minimised game, and unpause a game a killed client left paused (SoulsGym pauses the game
through its speed hack's named pipe, at speed 0).

Everything Windows-specific sits behind ``GamePlatform``: ``WindowsGame`` calls the Win32 API through
ctypes (no pywin32 needed for these), ``NoGame`` is what every other system gets (nothing found,
nothing done). Tests install a stand-in with ``use()``, the same way SoulsGym's own Windows calls are
reached only through its ``soulsgym.core`` modules, which the client replaces by name where it must
(``InputGate`` and ``drop_stale_connections``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from client_app.manners.idle import OWN_INPUT, tick_count

log = logging.getLogger(__name__)

GAME_PROCESS = "DarkSoulsIII.exe"
WINDOW_TITLE = "DARK SOULS III"  # SoulsGym's GameWindow finds the window by this title
REQUIRED_CLIENT_SIZE = (800, 450)  # SoulsGym 1.1.0 crops its capture to exactly this
#: SoulsGym's capture tolerates a little border: it raises past 10 px wider or 50 px taller.
SIZE_TOLERANCE = (10, 50)
GAME_VERSION = "1.15.2"  # the Dark Souls III version SoulsGym 1.1.0's memory addresses are for
US_LAYOUT = "00000409"  # the keyboard layout id (KLID) of English (US)
SPEEDHACK_PIPE = r"\\.\pipe\SoulsGymSpeedHackPipe"  # soulsgym.core.speedhack's pipe name


@dataclass(frozen=True)
class GameWindow:
    """What the client sees of the game window (sizes in physical pixels)."""

    handle: int
    width: int  # the client area: the picture the game draws, without title bar and borders
    height: int
    minimised: bool
    focused: bool
    scale: float | None = None  # the display scaling of the window's monitor (1.0 = 100%), if known


class GamePlatform(Protocol):
    """The Windows calls the client makes itself. None/False where a system cannot tell or do."""

    windows: bool  # whether SoulsGym can run here at all

    def game_pid(self) -> int | None: ...
    def game_executable(self) -> Path | None: ...
    def file_version(self, path: Path) -> str | None: ...
    def find_window(self) -> GameWindow | None: ...
    def focus_window(self) -> bool: ...
    def restore_window(self) -> bool: ...
    def keyboard_layouts(self) -> list[str]: ...
    def set_game_speed(self, speed: float) -> bool: ...


class NoGame:
    """Any system but Windows: no game, no window, no layouts to read."""

    windows = False

    def game_pid(self) -> int | None:
        return None

    def game_executable(self) -> Path | None:
        return None

    def file_version(self, path: Path) -> str | None:
        return None

    def find_window(self) -> GameWindow | None:
        return None

    def focus_window(self) -> bool:
        return False

    def restore_window(self) -> bool:
        return False

    def keyboard_layouts(self) -> list[str]:
        return []

    def set_game_speed(self, speed: float) -> bool:
        return False


class WindowsGame:  # pragma: no cover - runs only on Windows (docs/soulsgym.md, "Only on Windows")
    """The Win32 calls, through ctypes. Reads only: nothing here writes the game's memory."""

    windows = True
    SW_RESTORE = 9
    PROCESS_QUERY_LIMITED_INFORMATION = 0x1000

    def __init__(self) -> None:
        import ctypes
        from ctypes import wintypes

        self.ctypes, self.wintypes = ctypes, wintypes
        self.user32 = ctypes.WinDLL("user32", use_last_error=True)
        self.kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        self.version = ctypes.WinDLL("version", use_last_error=True)

    def game_pid(self) -> int | None:
        try:
            out = subprocess.run(
                ["tasklist", "/FI", f"IMAGENAME eq {GAME_PROCESS}", "/FO", "CSV", "/NH"],
                capture_output=True, text=True, timeout=10, check=False,
            ).stdout  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        for line in out.splitlines():
            fields = [f.strip('"') for f in line.split('","')]
            if len(fields) > 1 and fields[0].lower() == GAME_PROCESS.lower() and fields[1].isdigit():
                return int(fields[1])
        return None

    def game_executable(self) -> Path | None:
        pid = self.game_pid()
        if pid is None:
            return None
        handle = self.kernel32.OpenProcess(self.PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:
            return None
        try:
            size = self.wintypes.DWORD(32768)
            buffer = self.ctypes.create_unicode_buffer(size.value)
            if not self.kernel32.QueryFullProcessImageNameW(handle, 0, buffer, self.ctypes.byref(size)):
                return None
            return Path(buffer.value)
        finally:
            self.kernel32.CloseHandle(handle)

    def file_version(self, path: Path) -> str | None:
        ctypes = self.ctypes
        size = self.version.GetFileVersionInfoSizeW(str(path), None)
        if not size:
            return None
        data = ctypes.create_string_buffer(size)
        if not self.version.GetFileVersionInfoW(str(path), 0, size, data):
            return None
        pointer, length = ctypes.c_void_p(), ctypes.c_uint()
        if not self.version.VerQueryValueW(data, "\\", ctypes.byref(pointer), ctypes.byref(length)):
            return None
        fixed = ctypes.string_at(pointer.value, length.value)
        ms, ls = struct.unpack_from("<II", fixed, 8)  # dwFileVersionMS, dwFileVersionLS
        return f"{ms >> 16}.{ms & 0xFFFF}.{ls >> 16}.{ls & 0xFFFF}"

    def _handle(self) -> int:
        return int(self.user32.FindWindowW(None, WINDOW_TITLE) or 0)

    @contextlib.contextmanager
    def _physical_pixels(self) -> Iterator[None]:
        """Per-monitor DPI awareness for this thread, so that sizes are the game's real pixels."""
        previous = None
        with contextlib.suppress(AttributeError, OSError):  # Windows 10 1607+
            self.user32.SetThreadDpiAwarenessContext.restype = self.ctypes.c_void_p
            previous = self.user32.SetThreadDpiAwarenessContext(
                self.ctypes.c_void_p(-4)
            )  # PER_MONITOR_AWARE_V2
        try:
            yield
        finally:
            if previous:
                self.user32.SetThreadDpiAwarenessContext(self.ctypes.c_void_p(previous))

    def find_window(self) -> GameWindow | None:
        with self._physical_pixels():
            return self._find_window()

    def _find_window(self) -> GameWindow | None:
        hwnd = self._handle()
        if not hwnd:
            return None
        rect = self.wintypes.RECT()
        self.user32.GetClientRect(hwnd, self.ctypes.byref(rect))
        scale = None
        with contextlib.suppress(AttributeError, OSError):  # GetDpiForWindow: Windows 10 1607+
            dpi = self.user32.GetDpiForWindow(hwnd)
            scale = dpi / 96 if dpi else None
        return GameWindow(
            handle=hwnd,
            width=rect.right - rect.left,
            height=rect.bottom - rect.top,
            minimised=bool(self.user32.IsIconic(hwnd)),
            focused=int(self.user32.GetForegroundWindow() or 0) == hwnd,
            scale=scale,
        )

    def focus_window(self) -> bool:
        hwnd = self._handle()
        if not hwnd:
            return False
        if self.user32.IsIconic(hwnd):
            self.user32.ShowWindow(hwnd, self.SW_RESTORE)
        # Unlike SoulsGym's focus_application, no mouse click: a click would land in the game.
        self.user32.SetForegroundWindow(hwnd)
        return int(self.user32.GetForegroundWindow() or 0) == hwnd

    def restore_window(self) -> bool:
        hwnd = self._handle()
        if not hwnd:
            return False
        if self.user32.IsIconic(hwnd):
            self.user32.ShowWindow(hwnd, self.SW_RESTORE)
        return not self.user32.IsIconic(hwnd)

    def keyboard_layouts(self) -> list[str]:
        n = self.user32.GetKeyboardLayoutList(0, None)
        handles = (self.ctypes.c_void_p * max(n, 1))()
        n = self.user32.GetKeyboardLayoutList(n, handles)
        layouts = []
        for handle in handles[:n]:
            value = int(handle or 0)
            # The low word is the language; a high word equal to it is that language's default layout.
            layouts.append(f"{(value >> 16) & 0xFFFF:04X}{value & 0xFFFF:04X}"
                           if (value >> 16) & 0xFFFF != value & 0xFFFF else f"0000{value & 0xFFFF:04X}")  # fmt: skip
        return layouts

    def set_game_speed(self, speed: float) -> bool:
        # The speed hack's pipe exists only while its DLL is injected (a game SoulsGym has touched).
        try:
            with open(SPEEDHACK_PIPE, "wb", buffering=0) as pipe:
                pipe.write(struct.pack("f", float(speed)))
            return True
        except OSError:
            return False


_platform: GamePlatform | None = None
_platform_lock = threading.Lock()


def current() -> GamePlatform:
    """This system's ``GamePlatform`` (a stand-in while ``use()`` is in effect)."""
    global _platform
    with _platform_lock:
        if _platform is None:
            _platform = WindowsGame() if sys.platform == "win32" else NoGame()
        return _platform


@contextlib.contextmanager
def use(platform: GamePlatform) -> Iterator[GamePlatform]:
    """Let ``current()`` return ``platform`` (a test's stand-in) inside the block."""
    global _platform
    with _platform_lock:
        previous, _platform = _platform, platform
    try:
        yield platform
    finally:
        with _platform_lock:
            _platform = previous


# ---------------------------------------------------------------------------------------------------
# Checks on what the platform reports (pure: tested with stand-ins)


def window_problem(window: GameWindow | None) -> str | None:
    """Why SoulsGym cannot use this window, or None. Sizes are SoulsGym 1.1.0's: 800×450, not more."""
    if window is None:
        return f"no window titled {WINDOW_TITLE!r}: start the game (windowed) and load into your save"
    if window.minimised:
        return "the game window is minimised: restore it and leave it in front"
    width, height = REQUIRED_CLIENT_SIZE
    if window.scale is not None and abs(window.scale - 1.0) > 0.01:
        return (
            f"display scaling is {window.scale:.0%}: set it to 100% (Windows Settings → Display → Scale), "
            f"then the game's resolution to {width}×{height}"
        )
    over_w, over_h = window.width - width, window.height - height
    if over_w < 0 or over_h < 0 or over_w > SIZE_TOLERANCE[0] or over_h > SIZE_TOLERANCE[1]:
        return (
            f"the game window shows {window.width}×{window.height}; SoulsGym needs exactly {width}×{height}: "
            f"Graphics → Screen mode Windowed, Resolution {width}x{height}"
        )
    return None


def layout_problem(layouts: list[str]) -> str | None:
    """Why these keyboard layouts would mis-map SoulsGym's keys, or None (only English (US) is safe)."""
    if not layouts:
        return None  # not known: the report says so
    others = [k for k in layouts if k.upper() != US_LAYOUT]
    if others or len(layouts) != 1:
        return (
            f"keyboard layouts {', '.join(layouts)}: SoulsGym needs English (US) ({US_LAYOUT}) as the only "
            "layout (Windows Settings → Time & language → Language: remove the others)"
        )
    return None


def ascii_problem(path: str | os.PathLike[str] | None, what: str) -> str | None:
    """Why a non-ASCII path breaks SoulsGym (its speed-hack DLL path is written as ASCII), or None."""
    if path is None:
        return None
    text = str(path)
    if text.isascii():
        return None
    return f"{what} {text!r} has non-ASCII characters: install Python into a folder such as C:\\Python311"


def version_problem(version: str | None) -> str | None:
    """Whether the game executable is the version SoulsGym's addresses are for, or None."""
    if version is None:
        return None
    parts = version.split(".")
    # The exe's file version reads 1.15.2.0 for the game's 1.15.2 (or the app's own numbering).
    if ".".join(parts[:3]) == GAME_VERSION:
        return None
    return f"Dark Souls III {version}: SoulsGym 1.1.0 needs {GAME_VERSION} (update the game through Steam)"


# ---------------------------------------------------------------------------------------------------
# Keeping the game in front while the agent plays


class FocusKeeper:
    """Gives the game window the keyboard focus again when it lost it, at most every ``every_s``.

    The agent's key presses go to whatever window has the focus: with the client's own window in
    front, its roll key (Space) would press a button. ``tick()`` is cheap (one window lookup) and
    called between steps; it says once, through ``on_lost``, when the focus cannot be taken back.
    """

    def __init__(self, platform: GamePlatform | None = None, *, every_s: float = 0.5, on_lost=None):
        self.platform = platform
        self.every_s = every_s
        self.on_lost = on_lost
        self.refocused = 0
        self._next = 0.0
        self._ok = False
        self._warned = False

    def now(self) -> None:
        """Check at the next ``tick`` whatever the interval (after the client's own button was pressed)."""
        self._next = 0.0

    def tick(self, now: float | None = None) -> bool:
        """True when the game has the focus (after taking it back if needed)."""
        now = time.monotonic() if now is None else now
        if now < self._next:
            return self._ok
        self._next = now + self.every_s
        self._ok = self._check()
        return self._ok

    def _check(self) -> bool:
        platform = self.platform or current()
        window = platform.find_window()
        if window is not None and window.focused and not window.minimised:
            self._warned = False
            return True
        if platform.focus_window():
            self.refocused += 1
            self._warned = False
            return True
        if not self._warned and self.on_lost is not None:
            self._warned = True
            self.on_lost("the game window is not in front and could not be brought back: click on the game")
        return False


# ---------------------------------------------------------------------------------------------------
# Reaching into soulsgym by name (it imports only on Windows; tests pass stand-in modules)


class InputGate:
    """Drops the key presses of abandoned threads: a hung reset left running must not play along.

    A Python thread cannot be killed. SoulsGym presses keys through ``USER32.SendInput`` of its
    ``soulsgym.core.game_input`` module; the gate replaces that module's ``USER32`` with a proxy whose
    ``SendInput`` does nothing when called from a thread the watchdog has abandoned.
    """

    def __init__(self) -> None:
        # The threads themselves, not their idents: Python reuses a finished thread's ident.
        self._abandoned: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.dropped = 0

    def install(self, module: ModuleType | Any | None = None) -> bool:
        """Put the proxy into soulsgym's game_input module (or ``module``); False when there is none."""
        if module is None:
            module = sys.modules.get("soulsgym.core.game_input")
        if module is None or not hasattr(module, "USER32"):
            return False
        if not isinstance(module.USER32, _GatedUser32):
            module.USER32 = _GatedUser32(module.USER32, self)
        else:
            module.USER32.gate = self
        return True

    def abandon(self, thread: threading.Thread | None) -> None:
        if thread is not None:
            with self._lock:
                self._abandoned.add(thread)

    def allows(self) -> bool:
        with self._lock:
            return threading.current_thread() not in self._abandoned


class _GatedUser32:
    def __init__(self, user32: Any, gate: InputGate):
        self._user32, self.gate = user32, gate

    def SendInput(self, *args: Any) -> int:  # noqa: N802 (the Win32 name)
        if not self.gate.allows():
            self.gate.dropped += 1
            return 0
        start = tick_count()
        try:
            return self._user32.SendInput(*args)
        finally:  # the agent's own key presses: not the person's input (client_app.manners.idle)
            OWN_INPUT.note(start, tick_count())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._user32, name)


#: The one gate of this process: the watchdog abandons threads into it, envs.make_env installs it.
INPUT_GATE = InputGate()


def drop_stale_connections(
    platform: GamePlatform | None = None, utils: ModuleType | Any | None = None
) -> bool:
    """Forget SoulsGym's connections to a game process that is gone; True when some were dropped.

    SoulsGym keeps its memory reader (``MemoryManipulator``, which holds the process id) and its
    speed-hack pipe (``SpeedHackConnector``) as singletons in ``soulsgym.core.utils.Singleton``: after
    the game restarts, a new env would get the dead process's. They are dropped only when the game's
    process id changed, since the speed-hack pipe takes a single client while the game lives.
    """
    if utils is None:
        utils = sys.modules.get("soulsgym.core.utils")
    singleton = getattr(utils, "Singleton", None)
    instances = getattr(singleton, "_instances", None)
    if instances is None or not len(instances):
        return False
    pid = (platform or current()).game_pid()
    held = [getattr(obj, "pid", None) for obj in list(instances.values())]
    held = [p for p in held if p is not None]
    if pid is not None and held and all(p == pid for p in held):
        return False
    log.info("the game restarted (process %s, was %s): dropping SoulsGym's old connections", pid, held)
    instances.clear()
    return True


def unpause_game(platform: GamePlatform | None = None) -> bool:
    """Set the game's speed back to 1 through SoulsGym's speed-hack pipe, when it is there.

    A client killed mid-episode leaves the game at speed 0 (SoulsGym pauses between steps); creating
    the env waits for the player to be in the game, which a frozen game may never report.
    """
    return (platform or current()).set_game_speed(1.0)
