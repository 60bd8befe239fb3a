"""The daily decision counts: every check answered, counted in memory by (symbol, decision,
first reason) and added by the write-behind to the UTC day's `decision_counts` hash, per minute,
exactly once per batch, with no Redis write per order (store/decision_counts.py)."""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from riskgate.api.server import RiskgateService
from riskgate.config import load_config
from riskgate.store import decision_counts
from riskgate.store.decision_counts import format_field, minute_of, parse_field, read_day
from riskgate.store.embedded import EmbeddedRedis
from riskgate.store.keys import Keys
from riskgate.v1 import pretrade_pb2 as pb
from tests.conftest import Services
from tests.lossy_proxy import LossyProxy
from tests.support import Client, eventually, test_config
from tests.test_lost_answers import _script_call, proxied  # noqa: F401  (fixture)

KEYS = Keys("rg")
DAY_MS = 86_400_000

# (symbol, decision, reason) -> count
Counts = dict[tuple[str, str, str], int]


async def _stored(url: str) -> tuple[Counts, list[tuple[str, int]]]:
    """Every day hash's counts summed over the minutes (a test may run across midnight), and
    the (day, minute) of every field."""
    redis = aioredis.Redis.from_url(url)
    try:
        totals: Counter[tuple[str, str, str]] = Counter()
        minutes: list[tuple[str, int]] = []
        # Each shard's day hash is in its own tag: read_day sums a day's over the shards.
        days = {key.decode().rsplit(":", 1)[1] async for key in redis.scan_iter(match="*:decision_counts:*")}
        for day in sorted(days):
            for minute, symbol, decision, reason, count in await read_day(redis, KEYS, day):
                totals[symbol, decision, reason] += count
                minutes.append((day, minute))
        return dict(totals), minutes
    finally:
        await redis.aclose()


