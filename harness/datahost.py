"""A data host of a test's own: a private PostgreSQL (harness/postgres.py), Redis with the operator's
deploy/redis/redis.conf (harness/redis_server.py) and an SFTP storage server (harness/sftp.py), all
on one address, in one folder; ``env()`` points a platform process at all three.

Redis can start later than the others (``start_redis()``): a restore writes its data folder first.

    host = start_data_host(tmp_path / "old")
    env = {**env, **host.env()}
    host.stop()
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.postgres import PostgresServer, postgres_missing, start_postgres
from harness.processes import free_port
from harness.redis_server import RedisServer, redis_server_missing, start_redis_server
from harness.sftp import SftpServer, sshd_missing, start_sftp_server


def data_host_missing() -> str | None:
    """Why no data host (and no backup of one) can run here (a sentence), or None."""
    for tool, package in (("pg_dump", "postgresql-client"), ("pg_restore", "postgresql-client"),
                          ("redis-cli", "redis-tools")):  # fmt: skip
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install {package}"
    return postgres_missing() or redis_server_missing() or sshd_missing()


@dataclass
class DataHost:
    folder: Path
    address: str
    pg: PostgresServer
    sftp: SftpServer
    redis_port: int
    redis: RedisServer | None = None

    @property
    def redis_dir(self) -> Path:
        return self.folder / "redis"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.address}:{self.redis_port}/0"

    def start_redis(self) -> RedisServer:
        """Redis with deploy/redis/redis.conf on the host's port, its data in ``redis_dir``."""
        self.redis = start_redis_server(self.redis_dir, host=self.address, port=self.redis_port)
        return self.redis

    def env(self) -> dict[str, str]:
        """DATABASE_URL, REDIS_URL and the storage settings of this host."""
        return {"DATABASE_URL": self.pg.url(self.address), "REDIS_URL": self.redis_url, **self.sftp.env()}

    def stop(self) -> None:
        """Stop every server (the PostgreSQL folder is removed; Redis's and the SFTP root stay)."""
        for stop in (self.redis.stop if self.redis else None, self.sftp.stop, self.pg.stop):
            if stop is not None:
                try:
                    stop()
                except Exception:  # noqa: BLE001  (the others must still stop)
                    pass


def start_data_host(folder: Path, *, address: str = "127.0.0.1", redis: bool = True) -> DataHost:
    """PostgreSQL (an empty ``soulsai`` database), the SFTP server (an empty root) and, with ``redis``,
    Redis on an empty folder; all listening on ``address``."""
    folder.mkdir(parents=True, exist_ok=True)
    pg = start_postgres(listen=[address], trust=[f"{address}/32"])
    try:
        sftp = start_sftp_server(folder / "sftp", host=address)
    except BaseException:
        pg.stop()
        raise
    host = DataHost(folder=folder, address=address, pg=pg, sftp=sftp, redis_port=free_port(address))
    if redis:
        try:
            host.start_redis()
        except BaseException:
            host.stop()
            raise
    return host
