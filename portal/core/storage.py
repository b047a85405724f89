"""Files every host reads over the network: the SFTP storage engine, and streaming a stored file.

The default storage is the local media folder (``make run`` needs nothing else). With
``SOULSAI_STORAGE=sftp`` it is ``SoulsSFTPStorage``: django-storages' ``SFTPStorage`` (paramiko) with
the host key checked against a known_hosts file (never trust-on-first-use), bounded timeouts, one
connection per process, and writes that appear whole (uploaded beside the target, then renamed), so a
reader on another host never sees half a model or half a manifest. docs/deployment.md, "Storage".
"""

from __future__ import annotations

import os
import posixpath
import secrets
import threading
from collections.abc import AsyncIterator, Iterator

import paramiko
from asgiref.sync import sync_to_async
from django.core.files.storage import Storage
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from storages.backends.sftpstorage import SFTPStorage

#: Bytes read from storage per step when a file is streamed to a client: the memory one download holds.
STREAM_CHUNK_BYTES = 256 * 1024
#: Seconds to connect and authenticate, and the most one SFTP request may wait for the server.
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 30.0


class StorageConfigError(RuntimeError):
    """The storage settings are incomplete or name a file that is not there."""


class _Locked:
    """A paramiko object whose calls hold the storage's lock. One ``SFTPClient`` must not serve two
    threads at once (a thread waiting for its answer can read and drop another's), and a process has
    several: ASGI's thread pool, a worker's learner threads. Files it opens are wrapped the same way."""

    def __init__(self, target, lock: threading.RLock):
        self._target, self._lock = target, lock

    def __getattr__(self, name: str):
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with self._lock:
                result = attr(*args, **kwargs)
            return _Locked(result, self._lock) if isinstance(result, paramiko.SFTPFile) else result

        return call


class SoulsSFTPStorage(SFTPStorage):
    """``SFTPStorage`` that refuses an unknown host key, times out, writes atomically, and is safe to
    use from several threads (one connection per process, one request at a time)."""

    def __init__(self, **settings):
        super().__init__(**settings)
        self._lock = threading.RLock()
        self._pid = os.getpid()

    def _connect(self):
        known_hosts = self.known_host_file
        if not known_hosts or not os.path.isfile(known_hosts):
            raise StorageConfigError(
                f"SOULSAI_SFTP_KNOWN_HOSTS must name a known_hosts file with the server's key (got {known_hosts!r})"
            )
        ssh = paramiko.SSHClient()
        ssh.load_host_keys(known_hosts)
        # A key that is not in known_hosts is refused: a stranger's server must not receive model files.
        ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        params = {
            "timeout": CONNECT_TIMEOUT_S,
            "banner_timeout": CONNECT_TIMEOUT_S,
            "auth_timeout": CONNECT_TIMEOUT_S,
            "allow_agent": False,
            "look_for_keys": False,
            **self.params,
        }
        ssh.connect(self.host, **params)
        sftp = ssh.open_sftp()
        sftp.get_channel().settimeout(REQUEST_TIMEOUT_S)
        self._ssh, self._sftp, self._pid = ssh, sftp, os.getpid()

    @property
    def sftp(self) -> paramiko.SFTPClient:
        # One connection per process: a forked child (Celery's pool) must not share its parent's socket.
        with self._lock:
            transport = self._ssh.get_transport() if self._ssh is not None else None
            if (
                self._sftp is None
                or transport is None
                or not transport.is_active()
                or self._pid != os.getpid()
            ):
                self._connect()
            return _Locked(self._sftp, self._lock)

    def close(self):
        with self._lock:
            super().close()

    def _save(self, name, content):
        """Upload beside the target, then rename it into place: the name appears only when whole."""
        if hasattr(content, "seek"):
            content.seek(0)
        path = self._remote_path(name)
        dirname = posixpath.dirname(path)
        if not self._path_exists(dirname):
            self._mkdir(dirname)
        partial = posixpath.join(dirname, f".{posixpath.basename(path)}.{secrets.token_hex(6)}.partial")
        try:
            self.sftp.putfo(content, partial)
            if self.file_mode is not None:
                self.sftp.chmod(partial, self.file_mode)
            self.sftp.posix_rename(partial, path)
        except BaseException:
            try:
                self.sftp.remove(partial)
            except OSError:
                pass
            raise
        return name

    def _mkdir(self, path):
        try:
            super()._mkdir(path)
        except OSError:
            if not self._path_exists(path):  # another host made it in the meantime: fine
                raise


def stream_file(request: HttpRequest, storage: Storage, name: str, *, chunk_bytes: int = STREAM_CHUNK_BYTES):
    """A stored file's bytes for a StreamingHttpResponse, ``chunk_bytes`` at a time.

    Under ASGI an async iterator (reads run in a worker thread): Django would consume a synchronous
    iterator whole before sending it, holding the file in memory. Under WSGI (and Django's test
    client) a plain iterator.
    """
    if isinstance(request, ASGIRequest):
        return _aiter_file(storage, name, chunk_bytes)
    return _iter_file(storage, name, chunk_bytes)


def _iter_file(storage: Storage, name: str, chunk_bytes: int) -> Iterator[bytes]:
    with storage.open(name, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            yield chunk


async def _aiter_file(storage: Storage, name: str, chunk_bytes: int) -> AsyncIterator[bytes]:
    handle = await sync_to_async(storage.open, thread_sensitive=False)(name, "rb")
    try:
        while chunk := await sync_to_async(handle.read, thread_sensitive=False)(chunk_bytes):
            yield chunk
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()
