"""Reasonable marks: a mark that moves more than the symbol's bound in one update is not
applied unless the caller confirms the move, and either way the call is audited."""

from __future__ import annotations

import pytest
from grpc import StatusCode
from grpc.aio import AioRpcError

from riskgate.v1 import admin_pb2 as admin
from tests.audit_trail import audit_of
from tests.support import Client, codes, decision


async def test_set_mark_when_move_beyond_bound_then_refused_and_short_cannot_fund_risk_with_it(
        btc: Client, redis_server) -> None:
    # A short whose "profit" at an absurd mark would fund a position its balance cannot carry.
    await btc.trader(account="short", balance="1000", positions=[("BTCUSDT", "-1", "50000", 100)])
    with pytest.raises(AioRpcError) as error:
        await btc.set_mark("BTCUSDT", "0.5")
    assert error.value.code() == StatusCode.FAILED_PRECONDITION
    assert "confirmed_move" in error.value.details()
    assert (await btc.risk("short")).positions[0].mark_price == "50000"
    refused = await btc.check(account="short", quantity="2", price="50000", leverage=100, side="sell")
    assert codes(refused) == ["REASON_INSUFFICIENT_MARGIN"]
    entries = await audit_of(redis_server.url, "SetMarkPrice", 2)  # the seed mark of the fixture, then this one
    assert entries[-1]["outcome"].startswith("refused: mark 0.5 moves 100.00% from 50000")


async def test_set_mark_when_move_within_bound_then_applied(btc: Client) -> None:
    stored = await btc.set_mark("BTCUSDT", "54999.9")  # 9.9998% up
    assert stored.price == "54999.9"
    assert (await btc.set_mark("BTCUSDT", "49500")).price == "49500"


async def test_set_mark_when_large_move_is_confirmed_then_applied_and_audited_as_confirmed(
        btc: Client, redis_server) -> None:
    stored = await btc.admin.SetMarkPrice(admin.MarkPrice(symbol="BTCUSDT", price="30000", confirmed_move=True),
                                          metadata=btc.auth())
    assert stored.price == "30000"
    entry = (await audit_of(redis_server.url, "SetMarkPrice", 2))[-1]
    assert entry["outcome"] == "ok" and '"confirmed_move": true' in entry["request"]
    assert decision(await btc.check(quantity="0.01", price="30000")) == "DECISION_ACCEPT"


async def test_set_mark_when_symbol_bound_is_zero_then_any_move_applies(client: Client) -> None:
    await client.upsert_symbol(mark="50000", max_mark_move="0")
    assert (await client.set_mark("BTCUSDT", "5")).price == "5"


async def test_upsert_symbol_when_mark_bound_out_of_range_then_invalid_argument(client: Client) -> None:
    for bound in ("1", "1.5", "-0.1"):
        with pytest.raises(AioRpcError) as error:
            await client.upsert_symbol(max_mark_move=bound)
        assert error.value.code() == StatusCode.INVALID_ARGUMENT
    assert (await client.upsert_symbol()).max_mark_move == "0.1"
