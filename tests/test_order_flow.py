"""The order-flow stream: each write-behind batch with any flow appends every account's counts
(decisions, rate-limit rejections, cancels, fills) and the fills it applied, in the same Lua
call as the batch, exactly once, whatever happens to Redis in between."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections import Counter
from decimal import Decimal

import pytest
import redis.asyncio as aioredis
from grpc import StatusCode
from grpc.aio import AioRpcError

from riskgate.book.flow import COUNT_FIELDS
from riskgate.store.embedded import EmbeddedRedis
from riskgate.store.keys import Keys
from riskgate.v1 import pretrade_pb2 as pb
from tests.conftest import Services
from tests.lossy_proxy import LossyProxy
from tests.support import Client, eventually
from tests.test_faults import _wait_stopped, own_redis  # noqa: F401  (fixture)
from tests.test_lost_answers import _script_call, proxied  # noqa: F401  (fixture)

KEYS = Keys("rg")


async def _batches(url: str) -> list[dict]:
    redis = aioredis.Redis.from_url(url)
    try:
        return [json.loads(fields[b"d"]) for _, fields in await redis.xrange(KEYS.order_flow)]
    finally:
        await redis.aclose()


async def _totals(url: str, account: str) -> dict[str, int]:
    totals: Counter[str] = Counter({name: 0 for name in COUNT_FIELDS})
    for batch in await _batches(url):
        for name, value in zip(COUNT_FIELDS, batch["counts"].get(account, [0] * len(COUNT_FIELDS)), strict=True):
            totals[name] += value
    return dict(totals)


async def _fills(url: str, account: str) -> list[dict]:
    return [fill for batch in await _batches(url) for fill in batch["fills"] if fill["account_id"] == account]


class Tally:
    """What the answers said, per account: the counts the stream must sum to."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}

    def answered(self, account: str, response: pb.CheckOrderResponse) -> pb.CheckOrderResponse:
        counts = self.counts.setdefault(account, Counter({name: 0 for name in COUNT_FIELDS}))
        counts["orders"] += 1
        if response.decision == pb.DECISION_ACCEPT:
            counts["accepted"] += 1
        elif response.decision == pb.DECISION_REDUCE_ONLY:
            counts["reduce_only"] += 1
        else:
            counts["rejected"] += 1
            if response.reasons[0].code == pb.REASON_ORDER_RATE_EXCEEDED:
                counts["rate_limited"] += 1
        return response

    async def check(self, client: Client, account: str = "acct-1", **order: object) -> pb.CheckOrderResponse:
        return self.answered(account, await client.check(account=account, **order))

    def add(self, account: str, name: str, n: int = 1) -> None:
        self.counts.setdefault(account, Counter({name: 0 for name in COUNT_FIELDS}))[name] += n

    def of(self, account: str) -> dict[str, int]:
        return dict(self.counts[account])


async def _stream_reaches(url: str, tally: Tally, *accounts: str) -> bool:
    async def reached() -> bool:
        return all([await _totals(url, account) == tally.of(account) for account in accounts])

    return await eventually(reached)


