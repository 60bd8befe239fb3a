"""The operators' CLI against a real service and Redis: tables and --json, exit codes, one-line
errors, the new verbs (symbol, account, orders, audit, breaker list --symbol), ListAuditEvents
and compare-and-set (expected_version) on admin changes."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from typing import Any

import grpc
import pytest
from grpc import StatusCode
from grpc.aio import AioRpcError

import riskgate.cli.main as cli_main
from riskgate.cli.admin_verbs import parse_since
from riskgate.cli.main import main
from riskgate.v1 import admin_pb2 as admin
from tests.audit_trail import audit_entries
from tests.support import ADMIN_TOKEN, OPERATOR_TOKEN, VIEWER_TOKEN, Client, eventually

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

SYMBOL_TOML = """
[symbol]
symbol = "ETHUSDT"
tick_size = "0.01"
lot_size = "0.001"
min_quantity = "0.001"
max_quantity = "5000"
min_notional = "5"
max_order_notional = "5000000"
price_band = "0.05"
taker_fee_rate = "0.0004"
mark_price_max_age_ms = 60000

[[symbol.tiers]]
notional_cap = "50000"
max_leverage = 100
maintenance_margin_rate = "0.005"

[[symbol.tiers]]
notional_cap = "1000000"
max_leverage = 20
maintenance_margin_rate = "0.025"
"""


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # The CLI uses a blocking channel; the service shares this event loop, so run it in a thread.
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _table(out: str) -> tuple[list[str], list[list[str]]]:
    """Header words and the rows' cells (cells split on two or more spaces)."""
    lines = [line for line in out.splitlines() if line.strip()]
    return lines[0].split(), [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]


def _fields(out: str) -> dict[str, str]:
    lines = out.split("\n\n")[0].splitlines()
    assert lines[0].split() == ["FIELD", "VALUE"]
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines[1:])  # type: ignore[misc]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on return: nothing listens there


# ---- --version, check -----------------------------------------------------------------------


def test_version_when_asked_then_prints_the_package_version_and_exits_0(capsys) -> None:
    assert main(["--version"]) == 0
    assert re.fullmatch(r"riskgate \S+\n", capsys.readouterr().out)


async def test_check_when_accepted_then_table_and_exit_0(btc: Client, capsys) -> None:
    code, out, err = await _run(capsys, "check", "--target", btc.target, "--account", "acct-1", "--symbol",
                                "BTCUSDT", "--side", "buy", "--quantity", "0.01", "--price", "50000",
                                "--leverage", "10", "--order-id", "o-1")
    header, rows = _table(out)
    assert code == 0 and err == ""
    assert header[:3] == ["ORDER", "DECISION", "ALLOWED_QTY"] and rows[0][:3] == ["o-1", "ACCEPT", "0.01"]


async def test_check_when_rejected_then_reasons_table_and_exit_3(btc: Client, capsys) -> None:
    code, out, _ = await _run(capsys, "check", "--target", btc.target, "--account", "acct-1", "--symbol", "BTCUSDT",
                              "--side", "buy", "--quantity", "5000", "--price", "50000")
    assert code == 3
    assert "REJECT" in out and "QUANTITY_ABOVE_MAX" in out
    code, out, _ = await _run(capsys, "check", "--json", "--target", btc.target, "--account", "acct-1", "--symbol",
                              "BTCUSDT", "--side", "buy", "--quantity", "5000", "--price", "50000")
    assert code == 3 and json.loads(out)["decision"] == "DECISION_REJECT"


# ---- symbols ---------------------------------------------------------------------------------


