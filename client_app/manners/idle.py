"""How long since the person at the machine last touched the keyboard or mouse, per OS.

- Linux and other X11 systems: the XScreenSaver extension's idle time (``libXss`` through ctypes), the
  same figure screen savers use. Events injected through XTEST (``xdotool``) count as input too.
- Windows: ``GetLastInputInfo`` (user32 through ctypes). It counts injected input too, so in a
  SoulsGym fight, where the agent presses keys through ``SendInput``, the client's own presses are
  told apart by their time: ``OwnInput`` notes when each ``SendInput`` call ran (``gamewin``'s gate
  calls ``note``) and a sampler thread reads ``GetLastInputInfo`` every 20 ms; a last-input time
  outside every noted call is the person's. Input that falls within a few ms of the agent's own, or
  that the agent's next press overwrites before a sample, is missed. Not tried on Windows yet.
- Anything else (macOS, Wayland without XWayland, no ``$DISPLAY``): unavailable, said once.

A source's ``idle_seconds()`` returns None when it cannot tell; it never raises.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
import time
from collections import deque
from typing import Protocol


class Unavailable(Exception):
    """This source cannot work on this machine; the message says why (shown once, not an error)."""


class InputSource(Protocol):
    name: str

    def idle_seconds(self) -> float | None: ...
    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------------
# X11: the XScreenSaver extension


class _XScreenSaverInfo(ctypes.Structure):
    _fields_ = [
        ("window", ctypes.c_ulong),
        ("state", ctypes.c_int),
        ("kind", ctypes.c_int),
        ("til_or_since", ctypes.c_ulong),
        ("idle", ctypes.c_ulong),  # milliseconds since the last input
        ("eventMask", ctypes.c_ulong),
    ]


_EXIT_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_IO_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _IOErrors:
    """The process's Xlib I/O error handler, installed once: the client's own displays return."""

    def __init__(self) -> None:
        self.ours: set[int] = set()
        self._previous = None
        self._handler = _IO_HANDLER(self._on_error)  # kept for the life of the process
        self._installed = False
        self._lock = threading.Lock()

    def install(self, x11: ctypes.CDLL) -> None:
        with self._lock:
            if self._installed:
                return
            x11.XSetIOErrorHandler.restype = ctypes.c_void_p
            x11.XSetIOErrorHandler.argtypes = [_IO_HANDLER]
            previous = x11.XSetIOErrorHandler(self._handler)
            self._previous = _IO_HANDLER(previous) if previous else None
            self._installed = True

    def _on_error(self, dpy: int) -> int:
        if dpy in self.ours:
            return 0  # the display's exit handler (X11Idle._broken) runs next and returns too
        if self._previous is not None:
            return self._previous(dpy)
        return 0


_IO_ERRORS = _IOErrors()


class X11Idle:
    """The X server's idle time, through one connection kept open (one round trip per reading).

    Xlib ends the process when a connection breaks (the X server went away): its default I/O error
    handler exits. ``_IO_ERRORS`` installs one for the whole process that lets the client's own
    connections return (with an exit handler, ``XSetIOErrorExitHandler``, libX11 1.7 and later) and
    hands every other connection (the window's, Tk's) to the handler it replaced. The broken connection
    is never used again; the next reading opens a new one. With an older libX11, losing the X server
    ends the client, as it ends any X program.
    """

    name = "X11 idle time (XScreenSaver)"

    def __init__(self, display: str | None = None):
        self.display = display if display is not None else os.environ.get("DISPLAY", "")
        if not self.display:
            raise Unavailable("no X display ($DISPLAY is not set)")
        x11, xss = ctypes.util.find_library("X11"), ctypes.util.find_library("Xss")
        if not x11 or not xss:
            missing = " and ".join(n for n, p in (("libX11", x11), ("libXss", xss)) if not p)
            raise Unavailable(f"{missing} not found (Debian/Ubuntu: apt install libxss1)")
        self._x = x = ctypes.CDLL(x11)
        self._xss = ctypes.CDLL(xss)
        x.XOpenDisplay.restype = ctypes.c_void_p
        x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x.XDefaultRootWindow.restype = ctypes.c_ulong
        x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x.XCloseDisplay.argtypes = [ctypes.c_void_p]
        x.XFree.argtypes = [ctypes.c_void_p]
        self._exit_handler = getattr(x, "XSetIOErrorExitHandler", None)
        if self._exit_handler is not None:
            self._exit_handler.argtypes = [ctypes.c_void_p, _EXIT_HANDLER, ctypes.c_void_p]
            _IO_ERRORS.install(x)
        self._xss.XScreenSaverQueryExtension.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)
        ]  # fmt: skip
        self._xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(_XScreenSaverInfo)
        self._xss.XScreenSaverQueryInfo.argtypes = [
            ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(_XScreenSaverInfo)
        ]  # fmt: skip
        self._on_exit = _EXIT_HANDLER(self._broken)  # kept: the C side holds only a pointer to it
        self._dpy: int | None = None
        self._dead = False
        self._info = self._xss.XScreenSaverAllocInfo()
        if not self._info:
            raise Unavailable("XScreenSaverAllocInfo failed")
        if not self._connect():
            raise Unavailable(f"cannot open the X display {self.display!r}")
        a, b = ctypes.c_int(), ctypes.c_int()
        if not self._xss.XScreenSaverQueryExtension(self._dpy, ctypes.byref(a), ctypes.byref(b)):
            self.close()
            raise Unavailable(f"the X display {self.display!r} has no MIT-SCREEN-SAVER extension")

    def _broken(self, dpy: int, data: int) -> None:
        self._dead = True  # Xlib returns from the failed call; the connection is not used again

    def _connect(self) -> bool:
        dpy = self._x.XOpenDisplay(self.display.encode())
        if not dpy:
            return False
        if self._exit_handler is not None:
            self._exit_handler(dpy, self._on_exit, None)
            _IO_ERRORS.ours.add(dpy)
        self._dpy, self._dead = dpy, False
        return True

    def idle_seconds(self) -> float | None:
        if self._dead:
            self._dpy = None  # a broken connection is left, not closed: Xlib may not touch it again
        if self._dpy is None and not self._connect():
            return None
        ok = self._xss.XScreenSaverQueryInfo(self._dpy, self._x.XDefaultRootWindow(self._dpy), self._info)
        if not ok or self._dead:
            return None
        return self._info.contents.idle / 1000.0

    def close(self) -> None:
        if self._dpy is not None and not self._dead:
            self._x.XCloseDisplay(self._dpy)
        self._dpy = None
        if self._info:
            self._x.XFree(self._info)
            self._info = None


# ---------------------------------------------------------------------------------------------------
# Windows: GetLastInputInfo, less the client's own key presses


class OwnInput:
    """When the client itself injected input (``SendInput`` calls), as ``GetTickCount`` intervals."""

    def __init__(self, keep: int = 256):
        self._spans: deque[tuple[int, int]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def note(self, start_tick: int, end_tick: int) -> None:
        with self._lock:
            self._spans.append((start_tick, end_tick))

    def is_own(self, tick: int, *, slack_ms: int = 16) -> bool:
        """Whether an input at ``tick`` falls within one of the client's own calls (GetTickCount's
        resolution is 10-16 ms: hence the slack). Ticks wrap at 2**32 ms (49.7 days)."""
        with self._lock:
            spans = list(self._spans)
        for start, end in spans:
            if ((tick - start + slack_ms) & 0xFFFFFFFF) <= ((end - start + 2 * slack_ms) & 0xFFFFFFFF):
                return True
        return False


#: The client's own injected input, noted by ``client_app.gamewin``'s SendInput gate.
OWN_INPUT = OwnInput()


class WindowsIdle:  # pragma: no cover - runs only on Windows, not tried there yet (docs/client.md)
    """``GetLastInputInfo``; with ``own`` (a SoulsGym fight), input within the client's own
    ``SendInput`` calls does not count, sampled every ``sample_s`` by a daemon thread."""

    name = "Windows last input (GetLastInputInfo)"

    class _LASTINPUTINFO(ctypes.Structure):
        _fields_ = [("cbSize", ctypes.c_uint), ("dwTime", ctypes.c_uint32)]

    def __init__(self, own: OwnInput | None = None, *, sample_s: float = 0.02):
        if sys.platform != "win32":
            raise Unavailable("not Windows")
        self._user32 = ctypes.WinDLL("user32")
        self._kernel32 = ctypes.WinDLL("kernel32")
        self._kernel32.GetTickCount.restype = ctypes.c_uint32
        self._own = own
        self._user_tick: int | None = None  # the person's last input seen, as GetTickCount
        self._stop = threading.Event()
        if self._last_tick() is None:
            raise Unavailable("GetLastInputInfo failed")
        if own is not None:
            threading.Thread(target=self._sample, args=(sample_s,), name="soulsai-input", daemon=True).start()

    def _last_tick(self) -> int | None:
        info = self._LASTINPUTINFO(ctypes.sizeof(self._LASTINPUTINFO), 0)
        return int(info.dwTime) if self._user32.GetLastInputInfo(ctypes.byref(info)) else None

    def _sample(self, every: float) -> None:
        seen = None
        while not self._stop.wait(every):
            tick = self._last_tick()
            if tick is not None and tick != seen:
                seen = tick
                if not self._own.is_own(tick):
                    self._user_tick = tick

    def idle_seconds(self) -> float | None:
        now = int(self._kernel32.GetTickCount())
        tick = self._last_tick() if self._own is None else self._user_tick
        if tick is None:
            return None if self._own is None else float("inf")
        return ((now - tick) & 0xFFFFFFFF) / 1000.0

    def close(self) -> None:
        self._stop.set()


def tick_count() -> int:
    """``GetTickCount`` on Windows (the clock ``GetLastInputInfo`` uses); elsewhere monotonic ms."""
    if sys.platform == "win32":  # pragma: no cover
        return int(ctypes.windll.kernel32.GetTickCount()) & 0xFFFFFFFF
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


def input_source(*, fight: bool = False) -> InputSource:
    """The keyboard-and-mouse source of this machine; ``fight``: leave out the client's own presses.
    Raises Unavailable with the reason."""
    if sys.platform == "win32":  # pragma: no cover
        return WindowsIdle(OWN_INPUT if fight else None)
    if sys.platform == "darwin":
        raise Unavailable("not implemented on macOS yet")
    return X11Idle()