async def test_order_flow_when_orders_answered_and_closed_then_stream_counts_each_kind_exactly(
        services: Services, redis_server: EmbeddedRedis) -> None:
    _, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="1000000", positions=[("BTCUSDT", "1", "50000", 10)])
    await client.trader("acct-2", balance="1000000", max_orders_per_second=1)
    tally = Tally()
    for order_id in ("o1", "o2", "o3", "o4", "o5"):
        assert (await tally.check(client, quantity="0.1", order_id=order_id)).decision == pb.DECISION_ACCEPT
    assert (await tally.check(client, quantity="5000")).decision == pb.DECISION_REJECT  # above max
    assert (await tally.check(client, quantity="-1")).decision == pb.DECISION_REJECT  # malformed: still counted
    assert (await tally.check(client, quantity="0.1", order_id="o1")).decision == pb.DECISION_REJECT  # duplicate
    capped = await tally.check(client, side="sell", quantity="2", reduce_only=True, leverage=0)
    assert capped.decision == pb.DECISION_REDUCE_ONLY
    # A CheckOrders stream counts as its calls.
    stream = client.pretrade.CheckOrders()
    for request in (client.request(quantity="0.1"), client.request(quantity="0.1"),
                    client.request(quantity="0.1", price="60000")):  # the last above the band
        await stream.write(request)
        tally.answered("acct-1", await stream.read())
    await stream.done_writing()
    # acct-2: one order a second; whatever the answers said is what the stream must say.
    for _ in range(5):
        await tally.check(client, "acct-2", quantity="0.1")
    assert tally.of("acct-2")["rate_limited"] >= 1
    # Neither an unknown account nor an id that is not an account is counted anywhere.
    await client.check(account="ghost", quantity="0.1")
    await client.check(account="", quantity="0.1")
    # Closing reports: every kind that closes an open order counts as a cancel, once.
    await client.close_order("acct-1", "o2", pb.EXECUTION_KIND_CANCELED)
    await client.close_order("acct-1", "o3", pb.EXECUTION_KIND_EXPIRED)
    await client.close_order("acct-1", "o4", pb.EXECUTION_KIND_REJECTED)
    tally.add("acct-1", "cancels", 3)
    with pytest.raises(AioRpcError) as error:
        await client.close_order("acct-1", "o2", pb.EXECUTION_KIND_CANCELED)  # closed already
    assert error.value.code() == StatusCode.NOT_FOUND
    # The gateway never sent o5: a release, not a cancel.
    await client.close_order("acct-1", "o5", pb.EXECUTION_KIND_NOT_SENT)
    await client.fill("acct-1", "o1", "0.1", "50000", execution_id="e1")
    tally.add("acct-1", "fills")

    assert await _stream_reaches(redis_server.url, tally, "acct-1", "acct-2")
    assert tally.of("acct-1") == {"orders": 12, "accepted": 7, "rejected": 4, "reduce_only": 1, "rate_limited": 0,
                                  "cancels": 3, "fills": 1}
    accounts = {account for batch in await _batches(redis_server.url) for account in batch["counts"]}
    assert accounts == {"acct-1", "acct-2"}


async def test_order_flow_when_only_rejections_then_a_batch_is_written_for_them(
        services: Services, redis_server: EmbeddedRedis) -> None:
    _, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader()
    tally = Tally()
    for _ in range(3):
        assert (await tally.check(client, quantity="5000")).decision == pb.DECISION_REJECT
    # Nothing else moved: no reservation, no account; the flow alone makes the batch. Which
    # batch window each answer falls in is not promised (a check that comes after the window
    # closed goes with the next one: one entry, or up to three), only that the entries sum to
    # the answers: each entry holds rejections of acct-1 and nothing else.
    assert await _stream_reaches(redis_server.url, tally, "acct-1")
    batches = await _batches(redis_server.url)
    assert 1 <= len(batches) <= 3
    for batch in batches:
        assert batch["shard_index"] == 0 and batch["fills"] == [] and batch["at_ms"] > 0
        [(account, (orders, *rest))] = batch["counts"].items()
        assert account == "acct-1" and orders >= 1
        assert dict(zip(COUNT_FIELDS[1:], rest, strict=True)) == {
            "accepted": 0, "rejected": orders, "reduce_only": 0, "rate_limited": 0, "cancels": 0, "fills": 0}