async def test_symbol_upsert_when_toml_fragment_then_stored_and_shown_in_table(btc: Client, tmp_path,
                                                                              capsys) -> None:
    fragment = tmp_path / "eth.toml"
    fragment.write_text(SYMBOL_TOML)
    code, out, err = await _run(capsys, "symbol", "upsert", str(fragment), "--target", btc.admin_target,
                                "--token", ADMIN_TOKEN)
    header, rows = _table(out)
    assert code == 0 and err == ""
    assert header[:2] == ["SYMBOL", "VERSION"] and rows[0][0] == "ETHUSDT" and int(rows[0][1]) > 0
    await btc.set_mark("ETHUSDT", "3000")

    code, out, _ = await _run(capsys, "symbol", "show", "ETHUSDT",
                              "--target", btc.admin_target, "--token", VIEWER_TOKEN)
    fields = _fields(out)
    assert code == 0 and fields["symbol"] == "ETHUSDT" and fields["mark"] == "3000"
    assert ISO.fullmatch(fields["mark_time (UTC)"]) and fields["breaker"] == "NORMAL"
    assert "TIER" in out and "0.025" in out

    code, out, _ = await _run(capsys, "symbol", "list", "--target", btc.admin_target, "--token", VIEWER_TOKEN)
    header, rows = _table(out)
    assert code == 0 and [row[0] for row in rows] == ["BTCUSDT", "ETHUSDT"]
    assert "MARK" in header and any(ISO.fullmatch(cell) for cell in rows[1])

    code, out, _ = await _run(capsys, "symbol", "list", "--json", "--target", btc.admin_target, "--token", VIEWER_TOKEN)
    assert code == 0 and [s["spec"]["symbol"] for s in json.loads(out)["symbols"]] == ["BTCUSDT", "ETHUSDT"]


async def test_symbol_upsert_when_expected_version_stale_then_aborted_and_spec_kept(btc: Client, tmp_path,
                                                                                   capsys) -> None:
    fragment = tmp_path / "eth.toml"
    fragment.write_text(SYMBOL_TOML)
    code, out, _ = await _run(capsys, "symbol", "upsert", str(fragment), "--expected-version", "0", "--json",
                              "--target", btc.admin_target, "--token", ADMIN_TOKEN)
    assert code == 0
    version = int(json.loads(out)["version"])
    fragment.write_text(SYMBOL_TOML.replace('max_quantity = "5000"', 'max_quantity = "1"'))
    code, _, err = await _run(capsys, "symbol", "upsert", str(fragment), "--expected-version", "0",
                              "--target", btc.admin_target, "--token", ADMIN_TOKEN)
    assert code == 1 and f"now version {version}" in _one_line(err) and "ABORTED" in err
    code, out, _ = await _run(capsys, "symbol", "show", "ETHUSDT", "--json", "--target", btc.admin_target,
                              "--token", VIEWER_TOKEN)
    assert json.loads(out)["spec"]["max_quantity"] == "5000"


