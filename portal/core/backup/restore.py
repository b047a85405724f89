"""``backup_restore``: a set brought up on a fresh data host, each part checked against the manifest."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from portal.core.backup.files import storage_restore
from portal.core.backup.postgres import postgres_finish_prune, postgres_restore
from portal.core.backup.redisdata import redis_restore_dir
from portal.core.backup.sets import DUMP, RDB, STORAGE, BackupError, manifest_read, verify_files

PARTS = ("postgres", "redis", "storage")


def backup_restore(
    *,
    folder: Path,
    parts: Collection[str] = PARTS,
    redis_dir: Path | None = None,
    redis_server: str | None = None,
    redis_conf: Path | None = None,
    pg_restore: str | None = None,
    say: Callable[[str], None] = lambda text: None,
) -> dict:
    """Restore ``parts`` of the set in ``folder``: the database into the configured (empty) database,
    Redis's data into ``redis_dir`` (Redis stopped, no data there yet), the files into the configured
    storage. Every file's sha256 is checked first, so a damaged set changes nothing."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise BackupError(f"unknown parts {sorted(unknown)}: choose from {', '.join(PARTS)}")
    if "redis" in parts and redis_dir is None:
        raise BackupError(
            "restoring Redis needs --redis-dir: the data folder of the new host's Redis (stopped)"
        )
    manifest = manifest_read(folder)
    stored = sorted(n for n in manifest.files if n.startswith(f"{STORAGE}/"))
    names = ([DUMP] if "postgres" in parts else []) + ([RDB] if "redis" in parts else [])
    names += stored if "storage" in parts else []
    checked = verify_files(folder, manifest, names)
    say(
        f"set {folder.name} (taken {manifest.created} on {manifest.host}): {len(names)} files, {checked} bytes, sha256 ok"
    )
    done: dict = {}
    if "postgres" in parts:
        rows = postgres_restore(folder / DUMP, expected=manifest.postgres, pg_restore=pg_restore)
        done["postgres"] = rows
        say(f"postgres: {sum(rows.values())} rows in {len(rows)} tables, as the manifest says")
        deleted, damaged = postgres_finish_prune(manifest.storage.get("missing", []))
        if deleted:
            say(
                f"postgres: {deleted} superseded model versions pruned during the backup: their rows deleted too"
            )
        for name in damaged:
            say(
                f"warning: the checkpoint file {name} is not in the set; its version cannot be downloaded or resumed"
            )
    if "redis" in parts:
        figures = redis_restore_dir(folder / RDB, redis_dir, expected=manifest.redis,
                                    redis_server=redis_server, redis_conf=redis_conf)  # fmt: skip
        done["redis"] = figures
        say(
            f"redis: {redis_dir} holds the set's data as an append-only file, keys {figures['keys']}; start Redis there"
        )
    if "storage" in parts:
        expected = {n.removeprefix(f"{STORAGE}/"): manifest.files[n]["sha256"] for n in stored}
        counts = storage_restore(folder, sorted(expected), expected=expected)
        done["storage"] = counts
        say(
            f"storage: {counts['stored']} files stored and read back with their sha256 ({counts['present']} were there)"
        )
    return done
