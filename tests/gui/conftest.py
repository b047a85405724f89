"""The client's window under Xvfb (Debian's ``xvfb``), with screenshots read from Xvfb's own framebuffer.

Xvfb is started once per session on a display it picks itself (``-displayfd``), with ``-fbdir``: the
screen is then a file in XWD format, which ``save_screenshot`` turns into a PNG with numpy and zlib,
so nothing beyond Xvfb is installed. Without Xvfb the tests fail on CI (``CI`` set: .ci/run installs
it) and are skipped elsewhere with the install command.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

XVFB = os.environ.get("SOULSAI_XVFB", "/usr/bin/Xvfb")
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"


def require_xvfb() -> str:
    """The Xvfb binary; fails on CI and skips elsewhere when it is missing."""
    binary = XVFB if Path(XVFB).exists() else shutil.which("Xvfb")
    if not binary:
        reason = f"needs Debian's xvfb ({XVFB}): apt-get install -y xvfb"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


@contextlib.contextmanager
def running_xvfb(fbdir: Path):
    """Start Xvfb on a display it picks itself; yields (display, path of its framebuffer file)."""
    binary = require_xvfb()
    read_fd, write_fd = os.pipe()
    log = open(fbdir / "xvfb.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [binary, "-displayfd", str(write_fd), "-screen", "0", "1280x960x24", "-fbdir", str(fbdir),
         "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 60
    while not number.endswith(b"\n") and time.monotonic() < deadline and proc.poll() is None:
        chunk = os.read(read_fd, 16)
        if not chunk:
            break
        number += chunk
    os.close(read_fd)
    try:
        if not number.strip().isdigit():
            pytest.fail("Xvfb did not start:\n" + (fbdir / "xvfb.log").read_text())
        yield f":{int(number)}", fbdir / "Xvfb_screen0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def xvfb(tmp_path_factory):
    """(display, path of the framebuffer file) of a private Xvfb server shared by the session."""
    with running_xvfb(tmp_path_factory.mktemp("xvfb")) as server:
        yield server


@pytest.fixture
def tk_root(xvfb, monkeypatch):
    """A Tk root window on the Xvfb display, destroyed after the test if the test did not close it."""
    import tkinter as tk

    display, _ = xvfb
    monkeypatch.setenv("DISPLAY", display)
    root = tk.Tk(screenName=display)
    root.geometry("1180x900+0+0")
    yield root
    try:
        root.destroy()
    except tk.TclError:
        pass  # the window closed itself (Quit)


def read_xwd(path: Path) -> np.ndarray:
    """An XWD file (Xvfb's -fbdir framebuffer, 24/32-bit TrueColor) as an (h, w, 3) uint8 array."""
    data = path.read_bytes()
    order = ">" if struct.unpack(">I", data[:4])[0] < 65536 else "<"
    header = struct.unpack(order + "25I", data[:100])
    header_size, depth, width, height = header[0], header[3], header[4], header[5]
    byte_order, bits_per_pixel, bytes_per_line = header[7], header[11], header[12]
    red_mask, green_mask, blue_mask, ncolors = header[14], header[15], header[16], header[19]
    if bits_per_pixel != 32 or depth < 24:
        raise ValueError(f"unsupported XWD: {bits_per_pixel} bits per pixel, depth {depth}")
    offset = header_size + 12 * ncolors
    rows = np.frombuffer(data, dtype=np.uint8, count=bytes_per_line * height, offset=offset)
    rows = rows.reshape(height, bytes_per_line)[:, : width * 4]
    pixels = rows.copy().view("<u4" if byte_order == 0 else ">u4").reshape(height, width)

    def channel(mask: int) -> np.ndarray:
        shift = (mask & -mask).bit_length() - 1
        return ((pixels & mask) >> shift).astype(np.uint8)

    return np.stack([channel(red_mask), channel(green_mask), channel(blue_mask)], axis=-1)


def write_png(path: Path, rgb: np.ndarray) -> None:
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))

    def block(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    png = b"\x89PNG\r\n\x1a\n" + block(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += block(b"IDAT", zlib.compress(raw, 6)) + block(b"IEND", b"")
    path.write_bytes(png)


def save_screenshot(xvfb, root, name: str) -> Path:
    """Save the Tk window as test-artifacts/screenshots/<name>.png; returns the path."""
    _, framebuffer = xvfb
    root.update()
    x, y = root.winfo_rootx(), root.winfo_rooty()
    width, height = root.winfo_width(), root.winfo_height()
    image = read_xwd(framebuffer)[max(0, y) : y + height, max(0, x) : x + width]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    write_png(path, image)
    return path
