"""PostgreSQL's part of a backup set: ``pg_dump --format=custom`` of one snapshot, and ``pg_restore``
into an empty database.

The backup opens a repeatable-read transaction, exports its snapshot and hands it to pg_dump
(``--snapshot``): the row counts and model versions the manifest records are read in that very
snapshot, so they describe exactly what the dump holds, whatever the platform writes meanwhile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from portal.core.backup.sets import BackupError

TIMEOUT_S = 3600.0
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


def _binary(name: str, given: str | None) -> str:
    path = given or shutil.which(name)
    if not path:
        raise BackupError(
            f"{name} not found: apt-get install postgresql-client (the server's major version or newer)"
        )
    return path


def _libpq_env() -> dict[str, str]:
    """The database settings as libpq's variables: the password never appears on a command line."""
    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        raise BackupError(
            f"the database is {db['ENGINE'].rsplit('.', 1)[-1]}, not PostgreSQL: backups and restores need "
            "DATABASE_URL=postgres://... (the embedded SQLite file is one machine's; copy it with sqlite3 .backup)"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    values = {"PGHOST": db.get("HOST"), "PGPORT": db.get("PORT"), "PGUSER": db.get("USER"),
              "PGPASSWORD": db.get("PASSWORD"), "PGDATABASE": db.get("NAME"),
              "PGSSLMODE": (db.get("OPTIONS") or {}).get("sslmode")}  # fmt: skip
    env.update({k: str(v) for k, v in values.items() if v})
    return env


def _tables(cursor) -> list[tuple[str, str]]:
    cursor.execute(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname <> ALL(%s) ORDER BY 1, 2",
        [list(_SYSTEM_SCHEMAS)],
    )
    return list(cursor.fetchall())


def _row_counts(cursor) -> dict[str, int]:
    counts = {}
    for schema, table in _tables(cursor):
        name = f"{connection.ops.quote_name(schema)}.{connection.ops.quote_name(table)}"
        cursor.execute(f"SELECT count(*) FROM {name}")  # noqa: S608  (names from pg_tables, quoted)
        counts[f"{schema}.{table}"] = cursor.fetchone()[0]
    return counts


def _snapshot_contents() -> dict:
    """Campaigns and model versions as the current transaction sees them."""
    from portal.campaigns.models import Campaign, ModelVersion

    campaigns = {
        slug: {
            "status": status,
            "model_version": version,
            "samples_total": samples,
            "episodes_total": episodes,
        }
        for slug, status, version, samples, episodes in Campaign.objects.values_list(
            "slug", "status", "model_version", "samples_total", "episodes_total"
        )
    }
    models = [
        {"campaign": slug, "version": version, "sha256": sha, "weights": weights, "state": state or "",
         "checkpoint": checkpoint}
        for slug, version, sha, weights, state, checkpoint in ModelVersion.objects.order_by(
            "campaign__slug", "version"
        ).values_list("campaign__slug", "version", "sha256", "weights", "state", "is_checkpoint")
    ]  # fmt: skip
    return {"campaigns": campaigns, "models": models}


def postgres_dump(dest: Path, *, pg_dump: str | None = None) -> dict:
    """Dump the database to ``dest`` (custom format) and return what the dump holds: the row count of
    every table, the campaigns and the model versions, all read in the dump's own snapshot."""
    binary, env = _binary("pg_dump", pg_dump), _libpq_env()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
        snapshot, server_version = cursor.fetchone()
        rows = _row_counts(cursor)
        contents = _snapshot_contents()
        # The transaction stays open while pg_dump runs: its snapshot lives only as long as it does.
        done = subprocess.run(
            [binary, "--format=custom", f"--snapshot={snapshot}", "--no-password", f"--file={dest}"],
            env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
        )  # fmt: skip
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return {"server_version": server_version, "rows": rows, **contents}


def postgres_restore(dump: Path, *, expected: dict, pg_restore: str | None = None) -> dict[str, int]:
    """Restore ``dump`` into the configured database, which must be empty (``createdb`` and nothing
    else), in one transaction; check every table's row count against ``expected["rows"]``."""
    binary, env = _binary("pg_restore", pg_restore), _libpq_env()
    with connection.cursor() as cursor:
        tables = _tables(cursor)
    if tables:
        raise BackupError(
            f"the database {env.get('PGDATABASE')!r} is not empty ({len(tables)} tables, e.g. "
            f"{tables[0][0]}.{tables[0][1]}): restore into a new one (createdb -O <user> <name>), "
            "never over a database in use"
        )
    connection.close()
    # --no-owner/--no-privileges: the tables belong to DATABASE_URL's user on the new host, whoever
    # owned them on the old one. --single-transaction: a failed restore leaves the database empty.
    done = subprocess.run(
        [binary, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", "--no-password",
         f"--dbname={env.get('PGDATABASE', '')}", str(dump)],
        env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    if done.returncode != 0:
        raise BackupError(
            f"pg_restore failed ({done.returncode}), the database is left empty: {done.stderr.strip()[-2000:]}"
        )
    with connection.cursor() as cursor:
        rows = _row_counts(cursor)
    if rows != expected["rows"]:
        differ = {t: (expected["rows"].get(t), rows.get(t)) for t in set(rows) | set(expected["rows"])
                  if rows.get(t) != expected["rows"].get(t)}  # fmt: skip
        raise BackupError(
            f"restored row counts differ from the manifest's (table: manifest, restored): {differ}"
        )
    return rows


def postgres_finish_prune(missing: list[str]) -> tuple[int, list[str]]:
    """Delete the restored rows of superseded model versions whose files the set lacks: beat pruned
    them on the old host between the dump and the storage copy, and would have deleted the rows a
    moment later. Returns (rows deleted, names of checkpoint files missing: those are never pruned,
    so their absence is damage, reported, and their rows kept)."""
    from portal.campaigns.models import ModelVersion

    if not missing:
        return 0, []
    pruned = ModelVersion.objects.filter(weights__in=missing, is_checkpoint=False)
    deleted, _ = pruned.delete()  # rows only (no signal deletes files): theirs are gone already
    damaged = sorted(
        name
        for weights, state in ModelVersion.objects.filter(is_checkpoint=True).values_list("weights", "state")
        for name in (weights, state)
        if name and name in set(missing)
    )
    return deleted, damaged
