"""The experience stream: a campaign's chunks, read by its learner through the consumer group "learner".

The relay XADDs every stored chunk to ``{c<id>}:stream`` (``CampaignKeys.stream``) and tells the
client it is safe; the learner reads entries with XREADGROUP. An entry the learner has read is *held*:
it stays in the stream, pending in the group, until a checkpoint whose learner state covers it is
published; only then is it acknowledged and deleted (XACK + XDEL). A learner host that dies therefore
loses nothing: its successor resumes from that checkpoint and claims the held entries (XAUTOCLAIM),
ingesting again exactly those the checkpoint does not cover (``StreamPosition``). The relay's backlog,
what the learner has not read yet, is XLEN minus the group's pending count (portal/relay/store.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from trainer.keys import CampaignKeys

READ_COUNT = 16  # chunks per XREADGROUP
READ_BLOCK_MS = 100  # short, so the lease, status and heartbeat stay on time while data is scarce

Entry = tuple[bytes, dict[bytes, bytes]]  # (entry id, fields): field b"c" is the stored chunk frame


@dataclass(frozen=True, order=True)
class StreamPosition:
    """A stream entry id ("<ms>-<seq>"), ordered as Redis orders them (not as strings)."""

    ms: int = 0
    seq: int = 0

    @classmethod
    def parse(cls, entry_id: bytes | str) -> StreamPosition:
        text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        ms, _, seq = text.partition("-")
        try:
            return cls(int(ms), int(seq or 0))
        except ValueError:
            raise ValueError(f"not a stream entry id: {text!r}") from None

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


START = StreamPosition()  # before every entry: a fresh agent covers nothing


class ExperienceStream:
    """The campaign's chunk stream, read through the consumer group; entries are held until covered."""

    def __init__(self, client: redis.Redis, keys: CampaignKeys, consumer: str):
        self.client = client
        self.stream = keys.stream
        self.group = keys.group
        self.consumer = consumer

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless it exists."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def claim_pending(self) -> list[Entry]:
        """Take every entry of the group that was read but not yet covered by a checkpoint, oldest first.

        Those are entries held by earlier (dead) learners, or by this one before it went back to a
        checkpoint. Clients were told they are safe, so they must reach a buffer. We hold the lease,
        so every other consumer of the group is dead: no idle time is required.
        """
        claimed: list[Entry] = []
        start: Any = "0-0"
        while True:
            next_id, entries, *_ = self.client.xautoclaim(
                self.stream, self.group, self.consumer, min_idle_time=0, start_id=start, count=100
            )
            claimed.extend((entry_id, fields) for entry_id, fields in entries if entry_id is not None)
            if next_id in (b"0-0", "0-0"):
                break
            start = next_id
        # Entries deleted from the stream while pending stay in our PEL on Redis < 7 with no data:
        # nothing to ingest, so acknowledge them.
        kept = {entry_id for entry_id, _ in claimed}
        pending = self.client.xpending_range(
            self.stream, self.group, min="-", max="+", count=10_000, consumername=self.consumer
        )
        gone = [p["message_id"] for p in pending if p["message_id"] not in kept]
        if gone:
            self.done(gone)
        for consumer in self.client.xinfo_consumers(self.stream, self.group):
            name = consumer["name"]
            if consumer["pending"] == 0 and name not in (self.consumer, self.consumer.encode()):
                self.client.xgroup_delconsumer(self.stream, self.group, name)
        claimed.sort(key=lambda entry: StreamPosition.parse(entry[0]))
        return claimed

    def read(self, count: int = READ_COUNT, block_ms: int = READ_BLOCK_MS) -> list[Entry]:
        """New entries for this consumer, waiting at most ``block_ms`` for the first."""
        response = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return [entry for _, entries in response or [] for entry in entries]

    def done(self, ids: list[bytes]) -> None:
        """Acknowledge and delete entries a published checkpoint covers, in one round trip."""
        if not ids:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(self.stream, self.group, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()
