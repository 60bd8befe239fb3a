"""Following one stream per account shard: on a Redis Cluster each shard's stream is in its own
slot, and a blocking XREAD cannot span slots, so every shard is read by a task of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def follow_each(shards: int, follow: Callable[[int], Awaitable[None]]) -> None:
    """Runs follow(index) for every shard at once; the first failure stops the others and is
    raised as itself (the callers' retry loops handle one exception, not a group)."""
    if shards == 1:
        await follow(0)
        return
    try:
        async with asyncio.TaskGroup() as group:
            for index in range(shards):
                group.create_task(follow(index))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