async def test_order_flow_when_fills_realise_pnl_then_stream_carries_it_with_the_counterparty_once(
        services: Services, redis_server: EmbeddedRedis) -> None:
    _, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="100000", positions=[("BTCUSDT", "1", "50000", 10)])
    await client.check(side="sell", quantity="0.4", price="51000", leverage=0, order_id="s1")
    first = await client.fill("acct-1", "s1", "0.4", "51000", execution_id="e1", sequence=101,
                              counterparty_account_id="acct-9")
    retry = await client.fill("acct-1", "s1", "0.4", "51000", execution_id="e1", sequence=101,
                              counterparty_account_id="acct-9")
    assert not first.duplicate and retry.duplicate
    await client.check(quantity="0.1", price="50000", leverage=0, order_id="b1")
    await client.fill("acct-1", "b1", "0.1", "50000", execution_id="e2", sequence=102)  # adds: realises 0
    # A fill of an order riskgate does not hold (its symbol, side and leverage named) too.
    await client.fill("acct-1", "lost-1", "0.2", "52000", execution_id="e3", sequence=103, symbol="BTCUSDT",
                      side=pb.SIDE_SELL, leverage=10, counterparty_account_id="acct-1")

    async def three_fills() -> bool:
        return len(await _fills(redis_server.url, "acct-1")) >= 3

    assert await eventually(three_fills)
    fills = await _fills(redis_server.url, "acct-1")
    assert [(f["order_id"], f["execution_id"], f["sequence"], f["symbol"], Decimal(f["quantity"]),
             Decimal(f["price"]), Decimal(f["realised_pnl"]), f["counterparty_account_id"], f["in_snapshot"])
            for f in fills] == [
        ("s1", "e1", 101, "BTCUSDT", Decimal("-0.4"), 51000, 400, "acct-9", False),
        ("b1", "e2", 102, "BTCUSDT", Decimal("0.1"), 50000, 0, "", False),
        ("lost-1", "e3", 103, "BTCUSDT", Decimal("-0.2"), 52000, 400, "acct-1", False)]
    assert all(f["at_ms"] > 0 for f in fills)
    assert (await _totals(redis_server.url, "acct-1"))["fills"] == 3
    # Exactly what the fills credited to the balance.
    assert Decimal((await client.risk("acct-1")).balance) == 100000 + 400 + 400


@pytest.mark.parametrize("counterparty", ["x" * 65, "acct\x00-9", " acct-9", "acct-9 "])
async def test_fill_when_counterparty_account_id_malformed_then_invalid_argument_naming_it_and_not_applied(
        btc: Client, counterparty: str) -> None:
    await btc.check(quantity="1", order_id="o1")
    with pytest.raises(AioRpcError) as error:
        await btc.fill("acct-1", "o1", "1", "50000", counterparty_account_id=counterparty)
    assert error.value.code() == StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("counterparty_account_id: must be 1-64 printable characters")
    risk = await btc.risk("acct-1")
    assert list(risk.positions) == []
    longest = await btc.fill("acct-1", "o1", "1", "50000", counterparty_account_id="x" * 64)
    assert longest.position_quantity == "1"


