"""The riskgate command, against a real service."""

import asyncio
import json
import socket

import pytest

from riskgate.cli.main import main
from tests.support import ADMIN_TOKEN, VIEWER_TOKEN, Client


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # The CLI uses a blocking channel; the service shares this event loop, so run it in a thread.
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_check_command_when_demo_order_then_prints_accept(btc: Client, capsys) -> None:
    target = btc.target
    code, out, _ = await _run(capsys, "check", "--json", "--target", target, "--account", "acct-1", "--symbol",
                              "BTCUSDT", "--side", "buy", "--quantity", "0.01", "--price", "50000", "--leverage", "10")
    assert code == 0
    assert json.loads(out)["decision"] == "DECISION_ACCEPT"


async def test_check_command_when_oversized_order_then_prints_typed_reject_and_exits_3(btc: Client, capsys) -> None:
    target = btc.target
    code, out, _ = await _run(capsys, "check", "--json", "--target", target, "--account", "acct-1", "--symbol",
                              "BTCUSDT", "--side", "buy", "--quantity", "5000", "--price", "50000")
    response = json.loads(out)
    assert code == 3  # REJECT
    assert response["decision"] == "DECISION_REJECT"
    assert response["reasons"][0]["code"] == "REASON_QUANTITY_ABOVE_MAX"


async def test_breaker_command_when_admin_token_then_sets_and_lists(btc: Client, capsys) -> None:
    target = btc.admin_target
    code, out, _ = await _run(capsys, "breaker", "halted", "--symbol", "BTCUSDT", "--reason", "drill",
                              "--target", target, "--token", ADMIN_TOKEN, "--json")
    assert code == 0 and json.loads(out)["state"] == "BREAKER_HALTED"
    code, out, _ = await _run(capsys, "breaker", "list", "--target", target, "--token", VIEWER_TOKEN,
                              "--json")
    assert [b.get("symbol", "") for b in json.loads(out)["breakers"]] == ["", "BTCUSDT"]


async def test_breaker_command_when_token_lacks_role_then_fails_with_permission_denied(btc: Client,
                                                                                       capsys) -> None:
    target = btc.admin_target
    code, _, err = await _run(capsys, "breaker", "halted", "--reason", "x", "--target", target,
                              "--token", VIEWER_TOKEN)
    assert code == 1
    assert "PERMISSION_DENIED" in err


