"""`riskgate alerts` against a real monitor."""

from __future__ import annotations

import asyncio
import json

import pytest

from riskgate.cli.main import main
from tests.conftest import Services
from tests.monitor_support import running_monitor, until, vol_rule
from tests.support import OPERATOR_TOKEN, VIEWER_TOKEN


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # The CLI uses a blocking channel; the monitor shares this event loop, so run it in a thread.
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_alerts_command_when_listing_and_stepping_then_table_json_and_exit_codes(
        services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    async with running_monitor(services.redis_url, [vol_rule(mode="alert_only")]) as (_, client):
        await until(client.status, lambda s: s.role == "actor" and s.symbols == 1)
        await gate.set_mark("BTCUSDT", "53000")
        alert = (await until(client.alerts, lambda a: len(a) == 1))[0]
        target = ("--target", client.target)

        code, out, _ = await _run(capsys, "alerts", *target, "--token", VIEWER_TOKEN)
        header, row = out.splitlines()
        assert code == 0 and header.split()[:5] == ["ID", "CREATED", "(UTC)", "SEVERITY", "STATE"]
        assert row.split()[0] == alert.id and "WARNING" in row and "vol-test" in row and "0.06" in row

        code, out, _ = await _run(capsys, "alerts", "--json", "--state", "open", *target, "--token", VIEWER_TOKEN)
        assert code == 0 and [a["id"] for a in json.loads(out)["alerts"]] == [alert.id]

        code, _, err = await _run(capsys, "alerts", "ack", alert.id, *target, "--token", VIEWER_TOKEN)
        assert code == 1 and err.startswith("riskgate: PERMISSION_DENIED")
        code, out, _ = await _run(capsys, "alerts", "ack", alert.id, "--note", "on it", *target,
                                  "--token", OPERATOR_TOKEN)
        assert code == 0 and json.loads(out)["state"] == "ALERT_ACKNOWLEDGED"
        code, _, err = await _run(capsys, "alerts", "resolve", alert.id, *target, "--token", OPERATOR_TOKEN)
        assert code == 2 and "rationale" in err and "\n" not in err.strip()
        code, out, _ = await _run(capsys, "alerts", "resolve", alert.id, "--note", "news", *target,
                                  "--token", OPERATOR_TOKEN)
        assert code == 0 and json.loads(out)["state"] == "ALERT_RESOLVED"
        code, _, err = await _run(capsys, "alerts", "ack", "424242", *target, "--token", OPERATOR_TOKEN)
        assert code == 1 and err.startswith("riskgate: NOT_FOUND")


def test_monitor_command_when_no_redis_url_then_exits_two_with_one_line(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKGATE_REDIS_URL", raising=False)
    assert main(["monitor"]) == 2
    err = capsys.readouterr().err
    assert err == "riskgate: monitor needs the gate's Redis: --redis-url or RISKGATE_REDIS_URL\n"


def test_monitor_command_when_a_configured_rule_is_invalid_then_exits_two_naming_it(
        capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[monitor]\n[[monitor.rules]]\nid = "x"\nmetric = "mark_move"\nthreshold = "2"\n'
                      'window_ms = 1000\naction = "symbol_halted"\n')
    assert main(["monitor", "--config", str(config), "--redis-url", "redis://127.0.0.1:1"]) == 2
    assert capsys.readouterr().err == "riskgate: [monitor] rules: threshold: a fraction in (0, 1): '0.05' is 5%\n"
