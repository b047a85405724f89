"""The one-line installers (``install.ps1`` for Windows, ``install.sh`` for Linux and macOS).

They bring their own interpreter: a python-build-standalone CPython 3.11 (3.11 because SoulsGym's
compiled module links it), pinned here by URL and sha256, unpacked into the client's own folder; then
they install the client wheel this server offers, only after its Ed25519 signature verified against the
release key written INTO the script (``client_app.release_key``, rendered from the code this server
runs, not read from storage like the wheel). docs/client.md says what that protects and what it does not.

The sha256 values are those of uv's ``crates/uv-python/download-metadata.json`` (astral-sh/uv at
26a9dd4, 2026-08-21) for the 20260814 build; nobody here downloaded these archives.
"""

from __future__ import annotations

from typing import NamedTuple

PYTHON_VERSION = "3.11.16"
_BASE = "https://github.com/astral-sh/python-build-standalone/releases/download/20260814/"


class PythonBuild(NamedTuple):
    url: str
    sha256: str


def _build(triple: str, sha256: str) -> PythonBuild:
    return PythonBuild(f"{_BASE}cpython-{PYTHON_VERSION}%2B20260814-{triple}-install_only_stripped.tar.gz", sha256)


# Keyed as the scripts see the machine: PowerShell's architecture, `uname -s`-`uname -m`.
PYTHON_BUILDS = {
    "windows-x86_64": _build("x86_64-pc-windows-msvc", "c6de1a7781580d13f68dece33ac10b7a608c7ac21fc08cf0f4e0678a7d134905"),
    "Linux-x86_64": _build("x86_64-unknown-linux-gnu", "3b437f08720d3ddd9c1904532476ec9fb373e800d1598c72c907dd6d5f29b79b"),
    "Linux-aarch64": _build("aarch64-unknown-linux-gnu", "6a250f5c9326eebaa528d5d132cd66ebd1d7540cf45ac703f19e13f41d1be9b6"),
    "Darwin-arm64": _build("aarch64-apple-darwin", "a394f2bf78a48990fc88e7c5586c7e1be5e69f0c9bd027883211b68b768e11c5"),
    "Darwin-x86_64": _build("x86_64-apple-darwin", "4d60589b702aff21379ddf6bd648e75c7023a257a078fdd71df4c148cf609cc2"),
}
