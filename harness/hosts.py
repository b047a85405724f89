"""What every separate host of a multi-host scenario shares (harness/takeover.py, harness/cluster.py):
a bare environment, the storage server's credentials copied into the host's own folder, and reading
back the state a test judges (a learner's stats hash, rows of the private PostgreSQL)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import redis

from trainer.keys import CampaignKeys


def base_env(home: Path) -> dict[str, str]:
    """What any host's process gets before its role's settings: no variable of this test's own."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }


def host_credentials(sftp, folder: Path) -> dict[str, str]:
    """The storage settings with the SFTP key and known_hosts copied into the host's own folder."""
    folder.mkdir(parents=True, exist_ok=True)
    key, known = folder / "sftp_key", folder / "known_hosts"
    shutil.copyfile(sftp.key_file, key)
    key.chmod(0o600)
    shutil.copyfile(sftp.known_hosts, known)
    return {**sftp.env(), "SOULSAI_SFTP_KEY_FILE": str(key), "SOULSAI_SFTP_KNOWN_HOSTS": str(known)}


def learner_stats(client: redis.Redis, campaign_id: int) -> dict[str, str]:
    """The campaign's learner stats hash (host, heartbeat, samples_ingested, held, ...), decoded."""
    return {k.decode(): v.decode() for k, v in client.hgetall(CampaignKeys(campaign_id).learner).items()}


def db_rows(database_url: str, sql: str, *params) -> list[tuple]:
    """Rows of one query on the private PostgreSQL (psycopg, a connection of its own)."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=10) as conn:
        return conn.execute(sql, params).fetchall()
