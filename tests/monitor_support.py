"""A monitor run in-process against the test Redis, its client, and bounded polling."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import grpc
import msgspec
import redis.asyncio as aioredis

from riskgate.book.specs import BreakerSpec
from riskgate.config import MonitorConfig
from riskgate.monitor.rules import Rule
from riskgate.monitor.service import MonitorService
from riskgate.store.codec import decode_stored
from riskgate.store.keys import Keys
from riskgate.v1 import monitor_pb2 as mpb
from riskgate.v1 import monitor_pb2_grpc as mpb_grpc
from tests.support import ADMIN_TOKEN, OPERATOR_TOKEN, test_config

T = TypeVar("T")


def vol_rule(rule_id: str = "vol-test", threshold: str = "0.05", window_ms: int = 60_000, **fields: Any) -> Rule:
    values: dict[str, Any] = {"metric": "mark_move", "action": "symbol_reduce_only", "confirmation": 1,
                              "cooldown_ms": 600_000, "severity": "warning", "mode": "act"}
    values.update(fields)
    return Rule(id=rule_id, threshold=Decimal(threshold), window_ms=window_ms, **values)


def monitor_config(rules: list[Rule], **monitor: Any) -> Any:
    config = test_config()
    monitor.setdefault("metrics_listen", "")
    config.monitor = MonitorConfig(listen="127.0.0.1:0", rules=rules, evaluate_ms=20, **monitor)
    return config


class MonitorClient:
    def __init__(self, port: int) -> None:
        self.target = f"127.0.0.1:{port}"
        self.channel = grpc.aio.insecure_channel(self.target)
        self.stub = mpb_grpc.RiskMonitorStub(self.channel)

    @staticmethod
    def auth(token: str = OPERATOR_TOKEN) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {token}")]

    async def alerts(self, token: str = OPERATOR_TOKEN, **filters: Any) -> list[mpb.Alert]:
        answer = await self.stub.ListAlerts(mpb.ListAlertsRequest(**filters), metadata=self.auth(token))
        return list(answer.alerts)

    async def status(self) -> mpb.MonitorStatus:
        return await self.stub.GetMonitorStatus(mpb.MonitorStatusRequest(), metadata=self.auth(ADMIN_TOKEN))

    async def close(self) -> None:
        await self.channel.close()


@asynccontextmanager
async def running_monitor(redis_url: str, rules: list[Rule], **monitor: Any
                          ) -> AsyncIterator[tuple[MonitorService, MonitorClient]]:
    service = MonitorService(monitor_config(rules, **monitor), redis_url)
    try:
        port = await service.start()
        client = MonitorClient(port)
        try:
            yield service, client
        finally:
            await client.close()
    finally:
        await service.stop()


async def until(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout_s: float = 10.0) -> T:
    """Polls probe until ok holds for its result; AssertionError with the last one after the bound."""
    value = await probe()
    for _ in range(int(timeout_s / 0.02)):
        if ok(value):
            return value
        await asyncio.sleep(0.02)
        value = await probe()
    if ok(value):
        return value
    raise AssertionError(f"condition not met within {timeout_s} s; last: {value!r}")


async def settled(service: MonitorService, symbol: str, version: int) -> None:
    """Waits until the monitor has evaluated the mark of `version` and carried out what that
    decided (its action queue idle): then "nothing happened" is an observation, not a guess."""
    async def state() -> tuple[int, bool]:
        history = service.view.marks.get(symbol)
        watcher = service.watcher
        assert watcher is not None
        return (history.version if history else 0), watcher.idle

    await until(state, lambda s: s[0] >= version and s[1])


async def stored_breaker(redis_url: str, symbol: str) -> BreakerSpec | None:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        data = await redis.hget(Keys("rg").breakers, symbol)
        return decode_stored("breaker", data) if data else None
    finally:
        await redis.aclose()


async def actor_of(*services: MonitorService) -> MonitorService:
    async def actors() -> list[MonitorService]:
        return [s for s in services if s.is_actor]

    found = await until(actors, lambda a: len(a) == 1)
    return found[0]


def monitor_config_file(path: Path, rules: list[Rule]) -> Path:
    """A TOML configuration for a `riskgate monitor` process: the test tokens and these rules."""
    def digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def value(field: object) -> str:
        if isinstance(field, bool):
            return "true" if field else "false"
        return str(field) if isinstance(field, int) else f'"{field}"'

    tables = "".join("\n[[monitor.rules]]\n" + "".join(
        f"{name} = {value(field)}\n" for name, field in msgspec.structs.asdict(rule).items() if field is not None)
        for rule in rules)
    path.write_text(f"""
[[admin_tokens]]
name = "test-admin"
token_sha256 = "{digest(ADMIN_TOKEN)}"
roles = ["admin"]

[[admin_tokens]]
name = "test-operator"
token_sha256 = "{digest(OPERATOR_TOKEN)}"
roles = ["operator"]

[monitor]
evaluate_ms = 20
{tables}""")
    return path


# A book of three accounts on BTCUSDT at mark 50,000 (the stress and VaR tests' figures are
# computed by hand from it): acct-a long 10, acct-b short 2, acct-c long 3, all entered at 50,000.
THREE_ACCOUNTS = {"acct-a": ("10000", [("BTCUSDT", "10", "50000", 10)]),
                  "acct-b": ("5000", [("BTCUSDT", "-2", "50000", 10)]),
                  "acct-c": ("20000", [("BTCUSDT", "3", "50000", 10)])}


async def three_accounts(services: Any) -> Any:
    """Starts a gate (tests.conftest.Services) with the three accounts; returns its client."""
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    for account, (balance, positions) in THREE_ACCOUNTS.items():
        await gate.trader(account, balance, positions)
    return gate


async def three_accounts_loaded(client: MonitorClient) -> None:
    await until(client.status, lambda s: s.accounts == len(THREE_ACCOUNTS) and s.feed_live)
