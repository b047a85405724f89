"""The storage engine's part of a backup set: every file through Django's storage API (the SFTP server
or the local media folder alike), copied out with its sha256, and put back checked against it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from django.core.files import File
from django.core.files.storage import Storage, default_storage

from portal.core.backup.sets import HASH_BLOCK, STORAGE, BackupError, sha256_file


def _walk(storage: Storage, folder: str = "") -> Iterator[str]:
    try:
        dirs, files = storage.listdir(folder)
    except FileNotFoundError:  # the local engine before anything was stored
        return
    for name in sorted(files):
        # ".<name>.<hex>.partial": an upload in progress (portal.core.storage writes beside, then renames)
        if not name.startswith("."):
            yield f"{folder}/{name}" if folder else name
    for name in sorted(dirs):
        yield from _walk(storage, f"{folder}/{name}" if folder else name)


def _stored_sha256(storage: Storage, name: str) -> str:
    digest = hashlib.sha256()
    with storage.open(name, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def storage_backup(set_folder: Path, *, models: list[dict], storage: Storage = default_storage) -> dict:
    """Copy every stored file into ``set_folder/storage/``; return the names copied and, of the files
    the database's model versions name, those missing (pruned since the dump) or whose weights' sha256
    differs from their row's."""
    copied = []
    for name in _walk(storage):
        dest = set_folder / STORAGE / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with storage.open(name, "rb") as src, open(dest, "wb") as out:
                while block := src.read(HASH_BLOCK):
                    out.write(block)
        except FileNotFoundError:
            # Listed, then removed (beat prunes superseded versions while the platform runs): not in
            # the set; if the dump names it, it is reported as missing below.
            dest.unlink(missing_ok=True)
            continue
        copied.append(name)
    present = set(copied)
    missing = sorted(n for m in models for n in (m["weights"], m["state"]) if n and n not in present)
    mismatched = sorted(
        m["weights"]
        for m in models
        if m["weights"] in present and sha256_file(set_folder / STORAGE / m["weights"]) != m["sha256"]
    )
    return {"files": copied, "missing": missing, "mismatched": mismatched}


def storage_restore(set_folder: Path, names: list[str], *, expected: dict[str, str],
                    storage: Storage = default_storage) -> dict[str, int]:  # fmt: skip
    """Store each file of the set under its own name, then read it back through the storage and check
    its sha256 against ``expected`` (the manifest's). A file already stored with the same content is
    left as it is; one with other content is never overwritten."""
    stored = present = 0
    for name in names:
        if storage.exists(name):
            if _stored_sha256(storage, name) != expected[name]:
                raise BackupError(
                    f"the storage already has {name} with other content: restore into an empty storage"
                )
            present += 1
            continue
        with open(set_folder / STORAGE / name, "rb") as handle:
            saved = storage.save(name, File(handle, name=name))
        if saved != name:
            raise BackupError(f"the storage stored {name} as {saved}")
        if _stored_sha256(storage, name) != expected[name]:
            raise BackupError(f"{name} read back from the storage does not match the manifest's sha256")
        stored += 1
    return {"stored": stored, "present": present}
