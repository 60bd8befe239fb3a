"""`riskgate alerts` against a real monitor."""

from __future__ import annotations

import asyncio
import json

import pytest

from riskgate.cli.main import main
from riskgate.v1 import monitor_pb2 as mpb
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.monitor_support import running_monitor, until, vol_rule
from tests.support import ADMIN_TOKEN, OPERATOR_TOKEN, VIEWER_TOKEN


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
        code, out, _ = await _run(capsys, "alerts", "ack", alert.id, "--note", "on it", "--json", *target,
                                  "--token", OPERATOR_TOKEN)
        assert code == 0 and json.loads(out)["state"] == "ALERT_ACKNOWLEDGED"
        code, _, err = await _run(capsys, "alerts", "resolve", alert.id, *target, "--token", OPERATOR_TOKEN)
        assert code == 2 and "rationale" in err and "\n" not in err.strip()
        code, out, _ = await _run(capsys, "alerts", "resolve", alert.id, "--note", "news", "--json", *target,
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


async def test_rules_set_when_one_field_given_then_changes_it_keeps_the_rest_and_bad_threshold_exits_two(
        services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    async with running_monitor(services.redis_url, [vol_rule()]) as (_, client):
        target = ("--target", client.target)
        code, out, _ = await _run(capsys, "rules", "--json", *target, "--token", VIEWER_TOKEN)
        before = json.loads(out)["rules"][0]
        assert code == 0 and (before["id"], before["threshold"]) == ("vol-test", "0.05")

        code, out, _ = await _run(capsys, "rules", "set", "--id", "vol-test", "--threshold", "0.07", "--json", *target,
                                  "--token", ADMIN_TOKEN)
        after = json.loads(out)
        assert code == 0 and after["threshold"] == "0.07" and after["updated_by"] == "test-admin"
        assert int(after["version"]) > int(before["version"])
        kept = ("metric", "window_ms", "confirmation", "action", "cooldown_ms", "severity", "mode", "scope")
        assert {k: after.get(k) for k in kept} == {k: before.get(k) for k in kept}

        code, out, err = await _run(capsys, "rules", "set", "--id", "vol-test", "--threshold", "2", *target,
                                    "--token", ADMIN_TOKEN)
        assert code == 2 and out == ""
        assert err == ("riskgate: INVALID_ARGUMENT: threshold: a fraction in (0, 1): '0.05' is 5% "
                       "(rule vol-test not changed)\n")
        code, out, _ = await _run(capsys, "rules", *target, "--token", VIEWER_TOKEN)
        header, row = out.splitlines()
        assert code == 0 and header.split()[:4] == ["ID", "SCOPE", "METRIC", "THRESHOLD"]
        assert row.split()[:4] == ["vol-test", "platform", "mark_move", "0.07"]

        code, _, err = await _run(capsys, "rules", "set", "--id", "vol-test", "--threshold", "0.06", *target,
                                  "--token", VIEWER_TOKEN)
        assert code == 1 and err.startswith("riskgate: PERMISSION_DENIED")
        code, _, err = await _run(capsys, "rules", "set", "--id", "brand-new", "--threshold", "0.5", *target,
                                  "--token", ADMIN_TOKEN)
        assert code == 2 and "a new rule needs --metric, --action" in err


async def test_alerts_follow_when_alerts_appear_and_change_while_it_runs_then_prints_them(
        services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.upsert_symbol(symbol="ETHUSDT", mark="3000")
    async with running_monitor(services.redis_url, [vol_rule(mode="alert_only")]) as (_, client):
        await until(client.status, lambda s: s.role == "actor" and s.symbols == 2)
        await gate.set_mark("BTCUSDT", "53000")
        before = (await until(client.alerts, lambda a: len(a) == 1))[0]
        target = ("--target", client.target)

        following = asyncio.create_task(_run(capsys, "alerts", "--follow", "--max-seconds", "3", *target,
                                             "--token", VIEWER_TOKEN))
        # Its first poll is audited (the viewer's ListAlerts): what happens after it is news to it.
        await audit_entries(services.redis_url, lambda e: e["action"] == "ListAlerts" and e["actor"] == "test-viewer",
                            lambda entries: len(entries) >= 1)
        await client.stub.AckAlert(mpb.AlertActionRequest(id=before.id, note="on it"), metadata=client.auth())
        await gate.set_mark("ETHUSDT", "3200")
        code, out, err = await following

        assert code == 0 and err == ""
        header, *rows = out.splitlines()
        assert header.split()[:2] == ["ID", "CREATED"]
        seen = [(row.split()[0], row.split()[3], row.split()[5]) for row in rows]  # CREATED is one ISO-8601 word
        assert seen[0] == (before.id, "OPEN", "BTCUSDT")  # what was there when it started
        assert (before.id, "ACKNOWLEDGED", "BTCUSDT") in seen[1:]
        appeared = [alert for alert in seen[1:] if alert[2] == "ETHUSDT"]
        assert len(appeared) == 1 and appeared[0][1] == "OPEN"

        # JSON lines: one alert per line, oldest first.
        code, out, _ = await _run(capsys, "alerts", "--follow", "--json", "--max-seconds", "0.1", *target,
                                  "--token", VIEWER_TOKEN)
        lines = [json.loads(line) for line in out.splitlines()]
        assert code == 0 and [(a["symbol"], a["state"]) for a in lines] == [
            ("BTCUSDT", "ALERT_ACKNOWLEDGED"), ("ETHUSDT", "ALERT_OPEN")]
