"""The audit trail: bounded entries, refusals audited even while Redis is away, reads never
wait on it, and entries reach Redis in the order the calls were made."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from grpc import StatusCode
from grpc.aio import AioRpcError

from riskgate.api.admin import AUDIT_REQUEST_MAX, AUDIT_REQUEST_MAX_DENIED
from riskgate.store.embedded import EmbeddedRedis
from riskgate.v1 import admin_pb2 as admin
from tests.audit_trail import audit_entries, audit_of
from tests.conftest import Services
from tests.support import VIEWER_TOKEN, Client


async def test_audit_when_unauthenticated_caller_sends_megabyte_fields_then_entries_stay_small(
        client: Client, redis_server) -> None:
    huge = "x" * 1_000_000
    for _ in range(5):
        with pytest.raises(AioRpcError) as error:
            await client.admin.SetCircuitBreaker(admin.CircuitBreaker(symbol=huge, reason=huge))
        assert error.value.code() == StatusCode.UNAUTHENTICATED
    entries = await audit_of(redis_server.url, "SetCircuitBreaker", 5)
    for entry in entries:
        assert sum(len(k) + len(v) for k, v in entry.items()) < AUDIT_REQUEST_MAX_DENIED + 1000
        assert entry["outcome"].startswith("denied")


async def test_audit_when_authenticated_request_is_large_then_kept_truncated_with_its_size(
        client: Client, redis_server) -> None:
    await client.trader()
    with pytest.raises(AioRpcError):
        await client.admin.SetAccountControls(admin.AccountControls(account_id="acct-1", max_gross_notional="9" * 9000),
                                              metadata=client.auth())
    entry = (await audit_of(redis_server.url, "SetAccountControls", 2))[-1]
    assert entry["outcome"].startswith("invalid")
    assert len(entry["request"]) == AUDIT_REQUEST_MAX
    assert int(entry["request_truncated_from"]) > AUDIT_REQUEST_MAX


async def test_audit_when_redis_hangs_then_reads_answer_and_refusals_are_written_later_in_order(
        tmp_path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    services = Services(server.url)
    try:
        _, client = await services.start()
        await client.trader()
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            # A read answers from memory at once; its audit entry waits for Redis.
            risk = await client.admin.GetAccountRisk(admin.GetAccountRiskRequest(account_id="acct-1"),
                                                     metadata=client.auth(VIEWER_TOKEN), timeout=1.0)
            assert risk.account_id == "acct-1"
            with pytest.raises(AioRpcError):
                await client.admin.SetCircuitBreaker(admin.CircuitBreaker(state=admin.BREAKER_HALTED, reason="x"),
                                                     metadata=client.auth(VIEWER_TOKEN), timeout=1.0)
            with pytest.raises(AioRpcError):
                await client.admin.GetAccountRisk(admin.GetAccountRiskRequest(account_id="ghost"),
                                                  metadata=client.auth(VIEWER_TOKEN), timeout=1.0)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        rows = await audit_entries(server.url, lambda e: e["actor"] == "test-viewer", lambda rows: len(rows) >= 3)
        assert [(r["action"], r["target"], r["outcome"].split(":")[0]) for r in rows] == [
            ("GetAccountRisk", "acct-1", "ok"), ("SetCircuitBreaker", "", "denied"),
            ("GetAccountRisk", "ghost", "not found")]
    finally:
        await services.stop_all()
        server.stop()


async def test_audit_when_a_token_without_the_role_floods_then_entries_are_small_and_rate_limited(
        client: Client, redis_server) -> None:
    huge = "y" * 100_000
    for _ in range(200):
        with pytest.raises(AioRpcError) as error:
            await client.admin.SetCircuitBreaker(admin.CircuitBreaker(symbol=huge, reason=huge),
                                                 metadata=client.auth(VIEWER_TOKEN))
        assert error.value.code() == StatusCode.PERMISSION_DENIED
    entries = await audit_of(redis_server.url, "SetCircuitBreaker", 1)
    await asyncio.sleep(0.2)  # let the last batch land
    entries = await audit_of(redis_server.url, "SetCircuitBreaker", len(entries))
    assert all(len(e["request"]) <= AUDIT_REQUEST_MAX_DENIED + 100 for e in entries)
    # A burst well above the denied-caller rate keeps only about one second's worth.
    assert len(entries) < 200


async def test_audit_when_refusals_exceed_the_rate_then_the_rest_are_counted_in_the_audit(
        client: Client, redis_server) -> None:
    for _ in range(100):
        with pytest.raises(AioRpcError):
            await client.admin.SetCircuitBreaker(admin.CircuitBreaker(state=admin.BREAKER_HALTED, reason="x"))
    def audited(rows: list[dict[str, str]]) -> int:
        return sum(1 for f in rows if f["action"] == "SetCircuitBreaker")

    def counted(rows: list[dict[str, str]]) -> int:
        return sum(int(f["request"].split()[0]) for f in rows if f["action"] == "audit_rate_limited")

    rows = await audit_entries(redis_server.url, lambda e: True,
                               lambda rows: audited(rows) + counted(rows) >= 100)
    # Every refusal is in the audit: one by one up to the rate, the rest as a count.
    assert audited(rows) + counted(rows) == 100 and counted(rows) > 0
