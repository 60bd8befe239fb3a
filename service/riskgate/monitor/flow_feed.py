"""What the monitor follows of the order flow: the gate's `order_flow` stream (one entry per
write-behind batch: every account's counts and the fills applied; see book/flow.py).

Windowed metrics need only the last window's entries, and stream ids are the gate's Redis
time: a monitor that starts reads from (now - the longest window) on, so a restarted monitor
holds exactly what one that never stopped would, without a stored cursor and without reading
anything older. After a lost link it resumes from the last id it applied.

Each account shard appends to its own stream (its hash tag, store/keys.py): the feed follows
every shard's of the layout the accounts are stored under, each from its own id, concurrently
(an account's batches all come from its one shard, so each account's flow stays in order).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from riskgate.book.flow import FlowBatch
from riskgate.monitor.shard_streams import follow_each
from riskgate.monitor.writes import now_ms
from riskgate.store.decision_counts import account_shard_count
from riskgate.store.keys import Keys

log = logging.getLogger(__name__)

READ_COUNT = 500
BLOCK_MS = 1000
RETRY_BACKOFF_S = 0.05
MAX_RETRY_BACKOFF_S = 1.0
_batch = msgspec.json.Decoder(FlowBatch)


class FlowFeed:
    def __init__(self, client: aioredis.Redis, keys: Keys, window_ms: Callable[[], int],
                 on_batches: Callable[[list[FlowBatch]], None]) -> None:
        self.client = client
        self.keys = keys
        self.window_ms = window_ms
        self.on_batches = on_batches
        # The last id applied per shard's stream (the layout read once, at the first start).
        self.cursors: dict[int, str] | None = None
        self.shard_keys: list[Keys] = []
        self.batches = 0
        self.live = False
        self.started = asyncio.Event()
        self._closing = False

    def close(self) -> None:
        self._closing = True

    @property
    def cursor(self) -> str | None:
        cursors = self.cursors
        return None if cursors is None else ",".join(cursors[index] for index in sorted(cursors))

    async def run(self) -> None:
        backoff = RETRY_BACKOFF_S
        while not self._closing:
            try:
                if self.cursors is None:
                    self.shard_keys = self.keys.shards(await account_shard_count(self.client, self.keys))
                    start = f"{max(now_ms() - self.window_ms(), 0)}-0"
                    self.cursors = dict.fromkeys(range(len(self.shard_keys)), start)
                self.live = True
                self.started.set()
                await self._follow()
                backoff = RETRY_BACKOFF_S
            except Exception as exc:
                self.live = False
                if isinstance(exc, (RedisError, OSError)):
                    log.warning("monitor order-flow feed lost (%s); resuming from %s", exc, self.cursor)
                else:
                    log.exception("monitor order-flow feed failed; resuming from %s", self.cursor)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RETRY_BACKOFF_S)
        self.live = False

    async def _follow(self) -> None:
        await follow_each(len(self.shard_keys), self._follow_shard)

    async def _follow_shard(self, index: int) -> None:
        stream = self.shard_keys[index].order_flow
        while not self._closing and self.cursors is not None:
            response = await self.client.xread({stream: self.cursors[index]}, count=READ_COUNT, block=BLOCK_MS)
            batches: list[FlowBatch] = []
            for _, entries in response or ():
                for entry_id, fields in entries:
                    cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    self.cursors[index] = cursor
                    try:
                        batches.append(_batch.decode(fields[b"d"]))
                    except Exception as exc:  # one bad entry must not stop the feed
                        log.error("ignoring unreadable order-flow entry %s: %r", cursor, exc)
            if batches:
                self.batches += len(batches)
                self.on_batches(batches)
