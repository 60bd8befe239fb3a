"""Findings of the operability review, over real gRPC and Redis: balance adjustments that race,
debits that cannot be valued, audit pages and ids the stream cannot take."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import grpc
import pytest

from riskgate.v1 import admin_pb2 as admin
from tests.support import OPERATOR_TOKEN, Client


async def _adjust(client: Client, amount: str, reason: str) -> admin.AccountState:
    return await client.admin.AdjustBalance(admin.BalanceAdjustment(account_id="acct-1", amount=amount, reason=reason),
                                            metadata=client.auth())


async def test_adjust_balance_when_two_credits_race_then_both_land(btc: Client) -> None:
    answers = await asyncio.gather(_adjust(btc, "10", "dep-10"), _adjust(btc, "20", "dep-20"))
    assert sorted(Decimal(a.balance) for a in answers) == [Decimal("100010"), Decimal("100030")] or sorted(
        Decimal(a.balance) for a in answers) == [Decimal("100020"), Decimal("100030")]
    assert Decimal((await btc.risk("acct-1")).balance) == Decimal("100030")


async def test_adjust_balance_when_debits_of_everything_race_then_only_one_is_taken(btc: Client) -> None:
    available = (await btc.risk("acct-1")).available_margin
    answers = await asyncio.gather(*(_adjust(btc, f"-{available}", f"withdrawal-{n}") for n in range(3)),
                                   return_exceptions=True)
    taken = [a for a in answers if not isinstance(a, BaseException)]
    refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    assert len(taken) == 1 and len(refused) == 2
    assert all(r.code() == grpc.StatusCode.FAILED_PRECONDITION for r in refused)
    assert Decimal((await btc.risk("acct-1")).balance) == Decimal(100000) - Decimal(available)


async def test_adjust_balance_when_a_position_has_no_mark_then_debit_refused_not_crashed(client: Client) -> None:
    await client.upsert_symbol(symbol="ETHUSDT")  # no mark
    await client.upsert_account("acct-1", "100000", [("ETHUSDT", "1", "3000", 10)])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _adjust(client, "-1", "withdrawal")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "mark" in (caught.value.details() or "")
    credited = await _adjust(client, "5", "deposit")  # a credit needs no valuation
    assert Decimal(credited.balance) == Decimal(100005)


@pytest.mark.parametrize("before_id", ["0-0", "99999999999999999999-0", "18446744073709551616-1"])
async def test_list_audit_events_when_before_id_out_of_range_then_invalid_argument(btc: Client,
                                                                                   before_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await btc.admin.ListAuditEvents(admin.ListAuditEventsRequest(before_id=before_id),
                                        metadata=btc.auth(OPERATOR_TOKEN))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_audit_events_when_a_full_page_would_pass_4_mib_then_it_ends_early_with_a_cursor(
        btc: Client) -> None:
    reason = "r" * 4000
    for _ in range(1100):
        await btc.set_breaker(admin.BREAKER_NORMAL, symbol="BTCUSDT", reason=reason)
    page = await btc.admin.ListAuditEvents(admin.ListAuditEventsRequest(action="SetCircuitBreaker", limit=1000),
                                           metadata=btc.auth(OPERATOR_TOKEN))
    assert 0 < len(page.events) < 1000 and page.ByteSize() < 4 * 1024 * 1024
    assert page.next_before_id == page.events[-1].id
    rest = await btc.admin.ListAuditEvents(admin.ListAuditEventsRequest(action="SetCircuitBreaker", limit=1000,
                                                                        before_id=page.next_before_id),
                                           metadata=btc.auth(OPERATOR_TOKEN))
    assert rest.events and rest.events[0].id != page.events[-1].id