@pytest.mark.parametrize(("content", "named"), [
    ("[symbol\nsymbol = 'X'", "not valid TOML"),
    (SYMBOL_TOML.replace('tick_size = "0.01"', 'tick_size = "abc"'), "tick_size"),
    (SYMBOL_TOML.replace('tick_size = "0.01"', 'tick_sise = "0.01"'), "tick_sise"),
    (SYMBOL_TOML.replace('tick_size = "0.01"', 'tick_size = "0"'), "tick_size"),
    ("# nothing here\n", "no [symbol]"),
], ids=["malformed", "bad-decimal", "unknown-field", "not-positive", "empty"])
def test_symbol_upsert_when_file_wrong_then_one_line_naming_it_and_exit_2(content, named, tmp_path,
                                                                          capsys) -> None:
    fragment = tmp_path / "bad.toml"
    fragment.write_text(content)
    # Refused before any call: the target need not answer.
    assert main(["symbol", "upsert", str(fragment), "--target", f"127.0.0.1:{_closed_port()}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and named in _one_line(err) and str(fragment) in err


def test_symbol_upsert_when_file_missing_then_one_line_and_exit_2(tmp_path, capsys) -> None:
    assert main(["symbol", "upsert", str(tmp_path / "none.toml")]) == 2
    assert "cannot read" in _one_line(capsys.readouterr().err)


async def test_symbol_show_when_unknown_then_one_line_not_found_and_exit_1(btc: Client, capsys) -> None:
    code, out, err = await _run(capsys, "symbol", "show", "NOPE", "--target", btc.admin_target, "--token", VIEWER_TOKEN)
    assert code == 1 and out == "" and "NOT_FOUND" in _one_line(err)


# ---- accounts ----------------------------------------------------------------------------------


async def test_account_fund_when_credit_and_debit_then_balance_moves_and_audited(btc: Client, redis_server,
                                                                                capsys) -> None:
    code, out, err = await _run(capsys, "account", "fund", "acct-1", "2500.5", "--reason", "deposit d-1",
                                "--target", btc.admin_target, "--token", ADMIN_TOKEN)
    assert code == 0 and err == "" and _fields(out)["balance"] == "102500.5"
    code, out, _ = await _run(capsys, "account", "fund", "acct-1", "-500.5", "--reason", "withdrawal w-1", "--json",
                              "--target", btc.admin_target, "--token", ADMIN_TOKEN)
    assert code == 0 and json.loads(out)["balance"] == "102000"
    assert (await btc.risk("acct-1")).balance == "102000"
    entries = await audit_entries(redis_server.url, lambda e: e["action"] == "AdjustBalance",
                                  lambda found: len(found) >= 2)
    assert [e["outcome"] for e in entries] == ["ok", "ok"] and "deposit d-1" in entries[0]["request"]


async def test_account_fund_when_fills_held_then_positions_kept(btc: Client, capsys) -> None:
    await btc.check(quantity="0.1", order_id="o-fill")
    await btc.fill("acct-1", "o-fill", "0.1", "50000")
    code, _, _ = await _run(capsys, "account", "fund", "acct-1", "100", "--reason", "r", "--target", btc.admin_target,
                            "--token", ADMIN_TOKEN)
    risk = await btc.risk("acct-1")
    assert code == 0 and [(p.symbol, p.quantity) for p in risk.positions] == [("BTCUSDT", "0.1")]


@pytest.mark.parametrize(("argv", "code", "named"), [
    (["account", "fund", "acct-1", "12abc", "--reason", "r"], 2, "amount"),
    (["account", "fund", "acct-1", "0", "--reason", "r"], 2, "must not be 0"),
    (["account", "fund", "acct-1", "10"], 2, "--reason"),
    (["account", "fund", "acct-1", "-1000000", "--reason", "r"], 1, "available margin"),
    (["account", "fund", "ghost", "10", "--reason", "r"], 1, "NOT_FOUND"),
    (["account", "show", "ghost"], 1, "NOT_FOUND"),
], ids=["bad-decimal", "zero", "no-reason", "debit-beyond-margin", "unknown-account", "show-unknown"])
async def test_account_command_when_mistaken_then_one_line_and_exit_code(btc: Client, capsys, argv, code,
                                                                         named) -> None:
    got, out, err = await _run(capsys, *argv, "--target", btc.admin_target, "--token", ADMIN_TOKEN)
    assert got == code and out == "" and named in _one_line(err)


async def test_account_show_when_position_held_then_record_and_positions_tables(btc: Client, capsys) -> None:
    await btc.check(quantity="0.1", order_id="o-fill")
    await btc.fill("acct-1", "o-fill", "0.1", "50000")
    code, out, _ = await _run(capsys, "account", "show", "acct-1",
                              "--target", btc.admin_target, "--token", VIEWER_TOKEN)
    fields = _fields(out)
    assert code == 0 and fields["account"] == "acct-1" and int(fields["version"]) > 0
    assert fields["restriction"] == "NONE" and "SYMBOL" in out.split("\n\n")[1]
    code, out, _ = await _run(capsys, "account", "show", "acct-1", "--json", "--target", btc.admin_target,
                              "--token", VIEWER_TOKEN)
    assert code == 0 and json.loads(out)["positions"][0]["quantity"] == "0.1"


async def test_account_fund_when_viewer_token_then_permission_denied_one_line(btc: Client, capsys) -> None:
    code, _, err = await _run(capsys, "account", "fund", "acct-1", "1", "--reason", "r", "--target", btc.admin_target,
                              "--token", VIEWER_TOKEN)
    assert code == 1 and _one_line(err).startswith("riskgate: PERMISSION_DENIED")


async def test_adjust_balance_when_expected_version_stale_then_aborted_and_balance_kept(btc: Client) -> None:
    version = (await btc.risk("acct-1")).version
    await btc.admin.AdjustBalance(admin.BalanceAdjustment(account_id="acct-1", amount="10", reason="a",
                                                          expected_version=version), metadata=btc.auth())
    with pytest.raises(AioRpcError) as error:
        await btc.admin.AdjustBalance(admin.BalanceAdjustment(account_id="acct-1", amount="10", reason="a retry",
                                                              expected_version=version), metadata=btc.auth())
    assert error.value.code() == StatusCode.ABORTED and "now version" in (error.value.details() or "")
    assert (await btc.risk("acct-1")).balance == "100010"


# ---- orders ------------------------------------------------------------------------------------


async def test_orders_when_open_orders_then_ids_sizes_reserved_and_age(btc: Client, capsys) -> None:
    await btc.check(quantity="0.01", order_id="open-1")
    await btc.check(quantity="0.02", side="sell", price="50100", order_id="open-2")
    code, out, _ = await _run(capsys, "orders", "--account", "acct-1", "--target", btc.admin_target,
                              "--token", VIEWER_TOKEN)
    header, rows = _table(out)
    assert code == 0 and header[:6] == ["ACCOUNT", "ORDER", "SYMBOL", "SIDE", "REMAINING", "PRICE"]
    assert [(r[1], r[3], r[4], r[5]) for r in rows] == [("open-1", "BUY", "0.01", "50000"),
                                                      ("open-2", "SELL", "0.02", "50100")]
    assert all(ISO.fullmatch(r[9]) for r in rows)
    code, out, _ = await _run(capsys, "orders", "--account", "acct-1", "--json", "--target", btc.admin_target,
                              "--token", VIEWER_TOKEN)
    listed = json.loads(out)["reservations"]
    assert code == 0 and [r["order_id"] for r in listed] == ["open-1", "open-2"]
    assert listed[0]["leverage"] == 10 and float(listed[0]["reserved_cost"]) > 0


async def test_orders_when_account_unknown_then_one_line_and_exit_1(btc: Client, capsys) -> None:
    code, _, err = await _run(capsys, "orders", "--account", "ghost", "--target", btc.admin_target,
                              "--token", VIEWER_TOKEN)
    assert code == 1 and "NOT_FOUND" in _one_line(err)


# ---- breakers ----------------------------------------------------------------------------------


async def test_breaker_list_when_symbol_given_then_only_it_and_the_platform(btc: Client, capsys) -> None:
    await btc.upsert_symbol(symbol="ETHUSDT", mark="3000")
    await btc.set_breaker(admin.BREAKER_HALTED, "ETHUSDT", "drill")
    await btc.set_breaker(admin.BREAKER_REDUCE_ONLY, "BTCUSDT", "drill")
    code, out, _ = await _run(capsys, "breaker", "list", "--symbol", "ETHUSDT", "--target", btc.admin_target,
                              "--token", VIEWER_TOKEN)
    header, rows = _table(out)
    assert code == 0 and header[:2] == ["SYMBOL", "STATE"]
    assert [(r[0], r[1]) for r in rows] == [("(platform)", "NORMAL"), ("ETHUSDT", "HALTED")]
    assert ISO.fullmatch(rows[1][4])
    code, out, _ = await _run(capsys, "breaker", "list", "--symbol", "ETHUSDT", "--json", "--target", btc.admin_target,
                              "--token", VIEWER_TOKEN)
    assert [b.get("symbol", "") for b in json.loads(out)["breakers"]] == ["", "ETHUSDT"]


# ---- one line, never a traceback ---------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["symbol", "list"], ["account", "show", "acct-1"], ["orders", "--account", "acct-1"], ["audit"],
    ["breaker", "list"], ["controls", "--account", "acct-1", "--kyc-level", "1"],
], ids=["symbol", "account", "orders", "audit", "breaker", "controls"])
async def test_admin_verb_when_token_bad_then_one_line_unauthenticated_and_exit_1(btc: Client, capsys,
                                                                                 argv) -> None:
    code, out, err = await _run(capsys, *argv, "--target", btc.admin_target, "--token", "not-a-token")
    assert code == 1 and out == "" and "UNAUTHENTICATED" in _one_line(err)


