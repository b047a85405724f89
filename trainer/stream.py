"""The experience stream: a campaign's chunks, read by its learner through the consumer group "learner".

The relay XADDs every stored chunk to ``{c<id>}:stream`` (``CampaignKeys.stream``); the learner reads
them with XREADGROUP, and XACKs *and* XDELs each entry once it is in the replay buffer, because the
relay reads XLEN as the backlog the learner has not taken yet and slows clients down when it grows.
"""

from __future__ import annotations

from typing import Any

import redis

from trainer.keys import CampaignKeys

READ_COUNT = 16  # chunks per XREADGROUP
READ_BLOCK_MS = 100  # short, so the lease, status and heartbeat stay on time while data is scarce

Entry = tuple[bytes, dict[bytes, bytes]]  # (entry id, fields): field b"c" is the stored chunk frame


class ExperienceStream:
    """The campaign's chunk stream, read through the consumer group and emptied as it is ingested."""

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

    def claim_orphans(self) -> list[Entry]:
        """Take over what earlier (dead) consumers read but never acknowledged.

        Clients were told those chunks are safe, so they must reach a buffer. We hold the lease, so
        every other consumer of the group is dead: no idle time is required.
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
        # Entries trimmed from the stream (MAXLEN) while pending stay in our PEL on Redis < 7 with no
        # data: nothing to ingest, so acknowledge them.
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
        return claimed

    def read(self, count: int = READ_COUNT, block_ms: int = READ_BLOCK_MS) -> list[Entry]:
        """New entries for this consumer, waiting at most ``block_ms`` for the first."""
        response = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return [entry for _, entries in response or [] for entry in entries]

    def done(self, ids: list[bytes]) -> None:
        """Acknowledge and delete ingested entries, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(self.stream, self.group, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()
