"""The market-data path for marks (RiskAdmin.PublishMarks): a stream authenticated once,
ticks validated as SetMarkPrice validates a mark, written in batches that every gate and the
monitor apply, and audited per stream rather than per tick. Real gRPC, real Redis."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import grpc
import pytest
import redis.asyncio as aioredis
from grpc.aio import AioRpcError

from riskgate.config import AdminToken, Config
from riskgate.monitor.keys import MonitorKeys
from riskgate.store.codec import decode_stored
from riskgate.store.keys import Keys
from riskgate.v1 import admin_pb2 as admin
from tests.audit_trail import all_audit, audit_entries, audit_of
from tests.conftest import Services
from tests.monitor_support import running_monitor, until
from tests.support import ADMIN_TOKEN, OPERATOR_TOKEN, VIEWER_TOKEN, Client, eventually, test_config

FEED_TOKEN = "test-market-data-token"


def feed_config(**server: object) -> Config:
    config = test_config(**server)
    digest = hashlib.sha256(FEED_TOKEN.encode()).hexdigest()
    config.admin_tokens.append(AdminToken(name="test-feed", token_sha256=digest, roles=["market_data"]))
    return config


def ticks(*marks: tuple[str, str] | tuple[str, str, int] | admin.MarkTick) -> admin.MarkTicks:
    message = admin.MarkTicks()
    for mark in marks:
        if isinstance(mark, admin.MarkTick):
            message.ticks.append(mark)
        else:
            message.ticks.append(admin.MarkTick(symbol=mark[0], price=mark[1],
                                                sequence=mark[2] if len(mark) > 2 else 0))  # type: ignore[misc]
    return message


async def publish(client: Client, messages: list[admin.MarkTicks], token: str = FEED_TOKEN
                  ) -> list[admin.MarkFeedAck]:
    """Sends the messages on one stream, ends it, and returns every answer."""
    call = client.admin.PublishMarks(metadata=client.auth(token), timeout=30)
    for message in messages:
        await call.write(message)
    await call.done_writing()
    return [ack async for ack in call]


async def stored_mark(url: str, symbol: str = "BTCUSDT") -> tuple[int, Decimal] | None:
    redis = aioredis.Redis.from_url(url)
    try:
        data = await redis.hget(Keys("rg").marks, symbol)
    finally:
        await redis.aclose()
    if data is None:
        return None
    record = decode_stored("mark", data)
    return record.version, record.price


async def book_mark(client: Client, symbol: str = "BTCUSDT") -> str:
    detail = await client.admin.GetSymbol(admin.GetSymbolRequest(symbol=symbol), metadata=client.auth())
    return detail.mark.price


@pytest.fixture
async def feed(services: Services) -> Client:
    """A gate with a market_data token, BTCUSDT at mark 50,000."""
    _, client = await services.start(feed_config())
    await client.upsert_symbol(mark="50000")
    return client


@pytest.mark.parametrize("token", [VIEWER_TOKEN, OPERATOR_TOKEN])
async def test_publish_marks_when_token_lacks_market_data_role_then_permission_denied_and_nothing_written(
        feed: Client, redis_server, token: str) -> None:
    before = await stored_mark(redis_server.url)
    with pytest.raises(AioRpcError) as refused:
        await publish(feed, [ticks(("BTCUSDT", "50100", 1))], token=token)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may not call PublishMarks" in refused.value.details()
    assert await stored_mark(redis_server.url) == before
    assert await book_mark(feed) == "50000"
    denied = await audit_of(redis_server.url, "PublishMarks")
    assert [e["outcome"][:7] for e in denied] == ["denied:"]


async def test_publish_marks_when_no_token_then_unauthenticated(feed: Client) -> None:
    call = feed.admin.PublishMarks(timeout=30)
    await call.write(ticks(("BTCUSDT", "50100")))
    await call.done_writing()
    with pytest.raises(AioRpcError) as refused:
        await call.read()
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_publish_marks_when_ticks_sent_then_they_reach_the_book_another_gate_and_the_monitor(
        services: Services, redis_server) -> None:
    _, first = await services.start(feed_config(shard_index=0, shard_count=2))
    _, second = await services.start(feed_config(shard_index=1, shard_count=2))
    await first.upsert_symbol(mark="50000")
    async with running_monitor(redis_server.url, []) as (monitor, _):
        acks = await publish(first, [ticks(("BTCUSDT", "50100", 1)), ticks(("BTCUSDT", "50200", 2))])
        final = acks[-1]
        assert final.final and final.received == 2 and final.rejected == 0
        assert final.written + final.conflated == 2 and final.written_through == 2
        assert await book_mark(first) == "50200"

        async def second_has_it() -> bool:
            return await book_mark(second) == "50200"

        assert await eventually(second_has_it)
        history = await until(lambda: _async(monitor.view.marks.get("BTCUSDT")),
                              lambda h: h is not None and h.latest is not None and h.latest[1] == Decimal("50200"))
        assert history.latest is not None
        # The monitor's mark history (minute bars in Redis) records the feed's marks as any mark.
        redis = aioredis.Redis.from_url(redis_server.url)
        try:
            bars_key = MonitorKeys("rg").mark_bars("BTCUSDT")

            async def bars() -> list[bytes]:
                return await redis.zrange(bars_key, 0, -1)

            recorded = await until(bars, lambda members: any(m.split(b"|")[5] == b"50200" for m in members))
            assert recorded
        finally:
            await redis.aclose()
    version, price = await stored_mark(redis_server.url) or (0, Decimal(0))
    assert price == Decimal("50200") and version > 0


async def _async(value: object) -> object:
    return value


async def test_publish_marks_when_tick_moves_beyond_bound_then_rejected_and_counted_in_close_entry(
        feed: Client, redis_server) -> None:
    acks = await publish(feed, [ticks(("BTCUSDT", "50500", 1), ("BTCUSDT", "0.5", 2)),
                                ticks(admin.MarkTick(symbol="BTCUSDT", price="30000", sequence=3, confirmed_move=True)),
                                ticks(("BTCUSDT", "30100", 4))])
    rejected = [r for ack in acks for r in ack.rejections]
    assert [(r.sequence, r.reason) for r in rejected] == [(2, admin.MARK_REJECT_BEYOND_BOUND)]
    assert "max_mark_move" in rejected[0].message and "confirmed_move" in rejected[0].message
    final = acks[-1]
    assert final.final and final.received == 4 and final.rejected == 1
    # The bound is measured from the newest mark accepted (a tick not yet written included).
    assert await book_mark(feed) == "30100"
    entries = await audit_entries(redis_server.url, lambda e: e["action"] == "PublishMarks",
                                  lambda found: any(e["outcome"].startswith("closed") for e in found))
    close = next(e for e in entries if e["outcome"].startswith("closed"))
    assert close["outcome"] == "closed: ended by the feed"
    assert json.loads(close["rejected_by_reason"]) == {"beyond_bound": 1}
    assert close["ticks"] == "4" and close["rejected"] == "1" and close["actor"] == "test-feed"
    assert int(close["first_tick_ms"]) <= int(close["last_tick_ms"])
    assert any(e["outcome"].startswith("rejected: beyond_bound: mark 0.5 moves") for e in entries)


async def test_publish_marks_when_many_ticks_then_audit_holds_constant_entries_per_stream(
        feed: Client, redis_server) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        before = len(await all_audit(redis))
        messages = [ticks(("BTCUSDT", str(50000 + (n % 50)), n + 1)) for n in range(300)]
        acks = await publish(feed, messages)
        assert acks[-1].received == 300 and acks[-1].rejected == 0
        assert acks[-1].written + acks[-1].conflated == 300
        entries = await audit_of(redis_server.url, "PublishMarks", 2)
        assert [e["outcome"] for e in entries] == ["opened", "closed: ended by the feed"]
        assert len(await all_audit(redis)) - before == 2
    finally:
        await redis.aclose()
    assert await book_mark(feed) == str(50000 + 299 % 50)


async def test_publish_marks_when_client_cancels_mid_stream_then_close_entry_still_written(
        feed: Client, redis_server) -> None:
    call = feed.admin.PublishMarks(metadata=feed.auth(FEED_TOKEN), timeout=30)
    await call.write(ticks(("BTCUSDT", "50100", 1)))
    await call.write(ticks(("BTCUSDT", "50200", 3)))

    async def applied() -> bool:
        return await book_mark(feed) == "50200"

    assert await eventually(applied)
    call.cancel()
    entries = await audit_entries(redis_server.url, lambda e: e["action"] == "PublishMarks",
                                  lambda found: any(e["outcome"].startswith("closed") for e in found))
    close = entries[-1]
    assert close["outcome"].startswith("closed: cancelled")
    assert close["ticks"] == "2" and close["sequence_gaps"] == "1" and close["missing_ticks"] == "1"


async def test_publish_marks_when_ticks_malformed_then_each_rejected_with_its_reason_and_stream_goes_on(
        feed: Client) -> None:
    acks = await publish(feed, [
        ticks(("BTCUSDT", "abc", 1), ("BTCUSDT", "-5", 2), ("", "50000", 3), ("NOPEUSDT", "1", 4),
              ("BTCUSDT", "0", 5)),
        ticks(("BTCUSDT", "50300", 7), ("BTCUSDT", "50400", 6)),
        admin.MarkTicks(),  # a heartbeat
        ticks(("BTCUSDT", "50350", 8)),
    ])
    rejected = [(r.sequence, r.reason) for ack in acks for r in ack.rejections]
    assert rejected == [(1, admin.MARK_REJECT_INVALID), (2, admin.MARK_REJECT_INVALID),
                        (3, admin.MARK_REJECT_INVALID), (4, admin.MARK_REJECT_UNKNOWN_SYMBOL),
                        (5, admin.MARK_REJECT_INVALID), (6, admin.MARK_REJECT_OUT_OF_ORDER)]
    messages = {r.sequence: r.message for ack in acks for r in ack.rejections}
    assert messages[1].startswith("price:") and "unknown symbol 'NOPEUSDT'" in messages[4]
    assert "not above the last one" in messages[6]
    final = acks[-1]
    assert final.final and final.received == 8 and final.rejected == 6 and final.written_through == 8
    assert await book_mark(feed) == "50350"


async def test_set_mark_price_when_feed_also_publishes_then_old_path_still_applies_with_its_audit_entry(
        feed: Client, redis_server) -> None:
    await publish(feed, [ticks(("BTCUSDT", "50100", 1))])
    stored = await feed.set_mark("BTCUSDT", "50150")
    assert stored.price == "50150" and stored.version > 0
    assert await book_mark(feed) == "50150"
    entries = await audit_of(redis_server.url, "SetMarkPrice", 2)
    assert entries[-1]["outcome"] == "ok"
    # The admin token may feed marks too.
    acks = await publish(feed, [ticks(("BTCUSDT", "50160", 1))], token=ADMIN_TOKEN)
    assert acks[-1].rejected == 0
    assert await book_mark(feed) == "50160"


async def test_publish_marks_when_gate_cannot_write_then_ticks_rejected_unavailable_and_stream_goes_on(
        feed: Client, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    store = services.running[0][0].store
    assert store is not None
    monkeypatch.setattr(store, "not_writable", lambda: "test: Redis away: failing closed")
    call = feed.admin.PublishMarks(metadata=feed.auth(FEED_TOKEN), timeout=30)
    await call.write(ticks(("BTCUSDT", "50100", 1)))
    ack = await call.read()
    assert [(r.reason, r.message) for r in ack.rejections] == [
        (admin.MARK_REJECT_UNAVAILABLE, "not written: test: Redis away: failing closed")]
    monkeypatch.undo()
    await call.write(ticks(("BTCUSDT", "50200", 2)))
    await call.done_writing()
    final = await call.read()
    while not final.final:
        final = await call.read()
    assert final.final and final.rejected == 1 and final.written == 1
    assert await book_mark(feed) == "50200"
