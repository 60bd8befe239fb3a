"""The daily risk report against a scripted day: orders answered by a real gate, a rule firing
in a real monitor, an operator's actions; then GetDailyReport and `riskgate report`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import grpc
import pytest

from riskgate.cli.main import main
from riskgate.report import document
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import monitor_pb2 as mpb
from tests.conftest import Services
from tests.monitor_support import MonitorClient, running_monitor, until, vol_rule
from tests.support import ADMIN_TOKEN, OPERATOR_TOKEN, VIEWER_TOKEN, decision


async def _report(client: MonitorClient, date: str = "") -> document.DailyReport:
    answer = await client.stub.GetDailyReport(mpb.DailyReportRequest(date=date), metadata=client.auth(VIEWER_TOKEN))
    return document.decoder.decode(answer.json)


async def _scripted_day(services: Services, client: MonitorClient) -> None:
    """Three accepts and two rejects on BTCUSDT, one reject of an unknown symbol; the volatility
    rule trips the breaker; an operator resolves its alert with a rationale and restricts an account."""
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.trader("acct-1", "100000", [("BTCUSDT", "2", "50000", 10)])
    await gate.trader("acct-2", "100000", [("BTCUSDT", "-1", "50000", 10)])
    await until(client.status, lambda s: s.accounts == 2 and s.feed_live and s.role == "actor")
    answers = [await gate.check(account="acct-1", quantity="0.1") for _ in range(3)]
    answers.append(await gate.check(account="acct-1", quantity="0.1", leverage=500))
    answers.append(await gate.check(account="nobody", quantity="0.1"))
    answers.append(await gate.check(account="acct-1", symbol="MADEUP", quantity="0.1"))
    assert [decision(a) for a in answers] == ["DECISION_ACCEPT"] * 3 + ["DECISION_REJECT"] * 3
    await gate.set_mark("BTCUSDT", "53000")  # +6%: the 5% rule trips the breaker
    [alert] = await until(client.alerts, lambda found: len(found) == 1)
    await client.stub.ResolveAlert(mpb.AlertActionRequest(id=alert.id, note="exchange-wide news; checked with desk"),
                                   metadata=client.auth(OPERATOR_TOKEN))
    await gate.set_controls("acct-2", restriction=admin.RESTRICTION_REDUCE_ONLY)


async def test_report_when_scripted_day_then_decisions_rules_actions_cases_and_book_as_it_happened(
        services: Services) -> None:
    async with running_monitor(services.redis_url, [vol_rule()]) as (_, client):
        await _scripted_day(services, client)
        report = await until(lambda: _report(client), lambda r: r.decisions.total == 6)
        today = dt.datetime.now(dt.UTC).date().isoformat()
        assert report.date == today and report.schema_version == document.SCHEMA_VERSION
        d = report.decisions
        assert (d.accept, d.reject, d.reduce_only) == (3, 3, 0)
        assert {(s.symbol, s.accept, s.reject) for s in d.by_symbol} == {("BTCUSDT", 3, 2), ("", 0, 1)}
        reasons = {(r.symbol, r.decision, r.reason): r.count for r in d.by_reason}
        assert reasons[("BTCUSDT", "ACCEPT", "")] == 3 and sum(reasons.values()) == 6
        assert len(d.by_hour) == 24 and sum(h.accept + h.reject for h in d.by_hour) == 6
        # The rule that fired, what it did, and the case the operator closed with a rationale.
        [fired] = report.rules_fired
        assert (fired.rule_id, fired.metric, fired.alerts, fired.subjects) == ("vol-test", "mark_move", 1, ["BTCUSDT"])
        assert list(fired.actions) == ["symbol_reduce_only"]
        assert report.cases.open == []
        [case] = report.cases.resolved
        assert case.rule_id == "vol-test" and case.rationale == "exchange-wide news; checked with desk"
        assert any("resolve: exchange-wide news" in line for line in case.history)
        # Actions: the rule's trip and the people's changes; reads are not actions.
        done = {(a.actor, a.action, a.target) for a in report.actions}
        assert ("monitor:vol-test", "trip_breaker", "BTCUSDT") in done
        assert ("test-admin", "SetAccountControls", "acct-2") in done
        assert not any(a.action.startswith(("Get", "List")) for a in report.actions)
        assert report.actions_total == len(report.actions)
        # The book as of now: net long 1 at 53,000; acct-1 holds 2 of 2 (share 1).
        assert [(r.symbol, r.long, r.short, r.open_interest, r.holders) for r in report.exposures.open_interest] == [
            ("BTCUSDT", "2", "1", "2", 2)]
        assert [(e.account_id, e.notional, e.share) for e in report.exposures.top] == [
            ("acct-1", "106000", "1"), ("acct-2", "53000", "0.5")]
        assert report.margin_ratios.accounts == 2 and sum(b.accounts for b in report.margin_ratios.buckets) == 2
        assert len(report.stress.scenarios) == 11 and report.stress.scenarios[0].label == "-50% all"
        # No mark history yet: VaR and backtests say why they are missing.
        assert report.value_at_risk.platform == [] and report.backtest == []
        assert any("value at risk not computed" in note for note in report.notes)
        assert {(h.symbol, h.side) for h in report.adl} == {("BTCUSDT", "long"), ("BTCUSDT", "short")}


async def test_report_when_cli_asked_then_writes_html_md_json_of_that_report(services: Services, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    async with running_monitor(services.redis_url, [vol_rule()]) as (_, client):
        await _scripted_day(services, client)
        await until(lambda: _report(client), lambda r: r.decisions.total == 6)
        out = tmp_path / "daily"
        code = await _cli(["report", "--target", client.target, "--token", VIEWER_TOKEN, "--out", str(out)])
        assert code == 0
        written = sorted(p.name for p in out.iterdir())
        assert written == ["report.html", "report.json", "report.md"]
        data = json.loads((out / "report.json").read_text())
        assert data["decisions"]["total"] == 6 and data["cases"]["resolved"][0]["rule_id"] == "vol-test"
        assert "exchange-wide news; checked with desk" in (out / "report.md").read_text()
        assert 'id="stress"' in (out / "report.html").read_text()
        # A bad date: one clear line, exit 2, nothing written.
        capsys.readouterr()
        code = await _cli(["report", "--target", client.target, "--token", VIEWER_TOKEN, "--date", "2026-13-01",
                           "--out", str(tmp_path / "bad")])
        assert code == 2 and "date" in capsys.readouterr().err and not (tmp_path / "bad").exists()


async def test_report_when_date_in_the_future_or_no_token_then_refused(services: Services) -> None:
    await services.start()
    async with running_monitor(services.redis_url, []) as (_, client):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _report(client, "2999-01-01")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.stub.GetDailyReport(mpb.DailyReportRequest())
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # A past day with nothing recorded: an empty report, not an error.
        empty = await client.stub.GetDailyReport(mpb.DailyReportRequest(date="2020-01-01"),
                                                 metadata=client.auth(ADMIN_TOKEN))
        assert document.decoder.decode(empty.json).decisions.total == 0


async def _cli(argv: list[str]) -> int:
    import asyncio
    return await asyncio.to_thread(main, argv)
