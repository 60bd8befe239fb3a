"""Admin credentials must be unambiguous: more than one `authorization` header is refused,
whatever the values, before any of them is looked at."""

from __future__ import annotations

import grpc
import pytest

from riskgate.v1 import admin_pb2 as admin
from tests.support import ADMIN_TOKEN, OPERATOR_TOKEN, VIEWER_TOKEN, Client, symbol_spec


def headers(*tokens: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}") for token in tokens]


@pytest.mark.parametrize("tokens", [(VIEWER_TOKEN, ADMIN_TOKEN), (ADMIN_TOKEN, VIEWER_TOKEN),
                                    (ADMIN_TOKEN, ADMIN_TOKEN)], ids=["viewer_then_admin", "admin_then_viewer",
                                                                      "admin_twice"])
async def test_upsert_symbol_when_two_authorization_headers_then_unauthenticated_and_nothing_changes(
        client: Client, tokens: tuple[str, str]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.admin.UpsertSymbol(symbol_spec("NEWUSDT"), metadata=headers(*tokens))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == "ambiguous credentials: 2 authorization headers"
    # The symbol was not listed: a mark for it is refused as unknown.
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await client.set_mark("NEWUSDT", "100")
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown symbol" in unknown.value.details()


async def test_read_when_two_identical_viewer_headers_then_unauthenticated(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(),
                                               metadata=headers(VIEWER_TOKEN, VIEWER_TOKEN))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == "ambiguous credentials: 2 authorization headers"


async def test_breaker_change_when_three_authorization_headers_then_unauthenticated_naming_three(
        client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.admin.SetCircuitBreaker(
            admin.CircuitBreaker(state=admin.BREAKER_HALTED, reason="test"),
            metadata=headers(OPERATOR_TOKEN, "not-a-token", OPERATOR_TOKEN))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == "ambiguous credentials: 3 authorization headers"
    breakers = await client.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(), metadata=client.auth())
    assert [b.state for b in breakers.breakers] == [admin.BREAKER_NORMAL]


async def test_admin_call_when_one_empty_and_one_valid_header_then_unauthenticated(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(),
                                               metadata=[("authorization", ""), *headers(ADMIN_TOKEN)])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == "ambiguous credentials: 2 authorization headers"


async def test_upsert_symbol_when_one_admin_header_then_applied(client: Client) -> None:
    stored = await client.admin.UpsertSymbol(symbol_spec("NEWUSDT"), metadata=headers(ADMIN_TOKEN))
    assert stored.symbol == "NEWUSDT"
    assert stored.version > 0


async def test_upsert_symbol_when_one_viewer_header_then_permission_denied(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.admin.UpsertSymbol(symbol_spec("NEWUSDT"), metadata=headers(VIEWER_TOKEN))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
