"""A bounded on-disk spool of chunks the server has not acknowledged yet.

A chunk counts as made only once it is in the spool, and leaves it only when the server acks (or
rejects) it, so a crash, a Ctrl-C or a lost connection never loses experience that was not stored
server-side: the next process on the same campaign and token resends whatever an old one left.

One file per chunk: the chunk id on the first line, then the packed frame. A file is written to a
temporary name and renamed into place (``os.replace`` is atomic on POSIX and on Windows), so a
reader never sees half a chunk. The id lives inside the file, not in its name, because chunk ids may
hold ``:``, which Windows does not allow in file names. File names carry a sequence number, so
sorting them gives the creation order, and a tag of the process that wrote them, so two clients that
share a spool by mistake never overwrite each other's files.

A file's modification time is when its chunk was spooled (files are written once and never
touched again). ``inherited`` and ``spooled_at`` tell the sender which chunks an earlier process
left and when: client 0.1.0 spooled frames without a ``made`` time, and the sender stamps them with
that time before it resends them (``client_app.connection``).
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path

from client_app import folders

MB = 1024 * 1024  # --spool-max-mb counts these
DEFAULT_MAX_CHUNKS = 1000
DEFAULT_MAX_BYTES = 512 * MB

_SUFFIX = ".chunk"
_NAME = re.compile(r"^(\d{12})-[0-9a-f]{8}\.chunk$")
_CHUNK_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")


def default_spool_root() -> Path:
    """The root of the spools in the user's cache folder (client_app.folders: by platformdirs)."""
    return folders.spool_root()


def spool_key(campaign_slug: str, machine_prefix: str) -> str:
    """The spool directory name of one campaign and machine token: safe on every file system."""
    text = f"{campaign_slug}-{machine_prefix}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:100] or "default"


class Spool:
    """Unacked chunk frames on disk, in creation order, bounded in count and bytes.

    Thread-safe: the env loop adds, the connection thread reads and acks. ``add`` blocks while the
    spool is full, which is how a client that cannot reach the server stops producing.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_chunks: int = DEFAULT_MAX_CHUNKS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        if max_chunks < 1 or max_bytes < 1:
            raise ValueError("a spool must hold at least one chunk")
        self.directory = Path(directory)
        self.max_chunks = max_chunks
        self.max_bytes = max_bytes
        self._files: OrderedDict[str, tuple[Path, int]] = OrderedDict()  # id -> (path, size)
        self._inherited: set[str] = set()  # ids of chunks an earlier process left (see inherited())
        self._bytes = 0
        self._next_seq = 0
        self._closed = False
        self._tag = secrets.token_hex(4)
        self._cond = threading.Condition()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._load()

    def _load(self) -> None:
        """Index what a previous process left, oldest first, and drop its half-written temp files."""
        names = []
        for path in self.directory.iterdir():
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                continue
            match = _NAME.match(path.name)
            if match:
                names.append((int(match.group(1)), path.name, path))
        for seq, _, path in sorted(names):
            self._next_seq = seq + 1
            try:
                with path.open("rb") as f:
                    chunk_id = f.readline(100).rstrip(b"\n").decode("ascii")
                size = path.stat().st_size
            except (OSError, UnicodeDecodeError):
                continue
            if not _CHUNK_ID.match(chunk_id) or chunk_id in self._files:
                path.unlink(missing_ok=True)  # unreadable or a leftover duplicate: nothing to resend
                continue
            self._files[chunk_id] = (path, size)
            self._inherited.add(chunk_id)
            self._bytes += size

    # -- producer side ---------------------------------------------------------------------------

    def has_room(self) -> bool:
        with self._cond:
            return self._has_room()

    def _has_room(self) -> bool:
        # An empty spool always takes one chunk, however large, so a big chunk cannot block forever.
        return not self._files or (len(self._files) < self.max_chunks and self._bytes < self.max_bytes)

    def drained(self) -> bool:
        """Down to half its caps or less: a producer that found it full plays again (client_app.runner)."""
        with self._cond:
            return len(self._files) <= self.max_chunks // 2 and self._bytes <= self.max_bytes // 2

    def add(self, chunk_id: str, frame: bytes, *, timeout: float | None = None) -> bool:
        """Store a chunk's frame durably; wait up to ``timeout`` seconds (None: forever) for room.

        Returns True once the chunk is on disk (or already was), False if the spool stayed full or
        was closed. Adding an id that is already spooled does nothing.
        """
        if not _CHUNK_ID.match(chunk_id):
            raise ValueError(f"invalid chunk id {chunk_id!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._has_room() and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            if self._closed:
                return False
            if chunk_id in self._files:
                return True
            seq = self._next_seq
            self._next_seq += 1
        path = self.directory / f"{seq:012d}-{self._tag}{_SUFFIX}"
        tmp = path.with_name(path.name + ".tmp")
        data = chunk_id.encode("ascii") + b"\n" + bytes(frame)
        with tmp.open("wb") as f:
            f.write(data)
        os.replace(tmp, path)
        with self._cond:
            self._files[chunk_id] = (path, len(data))
            self._bytes += len(data)
        return True

    # -- consumer side ---------------------------------------------------------------------------

    def pending(self) -> list[str]:
        """Ids of every spooled chunk, oldest first."""
        with self._cond:
            return list(self._files)

    def read(self, chunk_id: str) -> bytes | None:
        """The frame of a spooled chunk, or None if it is not (or no longer) spooled."""
        with self._cond:
            entry = self._files.get(chunk_id)
        if entry is None:
            return None
        try:
            data = entry[0].read_bytes()
        except FileNotFoundError:
            return None
        return data[data.index(b"\n") + 1 :]

    def inherited(self, chunk_id: str) -> bool:
        """True for a chunk an earlier process left in this spool (it may predate ``made``)."""
        with self._cond:
            return chunk_id in self._inherited

    def spooled_at(self, chunk_id: str) -> int | None:
        """When a spooled chunk was spooled (its file's modification time, unix seconds), or None."""
        with self._cond:
            entry = self._files.get(chunk_id)
        if entry is None:
            return None
        try:
            return int(entry[0].stat().st_mtime)
        except OSError:
            return None

    def ack(self, chunk_id: str) -> bool:
        """Forget a chunk the server stored (or refused); True if it was spooled."""
        with self._cond:
            self._inherited.discard(chunk_id)
            entry = self._files.pop(chunk_id, None)
            if entry is None:
                return False
            self._bytes -= entry[1]
            self._cond.notify_all()
        entry[0].unlink(missing_ok=True)
        return True

    def __len__(self) -> int:
        with self._cond:
            return len(self._files)

    @property
    def size_bytes(self) -> int:
        with self._cond:
            return self._bytes

    def close(self) -> None:
        """Wake and refuse any producer waiting for room (the files stay for the next process)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
