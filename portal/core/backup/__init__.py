"""Backups of the data host, and bringing one back up on a fresh data host.

A backup set is one folder, ``soulsai-<UTC time>/``, written by ``manage.py backup`` from any host
that has the platform's environment (docs/deployment.md, "Backups and restore"):

    redis.rdb         a point-in-time RDB of the Redis server (``redis-cli --rdb``), taken first
    postgres.dump     ``pg_dump --format=custom`` of the portal's database, taken second
    storage/<name>    every file of the storage engine (model files, checkpoints, the client wheel), last
    manifest.json     written last: when each part was taken, the sha256 and size of every file above,
                      the database's row counts, Redis's key counts and counters, the model versions

The order is what keeps a live set consistent: every model Redis names as current has its row in the
later dump, and every row the dump holds has its files in the storage copied after it (files are
written before their row and never change). ``manage.py restore_backup`` checks every sha256 before it
touches anything, restores into an empty database, an empty Redis folder and a storage without the
set's files, and checks each part against the manifest again.
"""

from portal.core.backup.create import backup_create, backup_prune
from portal.core.backup.restore import backup_restore
from portal.core.backup.sets import BackupError, Manifest, manifest_read

__all__ = ["BackupError", "Manifest", "backup_create", "backup_prune", "backup_restore", "manifest_read"]