class Tally:
    """What the answers said: the counts the day hashes must sum to."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def answered(self, symbol: str, response: pb.CheckOrderResponse) -> pb.CheckOrderResponse:
        decision = pb.Decision.Name(response.decision).removeprefix("DECISION_")
        reason = pb.ReasonCode.Name(response.reasons[0].code).removeprefix("REASON_") if response.reasons else ""
        self.counts[symbol, decision, reason] += 1
        return response

    async def check(self, client: Client, counted_as: str = "BTCUSDT", **order: object) -> pb.CheckOrderResponse:
        """A check; `counted_as`: the symbol it must be counted under."""
        return self.answered(counted_as, await client.check(**order))

    def of(self) -> Counts:
        return dict(self.counts)


async def _stored_reaches(url: str, tally: Tally, timeout_s: float = 5.0) -> bool:
    async def reached() -> bool:
        return (await _stored(url))[0] == tally.of()

    return await eventually(reached, timeout_s=timeout_s)


def _within(day: str, minute: int, start_ms: int, end_ms: int) -> bool:
    """Whether that UTC minute overlaps [start_ms, end_ms]."""
    day_start = calendar.timegm(time.strptime(day, "%Y-%m-%d")) * 1000
    minute_start = day_start + minute * 60_000
    return minute_start <= end_ms and start_ms < minute_start + 60_000


async def test_decision_counts_when_checks_answered_over_grpc_then_day_hash_counts_symbol_decision_and_reason(
        services: Services, redis_server: EmbeddedRedis) -> None:
    start_ms = _now_ms()
    _, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="1000000", positions=[("BTCUSDT", "1", "50000", 10)])
    tally = Tally()
    for order_id in ("o1", "o2", "o3"):
        assert (await tally.check(client, quantity="0.1", order_id=order_id)).decision == pb.DECISION_ACCEPT
    assert (await tally.check(client, quantity="5000")).decision == pb.DECISION_REJECT  # above max
    assert (await tally.check(client, quantity="-1")).decision == pb.DECISION_REJECT  # malformed: counted too
    assert (await tally.check(client, quantity="0.1", order_id="o1")).decision == pb.DECISION_REJECT  # duplicate
    capped = await tally.check(client, side="sell", quantity="2", reduce_only=True, leverage=0)
    assert capped.decision == pb.DECISION_REDUCE_ONLY
    # A CheckOrders stream counts as its calls.
    stream = client.pretrade.CheckOrders()
    for request in (client.request(quantity="0.1"), client.request(quantity="0.1", price="60000")):  # above band
        await stream.write(request)
        tally.answered("BTCUSDT", await stream.read())
    await stream.done_writing()

    assert await _stored_reaches(redis_server.url, tally)
    stored, minutes = await _stored(redis_server.url)
    assert stored == tally.of()
    assert stored[("BTCUSDT", "ACCEPT", "")] == 4
    assert stored[("BTCUSDT", "REJECT", "INVALID_QUANTITY")] == 1
    assert stored[("BTCUSDT", "REJECT", "DUPLICATE_ORDER_ID")] == 1
    assert sum(n for (_, decision, _), n in stored.items() if decision == "REDUCE_ONLY") == 1
    end_ms = _now_ms()
    assert minutes and all(_within(day, minute, start_ms, end_ms) for day, minute in minutes)


async def test_decision_counts_when_symbol_unknown_or_malformed_then_counted_under_empty_symbol(
        services: Services, redis_server: EmbeddedRedis) -> None:
    _, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader()
    tally = Tally()
    await tally.check(client, quantity="0.1")
    for symbol in ("NOPEUSDT", "BTC|USDT", "x" * 40, "bad\x01symbol", ""):
        response = await tally.check(client, counted_as="", symbol=symbol, quantity="0.1")
        assert response.decision == pb.DECISION_REJECT
    # A malformed order on a known symbol is counted under that symbol.
    await tally.check(client, quantity="abc")

    assert await _stored_reaches(redis_server.url, tally)
    stored, _ = await _stored(redis_server.url)
    assert {symbol for symbol, _, _ in stored} == {"", "BTCUSDT"}
    assert stored[("", "REJECT", "UNKNOWN_SYMBOL")] == 2
    assert sum(n for (symbol, _, _), n in stored.items() if symbol == "") == 5


async def test_decision_counts_when_accounts_not_held_then_their_decisions_counted_without_a_stream_entry(
        services: Services, redis_server: EmbeddedRedis) -> None:
    # Shard 0 of 2: an account of the other shard is not held here; neither is an unknown one.
    _, client = await services.start(shard_count=2)
    await client.upsert_symbol(mark="50000")
    others = [f"acct-{n}" for n in range(20) if zlib.crc32(f"acct-{n}".encode()) % 2 == 1]
    tally = Tally()
    for account in ("ghost", others[0], others[1], ""):
        assert (await tally.check(client, account=account, quantity="0.1")).decision == pb.DECISION_REJECT

    assert await _stored_reaches(redis_server.url, tally)
    stored, _ = await _stored(redis_server.url)
    reasons = {reason for (_, _, reason) in stored}
    assert {"ACCOUNT_NOT_OWNED", "INVALID_ACCOUNT_ID"} <= reasons
    assert sum(stored.values()) == 4
    # These batches counted only decisions: the monitor's order-flow stream got no entry.
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        assert await redis.xlen(KEYS.order_flow) == 0
    finally:
        await redis.aclose()


async def test_decision_counts_when_written_then_day_key_expires_after_the_configured_retention(
        services: Services, redis_server: EmbeddedRedis) -> None:
    _, client = await services.start(decision_counts_retention_days=2)
    await client.upsert_symbol(mark="50000")
    tally = Tally()
    await tally.check(client, account="ghost", quantity="0.1")
    assert await _stored_reaches(redis_server.url, tally)
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        keys = [key async for key in redis.scan_iter(match=KEYS.decision_counts("*"))]
        assert keys
        for key in keys:
            assert DAY_MS < await redis.pttl(key) <= 2 * DAY_MS
    finally:
        await redis.aclose()


@pytest.mark.parametrize("days", [0, -1])
def test_service_when_decision_counts_retention_not_positive_then_refused_naming_the_key(days: int) -> None:
    with pytest.raises(ValueError, match="decision_counts_retention_days must be a positive number"):
        RiskgateService(test_config(decision_counts_retention_days=days))


def test_load_config_when_decision_counts_retention_days_given_then_taken_and_defaults_to_35(
        tmp_path: Path) -> None:
    path = tmp_path / "riskgate.toml"
    path.write_text("[server]\ndecision_counts_retention_days = 7\n")
    assert load_config(path).server.decision_counts_retention_days == 7
    assert load_config(None).server.decision_counts_retention_days == 35


async def test_decision_counts_when_answer_to_its_batch_lost_after_redis_ran_it_then_counted_once(
        proxied: tuple[LossyProxy, Services], flushed_redis: EmbeddedRedis,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    proxy, services = proxied
    service, client = await services.start(redis_stale_after_ms=500)
    await client.upsert_symbol(mark="50000")
    await client.trader()
    tally = Tally()
    await tally.check(client, quantity="0.1", order_id="o1")
    assert await _stored_reaches(flushed_redis.url, tally)
    assert service.store is not None
    proxy.lose_answers_after(_script_call(service.store._flush.sha))
    with caplog.at_level(logging.WARNING, logger="riskgate.store.redis_store"):
        # Its batch runs in Redis (decision counts only: the account is not held); the answer
        # is lost, and the batch is sent again under its number.
        await tally.check(client, account="ghost", quantity="0.1")
        await asyncio.wait_for(proxy.fired.wait(), timeout=5)

        async def sent_again() -> bool:
            return "was already in Redis" in caplog.text

        assert await eventually(sent_again, timeout_s=10)
    await tally.check(client, quantity="0.1", order_id="o2")
    assert await _stored_reaches(flushed_redis.url, tally, timeout_s=10)
    stored, _ = await _stored(flushed_redis.url)
    assert stored[("BTCUSDT", "REJECT", "UNKNOWN_ACCOUNT")] == 1


async def test_read_day_when_fields_written_in_the_format_then_parsed_and_malformed_ones_skipped(
        flushed_redis: EmbeddedRedis, caplog: pytest.LogCaptureFixture) -> None:
    redis = aioredis.Redis.from_url(flushed_redis.url)
    key = KEYS.decision_counts("2024-02-29")
    # Enough fields for the hash to be read in several HSCAN rounds.
    wanted = [(minute, "BTCUSDT", "ACCEPT", "", minute + 1) for minute in range(1440)]
    wanted += [(7, "A|B", "REJECT", "INSUFFICIENT_MARGIN", 3), (1439, "", "REDUCE_ONLY", "NOTHING_TO_REDUCE", 2)]
    try:
        await redis.hset(key, mapping={format_field(m, s, d, r): n for m, s, d, r, n in wanted})
        malformed = {"garbage": 1, "1440|BTCUSDT|ACCEPT|": 1, "-1|BTCUSDT|ACCEPT|": 1, "1|BTCUSDT|MAYBE|": 1,
                     "1|BTCUSDT|ACCEPT|NO_SUCH_REASON": 1, "1|BTCUSDT|ACCEPT": 1, "2|BTCUSDT|REJECT|": "many",
                     "3|BTCUSDT|REJECT|": 0, b"4|\xff|ACCEPT|": 1}
        await redis.hset(key, mapping=malformed)
        with caplog.at_level(logging.WARNING, logger="riskgate.store.decision_counts"):
            read = await read_day(redis, KEYS, "2024-02-29")
        assert read == sorted(wanted)
        assert caplog.text.count("skipping malformed field") == len(malformed)
        assert await read_day(redis, KEYS, "2024-03-01") == []
        with pytest.raises(ValueError):
            await read_day(redis, KEYS, "*")
    finally:
        await redis.aclose()


def test_parse_field_when_formatted_then_the_same_values_back() -> None:
    for values in [(0, "BTCUSDT", "ACCEPT", ""), (1439, "", "REJECT", "ORDER_RATE_EXCEEDED"),
                   (60, "a|b|c", "REDUCE_ONLY", "REDUCE_ONLY_QUANTITY_CAPPED")]:
        assert parse_field(format_field(*values)) == values
    assert format_field(61, "BTCUSDT", "REJECT", "INSUFFICIENT_MARGIN") == "61|BTCUSDT|REJECT|INSUFFICIENT_MARGIN"
    # In the (one) shard's hash tag: each shard writes its own, read_day sums them.
    assert KEYS.decision_counts("2024-02-29") == KEYS.shard_tag + ":decision_counts:2024-02-29"
    # The minute and the day of a batch are UTC, from its at_ms.
    assert decision_counts.day_of(1_709_251_199_999) == "2024-02-29"
    assert minute_of(1_709_251_199_999) == 1439
    assert decision_counts.day_of(1_709_251_200_000) == "2024-03-01"
    assert minute_of(1_709_251_200_000) == 0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_read_day_when_two_shards_counted_then_summed_over_the_layouts_shards(
        flushed_redis: EmbeddedRedis) -> None:
    """Each shard writes its own day hash (its hash tag); the report's reader sums those of the
    layout the accounts are stored under (account_shards), not a shard count of its own."""
    redis = aioredis.Redis.from_url(flushed_redis.url)
    try:
        day = "2024-02-29"
        first, second = KEYS.shards(2)
        margin = "INSUFFICIENT_MARGIN"
        await redis.hset(first.decision_counts(day), mapping={format_field(5, "BTCUSDT", "ACCEPT", ""): 3,
                                                              format_field(6, "BTCUSDT", "REJECT", margin): 1})
        await redis.hset(second.decision_counts(day), mapping={format_field(5, "BTCUSDT", "ACCEPT", ""): 4})
        await redis.hset(KEYS.decision_counts(day), format_field(5, "BTCUSDT", "ACCEPT", ""), 100)  # 1-shard layout
        await redis.set(KEYS.account_shards, 2)
        summed = [(5, "BTCUSDT", "ACCEPT", "", 7), (6, "BTCUSDT", "REJECT", margin, 1)]
        assert await read_day(redis, KEYS, day) == summed
        assert await read_day(redis, KEYS, day, shard_count=1) == [(5, "BTCUSDT", "ACCEPT", "", 100)]
    finally:
        await redis.aclose()
