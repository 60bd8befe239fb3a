"""Health follows the link (both listeners, and `riskgate health`), and the process logs:
the fail-closed transition and recovery, one line per admin action (RiskAdmin and
RiskMonitor), breaker and restriction changes from the change feed, sampled decisions, and
the formats themselves."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskgate import logs
from riskgate.cli.main import main
from riskgate.store.embedded import EmbeddedRedis
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import monitor_pb2 as mpb
from tests.conftest import Services
from tests.monitor_support import running_monitor
from tests.support import ADMIN_TOKEN, VIEWER_TOKEN, Client, eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def _status(channel: grpc.aio.Channel, service: str = "") -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                             timeout=2)
    return answer.status


async def _everywhere(client: Client, expected: int) -> bool:
    return all([await _status(client.channel) == expected,
                await _status(client.channel, "riskgate.v1.PreTradeRisk") == expected,
                await _status(client.admin_channel) == expected,
                await _status(client.admin_channel, "riskgate.v1.RiskAdmin") == expected])


async def _health_cli(capsys: pytest.CaptureFixture[str], target: str, *extra: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["health", "--target", target, *extra])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


async def test_health_when_redis_killed_then_not_serving_everywhere_and_serving_again_when_it_returns(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    redis_server = EmbeddedRedis(tmp_path / "redis").start()
    services = Services(redis_server.url)
    restarted: EmbeddedRedis | None = None
    caplog.set_level(logging.INFO)
    try:
        _, client = await services.start(redis_stale_after_ms=200)
        assert await _everywhere(client, SERVING)
        assert await _health_cli(capsys, client.target) == (0, "SERVING", "")
        assert await _health_cli(capsys, client.admin_target, "--service", "riskgate.v1.RiskAdmin") == (
            0, "SERVING", "")

        redis_server.kill()
        assert await eventually(lambda: _everywhere(client, NOT_SERVING), timeout_s=10)
        code, out, _ = await _health_cli(capsys, client.target)
        assert (code, out) == (1, "NOT_SERVING")
        [failed] = _events(caplog, "fail_closed")
        assert failed.levelno == logging.ERROR and "Redis" in failed.why  # type: ignore[attr-defined]

        restarted = EmbeddedRedis(tmp_path / "redis", port=redis_server.port).start()
        assert await eventually(lambda: _everywhere(client, SERVING), timeout_s=15)
        assert await _health_cli(capsys, client.target) == (0, "SERVING", "")
        [recovered] = _events(caplog, "fail_closed_recovered")
        assert recovered.failed_closed_s > 0  # type: ignore[attr-defined]
        assert len(_events(caplog, "fail_closed")) == 1
    finally:
        await services.stop_all()
        if restarted is not None:
            restarted.stop()
        redis_server.stop()


async def test_health_cli_when_unreachable_or_unknown_service_then_one_line_and_exit_1(
        client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await _health_cli(capsys, client.target, "--service", "no.such.Service")
    assert code == 1 and out == "" and len(err.splitlines()) == 1 and "no.such.Service" in err
    from riskgate.store.embedded import free_port

    code, out, err = await _health_cli(capsys, f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert code == 1 and out == "" and len(err.splitlines()) == 1 and "UNAVAILABLE" in err


async def test_stop_when_begun_then_health_not_serving_before_the_listeners_close(services: Services) -> None:
    service, client = await services.start()
    watch = health_pb2_grpc.HealthStub(client.admin_channel).Watch(health_pb2.HealthCheckRequest(service=""))
    assert (await watch.read()).status == SERVING
    await service.begin_stop()
    assert (await watch.read()).status == NOT_SERVING
    assert await _status(client.channel) == NOT_SERVING
    report = await service.stop()
    assert report.clean, report.unfinished


async def test_admin_actions_when_changed_refused_and_read_then_one_line_each_and_feed_lines(
        btc: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="riskgate")
    halted = await btc.set_breaker(admin.BREAKER_HALTED, symbol="BTCUSDT", reason="drill")
    with pytest.raises(grpc.aio.AioRpcError):
        await btc.admin.SetCircuitBreaker(admin.CircuitBreaker(symbol="BTCUSDT", state=admin.BREAKER_NORMAL),
                                          metadata=btc.auth(VIEWER_TOKEN))
    with pytest.raises(grpc.aio.AioRpcError):
        await btc.admin.SetCircuitBreaker(admin.CircuitBreaker(symbol="BTCUSDT", state=admin.BREAKER_NORMAL),
                                          metadata=btc.auth("not-a-token"))
    controls = await btc.set_controls("acct-1", restriction=admin.RESTRICTION_REDUCE_ONLY)
    await btc.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(), metadata=btc.auth(VIEWER_TOKEN))

    assert await eventually(lambda: _async(len(_events(caplog, "restriction_change")) >= 1))
    actions = [r for r in _events(caplog, "admin_action") if r.action != "UpsertSymbol"]  # type: ignore[attr-defined]
    table = [(r.action, r.actor, tuple(r.roles), r.target, r.outcome.split(":")[0],  # type: ignore[attr-defined]
              getattr(r, "version", None), logging.getLevelName(r.levelno)) for r in actions
             if r.action in ("SetCircuitBreaker", "ListCircuitBreakers") or  # type: ignore[attr-defined]
             (r.action == "SetAccountControls" and r.version == controls.version)]  # type: ignore[attr-defined]
    assert table == [
        ("SetCircuitBreaker", "test-admin", ("admin",), "BTCUSDT", "ok", halted.version, "INFO"),
        ("SetCircuitBreaker", "test-viewer", ("viewer",), "BTCUSDT", "PERMISSION_DENIED", None, "WARNING"),
        ("SetCircuitBreaker", "unknown token", (), "BTCUSDT", "UNAUTHENTICATED", None, "WARNING"),
        ("SetAccountControls", "test-admin", ("admin",), "acct-1", "ok", controls.version, "INFO"),
        ("ListCircuitBreakers", "test-viewer", ("viewer",), "", "ok", None, "DEBUG"),
    ]
    breaker = [r for r in _events(caplog, "breaker_change") if r.version == halted.version]  # type: ignore[attr-defined]
    assert [(r.scope, r.state, r.set_by) for r in breaker] == [("BTCUSDT", "HALTED", "test-admin")]  # type: ignore[attr-defined]
    restriction = [r for r in _events(caplog, "restriction_change")
                   if r.version == controls.version]  # type: ignore[attr-defined]
    assert [(r.account_id, r.restriction) for r in restriction] == [("acct-1", "REDUCE_ONLY")]  # type: ignore[attr-defined]


async def _async(value: object) -> object:
    return value


async def test_monitor_admin_actions_when_called_then_one_line_each(
        flushed_redis: EmbeddedRedis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="riskgate")
    async with running_monitor(flushed_redis.url, []) as (_, client):
        fund = await client.stub.SetInsuranceFund(mpb.InsuranceFund(balance="1000000"),
                                                  metadata=client.auth(ADMIN_TOKEN))
        with pytest.raises(grpc.aio.AioRpcError):
            await client.stub.SetInsuranceFund(mpb.InsuranceFund(balance="1"), metadata=client.auth(VIEWER_TOKEN))
    lines = [(r.action, r.actor, r.outcome.split(":")[0], getattr(r, "version", None))  # type: ignore[attr-defined]
             for r in _events(caplog, "admin_action")]
    assert lines == [("SetInsuranceFund", "test-admin", "ok", fund.version),
                     ("SetInsuranceFund", "test-viewer", "PERMISSION_DENIED", None)]


async def test_decisions_when_sampled_then_logged_and_not_by_default(
        services: Services, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="riskgate")
    _, quiet = await services.start(key_prefix="quiet")  # a shard of its own
    _, sampled = await services.start(log_decisions_sample=1.0)
    for client in (quiet, sampled):
        await client.upsert_symbol(mark="50000")
        await client.trader()
    caplog.clear()
    await quiet.check(order_id="quiet-1", quantity="0.01")
    await sampled.check(order_id="logged-1", quantity="0.01")
    await sampled.check(order_id="logged-2", quantity="5000")
    decided = [(r.order_id, r.decision, tuple(r.reasons)) for r in _events(caplog, "decision")]  # type: ignore[attr-defined]
    assert decided == [("logged-1", "DECISION_ACCEPT", ()),
                       ("logged-2", "DECISION_REJECT", ("REASON_QUANTITY_ABOVE_MAX",))]


def test_sampler_when_ratio_between_then_logs_about_that_fraction(caplog: pytest.LogCaptureFixture) -> None:
    import random

    from riskgate.v1 import pretrade_pb2 as pb

    sampler = logs.DecisionSampler(0.25, random.Random(1))
    caplog.set_level(logging.INFO, logger="riskgate.decisions")
    for n in range(2000):
        sampler.maybe(pb.CheckOrderRequest(order_id=str(n)), pb.CheckOrderResponse(order_id=str(n)))
    assert 400 < len(caplog.records) < 600


def _record(msg: str = "hello %s", args: tuple[object, ...] = ("world",), **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("riskgate.test", logging.WARNING, __file__, 1, msg, args, None)
    for key, value in fields.items():
        setattr(record, key, value)
    return record


def test_json_formatter_when_fields_given_then_one_object_with_ts_level_logger_msg_and_fields() -> None:
    line = logs.JsonFormatter().format(_record(event="x", version=3, roles=["admin"]))
    parsed = json.loads(line)
    assert "\n" not in line
    assert ISO_UTC.match(parsed.pop("ts"))
    assert parsed == {"level": "WARNING", "logger": "riskgate.test", "msg": "hello world", "event": "x",
                      "version": 3, "roles": ["admin"]}


def test_formatters_when_a_credential_slips_into_a_line_then_it_is_redacted() -> None:
    secret = "s3cr3t-value-123"
    for formatter in (logs.JsonFormatter(), logs.TextFormatter()):
        for record in (_record("got %s", (f"authorization: Bearer {secret}",)),
                       _record("header", (), header=f"Bearer {secret}"),
                       _record("meta %s", ((("authorization", f"Bearer {secret}"),),)),
                       _record("raw %s", (f"Authorization={secret}",))):
            text = formatter.format(record)
            assert secret not in text, text
            assert logs.REDACTED in text


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_configure_when_auto_then_json_off_a_terminal_and_text_on_one() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        root.handlers = []
        for stream, is_json in ((io.StringIO(), True), (_Tty(), False)):
            logs.configure("auto", "INFO", stream)
            logging.getLogger("riskgate.t").info("started", extra={"event": "started", "load_s": 0.5})
            text = stream.getvalue().strip()
            if is_json:
                assert json.loads(text)["load_s"] == 0.5
            else:
                assert text.endswith("INFO riskgate.t: started [event=started load_s=0.5]")
                assert ISO_UTC.match(text.split()[0])
        logs.configure("text", "WARNING", io.StringIO())
        assert len([h for h in root.handlers if isinstance(h, logs._Handler)]) == 1
    finally:
        root.handlers, level = saved
        root.setLevel(level)


async def test_health_when_asked_for_the_other_listeners_service_then_each_listener_knows_only_its_own(
        services: Services) -> None:
    _, client = await services.start()

    async def status(channel: grpc.aio.Channel, service: str) -> str:
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)

    assert await status(client.channel, "riskgate.v1.PreTradeRisk") == "SERVING"
    assert await status(client.channel, "riskgate.v1.RiskAdmin") == "NOT_FOUND"
    assert await status(client.admin_channel, "riskgate.v1.RiskAdmin") == "SERVING"
    assert await status(client.admin_channel, "riskgate.v1.PreTradeRisk") == "NOT_FOUND"
    assert await status(client.channel, "") == await status(client.admin_channel, "") == "SERVING"
