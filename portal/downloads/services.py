"""The downloadable client: build the ``soulsai-client`` wheel once, store it, and describe it.

The wheel is built by pip from the project's ``pyproject.toml`` (which packages only ``client_app``)
in a local scratch folder, then put in the default storage (the local media folder, or the SFTP server
every web host reads: docs/deployment.md, "Storage") with a manifest beside it:

- ``client-wheel/<version>/<sha256>/<filename>``: the wheel, never overwritten (its name says its bytes);
- ``client-wheel/<version>/manifest.json``: filename, version, sha256, size and the wheel's name in
  storage, written once, after the wheel; the first manifest for a version is the one every host serves;
- ``client-wheel/<version>/<sha256>/<filename>.sig``: the maintainers' Ed25519 signature of the wheel,
  made offline and stored with ``manage.py add_client_signature`` (docs/releases.md). Clients update
  themselves only to a signed wheel; the server never holds the private key.

Building when the storage already holds a wheel for ``client_app.__version__`` does nothing, so every web
host offers the same file with the same sha256; web hosts never build at request time (``make run`` and
deployments run ``manage.py build_client_wheel``).
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import paramiko
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from client_app.release import SIGNATURE_BYTES, SIGNATURE_SUFFIX
from portal.relay.fanout import release_publish

STORAGE_FOLDER = "client-wheel"
MANIFEST_NAME = "manifest.json"
MANIFEST_MAX_BYTES = 4096  # a manifest is a few lines; anything bigger is not one of ours
LOCK_NAME = ".build.lock"
BUILD_TIMEOUT_SECONDS = 300.0


class WheelBuildError(RuntimeError):
    """The client wheel could not be built; the message says why in a few lines."""


@dataclass(frozen=True)
class WheelInfo:
    filename: str
    version: str
    sha256: str
    size_bytes: int
    name: str  # the wheel's name in the default storage


def _wheel_dir() -> Path:
    """The local scratch folder (build lock); the wheel itself lives in storage."""
    return Path(settings.SOULSAI_CLIENT_WHEEL_DIR)


def _manifest_name(version: str) -> str:
    return f"{STORAGE_FOLDER}/{version}/{MANIFEST_NAME}"


def client_version() -> str:
    """``client_app.__version__`` as it is on disk now (not as imported when this process started)."""
    source = (Path(settings.BASE_DIR) / "client_app" / "__init__.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise WheelBuildError("client_app/__init__.py defines no __version__")


def client_wheel_info() -> WheelInfo | None:
    """The stored wheel of the current client version, as its manifest describes it, or None if none
    was built for this version (or its file went missing). Builds nothing."""
    return _stored_wheel(client_version())


def _stored_wheel(version: str) -> WheelInfo | None:
    """The manifest of ``version`` and its file, or None if either is missing, unreadable, or the
    storage does not answer (the page then says the client is being prepared)."""
    try:
        with default_storage.open(_manifest_name(version), "rb") as handle:
            raw = handle.read(MANIFEST_MAX_BYTES + 1)
        if len(raw) > MANIFEST_MAX_BYTES:
            return None
        data = json.loads(raw)
        info = WheelInfo(
            filename=str(data["filename"]),
            version=str(data["version"]),
            sha256=str(data["sha256"]),
            size_bytes=int(data["size_bytes"]),
            name=str(data["name"]),
        )
        if info.version != version or not info.name.startswith(f"{STORAGE_FOLDER}/{version}/"):
            return None
        return info if default_storage.exists(info.name) else None
    except (OSError, EOFError, paramiko.SSHException, ValueError, KeyError, TypeError):
        return None


def _signature_name(info: WheelInfo) -> str:
    return info.name + SIGNATURE_SUFFIX


def client_signature(info: WheelInfo) -> bytes | None:
    """The stored release signature of ``info``'s wheel (64 bytes), or None if it is not signed yet."""
    try:
        with default_storage.open(_signature_name(info), "rb") as handle:
            raw = handle.read(SIGNATURE_BYTES + 1)
    except (OSError, paramiko.SSHException):
        return None
    return raw if len(raw) == SIGNATURE_BYTES else None


def client_signature_store(*, info: WheelInfo, signature: bytes) -> None:
    """Store the maintainers' signature of ``info``'s wheel (replacing an earlier one).

    Checked by the caller (the management command verifies it against the release key built into
    this checkout); here only its length, so a stray file never reaches the clients.
    """
    if len(signature) != SIGNATURE_BYTES:
        raise ValueError(f"a signature has {SIGNATURE_BYTES} bytes, this one {len(signature)}")
    name = _signature_name(info)
    if default_storage.exists(name):
        default_storage.delete(name)
    stored = default_storage.save(name, ContentFile(signature))
    if stored != name:
        default_storage.delete(stored)
        raise WheelBuildError(f"could not store the signature as {name}")
    # Clients that connect from now on, and every connected one, hear of it (portal.relay.fanout).
    release_publish(version=info.version)