@pytest.mark.parametrize("argv", [
    ["symbol", "list"], ["account", "show", "acct-1"], ["audit"], ["mark", "BTCUSDT", "1"],
], ids=["symbol", "account", "audit", "mark"])
def test_admin_verb_when_target_unreachable_then_one_line_and_exit_1(argv, capsys) -> None:
    code = main([*argv, "--target", f"127.0.0.1:{_closed_port()}", "--token", ADMIN_TOKEN])
    line = _one_line(capsys.readouterr().err)
    assert code == 1 and "UNAVAILABLE" in line and "cannot reach" in line


def test_audit_when_since_malformed_then_one_line_and_exit_2(capsys) -> None:
    assert main(["audit", "--since", "yesterday-ish", "--target", f"127.0.0.1:{_closed_port()}"]) == 2
    assert "--since" in _one_line(capsys.readouterr().err)


def test_parse_since_when_duration_or_iso_then_unix_ms() -> None:
    now = 1_800_000_000_000
    assert parse_since("15m", now) == now - 900_000
    assert parse_since("2h", now) == now - 7_200_000
    assert parse_since("2026-12-06T05:12:03Z") == 1796533923000
    assert parse_since("2026-12-06") == 1796515200000


# ---- the audit trail: ListAuditEvents and `riskgate audit` ----------------------------------------


