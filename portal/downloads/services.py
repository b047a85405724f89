"""The downloadable client: build the ``soulsai-client`` wheel from this checkout and describe it.

The wheel is built by pip from the project's ``pyproject.toml`` (which packages only ``client_app``),
kept in ``settings.SOULSAI_CLIENT_WHEEL_DIR`` with a ``manifest.json`` beside it, and rebuilt when
``client_app.__version__`` changes.
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

from django.conf import settings

MANIFEST_NAME = "manifest.json"
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
    path: Path


def _wheel_dir() -> Path:
    return Path(settings.SOULSAI_CLIENT_WHEEL_DIR)


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
    """The built wheel, as its manifest describes it, or None if none was built (or it went missing)."""
    manifest = _wheel_dir() / MANIFEST_NAME
    try:
        data = json.loads(manifest.read_text())
        info = WheelInfo(
            filename=data["filename"],
            version=data["version"],
            sha256=data["sha256"],
            size_bytes=int(data["size_bytes"]),
            path=_wheel_dir() / data["filename"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if info.path.is_file() else None


def client_wheel_build(*, timeout: float = BUILD_TIMEOUT_SECONDS) -> WheelInfo:
    """Build the wheel now (even if one exists), replace older wheels, and write the manifest."""
    with _build_lock():
        return _build_locked(timeout=timeout)


def client_wheel_ensure() -> WheelInfo:
    """The current wheel, built first if there is none or ``client_app``'s version changed."""
    info = client_wheel_info()
    if info is not None and info.version == client_version():
        return info
    with _build_lock():
        # Another process may have built it while this one waited for the lock.
        info = client_wheel_info()
        if info is not None and info.version == client_version():
            return info
        return _build_locked(timeout=BUILD_TIMEOUT_SECONDS)


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
    """Guards the wheel folder: several ASGI workers may ask for the wheel at once."""
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
    wheel_dir = _wheel_dir()
    version = client_version()
    with _source_tree_lock(base_dir), tempfile.TemporaryDirectory(prefix="soulsai-wheel-") as tmp:
        _clean_setuptools_leftovers(base_dir)
        try:
            built = _pip_wheel(base_dir, Path(tmp), timeout=timeout)
        finally:
            _clean_setuptools_leftovers(base_dir)
        target = wheel_dir / built.name
        # Copy beside the target, then rename over it: a download of the old file in progress keeps
        # reading the old bytes, and nobody ever sees half a wheel.
        partial = wheel_dir / f".{target.name}.partial"
        shutil.copyfile(built, partial)
        partial.replace(target)

    for old in wheel_dir.glob("*.whl"):
        if old != target:
            old.unlink(missing_ok=True)
    data = target.read_bytes()
    info = WheelInfo(
        filename=target.name,
        version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        path=target,
    )
    manifest = {k: v for k, v in asdict(info).items() if k != "path"}  # valid even if the folder moves
    tmp_manifest = wheel_dir / f".{MANIFEST_NAME}.tmp"
    tmp_manifest.write_text(json.dumps(manifest, indent=2))
    tmp_manifest.replace(wheel_dir / MANIFEST_NAME)  # atomic: readers never see half a manifest
    return info