def client_wheel_build(*, timeout: float = BUILD_TIMEOUT_SECONDS) -> WheelInfo:
    """The stored wheel of the current client version, built and stored first if there is none.

    A no-op when the storage already has one for this version: a version's wheel is built once, so
    every web host serves the same bytes (a new ``client_app.__version__`` gets a new wheel).
    """
    info = client_wheel_info()
    if info is not None:
        return info
    with _build_lock():
        # Another process on this host may have built it while this one waited for the lock.
        info = client_wheel_info()
        if info is not None:
            return info
        return _build_locked(timeout=timeout)


def client_wheel_ensure() -> WheelInfo:
    """The current wheel, built first if the storage has none for ``client_app``'s version."""
    return client_wheel_build()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes, released when the block ends (or the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build_lock():
    """One build at a time on this host (two `build_client_wheel` runs, `make run` restarting)."""
    return _file_lock(_wheel_dir() / LOCK_NAME)


def _source_tree_lock(base_dir: Path):
    """Guards the source tree's build/ and *.egg-info, shared by every process that builds from it
    (another var/ folder, e.g. a concurrent test run, builds from the same checkout)."""
    key = hashlib.sha256(str(base_dir.resolve()).encode()).hexdigest()[:16]
    return _file_lock(Path(tempfile.gettempdir()) / f"soulsai-client-build-{key}.lock")


def _clean_setuptools_leftovers(base_dir: Path) -> None:
    # setuptools builds in the source tree: a stale build/lib could even slip deleted files into the
    # next wheel, so clear it before and after every build.
    shutil.rmtree(base_dir / "build", ignore_errors=True)
    for egg_info in base_dir.glob("*.egg-info"):
        shutil.rmtree(egg_info, ignore_errors=True)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _pip_wheel(base_dir: Path, out_dir: Path, *, timeout: float) -> Path:
    """Run pip to build the project's wheel into ``out_dir``; the path of the wheel."""
    command = [
        sys.executable, "-m", "pip", "wheel", str(base_dir),
        "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out_dir),
    ]  # fmt: skip
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise WheelBuildError(f"building the client wheel took longer than {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise WheelBuildError(
            f"pip wheel failed (exit {result.returncode}):\n{_tail(result.stderr or result.stdout)}"
        )
    built = sorted(out_dir.glob("soulsai_client-*.whl"))
    if len(built) != 1:
        raise WheelBuildError(f"pip wheel made {len(built)} soulsai_client wheels, expected one")
    return built[0]


def _build_locked(*, timeout: float) -> WheelInfo:
    base_dir = Path(settings.BASE_DIR)
    version = client_version()
    with _source_tree_lock(base_dir), tempfile.TemporaryDirectory(prefix="soulsai-wheel-") as tmp:
        _clean_setuptools_leftovers(base_dir)
        try:
            built = _pip_wheel(base_dir, Path(tmp), timeout=timeout)
        finally:
            _clean_setuptools_leftovers(base_dir)
        sha256 = hashlib.sha256()
        with open(built, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha256.update(block)
        digest = sha256.hexdigest()
        name = f"{STORAGE_FOLDER}/{version}/{digest}/{built.name}"
        if not default_storage.exists(name):
            with open(built, "rb") as handle:
                stored = default_storage.save(name, File(handle, name=built.name))
            if stored != name:  # the same bytes arrived from another host meanwhile: keep one copy
                default_storage.delete(stored)
        info = WheelInfo(
            filename=built.name, version=version, sha256=digest, size_bytes=built.stat().st_size, name=name
        )
    return _manifest_write(info)


def _manifest_write(info: WheelInfo) -> WheelInfo:
    """Write the version's manifest unless another host wrote one first; the manifest that is stored."""
    manifest = _manifest_name(info.version)
    stored = default_storage.save(manifest, ContentFile(json.dumps(asdict(info), indent=2).encode()))
    if stored == manifest:
        return info
    # Storage gave the manifest another name: one exists already. The first one wins, so every host
    # serves the same wheel; this build's file is dropped unless the manifest names it.
    default_storage.delete(stored)
    winner = _stored_wheel(info.version)
    if winner is None:
        raise WheelBuildError(f"{manifest} exists in storage but does not describe a stored wheel")
    if winner.name != info.name:
        default_storage.delete(info.name)
    return winner