async def _some_history(client: Client) -> None:
    await client.upsert_symbol(symbol="ETHUSDT", mark="3000")
    await client.set_breaker(admin.BREAKER_HALTED, "ETHUSDT", "drill")
    await client.set_breaker(admin.BREAKER_NORMAL, "ETHUSDT", "")
    await client.admin.SetCircuitBreaker(admin.CircuitBreaker(symbol="BTCUSDT", state=admin.BREAKER_REDUCE_ONLY,
                                                              reason="op"), metadata=client.auth(OPERATOR_TOKEN))


async def _audit(client: Client, token: str = OPERATOR_TOKEN, **fields: Any) -> admin.AuditEventList:
    return await client.admin.ListAuditEvents(admin.ListAuditEventsRequest(**fields), metadata=client.auth(token))


async def test_list_audit_events_when_filtered_then_only_matches_newest_first(btc: Client) -> None:
    await _some_history(btc)
    listed = await _audit(btc, action="setcircuitbreaker")
    assert [(e.target, e.actor) for e in listed.events] == [
        ("BTCUSDT", "test-operator"), ("ETHUSDT", "test-admin"), ("ETHUSDT", "test-admin")]
    assert all(e.outcome == "ok" and e.version > 0 and e.time_ms > 0 for e in listed.events)
    assert listed.events[0].version > listed.events[1].version > listed.events[2].version
    by_actor = await _audit(btc, actor="test-operator", action="SetCircuitBreaker")
    assert [e.target for e in by_actor.events] == ["BTCUSDT"]
    by_target = await _audit(btc, target="ETHUSDT")
    assert {e.action for e in by_target.events} == {"UpsertSymbol", "SetMarkPrice", "SetCircuitBreaker"}
    assert all(e.target == "ETHUSDT" for e in by_target.events)


async def test_list_audit_events_when_since_given_then_older_entries_left_out(btc: Client) -> None:
    await btc.set_breaker(admin.BREAKER_HALTED, "BTCUSDT", "before")
    first = (await _audit(btc, action="SetCircuitBreaker", limit=1)).events[0]
    # A bound past the first entry's time: the next change (a later ms, by the same clock) only.
    await eventually(lambda: asyncio.sleep(0.005, result=True))
    await btc.set_breaker(admin.BREAKER_NORMAL, "BTCUSDT", "")
    later = (await _audit(btc, action="SetCircuitBreaker", limit=1)).events[0]
    assert later.time_ms > first.time_ms
    listed = await _audit(btc, action="SetCircuitBreaker", since_ms=later.time_ms)
    assert [e.id for e in listed.events] == [later.id]
    everything = await _audit(btc, action="SetCircuitBreaker", since_ms=first.time_ms)
    assert [e.id for e in everything.events] == [later.id, first.id]


async def test_list_audit_events_when_limit_then_bounded_and_pages_on(btc: Client) -> None:
    for n in range(5):
        await btc.set_breaker(admin.BREAKER_HALTED, "BTCUSDT", f"drill {n}")
    page = await _audit(btc, action="SetCircuitBreaker", limit=2)
    assert len(page.events) == 2 and page.next_before_id == page.events[-1].id
    rest = await _audit(btc, action="SetCircuitBreaker", before_id=page.next_before_id, limit=1000)
    reasons = [json.loads(e.request)["reason"] for e in [*page.events, *rest.events]
               if e.target == "BTCUSDT" and "reason" in json.loads(e.request)]
    assert reasons == [f"drill {n}" for n in (4, 3, 2, 1, 0)]
    assert rest.next_before_id == ""


async def test_list_audit_events_when_viewer_or_no_token_then_refused_and_operator_allowed(btc: Client) -> None:
    with pytest.raises(AioRpcError) as error:
        await _audit(btc, token=VIEWER_TOKEN)
    assert error.value.code() == StatusCode.PERMISSION_DENIED
    with pytest.raises(AioRpcError) as error:
        await btc.admin.ListAuditEvents(admin.ListAuditEventsRequest())
    assert error.value.code() == StatusCode.UNAUTHENTICATED
    assert (await _audit(btc, token=OPERATOR_TOKEN)).events
    assert (await _audit(btc, token=ADMIN_TOKEN)).events