def test_serve_command_when_config_file_missing_then_exits_with_message(capsys) -> None:
    assert main(["serve", "--config", "/nonexistent/riskgate.toml"]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_serve_command_when_config_invalid_then_exits_naming_the_field(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nlisten = 5\n')
    assert main(["serve", "--config", str(bad)]) == 2
    assert "server.listen" in capsys.readouterr().err


async def test_controls_command_when_one_flag_given_then_other_controls_are_kept(btc: Client, capsys) -> None:
    await btc.set_controls("acct-1", kyc_level=3, max_leverage=50, max_orders_per_second=7)
    code, out, _ = await _run(capsys, "controls", "--account", "acct-1", "--restriction", "reduce-only",
                              "--target", btc.admin_target, "--token", ADMIN_TOKEN, "--json")
    controls = json.loads(out)
    assert code == 0
    assert (controls["restriction"], controls["kyc_level"], controls["max_leverage"],
            controls["max_orders_per_second"], controls["qualified_investor"]) == (
        "RESTRICTION_REDUCE_ONLY", 3, 50, 7, True)


async def test_controls_command_when_account_unknown_here_then_refuses_without_create(btc: Client, capsys) -> None:
    code, _, err = await _run(capsys, "controls", "--account", "elsewhere", "--restriction", "frozen",
                              "--target", btc.admin_target, "--token", ADMIN_TOKEN)
    assert code == 1
    assert "NOT_FOUND" in err and "--create" in err
    code, out, _ = await _run(capsys, "controls", "--account", "elsewhere", "--restriction", "frozen",
                              "--create", "--target", btc.admin_target, "--token", ADMIN_TOKEN, "--json")
    assert code == 0 and json.loads(out)["restriction"] == "RESTRICTION_FROZEN"


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(("argv", "named"), [
    (["check", "--account", "a", "--symbol", "BTCUSDT", "--side", "buy", "--quantity", "1", "--leverage", "-1"],
     "--leverage"),
    (["check", "--account", "a", "--symbol", "BTCUSDT", "--side", "buy", "--quantity", "1", "--leverage", "2.5"],
     "--leverage"),
    (["controls", "--account", "a", "--max-leverage", "-1"], "--max-leverage"),
    (["controls", "--account", "a", "--kyc-level", "-1"], "--kyc-level"),
    (["controls", "--account", "a", "--max-orders-per-second", "-1"], "--max-orders-per-second"),
    (["controls", "--account", "a", "--kyc-level", str(2**32)], "--kyc-level"),
    (["mark", "BTCUSDT", "1", "--target", "127.0.0.1:99999"], "--target"),
    (["serve", "--log-level", "bogus"], "--log-level"),
    (["serve", "--monitor-listen", "127.0.0.1:70000"], "127.0.0.1:70000"),
    (["alerts", "--follow", "--max-seconds", "0"], "--max-seconds"),
    (["rules", "set", "--id", "r", "--window-ms", "-1"], "--window-ms"),
    (["rules", "--threshold", "0.5"], "rules set"),
], ids=["leverage-negative", "leverage-fraction", "max-leverage", "kyc-level", "max-orders-per-second",
        "kyc-level-too-large", "target-port", "log-level", "monitor-listen", "max-seconds", "window-ms",
        "rule-field-without-set"])
def test_command_when_flag_value_wrong_then_one_line_naming_it_and_exit_2(argv, named, capsys) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert named in _one_line(err)


def test_check_command_when_target_unreachable_then_one_line_and_exit_1(capsys) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    code = main(["check", "--target", f"127.0.0.1:{port}", "--account", "a", "--symbol", "BTCUSDT", "--side", "buy",
                 "--quantity", "1"])
    assert code == 1
    assert "UNAVAILABLE" in _one_line(capsys.readouterr().err)


def test_serve_command_when_data_dir_under_a_file_then_one_line_and_exit_2(tmp_path, capsys) -> None:
    regular = tmp_path / "file"
    regular.write_text("")
    assert main(["serve", "--listen", "127.0.0.1:0", "--data-dir", str(regular / "data")]) == 2
    assert str(regular / "data") in _one_line(capsys.readouterr().err)


def test_serve_command_when_listen_port_out_of_range_then_one_line_and_exit_2(tmp_path, capsys) -> None:
    assert main(["serve", "--listen", "127.0.0.1:70000", "--data-dir", str(tmp_path / "data")]) == 2
    assert "127.0.0.1:70000" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "data").exists()


async def test_reservations_and_release_commands_when_order_open_then_listed_and_released(btc: Client,
                                                                                         capsys) -> None:
    await btc.check(quantity="0.01", order_id="stuck")
    code, out, _ = await _run(capsys, "reservations", "--account", "acct-1", "--target", btc.admin_target,
                              "--token", ADMIN_TOKEN, "--json")
    assert code == 0 and [r["order_id"] for r in json.loads(out)["reservations"]] == ["stuck"]
    code, out, _ = await _run(capsys, "release", "--account", "acct-1", "--order-id", "stuck", "--reason",
                              "cancel report lost", "--target", btc.admin_target, "--token", ADMIN_TOKEN, "--json")
    assert code == 0 and json.loads(out)["order_id"] == "stuck"
    code, out, _ = await _run(capsys, "reservations", "--target", btc.admin_target, "--token", ADMIN_TOKEN, "--json")
    assert code == 0 and json.loads(out).get("reservations", []) == []
