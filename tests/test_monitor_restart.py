"""A monitor killed mid-stream (SIGKILL of a `riskgate monitor` process) and started again
misses no change: the alerts and actions after the restart are those a monitor that never
died would have left."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from riskgate.store.embedded import free_port
from tests.conftest import Services
from tests.monitor_support import MonitorClient, monitor_config_file, running_monitor, until
from tests.test_monitor_margin import LADDER, LONG_10, stored_controls


async def test_monitor_when_killed_and_restarted_mid_stream_then_same_alerts_as_without_the_kill(
        services: Services, tmp_path: Path) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    for account in ("a-1", "a-2", "b-1", "b-2"):
        await gate.trader(account, "100000", LONG_10)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "riskgate.cli.main", "monitor", "--redis-url", services.redis_url,
         "--listen", f"127.0.0.1:{port}", "--config", str(monitor_config_file(tmp_path / "monitor.toml", LADDER)),
         "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=(tmp_path / "monitor.log").open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout=60)
        assert "ready" in line.decode(), line
        first = MonitorClient(port)
        try:
            await until(first.status, lambda s: s.role == "actor")
            # While it lives: a-1 to the warning (0.822), a-2 to close-only (0.925).
            await gate.upsert_account("a-1", "4500", LONG_10)
            await gate.upsert_account("a-2", "4000", LONG_10)
            await until(first.alerts, lambda a: len(a) == 3)
        finally:
            await first.close()
        process.kill()
        process.wait()

        # While no monitor runs: the same two crossings on b-1 and b-2, a-2 recovers, and a
        # stream of unrelated changes.
        await gate.upsert_account("b-1", "4500", LONG_10)
        await gate.upsert_account("b-2", "4000", LONG_10)
        await gate.upsert_account("a-2", "100000", LONG_10)
        for n in range(30):
            await gate.trader(f"other-{n}", "100000", LONG_10)

        async with running_monitor(services.redis_url, LADDER) as (_, client):
            alerts = await until(client.alerts, lambda a: len(a) == 6 and sum(1 for x in a if x.cleared_ms) == 2,
                                 timeout_s=20)
        assert sorted((a.rule_id, a.account_id, bool(a.cleared_ms)) for a in alerts) == [
            ("mr-close", "a-2", True), ("mr-close", "b-2", False),
            ("mr-warn", "a-1", False), ("mr-warn", "a-2", True), ("mr-warn", "b-1", False), ("mr-warn", "b-2", False)]
        lifted = await stored_controls(services.redis_url, "a-2")
        restricted = await stored_controls(services.redis_url, "b-2")
        assert lifted is not None and lifted.restriction == 1 and lifted.set_by == "monitor:mr-close"
        assert restricted is not None and restricted.restriction == 2 and restricted.set_by == "monitor:mr-close"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
