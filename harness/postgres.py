"""A throw-away PostgreSQL server of a test's own: Debian's binaries, run as the ``postgres`` user.

For tests whose processes run as separate hosts (``harness.netns``): a SQLite file is one host's
alone, so the portal's database must be a server every host reaches over the network. The cluster
lives in a fresh folder owned by ``postgres`` (initdb refuses to run as root), listens on the
addresses given (no Unix socket outside that folder), lets the given networks in without a password
(``trust``: nothing else can reach those addresses) and runs without fsync: it is thrown away.

    server = start_postgres(listen=["10.213.7.1"], trust=["10.213.7.0/24"])
    env = {**env, "DATABASE_URL": server.url("10.213.7.1")}
    server.stop()      # stops it and removes its folder
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.processes import free_port, wait_for

PG_USER = "postgres"
DATABASE = "soulsai"


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (the newest installed), or None."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")]
    found.sort(key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)
    return found[-1] if found else None


def postgres_missing() -> str | None:
    """Why no private PostgreSQL can be started here (a sentence), or None if it can."""
    if postgres_bin() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: apt-get install postgresql"
    if os.geteuid() != 0:
        return "starting a private PostgreSQL needs root (to run it as the postgres user)"
    if shutil.which("runuser") is None:
        return "runuser not found (util-linux)"
    try:
        import pwd

        pwd.getpwnam(PG_USER)
    except KeyError:
        return f"no {PG_USER!r} user: apt-get install postgresql"
    return None


def _as_postgres(argv: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", PG_USER, "--", *argv],
        capture_output=True, text=True, timeout=timeout, cwd="/",
    )  # fmt: skip


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class PostgresServer:
    """A running private cluster; ``url(address)`` is a DATABASE_URL for it."""

    folder: Path
    port: int
    listen: list[str]
    bin_dir: Path
    options: str = ""  # the server's own settings (pg_ctl start -o)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.folder / "postgres.log"

    def url(self, address: str | None = None) -> str:
        return f"postgres://{PG_USER}@{address or self.listen[0]}:{self.port}/{DATABASE}"

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def crash(self) -> None:
        """Stop the server as a crash would (``-m immediate``: no checkpoint), keeping its folder."""
        done = _as_postgres([str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w"],
                            timeout=30)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self, timeout: float = 60) -> None:
        """Start the server on its folder again (after ``crash``: it recovers from its WAL)."""
        done = _as_postgres(
            [str(self.bin_dir / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log_path), "-w",
             "-t", str(int(timeout)), "-o", self.options],
            timeout=timeout + 10,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{self.output()}")
        wait_for(lambda: _answers(self.listen[0], self.port), timeout, f"PostgreSQL on {self.listen[0]}:{self.port}")

    def stop(self) -> None:
        """Stop the server (immediately: nothing in it is kept) and remove its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                _as_postgres([str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w"],
                             timeout=30)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(*, listen: list[str], trust: list[str], timeout: float = 60) -> PostgresServer:
    """initdb a fresh cluster, start it on a free port at the ``listen`` addresses, create the database.

    ``trust`` are the networks (CIDR) allowed in without a password. Raises RuntimeError with the
    server's log when it does not start; nothing is left behind then.
    """
    missing = postgres_missing()
    if missing:
        raise RuntimeError(missing)
    bin_dir = postgres_bin()
    assert bin_dir is not None
    # Not under pytest's tmp_path: /tmp/pytest-of-root is root's alone (0700), and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="soulsai-pg-"))
    shutil.chown(folder, user=PG_USER, group=PG_USER)
    server = PostgresServer(folder=folder, port=free_port(listen[0]), listen=list(listen), bin_dir=bin_dir)
    try:
        done = _as_postgres(
            [str(bin_dir / "initdb"), "-D", str(server.data), "-U", PG_USER, "--auth=trust", "--encoding=UTF8",
             "--no-sync", "--locale=C"],
            timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        with open(server.data / "pg_hba.conf", "a") as hba:
            for network in trust:
                hba.write(f"host all all {network} trust\n")
        server.options = " ".join([
            f"-c listen_addresses={','.join(listen)}",
            f"-c port={server.port}",
            f"-c unix_socket_directories={folder}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            "-c max_connections=100",
        ])  # fmt: skip
        server.start(timeout)
        done = _as_postgres(
            [str(bin_dir / "createdb"), "-h", listen[0], "-p", str(server.port), "-U", PG_USER, DATABASE], timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(f"createdb failed ({done.returncode}):\n{done.stderr}\n{server.output()}")
    except BaseException:
        server.stop()
        raise
    return server