async def test_list_audit_events_when_read_then_the_read_itself_is_audited(btc: Client, redis_server) -> None:
    await _audit(btc, actor="test-admin", target="BTCUSDT", limit=3)
    entries = await audit_entries(redis_server.url, lambda e: e["action"] == "ListAuditEvents",
                                  lambda found: len(found) >= 1)
    assert entries[-1]["actor"] == "test-operator" and entries[-1]["outcome"].startswith("ok")
    assert '"target":"BTCUSDT"' in entries[-1]["request"].replace(" ", "")
    with pytest.raises(AioRpcError):
        await _audit(btc, token=VIEWER_TOKEN)
    await audit_entries(redis_server.url, lambda e: e["action"] == "ListAuditEvents",
                        lambda found: any(e["outcome"].startswith("denied") for e in found))


async def test_list_audit_events_when_before_id_malformed_then_invalid_argument(btc: Client) -> None:
    with pytest.raises(AioRpcError) as error:
        await _audit(btc, before_id="not-an-id")
    assert error.value.code() == StatusCode.INVALID_ARGUMENT


async def test_audit_command_when_filters_then_table_with_iso_times_and_json(btc: Client, capsys) -> None:
    await _some_history(btc)
    code, out, err = await _run(capsys, "audit", "--since", "1h", "--actor", "test-admin", "--on", "ETHUSDT",
                                "--action", "SetCircuitBreaker",
                                    "--target", btc.admin_target, "--token", OPERATOR_TOKEN)
    header, rows = _table(out)
    assert code == 0 and err == ""
    assert header[:4] == ["TIME", "(UTC)", "ACTOR", "ACTION"]
    assert [(r[1], r[2], r[3]) for r in rows] == [("test-admin", "SetCircuitBreaker", "ETHUSDT")] * 2
    assert all(ISO.fullmatch(r[0]) for r in rows)
    code, out, _ = await _run(capsys, "audit", "--limit", "1", "--json", "--target", btc.admin_target,
                              "--token", OPERATOR_TOKEN)
    listed = json.loads(out)
    assert code == 0 and len(listed["events"]) == 1 and listed["next_before_id"]
    code, _, err = await _run(capsys, "audit", "--target", btc.admin_target, "--token", VIEWER_TOKEN)
    assert code == 1 and "PERMISSION_DENIED" in _one_line(err)


# ---- compare-and-set ---------------------------------------------------------------------------


async def test_set_controls_when_two_read_modify_writes_race_then_second_aborted_and_first_kept(
        btc: Client, redis_server) -> None:
    read = (await btc.risk("acct-1")).controls
    first = admin.AccountControls()
    first.CopyFrom(read)
    first.kyc_level, first.version, first.expected_version = 1, 0, read.version
    second = admin.AccountControls()
    second.CopyFrom(read)
    second.max_leverage, second.version, second.expected_version = 3, 0, read.version
    outcomes = await asyncio.gather(btc.admin.SetAccountControls(first, metadata=btc.auth()),
                                    btc.admin.SetAccountControls(second, metadata=btc.auth(OPERATOR_TOKEN)),
                                    return_exceptions=True)
    won = [o for o in outcomes if isinstance(o, admin.AccountControls)]
    lost = [o for o in outcomes if isinstance(o, AioRpcError)]
    assert len(won) == 1 and len(lost) == 1 and lost[0].code() == StatusCode.ABORTED
    assert f"now version {won[0].version}" in (lost[0].details() or "")
    stored = (await btc.risk("acct-1")).controls
    assert stored.version == won[0].version
    assert (stored.kyc_level, stored.max_leverage) == (won[0].kyc_level, won[0].max_leverage)
    assert (stored.kyc_level == 1) != (stored.max_leverage == 3)  # one change, never both, never neither
    await audit_entries(redis_server.url, lambda e: e["action"] == "SetAccountControls",
                        lambda found: any(e["outcome"].startswith("aborted") or "version conflict" in e["outcome"]
                                          for e in found))


