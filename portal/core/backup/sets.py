"""A backup set on disk: its folder, its files' sha256, and the manifest that describes it."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

FORMAT = 1
MANIFEST = "manifest.json"
RDB = "redis.rdb"
DUMP = "postgres.dump"
STORAGE = "storage"  # the storage engine's files, under their own names
SET_PREFIX = "soulsai-"
PARTIAL_SUFFIX = ".partial"
HASH_BLOCK = 1024 * 1024


class BackupError(RuntimeError):
    """A backup or a restore cannot go on; the message says what to do."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Manifest:
    """What a set holds (``manifest.json``): enough to check a restore without the old data host.

    ``files`` maps each file's path in the set to its sha256 and size. ``postgres`` holds the row
    count of every table and the model versions (campaign slug, version, sha256 of the weights, names
    of the weights and state files) as the dump's snapshot saw them; ``redis`` the keys of each
    database, each stream's length and every campaign's counters (``stats``, ``machine_samples``,
    ``machine_episodes`` hashes) as the RDB holds them; ``storage`` the files copied and the model
    files the database names that the storage no longer had (pruned between the two steps).
    """

    created: str
    host: str
    redis: dict = field(default_factory=dict)
    postgres: dict = field(default_factory=dict)
    storage: dict = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    format: int = FORMAT
    finished: str = ""

    def write(self, folder: Path) -> None:
        path = folder / MANIFEST
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    def add_file(self, folder: Path, name: str) -> dict:
        """Record ``folder/name``'s sha256 and size; return that record."""
        path = folder / name
        record = {"sha256": sha256_file(path), "size": path.stat().st_size}
        self.files[name] = record
        return record


def manifest_read(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BackupError(f"{folder} is no complete backup set: it has no {MANIFEST}") from exc
    except json.JSONDecodeError as exc:
        raise BackupError(f"{path} is not JSON ({exc}): the set is damaged") from exc
    if data.get("format") != FORMAT:
        raise BackupError(f"{path} has format {data.get('format')!r}; this release reads format {FORMAT}")
    return Manifest(**data)


def verify_files(folder: Path, manifest: Manifest, names: Iterable[str] | None = None) -> int:
    """Check that each file of the set (or of ``names``) has the manifest's size and sha256.

    Returns the number of bytes checked; raises BackupError naming every file that differs."""
    wrong, checked = [], 0
    for name in sorted(manifest.files if names is None else names):
        record, path = manifest.files[name], Path(folder) / name
        if not path.is_file():
            wrong.append(f"{name}: missing")
            continue
        size = path.stat().st_size
        if size != record["size"]:
            wrong.append(f"{name}: {size} bytes, the manifest says {record['size']}")
        elif sha256_file(path) != record["sha256"]:
            wrong.append(f"{name}: sha256 differs from the manifest's")
        checked += size
    if wrong:
        raise BackupError(
            f"the backup set {folder} is damaged, nothing was restored:\n  " + "\n  ".join(wrong)
        )
    return checked


def new_set_folder(parent: Path) -> tuple[Path, Path]:
    """(partial folder to write into, final name): the set appears under its name only once complete."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    final = parent / f"{SET_PREFIX}{stamp}"
    if final.exists():
        raise BackupError(f"{final} exists already: one backup a second at most")
    partial = parent / f".{final.name}{PARTIAL_SUFFIX}"
    shutil.rmtree(partial, ignore_errors=True)  # a crashed run's leftovers
    partial.mkdir(mode=0o700)
    return partial, final


def complete_sets(parent: Path) -> list[Path]:
    """The complete sets in ``parent`` (those with a manifest), oldest first."""
    if not parent.is_dir():
        return []
    found = [
        p
        for p in parent.iterdir()
        if p.is_dir() and p.name.startswith(SET_PREFIX) and (p / MANIFEST).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def this_host() -> str:
    return socket.gethostname()
