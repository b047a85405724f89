"""Redis's part of a backup set: an RDB taken over the network, read back by a throw-away server, and
turned into the append-only data a fresh data host's Redis starts from.

Why an RDB (``redis-cli --rdb``) rather than a copy of ``appendonlydir/``: the server forks and writes
one point-in-time image of every database, sent over the same connection the platform uses, so the
backup runs from any host that reaches Redis and never reads a folder while Redis appends to it. What
it cannot hold: whatever Redis accepted after the fork (chunks acked after the snapshot, see
docs/deployment.md, "Backups and restore").

Why a throw-away server: an RDB nobody has loaded is a hope, not a backup. The backup loads it into a
redis-server of its own (a Unix socket in a temporary folder, no TCP port) and records what it holds:
the keys of each database, each campaign stream's length and counters. The restore loads it the same
way into the fresh host's data folder, checks those figures, and switches that server to the
append-only file (``CONFIG SET appendonly yes`` rewrites it from memory), so that Redis with the
operator's config (``appendonly yes``) finds its data there. Starting it on the RDB alone would not
do: with ``appendonly yes`` and no append-only file, Redis starts empty and ignores the RDB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import redis

from portal.core.backup.sets import BackupError

LOAD_TIMEOUT_S = 900.0  # loading or rewriting a multi-GB dataset takes minutes
FETCH_TIMEOUT_S = 1800.0
COUNTER_HASHES = ("stats", "machine_samples", "machine_episodes")  # trainer.keys.CampaignKeys's names
AOF_DIR, AOF_FILE, DUMP_FILE = "appendonlydir", "appendonly.aof", "dump.rdb"  # deploy/redis/redis.conf's


def find_binary(name: str, given: str | None = None) -> str:
    path = given or shutil.which(name)
    if not path or not os.access(path, os.X_OK):
        package = "redis-tools" if name == "redis-cli" else "redis-server"
        raise BackupError(f"{given or name} not found: apt-get install {package} (Debian's)")
    return path


def _connection(url: str) -> dict:
    """host, port, db, username, password and TLS of a REDIS_URL (redis-py's own parsing)."""
    from redis.connection import parse_url

    if url.startswith("unix://"):
        raise BackupError("REDIS_URL is a Unix socket: run the backup with a redis:// address")
    parsed = parse_url(url)
    return {
        "host": parsed.get("host", "localhost"),
        "port": int(parsed.get("port", 6379)),
        "db": int(parsed.get("db", 0)),
        "username": parsed.get("username"),
        "password": parsed.get("password"),
        "tls": url.startswith("rediss://"),
    }


def redis_fetch_rdb(url: str, dest: Path, *, redis_cli: str | None = None) -> dict:
    """Write a fresh RDB of the server at ``url`` (every database) to ``dest``; return where it came from.

    The password travels in REDISCLI_AUTH, never on a command line that every user can read."""
    cli = find_binary("redis-cli", redis_cli)
    conn = _connection(url)
    argv = [cli, "-h", conn["host"], "-p", str(conn["port"])]
    if conn["username"]:
        argv += ["--user", conn["username"]]
    if conn["tls"]:
        argv.append("--tls")
    env = {**os.environ}
    env.pop("REDISCLI_AUTH", None)
    if conn["password"]:
        env["REDISCLI_AUTH"] = conn["password"]
    done = subprocess.run([*argv, "--rdb", str(dest)], env=env, capture_output=True, text=True,
                          timeout=FETCH_TIMEOUT_S)  # fmt: skip
    if done.returncode != 0 or not dest.is_file() or dest.stat().st_size == 0:
        raise BackupError(
            f"redis-cli --rdb from {conn['host']}:{conn['port']} failed ({done.returncode}): "
            f"{(done.stdout + done.stderr).strip()[-2000:]}"
        )
    return {"host": conn["host"], "port": conn["port"], "db": conn["db"]}


@contextmanager
def _server(folder: Path, *, redis_server: str | None, redis_conf: Path | None, extra: list[str] = ()):
    """A redis-server on ``folder``'s ``dump.rdb``, reachable only through a Unix socket in a temporary
    folder, with append-only off (it must load the RDB); yields a client once the data is loaded."""
    binary = find_binary("redis-server", redis_server)
    scratch = Path(tempfile.mkdtemp(prefix="soulsai-restore-redis-"))
    sock = scratch / "redis.sock"
    argv = [binary, *([str(redis_conf)] if redis_conf else []),
            "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--dir", str(folder), "--dbfilename", DUMP_FILE, "--appendonly", "no", "--save", "",
            "--daemonize", "no", "--pidfile", str(scratch / "redis.pid"), "--logfile", "",
            "--appenddirname", AOF_DIR, "--appendfilename", AOF_FILE, *extra]  # fmt: skip
    log_path = scratch / "redis.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def fail(what: str) -> BackupError:
        return BackupError(f"{what}; redis-server's log:\n{log_path.read_text(errors='replace')[-3000:]}")

    client = redis.Redis(unix_socket_path=str(sock), socket_timeout=60)
    try:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise fail(f"redis-server exited ({proc.returncode}) before it loaded the RDB")
            try:
                if client.info("persistence")["loading"] == 0:
                    break
            except (redis.ConnectionError, redis.BusyLoadingError, FileNotFoundError):
                pass
            if time.monotonic() > deadline:
                raise fail(f"redis-server did not load the RDB within {LOAD_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield client
    finally:
        try:
            client.shutdown(nosave=True)
        except redis.RedisError:
            pass  # the connection drops as the server exits
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        client.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _figures(client: redis.Redis, platform_db: int) -> dict:
    """Keys per database, and in the platform's database each campaign stream's length and counters."""
    keys = {
        db.removeprefix("db"): {"keys": info["keys"], "expires": info["expires"]}
        for db, info in client.info("keyspace").items()
    }
    client.execute_command("SELECT", platform_db)
    streams, counters = {}, {}
    for raw in client.scan_iter(match="soulsai:{c*}:*", count=1000):
        key = raw.decode()
        suffix = key.rsplit(":", 1)[-1]
        if suffix == "stream" and client.type(raw) == b"stream":
            streams[key] = client.xlen(raw)
        elif suffix in COUNTER_HASHES and client.type(raw) == b"hash":
            counters[key] = {k.decode(): v.decode() for k, v in client.hgetall(raw).items()}
    return {
        "keys": keys,
        "streams": dict(sorted(streams.items())),
        "counters": dict(sorted(counters.items())),
    }


def _lasting(keys: dict) -> dict[str, int]:
    """Keys without a time to live, per database (INFO keyspace's keys minus expires)."""
    return {db: n["keys"] - n["expires"] for db, n in keys.items() if n["keys"] - n["expires"]}


def redis_read_rdb(rdb: Path, *, platform_db: int, redis_server: str | None = None) -> dict:
    """Load ``rdb`` into a throw-away server and return its figures (``_figures``)."""
    scratch = Path(tempfile.mkdtemp(prefix="soulsai-backup-rdb-"))
    try:
        (scratch / DUMP_FILE).symlink_to(rdb.resolve())
        with _server(scratch, redis_server=redis_server, redis_conf=None) as client:
            return _figures(client, platform_db)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def redis_restore_dir(
    rdb: Path,
    folder: Path,
    *,
    expected: dict,
    redis_server: str | None = None,
    redis_conf: Path | None = None,
) -> dict:
    """Make ``folder`` (the fresh data host's Redis folder, Redis not running) hold the RDB's data as an
    append-only file; check the figures against ``expected`` (the manifest's). Returns the figures.

    The folder must hold no Redis data yet. Run as root, the files are given to the folder's owner
    (Debian's ``redis`` user owns /var/lib/redis)."""
    folder.mkdir(parents=True, exist_ok=True)
    present = [name for name in (DUMP_FILE, AOF_DIR, AOF_FILE) if (folder / name).exists()]
    if present:
        raise BackupError(
            f"{folder} already holds Redis data ({', '.join(present)}): restore into an empty folder "
            "(stop Redis and move the old data away first)"
        )
    shutil.copyfile(rdb, folder / DUMP_FILE)
    try:
        with _server(folder, redis_server=redis_server, redis_conf=redis_conf) as client:
            figures = _figures(client, int(expected.get("db", 0)))
            wrong = [
                f"{what}: the manifest says {expected.get(what)}, the RDB holds {figures[what]}"
                for what in ("streams", "counters")
                if figures[what] != expected.get(what)
            ]
            # Keys with a time to live (de-duplication ids, rate windows, the lease) may have expired
            # since the backup read them; every other key must be there.
            lasting, expected_lasting = _lasting(figures["keys"]), _lasting(expected.get("keys", {}))
            if lasting != expected_lasting:
                wrong.append(
                    f"keys without a TTL per database: the manifest says {expected_lasting}, the RDB holds {lasting}"
                )
            if wrong:
                raise BackupError("the RDB does not hold what the manifest says:\n  " + "\n  ".join(wrong))
            client.config_set("appendonly", "yes")  # rewrites the append-only file from memory
            deadline = time.monotonic() + LOAD_TIMEOUT_S
            while True:
                info = client.info("persistence")
                if (
                    info["aof_enabled"]
                    and not info["aof_rewrite_in_progress"]
                    and not info["aof_rewrite_scheduled"]
                ):
                    break
                if time.monotonic() > deadline:
                    raise BackupError(f"the append-only rewrite did not finish within {LOAD_TIMEOUT_S:.0f} s")
                time.sleep(0.1)
            if info["aof_last_bgrewrite_status"] != "ok":
                raise BackupError(f"the append-only rewrite failed ({info['aof_last_bgrewrite_status']})")
    except BaseException:
        shutil.rmtree(folder / AOF_DIR, ignore_errors=True)
        raise
    finally:
        (folder / DUMP_FILE).unlink(missing_ok=True)  # the append-only file is the data from now on
    if os.geteuid() == 0:
        owner = folder.stat()
        for path in [folder / AOF_DIR, *(folder / AOF_DIR).rglob("*")]:
            os.chown(path, owner.st_uid, owner.st_gid)
    return figures