@pytest.mark.parametrize("kind", ["breaker", "symbol", "account", "controls"])
async def test_admin_change_when_expected_version_stale_then_aborted_nothing_written_and_audited(
        btc: Client, redis_server, kind) -> None:
    changes: dict[str, Any] = {
        "breaker": (btc.admin.SetCircuitBreaker,
                    lambda v: admin.CircuitBreaker(symbol="BTCUSDT", state=admin.BREAKER_HALTED, reason="x",
                                                   expected_version=v), "SetCircuitBreaker"),
        "symbol": (btc.admin.UpsertSymbol, None, "UpsertSymbol"),
        "account": (btc.admin.UpsertAccount,
                    lambda v: admin.AccountState(account_id="acct-1", balance="1", includes_all_fills=True,
                                                 expected_version=v), "UpsertAccount"),
        "controls": (btc.admin.SetAccountControls,
                     lambda v: admin.AccountControls(account_id="acct-1", restriction=admin.RESTRICTION_FROZEN,
                                                     expected_version=v), "SetAccountControls"),
    }
    method, build, action = changes[kind]
    if kind == "symbol":
        from tests.support import symbol_spec

        def build(v: int) -> admin.SymbolSpec:
            spec = symbol_spec(max_quantity="1")
            spec.expected_version = v
            return spec
    before = await btc.risk("acct-1")
    with pytest.raises(AioRpcError) as error:
        await method(build(999_999), metadata=btc.auth())
    assert error.value.code() == StatusCode.ABORTED and "expected version 999999" in (error.value.details() or "")
    after = await btc.risk("acct-1")
    assert (after.balance, after.controls.restriction, after.version) == (before.balance, before.controls.restriction,
                                                                           before.version)
    breakers = await btc.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(), metadata=btc.auth())
    assert all(b.state != admin.BREAKER_HALTED for b in breakers.breakers)
    await audit_entries(redis_server.url, lambda e: e["action"] == action,
                        lambda found: any("999999" in e["outcome"] for e in found))


async def test_admin_change_when_expected_version_current_then_applied(btc: Client) -> None:
    stored = await btc.set_breaker(admin.BREAKER_HALTED, "BTCUSDT", "one")
    changed = await btc.admin.SetCircuitBreaker(admin.CircuitBreaker(
        symbol="BTCUSDT", state=admin.BREAKER_NORMAL, expected_version=stored.version), metadata=btc.auth())
    assert changed.version > stored.version and changed.state == admin.BREAKER_NORMAL


async def test_controls_command_when_changed_by_someone_else_since_read_then_says_so_exits_1_and_keeps_theirs(
        btc: Client, capsys, monkeypatch) -> None:
    """The other operator's change lands between the command's read and its write."""
    real_stub = cli_main._admin_stub

    class Racing:
        def __init__(self, channel: grpc.Channel) -> None:
            self.stub = real_stub(channel)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.stub, name)

        def SetAccountControls(self, request: admin.AccountControls, **kwargs: Any) -> Any:
            other = admin.AccountControls()
            other.CopyFrom(request)
            other.ClearField("expected_version")
            other.restriction, other.kyc_level, other.max_leverage = admin.RESTRICTION_FROZEN, 2, 0
            self.stub.SetAccountControls(other, metadata=Client.auth(OPERATOR_TOKEN), timeout=5)
            return self.stub.SetAccountControls(request, **kwargs)

    monkeypatch.setattr(cli_main, "_admin_stub", Racing)
    code, out, err = await _run(capsys, "controls", "--account", "acct-1", "--max-leverage", "7",
                                "--target", btc.admin_target, "--token", ADMIN_TOKEN)
    line = _one_line(err)
    assert code == 1 and out == ""
    assert "changed by someone else since you read" in line and "run again" in line
    assert re.search(r"now version \d+", line)
    stored = (await btc.risk("acct-1")).controls
    assert (stored.restriction, stored.kyc_level, stored.max_leverage) == (admin.RESTRICTION_FROZEN, 2, 0)


async def test_controls_command_when_nobody_else_wrote_then_table_with_new_version(btc: Client, capsys) -> None:
    before = (await btc.risk("acct-1")).controls.version
    code, out, _ = await _run(capsys, "controls", "--account", "acct-1", "--kyc-level", "2",
                              "--target", btc.admin_target,
                              "--token", OPERATOR_TOKEN)
    fields = _fields(out)
    assert code == 0 and fields["kyc_level"] == "2" and int(fields["version"]) > before
    assert fields["set_by"] == "test-operator"
