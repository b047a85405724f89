"""``backup_create``: one set, Redis first, then PostgreSQL, then the storage's files (why in
``portal.core.backup``); ``backup_prune``: keep the newest sets."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from portal.core.backup.files import storage_backup
from portal.core.backup.postgres import postgres_dump
from portal.core.backup.redisdata import redis_fetch_rdb, redis_read_rdb
from portal.core.backup.sets import (
    DUMP,
    RDB,
    STORAGE,
    Manifest,
    complete_sets,
    new_set_folder,
    this_host,
    utc_now,
)


def backup_create(
    *,
    parent: Path,
    redis_cli: str | None = None,
    redis_server: str | None = None,
    pg_dump: str | None = None,
    say: Callable[[str], None] = lambda text: None,
) -> Path:
    """Write a complete backup set under ``parent`` and return its folder. A set appears under its name
    only once its manifest is written; a failed run leaves nothing but the error."""
    partial, final = new_set_folder(parent)
    try:
        manifest = Manifest(created=utc_now(), host=this_host())

        taken = utc_now()
        source = redis_fetch_rdb(settings.REDIS_URL, partial / RDB, redis_cli=redis_cli)
        figures = redis_read_rdb(partial / RDB, platform_db=source["db"], redis_server=redis_server)
        manifest.redis = {"taken": taken, **source, **figures}
        size = manifest.add_file(partial, RDB)["size"]
        say(f"redis: {size} bytes, keys {figures['keys']}, {len(figures['streams'])} streams")

        taken = utc_now()
        contents = postgres_dump(partial / DUMP, pg_dump=pg_dump)
        manifest.postgres = {"taken": taken, **contents}
        size = manifest.add_file(partial, DUMP)["size"]
        say(f"postgres: {size} bytes, {sum(contents['rows'].values())} rows in {len(contents['rows'])} tables, "
            f"{len(contents['campaigns'])} campaigns, {len(contents['models'])} model versions")  # fmt: skip

        taken = utc_now()
        copied = storage_backup(partial, models=contents["models"])
        manifest.storage = {"taken": taken, "missing": copied["missing"], "mismatched": copied["mismatched"]}
        for name in copied["files"]:
            manifest.add_file(partial, f"{STORAGE}/{name}")
        say(f"storage: {len(copied['files'])} files")
        for name in copied["missing"]:
            say(f"warning: the database names {name}, which the storage no longer had (pruned meanwhile?)")
        for name in copied["mismatched"]:
            say(f"warning: {name} does not have its row's sha256: the stored file is damaged")

        manifest.finished = utc_now()
        manifest.write(partial)
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def backup_prune(parent: Path, *, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` complete sets in ``parent``; return those removed."""
    stale = complete_sets(parent)[:-keep] if keep > 0 else []
    for folder in stale:
        shutil.rmtree(folder)
    return stale
