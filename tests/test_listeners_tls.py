"""The listeners: RiskAdmin only on the operators' listener; TLS on both (and the monitor's)
with certificates made here; mTLS on the order port refusing clients without a certificate
of its CA. Handshakes that must fail are seen as UNAVAILABLE by the caller."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc.aio import AioRpcError
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskgate.cli.main import main
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import admin_pb2_grpc as admin_grpc
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc
from tests.certs import Pki, make_pki
from tests.conftest import Services
from tests.monitor_support import monitor_config
from tests.support import ADMIN_TOKEN, VIEWER_TOKEN, Client, decision, symbol_spec

CALL_TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "right")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("other-pki"), "wrong")


def _credentials(ca: Path, client: tuple[Path, Path] | None = None) -> grpc.ChannelCredentials:
    cert, key = client if client else (None, None)
    return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes(),
                                        private_key=key.read_bytes() if key else None,
                                        certificate_chain=cert.read_bytes() if cert else None)


async def _check(target: str, credentials: grpc.ChannelCredentials | None, client: Client) -> str:
    """One order over a channel of its own; the decision, or the status code it failed with."""
    channel = (grpc.aio.secure_channel(target, credentials) if credentials is not None
               else grpc.aio.insecure_channel(target))
    try:
        response = await pb_grpc.PreTradeRiskStub(channel).CheckOrder(client.request(quantity="0.01"),
                                                                       timeout=CALL_TIMEOUT_S)
        return decision(response)
    except AioRpcError as exc:
        return exc.code().name
    finally:
        await channel.close()


async def _breakers(target: str, credentials: grpc.ChannelCredentials | None) -> str:
    channel = (grpc.aio.secure_channel(target, credentials) if credentials is not None
               else grpc.aio.insecure_channel(target))
    try:
        answer = await admin_grpc.RiskAdminStub(channel).ListCircuitBreakers(
            admin.ListCircuitBreakersRequest(), metadata=Client.auth(VIEWER_TOKEN), timeout=CALL_TIMEOUT_S)
        return f"OK {len(answer.breakers)}"
    except AioRpcError as exc:
        return exc.code().name
    finally:
        await channel.close()


async def test_order_port_when_admin_rpc_then_unimplemented_and_admin_port_answers(btc: Client) -> None:
    on_order_port = admin_grpc.RiskAdminStub(btc.channel)
    with pytest.raises(AioRpcError) as refused:
        await on_order_port.ListCircuitBreakers(admin.ListCircuitBreakersRequest(), metadata=btc.auth(),
                                                timeout=CALL_TIMEOUT_S)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert btc.admin_target != btc.target
    listed = await btc.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(), metadata=btc.auth())
    assert [b.state for b in listed.breakers] == [admin.BREAKER_NORMAL]
    # The operators' listener serves no orders.
    with pytest.raises(AioRpcError) as refused:
        await pb_grpc.PreTradeRiskStub(btc.admin_channel).CheckOrder(btc.request(), timeout=CALL_TIMEOUT_S)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_tls_when_client_trusts_the_ca_then_handshake_succeeds_and_wrong_ca_or_plaintext_fails(
        services: Services, pki: Pki, other_pki: Pki) -> None:
    service, client = await services.start(tls_cert=str(pki.server.cert), tls_key=str(pki.server.key))
    admin_target = f"127.0.0.1:{service.admin_port}"
    # Seed through the operators' listener, over TLS.
    channel = grpc.aio.secure_channel(admin_target, _credentials(pki.ca))
    operator = admin_grpc.RiskAdminStub(channel)
    await operator.UpsertSymbol(symbol_spec(), metadata=Client.auth(ADMIN_TOKEN))
    await operator.SetMarkPrice(admin.MarkPrice(symbol="BTCUSDT", price="50000"), metadata=Client.auth(ADMIN_TOKEN))
    await operator.UpsertAccount(admin.AccountState(account_id="acct-1", balance="100000", includes_all_fills=True),
                                 metadata=Client.auth(ADMIN_TOKEN))
    await operator.SetAccountControls(admin.AccountControls(account_id="acct-1", kyc_level=5,
                                                            restriction=admin.RESTRICTION_NONE,
                                                            qualified_investor=True),
                                      metadata=Client.auth(ADMIN_TOKEN))
    await channel.close()

    assert await _check(client.target, _credentials(pki.ca), client) == "DECISION_ACCEPT"
    assert await _check(client.target, _credentials(other_pki.ca), client) == "UNAVAILABLE"
    assert await _check(client.target, None, client) == "UNAVAILABLE"
    assert await _breakers(admin_target, _credentials(pki.ca)) == "OK 1"
    assert await _breakers(admin_target, _credentials(other_pki.ca)) == "UNAVAILABLE"
    assert await _breakers(admin_target, None) == "UNAVAILABLE"


async def test_mtls_when_client_has_no_certificate_then_refused_and_one_signed_by_the_ca_accepted(
        services: Services, pki: Pki, other_pki: Pki) -> None:
    service, client = await services.start(tls_cert=str(pki.server.cert), tls_key=str(pki.server.key),
                                           client_ca=str(pki.ca))
    signed = (pki.client.cert, pki.client.key)
    foreign = (other_pki.client.cert, other_pki.client.key)
    # No symbol here: an order for an unknown symbol is a typed REJECT, which is a completed call.
    assert await _check(client.target, _credentials(pki.ca, signed), client) == "DECISION_REJECT"
    assert await _check(client.target, _credentials(pki.ca), client) == "UNAVAILABLE"
    assert await _check(client.target, _credentials(pki.ca, foreign), client) == "UNAVAILABLE"
    # The operators' listener asks no client certificate: its callers carry tokens.
    assert await _breakers(f"127.0.0.1:{service.admin_port}", _credentials(pki.ca)) == "OK 1"


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_cli_when_tls_flags_given_then_verbs_and_health_reach_tls_listeners(
        services: Services, pki: Pki, other_pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    service, client = await services.start(tls_cert=str(pki.server.cert), tls_key=str(pki.server.key),
                                           client_ca=str(pki.ca))
    mtls = ("--tls-ca", str(pki.ca), "--tls-cert", str(pki.client.cert), "--tls-key", str(pki.client.key))
    code, out, _ = await _cli(capsys, "health", "--target", client.target, *mtls)
    assert (code, out.strip()) == (0, "SERVING")
    code, out, _ = await _cli(capsys, "check", "--target", client.target, "--account", "a", "--symbol", "BTCUSDT",
                              "--side", "buy", "--quantity", "1", "--price", "1", "--json", *mtls)
    assert code == 3 and '"DECISION_REJECT"' in out  # reached over mTLS: an unknown account's REJECT
    code, out, _ = await _cli(capsys, "breaker", "list", "--target", f"127.0.0.1:{service.admin_port}",
                              "--token", VIEWER_TOKEN, "--tls-ca", str(pki.ca), "--json")
    assert code == 0 and "breakers" in out
    # The wrong CA: one line, non-zero.
    code, out, err = await _cli(capsys, "health", "--target", client.target, "--tls-ca", str(other_pki.ca),
                                "--tls-cert", str(pki.client.cert), "--tls-key", str(pki.client.key))
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "UNAVAILABLE" in err
    # A CA file that is not there: a mistake in the command.
    code, _, err = await _cli(capsys, "health", "--target", client.target, "--tls-ca", "/nonexistent/ca.pem")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "/nonexistent/ca.pem" in err


async def test_monitor_when_tls_configured_then_its_listener_needs_the_ca(
        flushed_redis: object, pki: Pki, other_pki: Pki) -> None:
    from riskgate.monitor.service import MonitorService

    config = monitor_config([])
    config.server.tls_cert, config.server.tls_key = str(pki.server.cert), str(pki.server.key)
    service = MonitorService(config, flushed_redis.url)  # type: ignore[attr-defined]
    try:
        port = await service.start()
        for credentials, expected in ((_credentials(pki.ca), "SERVING"), (_credentials(other_pki.ca), "UNAVAILABLE")):
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
                try:
                    answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                                             timeout=CALL_TIMEOUT_S)
                    seen = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
                except AioRpcError as exc:
                    seen = exc.code().name
            assert seen == expected
    finally:
        await service.stop()


def test_serve_when_tls_key_missing_or_unreadable_then_one_line_and_exit_2(
        tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--listen", "127.0.0.1:0", "--redis-url", "redis://127.0.0.1:1/0",
                 "--tls-cert", str(pki.server.cert)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "tls_key" in err
    code = main(["serve", "--listen", "127.0.0.1:0", "--redis-url", "redis://127.0.0.1:1/0",
                 "--tls-cert", str(pki.server.cert), "--tls-key", str(tmp_path / "missing.key")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "missing.key" in err