@pytest.mark.parametrize("fault", ["hung", "writes refused"])
async def test_order_flow_when_redis_fails_mid_flow_then_totals_after_recovery_are_exact(
        own_redis: EmbeddedRedis, fault: str) -> None:  # noqa: F811
    services = Services(own_redis.url)
    pid = own_redis.pid
    assert pid is not None
    try:
        _, client = await services.start(redis_stale_after_ms=300)
        await client.upsert_symbol(mark="50000", mark_price_max_age_ms=3_600_000)
        await client.trader(balance="1000000", positions=[("BTCUSDT", "1", "50000", 10)])
        tally = Tally()
        for n in range(5):
            await tally.check(client, quantity="0.1", order_id=f"before-{n}")
        await client.fill("acct-1", "before-0", "0.1", "50000", execution_id="e-before")
        tally.add("acct-1", "fills")
        if fault == "hung":
            os.kill(pid, signal.SIGSTOP)
            _wait_stopped(pid)
        else:
            redis = aioredis.Redis.from_url(own_redis.url)
            await redis.config_set("min-replicas-to-write", 1)
            await redis.aclose()
        # While Redis is away closing reports and fills are applied, answers go on, and every one
        # of them is counted once.
        await client.close_order("acct-1", "before-1")
        tally.add("acct-1", "cancels")
        with pytest.raises(AioRpcError) as error:  # applied; not acknowledged until Redis has it
            await client.fill("acct-1", "before-2", "0.1", "50000", execution_id="e-during", sequence=9_000_001)
        assert error.value.code() == StatusCode.UNAVAILABLE
        tally.add("acct-1", "fills")
        for n in range(8):  # past the bound by now: the risk-increasing ones are refused
            await tally.check(client, quantity="0.1", order_id=f"during-{n}")
            await tally.check(client, side="sell", quantity="0.1", leverage=0, order_id=f"reducing-{n}")
        if fault == "hung":
            os.kill(pid, signal.SIGCONT)
        else:
            redis = aioredis.Redis.from_url(own_redis.url)
            await redis.config_set("min-replicas-to-write", 0)
            await redis.aclose()

        async def acknowledged() -> bool:
            try:
                retry = await client.fill("acct-1", "before-2", "0.1", "50000", execution_id="e-during",
                                          sequence=9_000_001)
            except AioRpcError:
                return False
            return retry.duplicate

        assert await eventually(acknowledged, timeout_s=15)
        # Acknowledged only once Redis has it: its flow entry too.
        assert "e-during" in [f["execution_id"] for f in await _fills(own_redis.url, "acct-1")]
        for n in range(3):
            await tally.check(client, quantity="0.1", order_id=f"after-{n}")
        assert await _stream_reaches(own_redis.url, tally, "acct-1")
        assert tally.of("acct-1")["rejected"] >= 8  # refused while the state was unproven
        assert [f["execution_id"] for f in await _fills(own_redis.url, "acct-1")] == ["e-before", "e-during"]
    finally:
        await services.stop_all()


async def test_order_flow_when_answer_to_its_batch_lost_after_redis_ran_it_then_not_appended_twice(
        proxied: tuple[LossyProxy, Services], flushed_redis: EmbeddedRedis,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    proxy, services = proxied
    service, client = await services.start(redis_stale_after_ms=500)
    await client.upsert_symbol(mark="50000")
    await client.trader()
    tally = Tally()
    await tally.check(client, quantity="0.1", order_id="o1")
    assert await _stream_reaches(flushed_redis.url, tally, "acct-1")
    assert service.store is not None
    proxy.lose_answers_after(_script_call(service.store._flush.sha))
    with caplog.at_level(logging.WARNING, logger="riskgate.store.redis_store"):
        await tally.check(client, quantity="5000")  # its batch runs in Redis; the answer is lost
        await asyncio.wait_for(proxy.fired.wait(), timeout=5)

        async def sent_again() -> bool:
            return "was already in Redis" in caplog.text

        assert await eventually(sent_again, timeout_s=10)
    await tally.check(client, quantity="0.1", order_id="o2")
    assert await _stream_reaches(flushed_redis.url, tally, "acct-1")
    assert len([b for b in await _batches(flushed_redis.url) if "acct-1" in b["counts"]]) == 3


async def test_order_flow_when_more_batches_than_order_flow_maxlen_then_stream_is_trimmed(
        services: Services, redis_server: EmbeddedRedis) -> None:
    _, client = await services.start(order_flow_maxlen=1)
    await client.upsert_symbol(mark="50000")
    await client.trader()
    redis = aioredis.Redis.from_url(redis_server.url)

    async def last_id() -> bytes | None:
        latest = await redis.xrevrange(KEYS.order_flow, count=1)
        return latest[0][0] if latest else None

    try:
        for _ in range(120):
            before = await last_id()
            await client.check(quantity="5000")

            async def appended(before: bytes | None = before) -> bool:  # this check's own batch
                return await last_id() != before

            assert await eventually(appended)
        # MAXLEN ~ drops whole stream nodes (100 entries each by default): 120 became about 20.
        assert await redis.xlen(KEYS.order_flow) < 120
    finally:
        await redis.aclose()
