"""The mark feed's writes: ticks gathered for a few milliseconds (the last per symbol wins), then
one Lua call for the whole batch.

Each mark is stored exactly as SetMarkPrice stores one (the marks hash, `{"v": version, "d":
record}`, a new version each) and published on the change channel as one change each, so every
gate's subscriber and the monitor's feed apply it as they apply any mark. What it leaves out is
the per-change machinery of an admin change: no audit entry per mark (the feed is audited per
stream, riskgate.api.markfeed), no outcome key, no place in the writer's admin queue (which
takes at most one change per write-behind batch). Like every write it is fenced by this
process's writer lease and lifts the version counter to the highest version seen; Redis
refuses a batch past its deadline (its oldest tick's receipt plus the staleness bound), so a
batch stuck in a hung Redis never lands over marks written after it.

One batch is in flight at a time, so a symbol's marks reach Redis in the order received.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

import msgspec
from redis.exceptions import RedisError

from riskgate.book.specs import MarkSpec
from riskgate.store.change_stream import PUBLISH_CHANGE_LUA
from riskgate.store.codec import encode
from riskgate.store.redis_store import _LIFT_SEQ, _fenced

if TYPE_CHECKING:
    from riskgate.store.redis_store import RedisStore

log = logging.getLogger(__name__)

# How long the first tick of a batch waits for others: marks tick every 100 ms or so, and
# every batch costs the event loop one script call whatever its size.
BATCH_WINDOW_S = 0.01
# A batch this large goes at once (and bounds the script's arguments).
MAX_BATCH = 1000
CLOSE_TIMEOUT_S = 2.0

# KEYS: seq, marks hash, writer lease, change stream. ARGV: 1 version floor, 2 lease token,
# 3 change channel, 4 deadline (ms by Redis's clock, 0 = none), 5 change stream maxlen, then
# (symbol, record) pairs. Each mark is appended to the change stream as it is published.
# Returns the versions, in order; -1 when the deadline had passed (nothing written).
_MARKS_SCRIPT = _fenced("KEYS[3]", "ARGV[2]") + _LIFT_SEQ + PUBLISH_CHANGE_LUA + """
local deadline = tonumber(ARGV[4])
if deadline > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then return -1 end
end
local n = (#ARGV - 5) / 2
local v = redis.call('INCRBY', KEYS[1], n) - n
local versions = {}
for i = 6, #ARGV, 2 do
  v = v + 1
  redis.call('HSET', KEYS[2], ARGV[i], '{"v":' .. v .. ',"d":' .. ARGV[i + 1] .. '}')
  publish_change(KEYS[4], ARGV[5], ARGV[3], 'mark', v, ARGV[i + 1])
  versions[#versions + 1] = v
end
return versions
"""


class TickSink(Protocol):
    """Who sent a tick (a feed stream): told what became of it."""

    def on_written(self, tick: PendingTick) -> None: ...

    def on_conflated(self, tick: PendingTick) -> None: ...

    def on_not_written(self, tick: PendingTick, unavailable: bool, why: str) -> None: ...


class PendingTick:
    __slots__ = ("mark", "sequence", "sink")

    def __init__(self, mark: MarkSpec, sequence: int, sink: TickSink) -> None:
        self.mark = mark
        self.sequence = sequence
        self.sink = sink


class MarkBatcher:
    def __init__(self, store: RedisStore, window_s: float = BATCH_WINDOW_S, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.window_s = window_s
        self.max_batch = max_batch
        self._script = store.client.register_script(_MARKS_SCRIPT)
        self._pending: dict[str, PendingTick] = {}
        self._inflight: dict[str, PendingTick] = {}
        self._task: asyncio.Task[None] | None = None
        self._full = asyncio.Event()
        self._closing = False
        # For the load harness and metrics: batches sent, marks written, batches not confirmed.
        self.batches = 0
        self.written = 0
        self.failures = 0

    def last_price(self, symbol: str) -> Decimal | None:
        """The newest mark of the symbol accepted but not yet in the book (None: the book's is)."""
        tick = self._pending.get(symbol) or self._inflight.get(symbol)
        return tick.mark.price if tick is not None else None

    def add(self, tick: PendingTick) -> None:
        symbol = tick.mark.symbol
        superseded = self._pending.get(symbol)
        self._pending[symbol] = tick
        if superseded is not None:
            superseded.sink.on_conflated(superseded)
        if len(self._pending) >= self.max_batch:
            self._full.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="riskgate-mark-batches")

    async def close(self) -> None:
        """Writes what is pending (bounded), then ends."""
        self._closing = True
        self._full.set()
        task = self._task
        if task is None:
            return
        _, late = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
        if late:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await task

    async def _run(self) -> None:
        try:
            while self._pending:
                if not self._closing and len(self._pending) < self.max_batch:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.window_s):
                            await self._full.wait()
                self._full.clear()
                batch = self._pending
                if len(batch) > self.max_batch:
                    symbols = list(batch)[:self.max_batch]
                    batch = {symbol: batch.pop(symbol) for symbol in symbols}
                else:
                    self._pending = {}
                self._inflight = batch
                try:
                    await self._write(list(batch.values()))
                finally:
                    self._inflight = {}
        finally:
            self._task = None

    async def _write(self, ticks: list[PendingTick]) -> None:
        store = self.store
        why = store.not_writable()
        if why is not None:
            for tick in ticks:
                tick.sink.on_not_written(tick, True, f"not written: {why}")
            return
        oldest_ms = min(tick.mark.timestamp_ms for tick in ticks)
        deadline = store.redis_deadline(oldest_ms + int(store.stale_after_s * 1000))
        args: list[str | bytes | int] = [store.version_floor, store.lease_token, store.keys.changes, deadline,
                                         store.change_stream_maxlen]
        for tick in ticks:
            args += (tick.mark.symbol, encode(tick.mark))
        self.batches += 1
        try:
            async with asyncio.timeout(store.stale_after_s):
                result = await self._script(keys=[store.keys.seq, store.keys.marks, store.lease_key,
                                                  store.keys.change_stream], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self.failures += 1
            log.warning("mark batch of %d not confirmed by Redis: %r", len(ticks), exc)
            for tick in ticks:
                tick.sink.on_not_written(tick, False, f"Redis did not confirm the batch ({exc!r}): it may or may not "
                                                   "have been written; the next tick of the symbol supersedes it")
            return
        if not isinstance(result, list):  # -1: Redis refused it past its deadline
            self.failures += 1
            for tick in ticks:
                tick.sink.on_not_written(tick, False, "not written: Redis took the batch only after its deadline "
                                                   "(the staleness bound)")
            return
        self.written += len(ticks)
        for tick, version in zip(ticks, result, strict=True):
            store.apply_written("mark", msgspec.structs.replace(tick.mark, version=int(version)))
            tick.sink.on_written(tick)
