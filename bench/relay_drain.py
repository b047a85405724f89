"""The relay bench's drain: plays the learner (XREADGROUP on the campaign's group, XACK + XDEL), and
records which chunk ids the stream received and how often, so that the bench can count acked chunks
that were lost or stored twice."""

from __future__ import annotations

import asyncio


def chunk_id(frame: bytes) -> str:
    """The id of a stored chunk, read without unpacking its arrays (the relay stores the client's frame)."""
    import msgpack

    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(frame[:256])
    try:
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key == "id":
                return unpacker.unpack()
            unpacker.skip()
    except msgpack.OutOfData:
        pass
    return msgpack.unpackb(frame, raw=False)["id"]


class Drain:
    def __init__(self, redis_url: str, stream: str, group: str):
        self.redis_url, self.stream, self.group = redis_url, stream, group
        self.seen: dict[str, int] = {}
        self.entries = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self.redis_url)
        try:
            while True:
                reply = await client.xreadgroup(self.group, "bench-drain", {self.stream: ">"}, count=1000, block=100)
                entries = reply[0][1] if reply else []
                if entries:
                    ids = []
                    for entry_id, fields in entries:
                        ids.append(entry_id)
                        cid = chunk_id(fields[b"c"])
                        self.seen[cid] = self.seen.get(cid, 0) + 1
                    self.entries += len(entries)
                    pipe = client.pipeline(transaction=False)
                    pipe.xack(self.stream, self.group, *ids)
                    pipe.xdel(self.stream, *ids)
                    await pipe.execute()
                elif self.stop.is_set():
                    break
        finally:
            await client.aclose()
