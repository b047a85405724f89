"""Which of the configured programs run now (``--pause-while NAME``), by process name, per OS.

- Linux: ``/proc/<pid>/comm`` (the kernel's name, cut to 15 characters) and the file name of
  ``argv[0]`` from ``/proc/<pid>/cmdline`` (long names, and Windows games under Wine or Proton, whose
  ``argv[0]`` is ``C:\\...\\Game.exe``). Every user's processes are listed.
- Windows: a Toolhelp snapshot (``CreateToolhelp32Snapshot``, kernel32 through ctypes; psutil is not
  a dependency of the client). Not tried on Windows yet.
- macOS: unavailable, said once.

Names match without regard to case or a trailing ``.exe``: ``--pause-while eldenring`` matches
``eldenring.exe``. A scan of /proc reads two small files per process (a few ms for ~300 processes);
the watcher scans every few seconds.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from client_app.manners.idle import Unavailable

COMM_LEN = 15  # Linux keeps the first 15 bytes of a process name in comm


def normal(name: str) -> str:
    """A program name as matched: its file name, lower case, without ``.exe``."""
    name = name.strip().replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name[:-4] if name.endswith(".exe") else name


def linux_names(proc: Path = Path("/proc")) -> set[str]:
    """The normalised names of every process (comm and argv[0]'s file name)."""
    names: set[str] = set()
    try:
        entries = os.scandir(proc)
    except OSError:
        return names
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(os.path.join(entry.path, "comm"), "rb") as f:
                    names.add(normal(f.read().decode(errors="replace").rstrip("\n")))
                with open(os.path.join(entry.path, "cmdline"), "rb") as f:
                    argv0 = f.read(4096).split(b"\0", 1)[0]
                if argv0:
                    names.add(normal(argv0.decode(errors="replace")))
            except OSError:  # the process ended meanwhile, or is not ours to read
                continue
    return names


class _PROCESSENTRY32W(ctypes.Structure):
    _fields_ = [
        ("dwSize", ctypes.c_uint32),
        ("cntUsage", ctypes.c_uint32),
        ("th32ProcessID", ctypes.c_uint32),
        ("th32DefaultHeapID", ctypes.c_size_t),
        ("th32ModuleID", ctypes.c_uint32),
        ("cntThreads", ctypes.c_uint32),
        ("th32ParentProcessID", ctypes.c_uint32),
        ("pcPriClassBase", ctypes.c_long),
        ("dwFlags", ctypes.c_uint32),
        ("szExeFile", ctypes.c_wchar * 260),
    ]


def windows_names() -> set[str]:  # pragma: no cover - runs only on Windows, not tried there yet
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.CreateToolhelp32Snapshot.restype = ctypes.c_void_p
    kernel32.Process32FirstW.argtypes = [ctypes.c_void_p, ctypes.POINTER(_PROCESSENTRY32W)]
    kernel32.Process32NextW.argtypes = [ctypes.c_void_p, ctypes.POINTER(_PROCESSENTRY32W)]
    kernel32.CloseHandle.argtypes = [ctypes.c_void_p]
    snapshot = kernel32.CreateToolhelp32Snapshot(0x2, 0)  # TH32CS_SNAPPROCESS
    if not snapshot or snapshot == ctypes.c_void_p(-1).value:
        return set()
    names: set[str] = set()
    try:
        entry = _PROCESSENTRY32W()
        entry.dwSize = ctypes.sizeof(entry)
        ok = kernel32.Process32FirstW(snapshot, ctypes.byref(entry))
        while ok:
            names.add(normal(entry.szExeFile))
            ok = kernel32.Process32NextW(snapshot, ctypes.byref(entry))
    finally:
        kernel32.CloseHandle(snapshot)
    return names


class ProgramWatch:
    """Which of ``wanted`` run now. Raises Unavailable where this OS cannot list processes."""

    def __init__(self, wanted: Iterable[str]):
        self.wanted = tuple(dict.fromkeys(w.strip() for w in wanted if w.strip()))
        if sys.platform == "win32":  # pragma: no cover
            self._names = windows_names
        elif sys.platform.startswith("linux") and Path("/proc/self/comm").exists():
            self._names = linux_names
        else:
            raise Unavailable(f"listing programs is not implemented on {sys.platform} yet")

    def running(self) -> tuple[str, ...]:
        names = self._names()
        found = []
        for wanted in self.wanted:
            key = normal(wanted)
            if key in names or (len(key) > COMM_LEN and key[:COMM_LEN] in names):
                found.append(wanted)
        return tuple(found)
