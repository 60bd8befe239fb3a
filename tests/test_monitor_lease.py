"""Two monitors on one Redis act once; a standby takes over when the actor stops or dies."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import redis.asyncio as aioredis

from riskgate.monitor.keys import MonitorKeys
from riskgate.store.embedded import free_port
from riskgate.values.codes import BreakerState
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.monitor_support import (
    MonitorClient,
    actor_of,
    monitor_config_file,
    running_monitor,
    settled,
    stored_breaker,
    until,
    vol_rule,
)
from tests.support import Client, symbol_spec
from tests.test_monitor_margin import LADDER, LONG_10, stored_controls


async def _two_symbols(services: Services) -> Client:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.upsert_symbol(symbol_spec("ETHUSDT"), mark="2500")
    return gate


async def test_two_monitors_when_rule_fires_then_exactly_one_acts_and_standby_takes_over_after_stop(
        services: Services) -> None:
    gate = await _two_symbols(services)
    async with running_monitor(services.redis_url, [vol_rule()]) as (first, first_client), \
            running_monitor(services.redis_url, [vol_rule()]) as (second, second_client):
        actor = await actor_of(first, second)
        standby = second if actor is first else first
        assert (await (second_client if standby is second else first_client).status()).role == "standby"
        mark = await gate.set_mark("BTCUSDT", "53000")
        await until(first_client.alerts, lambda a: len(a) == 1)
        for monitor in (first, second):
            await settled(monitor, "BTCUSDT", mark.version)
        assert len(await first_client.alerts()) == 1
        trips = await audit_entries(services.redis_url, lambda e: e["action"] == "trip_breaker",
                                    lambda rows: len(rows) >= 1)
        assert len(trips) == 1

        await actor.stop()  # hands the lease on at once
        await until(lambda: asyncio.sleep(0, standby.is_actor), bool)
        await gate.set_mark("ETHUSDT", "2650")  # 6%
        breaker = await until(lambda: stored_breaker(services.redis_url, "ETHUSDT"),
                              lambda b: b is not None and b.state == BreakerState.REDUCE_ONLY)
        assert breaker is not None and breaker.set_by == "monitor:vol-test"
        # The new actor knows the open BTCUSDT episode it inherited: no second alert for it.
        again = await gate.set_mark("BTCUSDT", "53500")
        await settled(standby, "BTCUSDT", again.version)
        alerts = await until(first_client.alerts if standby is first else second_client.alerts,
                             lambda a: len(a) == 2)
        assert sorted(a.symbol for a in alerts) == ["BTCUSDT", "ETHUSDT"]


async def test_monitor_process_when_killed_then_standby_takes_over_within_the_lease_and_acts(
        services: Services, tmp_path: Path) -> None:
    gate = await _two_symbols(services)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "riskgate.cli.main", "monitor", "--redis-url", services.redis_url,
         "--listen", f"127.0.0.1:{port}", "--config", str(monitor_config_file(tmp_path / "monitor.toml", [vol_rule()])),
         "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=(tmp_path / "monitor.log").open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout=60)
        assert line.decode().strip() == f"riskgate monitor ready on 127.0.0.1:{port}", line
        child = MonitorClient(port)
        try:
            await until(child.status, lambda s: s.role == "actor")
            async with running_monitor(services.redis_url, [vol_rule()]) as (standby, client):
                await until(client.status, lambda s: s.role == "standby" and s.feed_live)
                # The process acts while alive.
                await gate.set_mark("BTCUSDT", "53000")
                alerts = await until(client.alerts, lambda a: len(a) == 1)
                assert alerts[0].action_taken.startswith("symbol BTCUSDT REDUCE_ONLY")

                process.kill()
                process.wait()
                # Its lease lapses (2 s) and the standby takes it: bounded, not timed.
                await until(client.status, lambda s: s.role == "actor", timeout_s=10)
                redis = aioredis.Redis.from_url(services.redis_url)
                try:
                    assert (await redis.get(MonitorKeys("rg").lease)).decode() == standby.lease_token
                finally:
                    await redis.aclose()
                await gate.set_mark("ETHUSDT", "2350")  # 6% down
                alerts = await until(client.alerts, lambda a: len(a) == 2)
                assert alerts[0].symbol == "ETHUSDT" and alerts[0].action_taken.startswith("symbol ETHUSDT")
        finally:
            await child.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_monitor_process_when_sigterm_then_exits_zero_and_releases_its_lease(
        services: Services, tmp_path: Path) -> None:
    await _two_symbols(services)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "riskgate.cli.main", "monitor", "--redis-url", services.redis_url,
         "--listen", f"127.0.0.1:{port}", "--config", str(monitor_config_file(tmp_path / "monitor.toml", [vol_rule()])),
         "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=(tmp_path / "monitor.log").open("wb"))
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout=60)
        assert b"riskgate monitor ready on" in line
        child = MonitorClient(port)
        try:
            await until(child.status, lambda s: s.role == "actor")
        finally:
            await child.close()
        process.terminate()
        assert await asyncio.wait_for(asyncio.to_thread(process.wait), timeout=30) == 0
        redis = aioredis.Redis.from_url(services.redis_url)
        try:
            assert await redis.get(MonitorKeys("rg").lease) is None
        finally:
            await redis.aclose()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_monitor_when_its_lease_lapses_for_a_moment_and_it_takes_it_again_then_every_rule_acts_again(
        services: Services) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.trader("acct-1", "100000", LONG_10)
    redis = aioredis.Redis.from_url(services.redis_url)
    try:
        async with running_monitor(services.redis_url, [LADDER[1]]) as (monitor, client):
            await until(client.status, lambda s: s.role == "actor")
            # Another holder for a moment: the action that runs meanwhile is fenced (refused).
            await redis.set(MonitorKeys("rg").lease, "someone-else", px=300)
            await gate.upsert_account("acct-1", "3800", LONG_10)  # 0.97
            # It lapses; this monitor takes it afresh, reads the episodes again and judges anew.
            restricted = await until(lambda: stored_controls(services.redis_url, "acct-1"),
                                     lambda c: c is not None and c.restriction == 2)
            assert restricted is not None and restricted.set_by == "monitor:mr-close"
            assert (await redis.get(MonitorKeys("rg").lease)).decode() == monitor.lease_token
    finally:
        await redis.aclose()


async def test_monitor_when_redis_loses_its_data_then_takes_over_afresh_and_restricts_again(
        services: Services) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.trader("acct-1", "100000", LONG_10)
    redis = aioredis.Redis.from_url(services.redis_url)
    try:
        async with running_monitor(services.redis_url, [LADDER[1]]) as (_, client):
            await until(client.status, lambda s: s.role == "actor")
            await gate.upsert_account("acct-1", "3800", LONG_10)  # 0.97
            await until(lambda: stored_controls(services.redis_url, "acct-1"),
                        lambda c: c is not None and c.restriction == 2)
            await redis.flushall()
            _, again = await services.start()  # clearing restores the state into the empty Redis
            await again.upsert_symbol(mark="50000")
            await again.upsert_account("acct-1", "3800", LONG_10)
            restricted = await until(lambda: stored_controls(services.redis_url, "acct-1"),
                                     lambda c: c is not None and c.restriction == 2, timeout_s=20)
            assert restricted is not None and restricted.set_by == "monitor:mr-close"
    finally:
        await redis.aclose()
