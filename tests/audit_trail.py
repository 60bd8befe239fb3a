"""Reading the audit stream from tests: reads and refusals are written behind, with the next
batch, so a test waits (bounded) until what it expects is there."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.asyncio as aioredis

from riskgate.store.keys import Keys

Entry = dict[str, str]


async def audit_entries(url: str, where: Callable[[Entry], bool],
                        until: Callable[[list[Entry]], bool]) -> list[Entry]:
    """The entries `where` selects, once `until` holds for them; AssertionError after ~10 s."""
    redis = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        for _ in range(1000):
            entries = [fields for _, fields in await all_audit(redis) if where(fields)]
            if until(entries):
                return entries
            await asyncio.sleep(0.01)
        raise AssertionError(f"the audit never got there: {entries[-5:]}")
    finally:
        await redis.aclose()


async def all_audit(redis: aioredis.Redis, shard_count: int = 1) -> list[tuple[str, Entry]]:
    """The global audit stream and every shard's, merged in id order (one stream before
    per-shard hash tags: admin changes of global records in the first, what a shard writes
    behind and changes of its accounts in its own)."""
    keys = Keys("rg")
    rows = list(await redis.xrange(keys.audit))
    for shard in keys.shards(shard_count):
        rows += await redis.xrange(shard.shard_audit)

    def order(row: tuple[str, Entry]) -> tuple[int, int]:
        ms, _, seq = (row[0].decode() if isinstance(row[0], bytes) else row[0]).partition("-")
        return int(ms), int(seq)

    return sorted(rows, key=order)


async def audit_of(url: str, action: str, count: int = 1) -> list[Entry]:
    """The entries of `action`, once there are at least `count`."""
    return await audit_entries(url, lambda e: e["action"] == action, lambda entries: len(entries) >= count)
