"""Redis is the source of truth: restarts recover state, other processes see changes."""

import asyncio
import zlib

import pytest
import redis.asyncio as aioredis

from riskgate.config import AccountSeed
from riskgate.store.keys import Keys
from riskgate.store.redis_store import StoreUnavailable
from riskgate.v1 import admin_pb2 as admin
from tests.conftest import Services
from tests.support import codes, decision, test_config


async def _wait_for(predicate_call, timeout_s: float = 5.0):
    """Polls until the coroutine factory returns a truthy value (a wait, not a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await predicate_call()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.01)


async def test_restart_when_state_changed_then_positions_balances_breakers_reservations_recovered(
        services: Services) -> None:
    first, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.upsert_symbol(symbol="ETHUSDT", mark="3000", tick_size="0.01")
    await client.trader(balance="100000")
    await client.check(quantity="1", price="50000", leverage=10, order_id="filled")
    await client.fill("acct-1", "filled", "1", "50000")
    await client.check(quantity="2", price="49000", leverage=10, order_id="resting")
    await client.fill("acct-1", "resting", "0.5", "49000")
    await client.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol="ETHUSDT", reason="volatility")
    before = await client.risk("acct-1")
    breakers_before = await client.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(),
                                                             metadata=client.auth())
    await services.stop(first)

    _, restarted = await services.start()
    after = await restarted.risk("acct-1")
    assert after == before
    assert after.reserved_order_cost == "7350"  # 1.5 BTC x 49,000 / 10 still held
    breakers_after = await restarted.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(),
                                                               metadata=restarted.auth())
    assert breakers_after == breakers_before
    eth = await restarted.check(symbol="ETHUSDT", quantity="1", price="3000")
    assert codes(eth) == ["REASON_NOTHING_TO_REDUCE", "REASON_SYMBOL_REDUCE_ONLY"]
    # The recovered reservation is live: it can be filled, and its id is still taken.
    ack = await restarted.fill("acct-1", "resting", "1.5", "49000")
    assert (ack.remaining_quantity, ack.position_quantity) == ("0", "3")
    duplicate = await restarted.check(quantity="1", price="50000", order_id="filled")
    assert decision(duplicate) == "DECISION_ACCEPT"  # closed ids are not kept across restarts


def _account_of_shard(index: int, count: int) -> str:
    return next(f"acct-{n}" for n in range(100) if zlib.crc32(f"acct-{n}".encode()) % count == index)


async def test_second_process_when_breaker_set_on_first_then_sees_it_promptly(services: Services) -> None:
    # One writer per account: the second process is another shard, and holds the account.
    _, first = await services.start(shard_index=0, shard_count=2)
    _, second = await services.start(shard_index=1, shard_count=2)
    account = _account_of_shard(1, 2)
    await first.upsert_symbol(mark="50000")
    await second.trader(account)
    assert decision(await second.check(account=account, quantity="0.1", price="50000")) == "DECISION_ACCEPT"

    await first.set_breaker(admin.BREAKER_HALTED, reason="kill switch")

    async def halted() -> bool:
        response = await second.check(account=account, quantity="0.1", price="50000")
        return codes(response) == ["REASON_PLATFORM_HALTED"]

    assert await _wait_for(halted)


async def test_second_process_when_mark_and_controls_change_then_applies_them(services: Services) -> None:
    _, first = await services.start(shard_index=0, shard_count=2)
    _, second = await services.start(shard_index=1, shard_count=2)
    account = _account_of_shard(1, 2)
    await first.upsert_symbol(mark="50000")
    await second.trader(account)
    await first.set_controls(account, restriction=admin.RESTRICTION_FROZEN)

    async def frozen() -> bool:
        return codes(await second.check(account=account, quantity="0.1", price="50000")) == ["REASON_ACCOUNT_FROZEN"]

    assert await _wait_for(frozen)
    await first.set_mark("BTCUSDT", "60000", confirmed=True)

    async def repriced() -> bool:
        risk = await second.risk(account)
        return risk.controls.restriction == admin.RESTRICTION_FROZEN and risk.available_margin == "100000"

    assert await _wait_for(repriced)


async def test_second_process_when_same_shard_as_a_running_one_then_refused(services: Services) -> None:
    # Two writers of one account would both grant its margin and apply a retried fill twice.
    await services.start()
    with pytest.raises(StoreUnavailable, match="written by another riskgate process"):
        await services.start(redis_stale_after_ms=200)


async def test_second_process_when_another_shard_count_is_live_then_refused(services: Services) -> None:
    await services.start(shard_index=0, shard_count=2)
    with pytest.raises(StoreUnavailable, match="same shard_count"):
        await services.start(shard_index=0, shard_count=3)


async def test_successor_when_predecessor_stopped_then_takes_the_shard_at_once(services: Services) -> None:
    first, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await services.stop(first)
    _, successor = await services.start()
    assert decision(await successor.check(quantity="0.1", price="50000")) == "DECISION_ACCEPT"


async def test_start_when_config_has_seeds_then_written_only_where_redis_has_none(services: Services) -> None:
    config = test_config()
    config.symbols = []
    config.accounts = [AccountSeed(account_id="seeded", balance=1000, kyc_level=5)]  # type: ignore[arg-type]
    first, client = await services.start(config)
    await client.upsert_symbol(mark="50000")
    await client.upsert_account("seeded", "777")
    await services.stop(first)

    _, restarted = await services.start(config)
    risk = await restarted.risk("seeded")
    assert risk.balance == "777"  # Redis already had the account: the seed did not overwrite it
    assert risk.controls.kyc_level == 5


async def test_shards_when_two_processes_split_accounts_then_each_refuses_the_others(services: Services) -> None:
    _, zero = await services.start(shard_index=0, shard_count=2)
    _, one = await services.start(shard_index=1, shard_count=2)
    await zero.upsert_symbol(mark="50000")
    owned = {0: [], 1: []}
    for n in range(8):
        account = f"acct-{n}"
        for shard, client in ((0, zero), (1, one)):
            try:
                await client.upsert_account(account, "100000")
                owned[shard].append(account)
            except Exception:
                continue
    assert owned[0] and owned[1] and not set(owned[0]) & set(owned[1])
    for account in owned[1]:
        await zero.set_controls(account)  # controls are published to the owner
    foreign = await zero.check(account=owned[1][0], quantity="0.1", price="50000")
    assert codes(foreign) == ["REASON_ACCOUNT_NOT_OWNED"]

    async def accepted_by_owner() -> bool:
        return decision(await one.check(account=owned[1][0], quantity="0.1", price="50000")) == "DECISION_ACCEPT"

    assert await _wait_for(accepted_by_owner)


async def test_write_behind_when_order_accepted_then_reservation_reaches_redis(services: Services,
                                                                               redis_server) -> None:
    _, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await client.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        async def stored() -> bool:
            return bool(await redis.hexists(Keys("rg").orders, "acct-1\x1fo-1"))

        assert await _wait_for(stored)
        await client.close_order("acct-1", "o-1")

        async def removed() -> bool:
            return not await redis.hexists(Keys("rg").orders, "acct-1\x1fo-1")

        assert await _wait_for(removed)
    finally:
        await redis.aclose()
