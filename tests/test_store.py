"""The Redis store's writer task survives callers that give up."""

import asyncio
import contextlib

import redis.asyncio as aioredis

from riskgate.book.specs import BreakerSpec
from riskgate.book.state import Book
from riskgate.engine.records import apply_breaker
from riskgate.store.keys import Keys
from riskgate.store.redis_store import RedisStore
from riskgate.values.codes import BreakerState


async def test_commit_when_caller_cancels_before_redis_answers_then_writer_keeps_working(flushed_redis) -> None:
    book = Book(default_orders_per_second=100, duplicate_window_s=60)
    store = RedisStore(aioredis.Redis.from_url(flushed_redis.url), book, Keys("rg"), 1000, 1000, 5)
    await store.start()
    try:
        def halted(state: BreakerState) -> BreakerSpec:
            return BreakerSpec(symbol="", state=state, reason="drill", set_by="test")

        abandoned = asyncio.create_task(store.commit("breaker", "", halted(BreakerState.HALTED), {"actor": "t"},
                                                     lambda s: apply_breaker(book, s)))
        await asyncio.sleep(0)  # queued, not yet answered
        abandoned.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await abandoned
        stored = await asyncio.wait_for(
            store.commit("breaker", "", halted(BreakerState.REDUCE_ONLY), {"actor": "t"},
                         lambda s: apply_breaker(book, s)), timeout=10)
        assert book.platform_breaker.state == BreakerState.REDUCE_ONLY
        assert stored.version > 0
    finally:
        await store.close()
