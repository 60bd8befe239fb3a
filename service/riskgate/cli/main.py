"""`riskgate serve` runs the service; the other commands are clients of a running one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

# `serve` forks only to exec its embedded redis-server at once; gRPC's fork handlers are for
# children that go on using gRPC, and here would only log that they skip. gRPC reads this
# when it is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from riskgate.cli import admin_verbs, analytics, health, ops, output
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import admin_pb2_grpc as admin_grpc
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from riskgate.api.server import RiskgateService
    from riskgate.config import Config
    from riskgate.monitor.service import MonitorService
    from riskgate.store.datadir import DataDirLock
    from riskgate.store.embedded import EmbeddedRedis

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MONITOR_TARGET = "127.0.0.1:50053"
# `riskgate alerts --follow` asks for the alerts this often, each time the newest this many.
FOLLOW_POLL_S = 0.5
FOLLOW_WINDOW = 1000


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns its exit code: 0 done, 1 failed (the service refused, is
    unreachable, or could not start or stop cleanly), 2 a mistake in the command or the
    configuration, 3 `check` rejected the order, 4 `check` allowed it reduce-only, 130
    interrupted, 141 output pipe closed. Errors are one line on stderr, never a traceback
    (RISKGATE_DEBUG=1 lets an unexpected one through)."""
    try:
        try:
            code = _dispatch(argv)
        except SystemExit as exc:  # argparse after --help or a usage mistake
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except output.CliError as exc:
            code = _fail(exc, exc.code)
        except grpc.RpcError as exc:
            _print_rpc_error(exc)
            code = output.rpc_exit_code(exc)
        except BrokenPipeError:
            raise
        except Exception as exc:  # a defect, not the operator's mistake: still one line
            if os.environ.get("RISKGATE_DEBUG"):
                raise
            code = _fail(f"unexpected error: {type(exc).__name__}: {exc} (RISKGATE_DEBUG=1 shows where)", 1)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`riskgate ... | head`): exit quietly, as a process killed by
        # SIGPIPE would. stdout goes to devnull so the flush at exit does not fail again.
        _stdout_to_devnull()
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    return code


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    for name, value in vars(args).items():
        if isinstance(value, str) and not _is_utf8(value):
            parser.error(f"argument {name}: not UTF-8 text: {value!r}")
    return int(args.handler(args))


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # bytes of another encoding in argv arrive as lone surrogates
        return False
    return True


def _stdout_to_devnull() -> None:
    with contextlib.suppress(OSError, ValueError):  # ValueError: a stdout without a file descriptor
        target = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, target)
        finally:
            os.close(devnull)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line on stderr (and exit code 2), not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


UINT32_MAX = 2**32 - 1


def _count(text: str) -> int:
    """A whole number in [0, 2^32 - 1] (the range of the protocol's unsigned fields)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= UINT32_MAX:
        raise argparse.ArgumentTypeError(f"must be between 0 and {UINT32_MAX}, got {value}")
    return value


def _shard_number(text: str) -> int:
    """A shard index or count: a whole number >= 0 (the range is checked against the count later)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _target(text: str) -> str:
    """HOST:PORT (or a gRPC target URI, passed as is)."""
    if not text or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    _, colon, port = text.rpartition(":")
    # gRPC would take port 99999 as 99999 % 65536: another port, maybe another service.
    if colon and port.isdigit() and not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535 in {text!r}")
    return text


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("riskgate")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="riskgate", description="Pre-trade risk gate for perpetual futures.")
    parser.add_argument("--version", action="version", version=f"riskgate {_version()}")
    sub = parser.add_subparsers(title="commands")

    serve = sub.add_parser("serve", help="run the service (embedded Redis unless --redis-url is given)")
    serve.add_argument("--config", help="TOML configuration (default: the bundled sample configuration)")
    serve.add_argument("--listen", help="HOST:PORT to serve gRPC on (default from config: 127.0.0.1:50051)")
    serve.add_argument("--admin-listen",
                       help="HOST:PORT of the operators' own listener (RiskAdmin, health), outside the order "
                            "port's admission limit; '' = none (env RISKGATE_ADMIN_LISTEN; sample config: "
                            "127.0.0.1:50052)")
    serve.add_argument("--metrics-listen",
                       help="HOST:PORT serving Prometheus text at /metrics; '' = off (env RISKGATE_METRICS_LISTEN; "
                            "default from config: 127.0.0.1:9464; the demo monitor's: RISKGATE_MONITOR_METRICS_LISTEN, "
                            "127.0.0.1:9465)")
    serve.add_argument("--redis-url", help="production Redis, e.g. redis://host:6379/0 (env RISKGATE_REDIS_URL)")
    serve.add_argument("--data-dir", help="data folder of the embedded Redis, locked while serving "
                                          "(env RISKGATE_DATA_DIR)")
    serve.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS,
                       help="DEBUG, INFO (default), WARNING, ERROR or CRITICAL")
    serve.add_argument("--no-monitor", action="store_true",
                       help="with the embedded Redis (the demo), do not also run the monitor in this process")
    serve.add_argument("--monitor-listen",
                       help="HOST:PORT of the demo's monitor (env RISKGATE_MONITOR_LISTEN; default from config: "
                            "127.0.0.1:50053)")
    serve.add_argument("--shard-index", type=_shard_number,
                       help="this process's shard, 0 .. shard_count-1 (env RISKGATE_SHARD_INDEX; default from "
                            "config: 0); accounts with crc32(account id) %% shard_count == shard_index are its own")
    serve.add_argument("--shard-count", type=_shard_number,
                       help="how many shards share the Redis, the same in every one (env RISKGATE_SHARD_COUNT; "
                            "default from config: 1)")
    ops.add_serve_flags(serve)
    serve.set_defaults(handler=_serve)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        target, target_help = ops.default_target(name)  # check/execution: the order port; others: the admin one
        command.add_argument("--target", type=_target, default=target, help=target_help)
        command.add_argument("--token", default=os.environ.get("RISKGATE_ADMIN_TOKEN", ""),
                             help="admin bearer token (env RISKGATE_ADMIN_TOKEN)")
        ops.add_client_flags(command)
        command.add_argument("--json", action="store_true", help="JSON instead of a table")
        return command

    check = client("check", "send one order to a running service and print the decision (exit 0 accept, "
                            "3 reject, 4 reduce-only)")
    check.add_argument("--account", required=True)
    check.add_argument("--symbol", required=True)
    check.add_argument("--side", required=True, choices=["buy", "sell"])
    check.add_argument("--quantity", required=True)
    check.add_argument("--price", default="", help="limit price (omit for a market order)")
    check.add_argument("--leverage", type=_count, default=0, help="0 = the account's current leverage")
    check.add_argument("--reduce-only", action="store_true")
    check.add_argument("--order-id", default="", help="default: a fresh uuid")
    check.set_defaults(handler=_check)

    execution = client("execution", "report a fill, cancel, expiry or reject of an accepted order")
    execution.add_argument("kind", choices=["fill", "canceled", "expired", "rejected", "not-sent"])
    execution.add_argument("--account", required=True)
    execution.add_argument("--order-id", required=True)
    execution.add_argument("--quantity", default="")
    execution.add_argument("--price", default="")
    execution.add_argument("--execution-id", default="",
                           help="the matching engine's id of this execution; a fresh one when not given "
                                "(send the same id again to retry a report safely)")
    execution.add_argument("--sequence", type=int, default=0,
                           help="the matching engine's sequence of this execution, against which clearing cuts "
                                "snapshots; the clock in ns when not given (a demo stand-in)")
    execution.set_defaults(handler=_execution)

    breaker = client("breaker", "set a circuit breaker (symbol '' = the platform) or list them")
    breaker.add_argument("state", choices=["normal", "reduce-only", "halted", "list"])
    breaker.add_argument("--symbol", default=None, help="the symbol (default: the platform); list: only this "
                                                        "symbol's breaker and the platform's")
    breaker.add_argument("--reason", default="")
    breaker.set_defaults(handler=_breaker)

    controls = client("controls", "change an account's controls; fields not given keep their current value")
    controls.add_argument("--account", required=True)
    controls.add_argument("--restriction", choices=["none", "reduce-only", "frozen"])
    controls.add_argument("--kyc-level", type=_count)
    controls.add_argument("--qualified", choices=["yes", "no"])
    controls.add_argument("--max-leverage", type=_count, help="0 = no account cap")
    controls.add_argument("--max-orders-per-second", type=_count, help="0 = the service default")
    controls.add_argument("--max-gross-notional", help="'' = no limit")
    controls.add_argument("--create", action="store_true",
                          help="the account has no controls yet: start from the defaults")
    controls.set_defaults(handler=_controls)

    mark = client("mark", "set a symbol's mark price")
    mark.add_argument("symbol")
    mark.add_argument("price")
    mark.add_argument("--confirm-move", action="store_true",
                      help="the move from the last mark is real: apply it beyond the symbol's max_mark_move")
    mark.set_defaults(handler=_mark)

    risk = client("account-risk", "show an account's balance, positions and margin")
    risk.add_argument("account")
    risk.set_defaults(handler=_account_risk)

    reservations = client("reservations", "list open reservations, oldest first (orders whose close may be lost)")
    reservations.add_argument("--account", default="", help="default: every account of the service")
    reservations.add_argument("--min-age-ms", type=_count, default=0)
    reservations.add_argument("--limit", type=_count, default=0, help="0 = 100")
    reservations.set_defaults(handler=_reservations)

    release = client("release", "release the reservation of an order the matching engine no longer holds")
    release.add_argument("--account", required=True)
    release.add_argument("--order-id", required=True)
    release.add_argument("--reason", required=True, help="why the order is known to be gone")
    release.set_defaults(handler=_release)

    # symbol upsert|show|list, account show|fund, orders, audit.
    admin_verbs.add_commands(client, _count)

    monitor = sub.add_parser("monitor", help="run the monitor (rules that watch markets and act, alerts) on a "
                                             "Redis the gate uses")
    monitor.add_argument("--redis-url", help="the gate's Redis, e.g. redis://host:6379/0 (env RISKGATE_REDIS_URL)")
    monitor.add_argument("--listen", help="HOST:PORT of RiskMonitor and health (env RISKGATE_MONITOR_LISTEN; "
                                          "default from config: 127.0.0.1:50053)")
    monitor.add_argument("--metrics-listen",
                         help="HOST:PORT serving the monitor's Prometheus text at /metrics; '' = off "
                              "(env RISKGATE_MONITOR_METRICS_LISTEN; default from config: 127.0.0.1:9465)")
    monitor.add_argument("--config", help="TOML configuration: admin tokens, key prefix and the [monitor] rules "
                                          "(default: the bundled sample configuration)")
    monitor.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS,
                         help="DEBUG, INFO (default), WARNING, ERROR or CRITICAL")
    ops.add_monitor_flags(monitor)
    monitor.set_defaults(handler=_monitor)

    def monitor_client(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--target", type=_target,
                             default=os.environ.get("RISKGATE_MONITOR_TARGET") or DEFAULT_MONITOR_TARGET,
                             help=f"monitor address (default {DEFAULT_MONITOR_TARGET}, env RISKGATE_MONITOR_TARGET)")
        command.add_argument("--token", default=os.environ.get("RISKGATE_ADMIN_TOKEN", ""),
                             help="admin bearer token (env RISKGATE_ADMIN_TOKEN)")
        command.add_argument("--json", action="store_true", help="JSON instead of a table")
        ops.add_client_flags(command)
        return command

    alerts = monitor_client("alerts", "list the monitor's alerts (--follow: live), or acknowledge, escalate or "
                                      "resolve one")
    alerts.add_argument("verb", nargs="?", default="list", choices=["list", "ack", "escalate", "resolve"])
    alerts.add_argument("id", nargs="?", default="", help="the alert (ack, escalate, resolve)")
    alerts.add_argument("--note", default="", help="a note; the rationale, required to resolve")
    alerts.add_argument("--state", choices=["open", "acknowledged", "escalated", "resolved"])
    alerts.add_argument("--severity", choices=["info", "warning", "critical"])
    alerts.add_argument("--rule", default="")
    alerts.add_argument("--symbol", default="")
    alerts.add_argument("--account", default="")
    alerts.add_argument("--since-ms", type=_count, default=0, help="created at or after (unix ms)")
    alerts.add_argument("--limit", type=_count, default=0, help="0 = 100, newest first")
    alerts.add_argument("--follow", action="store_true",
                        help=f"list, then print each new or changed alert as it comes (polled every "
                             f"{FOLLOW_POLL_S:g} s) until Ctrl-C or --max-seconds; JSON lines with --json")
    alerts.add_argument("--max-seconds", type=ops.seconds, default=0.0, help="with --follow: stop after this long")
    alerts.set_defaults(handler=_alerts)

    rules = monitor_client("rules", "list the monitor's rules, or change one (set: admin token)")
    rules.add_argument("verb", nargs="?", default="list", choices=["list", "set"])
    fields = rules.add_argument_group(
        "rules set", "the rule's fields; one not given keeps its current value (a new rule: its default, "
                     "scope platform, confirmation 1, cooldown 120000 ms, severity warning, mode act)")
    fields.add_argument("--id", help="the rule to change or create")
    fields.add_argument("--scope", choices=["platform", "symbol", "account"])
    fields.add_argument("--symbol", help="with scope symbol")
    fields.add_argument("--account", help="with scope account")
    fields.add_argument("--metric", help="mark_move, margin_ratio or concentration")
    fields.add_argument("--threshold", help="fires at or above this: a fraction ('0.05' is 5%%) or a ratio")
    fields.add_argument("--release", help="calm again below this; '' = the threshold")
    fields.add_argument("--window-ms", type=_count, help="mark_move: the window; 0 for the others")
    fields.add_argument("--confirmation", type=_count, help="consecutive evaluations at or above it before it fires")
    fields.add_argument("--action", help="alert, symbol_reduce_only, symbol_halted, account_reduce_only, "
                                         "liquidation_candidate (which ones depends on the metric)")
    fields.add_argument("--cooldown-ms", type=_count, help="calm this long before the action is undone")
    fields.add_argument("--severity", choices=["info", "warning", "critical"])
    fields.add_argument("--mode", choices=["act", "alert_only"])
    fields.add_argument("--enabled", choices=["yes", "no"])
    fields.add_argument("--overrides", help="the platform rule this one replaces for its symbol or account; '' = none")
    fields.add_argument("--min-value", help="a floor the measured amount must reach as well; '' = none")
    rules.set_defaults(handler=_rules)
    funding = monitor_client("funding", "set a symbol's funding rate on the monitor, or list the rates")
    funding.add_argument("verb", nargs="?", default="list", choices=["list", "set"])
    funding.add_argument("symbol", nargs="?", default="", help="the symbol (set)")
    funding.add_argument("rate", nargs="?", default="",
                         help="per funding interval, signed (set): 0.0001 is 0.01%%, longs pay shorts")
    funding.add_argument("--interval-ms", type=_count, default=0, help="the funding interval (0 = 8 h)")
    funding.set_defaults(handler=_funding)

    groups = monitor_client("groups", "link accounts of one owner (the wash-trade rule), or list the groups")
    groups.add_argument("verb", nargs="?", default="list", choices=["list", "set"])
    groups.add_argument("account", nargs="?", default="", help="the account (set)")
    groups.add_argument("group", nargs="?", default=None, help="its group (set); '' takes it out of any")
    groups.add_argument("--group", dest="only", default="", help="list: only this group's accounts")
    groups.set_defaults(handler=_groups)

    # ADL ranking and liquidation risk.
    adl = monitor_client("adl", "the auto-deleveraging queue of a symbol's longs or shorts (first to be "
                                "deleveraged first)")
    adl.add_argument("symbol", help="the symbol")
    adl.add_argument("--side", required=True, choices=["long", "short"])
    adl.add_argument("--limit", type=_count, default=0, help="the first N of the queue (0 = 100, at most 1000)")
    adl.set_defaults(handler=_adl)
    liquidation_risk = monitor_client("liquidation-risk", "the positions nearest their liquidation price")
    liquidation_risk.add_argument("--symbol", default="", help="only this symbol (default: every symbol held)")
    liquidation_risk.add_argument("--limit", type=_count, default=0, help="0 = 100, at most 1000")
    liquidation_risk.set_defaults(handler=_liquidation_risk)
    # ---- Stress tests and the insurance fund ----
    stress = monitor_client("stress", "re-value every account at shocked marks: shortfalls, liquidations and "
                                      "the insurance fund's cover (Cover-1, Cover-2)")
    stress.add_argument("--shock", help="one shock to every symbol (or only the --group's): -0.2 is -20%%")
    stress.add_argument("--grid", help="FROM:TO:STEP, inclusive: -0.5:0.5:0.05 is 21 scenarios, each uniform")
    stress.add_argument("--symbol-shock", action="append", default=[], metavar="SYMBOL=SHOCK",
                        help="a shock for one symbol (repeat it); the others keep their mark")
    stress.add_argument("--group", default="", help="SYMBOL,SYMBOL,...: --shock or --grid shocks these only")
    stress.add_argument("--top", type=_count, default=0, help="accounts and exposures listed per scenario "
                                                              "(0 = 10, at most 100; --json shows them)")
    # `--grid -0.5:0.5:0.05` and `--shock -0.2`: a value that starts with a minus is a value here.
    if hasattr(stress, "_negative_number_matcher"):
        stress._negative_number_matcher = re.compile(r"^-\d*\.?\d+(:-?\d*\.?\d+)*$")
    stress.set_defaults(handler=_stress)
    insurance = monitor_client("insurance", "show the insurance fund's balance, or set it (set: admin token)")
    insurance.add_argument("verb", nargs="?", default="show", choices=["show", "set"])
    insurance.add_argument("balance", nargs="?", default="", help="the fund's balance (set), a decimal >= 0")
    insurance.set_defaults(handler=_insurance)
    stress.add_argument("--historical", type=_count, default=0, metavar="DAYS",
                        help="historical worst moves over the last DAYS days of the mark history instead")
    # ---- Mark history, value at risk, the daily report ----
    analytics.add_commands(monitor_client, _count)
    health.add_command(sub, _target)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from riskgate.config import ConfigError, apply_overrides, apply_shard_overrides, load_config
    from riskgate.monitor.rules import RuleError, validate_rule
    from riskgate.store.datadir import DataDirBusy, DataDirError, DataDirLock, refuse_if_redis_running

    ops.configure_logging(args)
    try:
        config = ops.apply(apply_overrides(load_config(args.config), args.listen, args.redis_url, args.data_dir,
                                           args.admin_listen, args.metrics_listen), args)
        config = apply_shard_overrides(config, args.shard_index, args.shard_count)
        _monitor_metrics_override(config, None)
    except ConfigError as exc:
        return _fail(exc, 2)
    # The one-command demo (embedded Redis) also runs the monitor, in this process; with a
    # Redis URL (production) the monitor is a process of its own: `riskgate monitor`.
    monitor_listen: str | None = None
    if not config.server.redis_url and not args.no_monitor:
        monitor_listen = args.monitor_listen or os.environ.get("RISKGATE_MONITOR_LISTEN") or config.monitor.listen
        try:
            for rule in config.monitor.rules:
                validate_rule(rule)
        except RuleError as exc:
            return _fail(f"[monitor] rules: {exc}", 2)
    for listen in filter(None, (config.server.listen, config.server.admin_listen, monitor_listen)):
        if problem := _listen_syntax_problem(listen):
            return _fail(problem, 2)
    if refusal := ops.check_production(config, [config.server.listen, config.server.admin_listen,
                                                monitor_listen or ""], args.production, not config.server.redis_url):
        return _fail(refusal, ops.EXIT_CONFIG)
    # One data dir, one owner: lock it before anything else, so a second process on the same
    # dir starts nothing (no listener, no redis-server) and writes nothing.
    lock: DataDirLock | None = None
    if not config.server.redis_url:
        try:
            lock = DataDirLock.acquire(config.server.data_dir)
            refuse_if_redis_running(lock.data_dir)
        except DataDirError as exc:
            if lock is not None:
                lock.release()
            return _fail(exc, 1 if isinstance(exc, DataDirBusy) else 2)
    if config.server.event_loop == "uvloop":
        import uvloop

        uvloop.install()
    saved = _signal_handlers()
    try:
        return asyncio.run(_Serving(config, lock, monitor_listen, args.no_monitor).run())
    except (ValueError, RuntimeError, OSError, RedisError) as exc:
        return _fail(exc, 1)
    finally:
        # A late signal during the last steps must not interrupt them with a traceback.
        _set_signal_handlers(dict.fromkeys(saved, signal.SIG_IGN))
        if lock is not None:
            lock.release()
        _set_signal_handlers(saved)


def _split_listen(listen: str) -> tuple[str, int] | None:
    """(host, port) of a HOST:PORT listen address ("[v6]:port" too); None for other forms
    gRPC takes (unix:path, ...), which are left to it."""
    if listen.startswith(("unix:", "unix-abstract:")) or "://" in listen:
        return None
    host, _, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port) if port.isdigit() else -1


def _listen_syntax_problem(listen: str) -> str | None:
    split = _split_listen(listen)
    if split is not None and not 0 <= split[1] <= 65535:
        # gRPC would read port 99999 as 99999 % 65536 and serve on another port than asked.
        return f"listen address {listen!r}: expected HOST:PORT with a port between 0 and 65535"
    return None


def _probe_listen(listen: str) -> None:
    """Raises ListenError naming the reason when listen cannot be bound, found with a plain
    socket before gRPC tries (gRPC's own error says only that it failed, on several lines)."""
    from riskgate.api.server import ListenError

    split = _split_listen(listen)
    if split is None:
        return
    host, port = split
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {listen}: {exc.strerror}") from None
    failure: OSError | None = None
    for family, kind, proto, _, address in addresses:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
                probe.bind(address)
            return  # gRPC serves if it can bind at least one of the addresses
        except OSError as exc:
            failure = failure or exc
    if failure is not None:
        raise ListenError(f"cannot listen on {listen}: {failure.strerror or failure}") from None


def _fail(exc: BaseException | str, code: int) -> int:
    print(f"riskgate: {_one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
    return code


def _one_line(text: str | None) -> str:
    """Errors are one line on stderr, whatever the text they carry."""
    return " ".join((text or "").split())


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _signal_handlers() -> dict[signal.Signals, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}


def _set_signal_handlers(handlers: dict[signal.Signals, Any]) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


class _Serving:
    """One run of `riskgate serve`: bind, start the embedded Redis, start, (the demo) start the
    monitor, wait for SIGTERM or SIGINT, stop. Nothing is written before the listener is bound,
    so a start that cannot listen leaves the data dir as it was."""

    def __init__(self, config: Config, lock: DataDirLock | None, monitor_listen: str | None = None,
                 no_monitor: bool = False) -> None:
        self.config = config
        self.lock = lock
        # Where the demo's monitor listens; None = no monitor in this process, for this reason:
        self.monitor_listen = monitor_listen if lock is not None else None
        self.no_monitor_reason = ("--no-monitor" if no_monitor or lock is not None else
                                  "an external Redis: production runs it on its own, riskgate monitor --redis-url ...")
        self.service: RiskgateService | None = None
        self.embedded: EmbeddedRedis | None = None
        self.monitor: MonitorService | None = None
        self.log = logging.getLogger("riskgate")
        # The process exits within shutdown_timeout_s of the signal, whatever its tasks do.
        self.watchdog = ops.ExitWatchdog(config.server.shutdown_timeout_s, self._end_embedded)

    def _end_embedded(self) -> None:
        if self.embedded is not None:
            self.embedded.stop(timeout_s=ops.WATCHDOG_MARGIN_S / 2)

    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            # Stays installed until the loop closes: a second signal during shutdown is a no-op.
            loop.add_signal_handler(sig, ops.stop_requested, stop, self.watchdog, sig)
        starting = asyncio.ensure_future(self._start())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                port = starting.result()  # raises what made the start fail
                admin_port = self.service.admin_port if self.service is not None else 0
                operators = (f" (operators on {_with_port(self.config.server.admin_listen, admin_port)})"
                             if admin_port else "")
                print(f"riskgate ready on {_with_port(self.config.server.listen, port)}{operators}", flush=True)
                self.watchdog.ready = True
                if self.monitor_listen is None:
                    self.log.info("no monitor in this process (%s)", self.no_monitor_reason)
                else:
                    monitoring = asyncio.ensure_future(self._start_monitor(self.monitor_listen))
                    await asyncio.wait({monitoring, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if not monitoring.done():
                        self.log.info("stop requested while the monitor was starting")
                        monitoring.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await monitoring
                await stopping
            else:
                self.log.info("stop requested during start-up")
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
            self.log.info("stopping")
        finally:
            stopping.cancel()
            code = await self._stop()
        return code

    async def _start(self) -> int:
        from riskgate.api.server import RiskgateService

        self.service = RiskgateService(self.config, redis_url="")
        _probe_listen(self.config.server.listen)
        if self.config.server.admin_listen:
            _probe_listen(self.config.server.admin_listen)
        await self.service.bind()
        redis_url = self.config.server.redis_url
        if self.lock is not None:
            from riskgate.store.embedded import EmbeddedRedis

            # Started here, on the main thread, blocking the loop briefly: the kernel kills the
            # server when the thread that started it ends, and this thread lasts as long as we do.
            self.embedded = EmbeddedRedis(self.lock.data_dir)
            self.embedded.start()
            redis_url = self.embedded.url
            self.log.info("embedded redis-server pid %s on %s, data in %s", self.embedded.pid, redis_url,
                          self.lock.data_dir)
        return await self.service.start(redis_url)

    async def _start_monitor(self, listen: str) -> None:
        """The demo's monitor, on this process's event loop, against the embedded Redis. A
        monitor that cannot start is logged as an error and the gate goes on serving: the
        gate is what the demo is for, and the monitor is optional there."""
        from riskgate.monitor.service import MonitorService

        assert self.embedded is not None
        try:
            _probe_listen(listen)
            self.monitor = MonitorService(self.config, self.embedded.url, listen)
            port = await self.monitor.start()  # stops itself again when it cannot start
        except Exception as exc:
            self.log.error("monitor not started (the gate serves without it; --monitor-listen to move it, "
                           "--no-monitor to skip it): %s", _one_line(str(exc)) or type(exc).__name__)
            return
        print(f"riskgate monitor ready on {_with_port(listen, port)} (in this process, for the demo)", flush=True)

    async def _stop(self) -> int:
        code = 0
        began = time.monotonic()
        if self.service is not None:
            # At once, before the monitor's stop: probes see NOT_SERVING and new calls are refused.
            with contextlib.suppress(Exception):
                await self.service.begin_stop()
        if self.monitor is not None:
            # First, while the gate and its Redis still run: it hands its lease on at once.
            try:
                report = await self.monitor.stop()
                if not report.clean:
                    self.log.error("monitor shutdown not clean; unfinished: %s", ", ".join(report.unfinished))
                    code = 1
            except Exception as exc:  # the gate and the embedded Redis must still be stopped
                self.log.error("monitor shutdown failed: %s", exc)
                code = 1
        try:
            if self.service is not None:
                report = await self.service.stop()
                if not report.clean:
                    self.log.error("shutdown not clean; unfinished: %s", ", ".join(report.unfinished) or "?")
                    code = 1
        except Exception as exc:  # the embedded Redis must still be stopped
            self.log.error("shutdown failed: %s", exc)
            code = 1
        finally:
            if self.embedded is not None:
                self.embedded.stop()
                self.embedded = None
        ops.stopped(self.watchdog, began, code)
        return code


def _monitor_metrics_override(config: Config, flag: str | None) -> None:
    chosen = flag if flag is not None else os.environ.get("RISKGATE_MONITOR_METRICS_LISTEN")
    if chosen is not None:
        config.monitor.metrics_listen = chosen


def _monitor(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from riskgate.config import ConfigError, load_config
    from riskgate.monitor.rules import RuleError, validate_rule

    ops.configure_logging(args)
    try:
        config = ops.apply_monitor(load_config(args.config), args)
        _monitor_metrics_override(config, args.metrics_listen)
        for rule in config.monitor.rules:
            validate_rule(rule)
    except (ConfigError, RuleError) as exc:
        return _fail(f"{exc}" if isinstance(exc, ConfigError) else f"[monitor] rules: {exc}", 2)
    redis_url = args.redis_url or os.environ.get("RISKGATE_REDIS_URL") or config.server.redis_url
    if not redis_url:
        # The monitor follows the gate's Redis; an embedded one of its own would watch nothing.
        return _fail("monitor needs the gate's Redis: --redis-url or RISKGATE_REDIS_URL", 2)
    listen = args.listen or os.environ.get("RISKGATE_MONITOR_LISTEN") or config.monitor.listen
    if problem := _listen_syntax_problem(listen):
        return _fail(problem, 2)
    if refusal := ops.check_production(config, [listen], args.production, False, "riskgate monitor"):
        return _fail(refusal, ops.EXIT_CONFIG)
    if config.server.event_loop == "uvloop":
        import uvloop

        uvloop.install()
    saved = _signal_handlers()
    try:
        return asyncio.run(_Monitoring(config, redis_url, listen).run())
    except (ValueError, RuntimeError, OSError, RedisError) as exc:
        return _fail(exc, 1)
    finally:
        _set_signal_handlers(dict.fromkeys(saved, signal.SIG_IGN))
        _set_signal_handlers(saved)


class _Monitoring:
    """One run of `riskgate monitor`: bind, load, serve until SIGTERM or SIGINT, stop (handing
    the lease to a standby at once)."""

    def __init__(self, config: Config, redis_url: str, listen: str) -> None:
        self.config = config
        self.redis_url = redis_url
        self.listen = listen
        self.log = logging.getLogger("riskgate.monitor")
        self.watchdog = ops.ExitWatchdog(config.server.shutdown_timeout_s)

    async def run(self) -> int:
        from riskgate.monitor.service import MonitorService

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, ops.stop_requested, stop, self.watchdog, sig)
        _probe_listen(self.listen)
        service = MonitorService(self.config, self.redis_url, self.listen)
        starting = asyncio.ensure_future(service.start())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                port = starting.result()
                print(f"riskgate monitor ready on {_with_port(self.listen, port)}", flush=True)
                self.watchdog.ready = True
                await stopping
            else:
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
            self.log.info("stopping")
        finally:
            stopping.cancel()
            began = time.monotonic()
            report = await service.stop()
        code = 0 if report.clean else 1
        ops.stopped(self.watchdog, began, code)
        return code


_ALERT_STATES = {"open": 1, "acknowledged": 2, "escalated": 3, "resolved": 4}
_SEVERITIES = {"info": 1, "warning": 2, "critical": 3}


def _alerts(args: argparse.Namespace) -> int:
    from riskgate.v1 import monitor_pb2 as mpb
    from riskgate.v1 import monitor_pb2_grpc as mpb_grpc

    if args.verb != "list" and not args.id:
        print(f"riskgate alerts: {args.verb} needs the alert's id", file=sys.stderr)
        return 2
    if args.verb == "resolve" and not args.note.strip():
        print("riskgate alerts: resolve needs --note with the rationale", file=sys.stderr)
        return 2
    if args.verb != "list" and args.follow:
        print(f"riskgate alerts: --follow lists; it does not go with {args.verb}", file=sys.stderr)
        return 2
    if args.max_seconds and not args.follow:
        print("riskgate alerts: --max-seconds goes with --follow", file=sys.stderr)
        return 2
    with _channel(args) as channel:
        stub = mpb_grpc.RiskMonitorStub(channel)
        try:
            if args.verb == "list":
                request = mpb.ListAlertsRequest(
                    state=_ALERT_STATES.get(args.state or "", 0), severity=_SEVERITIES.get(args.severity or "", 0),
                    rule_id=args.rule, symbol=args.symbol, account_id=args.account, since_ms=args.since_ms,
                    limit=args.limit)
                if args.follow:
                    return _follow_alerts(stub, request, args)
                answer = stub.ListAlerts(request, metadata=_metadata(args), timeout=5)
                if args.json:
                    _print(answer)
                else:
                    _print_alert_table(answer)
                return 0
            method = {"ack": stub.AckAlert, "escalate": stub.EscalateAlert, "resolve": stub.ResolveAlert}[args.verb]
            alert = method(mpb.AlertActionRequest(id=args.id, note=args.note), metadata=_metadata(args), timeout=5)
            if args.json:
                _print(alert)
            else:
                _print_table([_ALERT_HEADER, _alert_row(alert)])
        except grpc.RpcError as exc:
            _print_rpc_error(exc)
            return 1
    return 0


def _follow_alerts(stub: Any, request: Any, args: argparse.Namespace) -> int:
    """A live tail: the alerts matching the filters (the newest --limit, oldest first), then
    every alert that is new or has changed since the last poll, one line each, as they come.
    Polls ListAlerts (the newest FOLLOW_WINDOW matching) every FOLLOW_POLL_S; ends at
    --max-seconds (exit 0) or Ctrl-C. A monitor that stops answering for a while is said once
    on stderr and followed again when it is back; any other refusal ends it (exit 1)."""
    shown_at_start = min(request.limit or 100, FOLLOW_WINDOW)
    request.limit = FOLLOW_WINDOW
    deadline = time.monotonic() + args.max_seconds if args.max_seconds else None
    seen: dict[str, bytes] = {}
    first = True
    away = False
    if not args.json:
        _print_row(_ALERT_HEADER, _ALERT_FOLLOW_WIDTHS)
    while True:
        try:
            answer = stub.ListAlerts(request, metadata=_metadata(args), timeout=5)
        except grpc.RpcError as exc:
            transient = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)  # type: ignore[attr-defined]
            if first or not transient:
                _print_rpc_error(exc)
                return 1
            if not away:
                _print_rpc_error(exc, " (still following)")
                away = True
        else:
            if away:
                print("riskgate: the monitor answers again", file=sys.stderr, flush=True)
                away = False
            current = {alert.id: alert.SerializeToString(deterministic=True) for alert in answer.alerts}
            news = [alert for alert in answer.alerts if seen.get(alert.id) != current[alert.id]]
            if first:
                news = list(reversed(news[:shown_at_start]))  # newest at the bottom, as a tail
            else:
                news.sort(key=lambda a: (a.updated_ms, a.created_ms, int(a.id) if a.id.isdigit() else 0))
            for alert in news:
                if args.json:
                    print(json_format.MessageToJson(alert, preserving_proto_field_name=True, indent=None),
                          flush=True)
                else:
                    _print_row(_alert_row(alert), _ALERT_FOLLOW_WIDTHS)
            seen = current  # bounded by what the monitor returns
            first = False
        pause = FOLLOW_POLL_S
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return 0
            pause = min(pause, left)
        time.sleep(pause)


_ALERT_HEADER = ("ID", "CREATED (UTC)", "SEVERITY", "STATE", "RULE", "SCOPE", "VALUE", "THRESHOLD", "WINDOW",
                 "ACTION")
# A tail cannot size its columns by what is still to come: these fit the usual values.
_ALERT_FOLLOW_WIDTHS = (6, 20, 8, 12, 24, 20, 9, 9, 6, 0)


def _alert_row(alert: Any) -> tuple[str, ...]:
    from riskgate.v1 import monitor_pb2 as mpb

    created = output.iso_utc(alert.created_ms)
    scope = " ".join(filter(None, (alert.symbol, alert.account_id)))
    state = mpb.AlertState.Name(alert.state).removeprefix("ALERT_")
    if alert.cleared_ms and state != "RESOLVED":
        state += " (calm)"
    return (alert.id, created, mpb.Severity.Name(alert.severity).removeprefix("SEVERITY_"), state,
            alert.rule_id, scope, alert.value, alert.threshold, _duration(alert.window_ms),
            _one_line(alert.action_taken)[:60])


def _print_alert_table(answer: Any) -> None:
    """One line per alert, newest first: what an operator on shift scans."""
    _print_table([_ALERT_HEADER, *(_alert_row(alert) for alert in answer.alerts)])
    shown = len(answer.alerts)
    if answer.total > shown:
        print(f"({shown} of {answer.total}; --limit for more)")


_RULE_HEADER = ("ID", "SCOPE", "METRIC", "THRESHOLD", "RELEASE", "MIN", "WINDOW", "CONFIRM", "ACTION",
                "COOLDOWN", "SEVERITY", "MODE", "VERSION", "UPDATED BY")


def _rule_row(rule: Any) -> tuple[str, ...]:
    from riskgate.v1 import monitor_pb2 as mpb

    scope = " ".join(filter(None, (rule.scope, rule.symbol, rule.account_id)))
    if rule.overrides:
        scope += f" (replaces {rule.overrides})"
    mode = rule.mode + (" (disabled)" if rule.disabled else "")
    return (rule.id, scope, rule.metric, rule.threshold, rule.release or "-", rule.min_value or "-",
            _duration(rule.window_ms), str(rule.confirmation), rule.action, _duration(rule.cooldown_ms),
            mpb.Severity.Name(rule.severity).removeprefix("SEVERITY_"), mode, str(rule.version),
            rule.updated_by or "-")


def _duration(ms: int) -> str:
    return f"{ms / 1000:g}s" if ms else "-"


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns as wide as their widest cell, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        _print_row(row, widths)


def _print_row(row: Sequence[str], widths: Sequence[int]) -> None:
    print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), flush=True)


def _print_rpc_error(exc: grpc.RpcError, suffix: str = "") -> None:
    print(f"riskgate: {output.rpc_error_line(exc)}{suffix}", file=sys.stderr, flush=True)


# `riskgate rules set` flag -> Rule field (text and counts: copied as given).
_RULE_FLAGS = {"scope": "scope", "symbol": "symbol", "account": "account_id", "metric": "metric",
               "threshold": "threshold", "release": "release", "window_ms": "window_ms",
               "confirmation": "confirmation", "action": "action", "cooldown_ms": "cooldown_ms", "mode": "mode",
               "overrides": "overrides", "min_value": "min_value"}


def _rules(args: argparse.Namespace) -> int:
    from riskgate.v1 import monitor_pb2 as mpb
    from riskgate.v1 import monitor_pb2_grpc as mpb_grpc

    given = {field: getattr(args, flag) for flag, field in _RULE_FLAGS.items() if getattr(args, flag) is not None}
    if args.severity is not None:
        given["severity"] = mpb.Severity.Value(f"SEVERITY_{args.severity.upper()}")
    if args.enabled is not None:
        given["disabled"] = args.enabled == "no"
    if args.verb == "list" and (given or args.id is not None):
        print("riskgate rules: the rule's fields (--id, --threshold, ...) go with `rules set`", file=sys.stderr)
        return 2
    if args.verb == "set" and not args.id:
        print("riskgate rules set: --id is required (the rule to change or create)", file=sys.stderr)
        return 2
    with _channel(args) as channel:
        stub = mpb_grpc.RiskMonitorStub(channel)
        try:
            listed = stub.ListRules(mpb.ListRulesRequest(), metadata=_metadata(args), timeout=5)
        except grpc.RpcError as exc:
            _print_rpc_error(exc)
            return 1
        if args.verb == "list":
            if args.json:
                _print(listed)
            else:
                _print_table([_RULE_HEADER, *(_rule_row(rule) for rule in listed.rules)])
            return 0
        # Read, change what was given, write back: a flag left out keeps the rule's value.
        current = next((rule for rule in listed.rules if rule.id == args.id), None)
        rule = mpb.Rule()
        if current is not None:
            rule.CopyFrom(current)
            rule.version, rule.updated_by, rule.updated_ms = 0, "", 0
        else:
            missing = [f"--{flag}" for flag in ("metric", "threshold", "action") if flag not in given]
            if missing:
                print(f"riskgate rules set: there is no rule {args.id!r} yet: a new rule needs "
                      f"{', '.join(missing)}", file=sys.stderr)
                return 2
            rule.MergeFrom(_new_rule(mpb, args.id))
        for field, value in given.items():
            setattr(rule, field, value)
        try:
            stored = stub.UpsertRule(rule, metadata=_metadata(args), timeout=5)
        except grpc.RpcError as exc:
            invalid = exc.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
            # A value the monitor refuses is a mistake in the command: exit 2, as a bad flag.
            _print_rpc_error(exc, f" (rule {args.id} not changed)" if invalid else "")
            return 2 if invalid else 1
        if args.json:
            _print(stored)
        else:
            _print_table([_RULE_HEADER, _rule_row(stored)])
    return 0


def _new_rule(mpb: Any, rule_id: str) -> Any:
    """A rule not stored yet starts from the defaults a rule has in the configuration file."""
    import msgspec

    from riskgate.monitor.rules import Rule

    defaults = {field.name: field.default for field in msgspec.structs.fields(Rule)}
    return mpb.Rule(id=rule_id, scope=defaults["scope"], confirmation=defaults["confirmation"],
                    cooldown_ms=defaults["cooldown_ms"], mode=defaults["mode"],
                    severity=mpb.Severity.Value(f"SEVERITY_{defaults['severity'].upper()}"))
def _funding(args: argparse.Namespace) -> int:
    from riskgate.v1 import monitor_pb2 as mpb
    from riskgate.v1 import monitor_pb2_grpc as mpb_grpc

    if args.verb == "set" and not (args.symbol and args.rate):
        print("riskgate funding: set needs the symbol and the rate", file=sys.stderr)
        return 2
    if args.verb == "list" and args.symbol:
        print("riskgate funding: list takes no symbol (it lists every rate)", file=sys.stderr)
        return 2
    with _channel(args) as channel:
        stub = mpb_grpc.RiskMonitorStub(channel)
        if args.verb == "set":
            request = mpb.FundingRate(symbol=args.symbol, rate=args.rate, interval_ms=args.interval_ms)
            stored = stub.SetFundingRate(request, metadata=_metadata(args), timeout=5)
            if args.json:
                _print(stored)
            else:
                _print_funding_table(mpb.FundingRateList(rates=[stored]))
            return 0
        answer = stub.ListFundingRates(mpb.ListFundingRatesRequest(), metadata=_metadata(args), timeout=5)
    if args.json:
        _print(answer)
    else:
        _print_funding_table(answer)
    return 0


def _print_funding_table(answer: Any) -> None:
    from decimal import Decimal

    from riskgate.values.money import fmt

    rows = [("SYMBOL", "RATE", "PERCENT", "INTERVAL", "VERSION", "UPDATED (UTC)", "BY")]
    for rate in answer.rates:
        percent = f"{fmt(Decimal(rate.rate) * 100)}%"
        rows.append((rate.symbol, rate.rate, percent, f"{rate.interval_ms / 3_600_000:g}h", str(rate.version),
                     _utc(rate.updated_ms), rate.updated_by))
    _print_table(rows)


def _utc(ms: int) -> str:
    """ISO-8601 UTC, as every table prints times: 2026-12-06T05:12:03Z."""
    return output.iso_utc(ms)


def _groups(args: argparse.Namespace) -> int:
    from riskgate.v1 import monitor_pb2 as mpb
    from riskgate.v1 import monitor_pb2_grpc as mpb_grpc

    if args.verb == "set" and (not args.account or args.group is None):
        print("riskgate groups: set needs the account and its group ('' for none)", file=sys.stderr)
        return 2
    with _channel(args) as channel:
        stub = mpb_grpc.RiskMonitorStub(channel)
        if args.verb == "set":
            request = mpb.AccountGroup(account_id=args.account, group=args.group)
            stored = stub.SetAccountGroup(request, metadata=_metadata(args), timeout=5)
            if args.json:
                _print(stored)
            else:
                _print_table([("ACCOUNT", "GROUP", "VERSION", "UPDATED (UTC)", "BY"),
                              (stored.account_id, stored.group or "-", str(stored.version), _utc(stored.updated_ms),
                               stored.updated_by)])
            return 0
        try:
            answer = stub.ListAccountGroups(mpb.ListAccountGroupsRequest(group=args.only), metadata=_metadata(args),
                                            timeout=5)
        except grpc.RpcError as exc:
            _print_rpc_error(exc)
            return 1
    if args.json:
        _print(answer)
    else:
        _print_table([("ACCOUNT", "GROUP", "VERSION", "UPDATED (UTC)", "BY"),
                      *((a.account_id, a.group, str(a.version), _utc(a.updated_ms), a.updated_by)
                        for a in answer.accounts)])
    return 0


def _with_port(listen: str, port: int) -> str:
    host, _, _ = listen.rpartition(":")
    return f"{host}:{port}" if host else listen


def _channel(args: argparse.Namespace) -> grpc.Channel:
    return ops.channel(args)


def _metadata(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {args.token}")] if args.token else []


def _print(message: Message) -> None:
    print(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2))


def _check(args: argparse.Namespace) -> int:
    """Exit status: 0 accepted, 3 rejected, 4 reduce-only (only allowed_quantity may go)."""
    request = pb.CheckOrderRequest(
        order_id=args.order_id or uuid.uuid4().hex,
        account_id=args.account,
        symbol=args.symbol,
        side=pb.SIDE_BUY if args.side == "buy" else pb.SIDE_SELL,
        order_type=pb.ORDER_TYPE_LIMIT if args.price else pb.ORDER_TYPE_MARKET,
        quantity=args.quantity,
        price=args.price,
        leverage=args.leverage,
        reduce_only=args.reduce_only,
    )
    with _channel(args) as channel:
        answer = pb_grpc.PreTradeRiskStub(channel).CheckOrder(request, timeout=5)
    if args.json:
        _print(answer)
    else:
        output.print_table([("ORDER", "DECISION", "ALLOWED_QTY", "INITIAL_MARGIN", "ORDER_COST", "AVAILABLE_MARGIN",
                             "MAX_LEV", "LIQ_PRICE"),
                            (answer.order_id, pb.Decision.Name(answer.decision).removeprefix("DECISION_"),
                             answer.allowed_quantity or "-", answer.initial_margin or "-", answer.order_cost or "-",
                             answer.available_margin or "-", str(answer.max_leverage or "-"),
                             answer.estimated_liquidation_price or "-")])
        if answer.reasons:
            print()
            output.print_table([("REASON", "LIMIT", "VALUE", "MESSAGE"),
                                *((pb.ReasonCode.Name(r.code).removeprefix("REASON_"), r.limit or "-", r.value or "-",
                                   _one_line(r.message)) for r in answer.reasons)])
    return {pb.DECISION_ACCEPT: output.EXIT_OK, pb.DECISION_REJECT: output.EXIT_REJECT,
            pb.DECISION_REDUCE_ONLY: output.EXIT_REDUCE_ONLY}.get(answer.decision, output.EXIT_ERROR)


def _execution(args: argparse.Namespace) -> int:
    kinds = {"fill": pb.EXECUTION_KIND_FILL, "canceled": pb.EXECUTION_KIND_CANCELED,
             "expired": pb.EXECUTION_KIND_EXPIRED, "rejected": pb.EXECUTION_KIND_REJECTED,
             "not-sent": pb.EXECUTION_KIND_NOT_SENT}
    request = pb.ExecutionReport(order_id=args.order_id, account_id=args.account, kind=kinds[args.kind],
                                 quantity=args.quantity, price=args.price,
                                 execution_id=args.execution_id or f"cli-{uuid.uuid4().hex}",
                                 sequence=args.sequence or time.time_ns())
    with _channel(args) as channel:
        ack = pb_grpc.PreTradeRiskStub(channel).ReportExecution(request, timeout=5)
    if args.json:
        _print(ack)
    else:
        output.print_fields([("order", ack.order_id), ("execution_id", request.execution_id),
                             ("remaining_quantity", ack.remaining_quantity),
                             ("position_quantity", ack.position_quantity),
                             ("balance", ack.balance), ("available_margin", ack.available_margin),
                             ("duplicate", "yes" if ack.duplicate else "no"),
                             ("included_in_snapshot", "yes" if ack.included_in_snapshot else "no"),
                             ("cancel_order_ids", ", ".join(ack.cancel_order_ids))])
    return 0


def _admin_stub(channel: grpc.Channel) -> admin_grpc.RiskAdminStub:
    return admin_grpc.RiskAdminStub(channel)


_BREAKER_HEADER = ("SYMBOL", "STATE", "REASON", "SET BY", "UPDATED (UTC)", "VERSION")


def _breaker_row(b: Any) -> tuple[str, ...]:
    return (b.symbol or "(platform)", admin.BreakerState.Name(b.state).removeprefix("BREAKER_"), _one_line(b.reason),
            b.set_by or "-", output.iso_utc(b.updated_ms), str(b.version))


def _breaker(args: argparse.Namespace) -> int:
    with _channel(args) as channel:
        stub = _admin_stub(channel)
        if args.state == "list":
            listed = stub.ListCircuitBreakers(admin.ListCircuitBreakersRequest(), metadata=_metadata(args), timeout=5)
            if args.symbol is not None:  # this symbol's breaker and the platform's, which also applies to it
                kept = [b for b in listed.breakers if b.symbol in ("", args.symbol)]
                del listed.breakers[:]
                listed.breakers.extend(kept)
            if args.json:
                _print(listed)
            else:
                output.print_table([_BREAKER_HEADER, *(_breaker_row(b) for b in listed.breakers)])
                if args.symbol and not any(b.symbol == args.symbol for b in listed.breakers):
                    print(f"({args.symbol}: no breaker of its own set: NORMAL unless the platform's says otherwise)")
            return 0
        states = {"normal": admin.BREAKER_NORMAL, "reduce-only": admin.BREAKER_REDUCE_ONLY,
                  "halted": admin.BREAKER_HALTED}
        request = admin.CircuitBreaker(symbol=args.symbol or "", state=states[args.state], reason=args.reason)
        stored = stub.SetCircuitBreaker(request, metadata=_metadata(args), timeout=5)
    if args.json:
        _print(stored)
    else:
        output.print_table([_BREAKER_HEADER, _breaker_row(stored)])
    return 0


def _controls(args: argparse.Namespace) -> int:
    """Read, change what was given, write back with compare-and-set on the version read: a flag
    left out keeps its value, and a change made by someone else in between is never overwritten."""
    restrictions = {"none": admin.RESTRICTION_NONE, "reduce-only": admin.RESTRICTION_REDUCE_ONLY,
                    "frozen": admin.RESTRICTION_FROZEN}
    with _channel(args) as channel:
        stub = _admin_stub(channel)
        try:
            current = stub.GetAccountRisk(admin.GetAccountRiskRequest(account_id=args.account),
                                          metadata=_metadata(args), timeout=5).controls
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or not args.create:  # type: ignore[attr-defined]
                # Without the current controls, a partial change would reset the rest (and a
                # shard that does not own the account cannot see them): refuse.
                print(f"riskgate: {exc.code().name}: {_one_line(exc.details())}"  # type: ignore[attr-defined]
                      + (" (use --create for a new account, or the owning shard)"
                         if exc.code() == grpc.StatusCode.NOT_FOUND else ""), file=sys.stderr)  # type: ignore[attr-defined]
                return 1
            current = admin.AccountControls(restriction=admin.RESTRICTION_NONE)  # version 0: must still be new
        request = admin.AccountControls()
        request.CopyFrom(current)
        request.account_id = args.account
        if args.restriction is not None:
            request.restriction = restrictions[args.restriction]
        if args.kyc_level is not None:
            request.kyc_level = args.kyc_level
        if args.qualified is not None:
            request.qualified_investor = args.qualified == "yes"
        if args.max_leverage is not None:
            request.max_leverage = args.max_leverage
        if args.max_orders_per_second is not None:
            request.max_orders_per_second = args.max_orders_per_second
        if args.max_gross_notional is not None:
            request.max_gross_notional = args.max_gross_notional
        request.version = 0
        request.expected_version = current.version
        try:
            stored = stub.SetAccountControls(request, metadata=_metadata(args), timeout=5)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.ABORTED:  # type: ignore[attr-defined]
                raise
            now = re.search(r"now version (\d+)", exc.details() or "")  # type: ignore[attr-defined]
            print(f"riskgate: {args.account}'s controls were changed by someone else since you read them "
                  f"(version {current.version}, now version {now.group(1) if now else '?'}): nothing changed; "
                  "run again", file=sys.stderr)
            return 1
    if args.json:
        _print(stored)
    else:
        _print_controls(stored)
    return 0


def _print_controls(c: Any) -> None:
    output.print_fields([
        ("account", c.account_id), ("restriction", admin.Restriction.Name(c.restriction).removeprefix("RESTRICTION_")),
        ("kyc_level", str(c.kyc_level)), ("qualified_investor", "yes" if c.qualified_investor else "no"),
        ("max_leverage", str(c.max_leverage or "-")), ("max_orders_per_second", str(c.max_orders_per_second or "-")),
        ("max_gross_notional", c.max_gross_notional or "-"), ("version", str(c.version)), ("set_by", c.set_by),
        ("reason", _one_line(c.reason))])


def _mark(args: argparse.Namespace) -> int:
    request = admin.MarkPrice(symbol=args.symbol, price=args.price, confirmed_move=args.confirm_move)
    with _channel(args) as channel:
        stored = _admin_stub(channel).SetMarkPrice(request, metadata=_metadata(args), timeout=5)
    if args.json:
        _print(stored)
    else:
        output.print_table([("SYMBOL", "PRICE", "TIME (UTC)", "VERSION"),
                            (stored.symbol, stored.price, output.iso_utc(stored.timestamp_ms), str(stored.version))])
    return 0


def _account_risk(args: argparse.Namespace) -> int:
    request = admin.GetAccountRiskRequest(account_id=args.account)
    with _channel(args) as channel:
        risk = _admin_stub(channel).GetAccountRisk(request, metadata=_metadata(args), timeout=5)
    admin_verbs.show_account(args, risk)
    return 0


def _reservations(args: argparse.Namespace) -> int:
    request = admin.ListReservationsRequest(account_id=args.account, min_age_ms=args.min_age_ms, limit=args.limit)
    with _channel(args) as channel:
        listed = _admin_stub(channel).ListReservations(request, metadata=_metadata(args), timeout=5)
    admin_verbs.print_reservations(args, listed)
    return 0


def _release(args: argparse.Namespace) -> int:
    request = admin.ReleaseReservationRequest(account_id=args.account, order_id=args.order_id, reason=args.reason)
    with _channel(args) as channel:
        released = _admin_stub(channel).ReleaseReservation(request, metadata=_metadata(args), timeout=5)
    if args.json:
        _print(released)
    else:
        output.print_table([("ACCOUNT", "ORDER", "SYMBOL", "SIDE", "REMAINING", "PRICE", "LEV", "REDUCE", "RESERVED",
                             "CREATED (UTC)", "AGE"), admin_verbs.reservation_row(released)])
        print("released")
    return 0


# ---- ADL ranking and liquidation risk ------------------------------------------------------


def _adl(args: argparse.Namespace) -> int:
    from riskgate.v1 import monitor_pb2 as mpb
    from riskgate.v1 import monitor_pb2_grpc as mpb_grpc

    with _channel(args) as channel:
        stub = mpb_grpc.RiskMonitorStub(channel)
        try:
            answer = stub.GetAdlRanking(mpb.AdlRequest(symbol=args.symbol, side=args.side, limit=args.limit),
                                        metadata=_metadata(args), timeout=10)
        except grpc.RpcError as exc:
            _print_rpc_error(exc)
            return 1
    if args.json:
        _print(answer)
        return 0
    print(f"{answer.symbol} {answer.side}s at mark {answer.mark}: {answer.population} position(s), "
          f"first to be deleveraged first", flush=True)
    _print_table([("RANK", "LIGHTS", "ACCOUNT", "QUANTITY", "ENTRY", "MARK", "PNL%", "EFF_LEVERAGE", "SCORE"),
                  *((str(e.rank), str(e.lights), e.account_id, e.quantity, e.entry_price, e.mark, e.pnl_fraction,
                     e.effective_leverage, e.score) for e in answer.entries)])
    return 0


def _liquidation_risk(args: argparse.Namespace) -> int:
    from riskgate.v1 import monitor_pb2 as mpb
    from riskgate.v1 import monitor_pb2_grpc as mpb_grpc

    with _channel(args) as channel:
        stub = mpb_grpc.RiskMonitorStub(channel)
        try:
            answer = stub.GetLiquidationRisk(mpb.LiquidationRiskRequest(symbol=args.symbol, limit=args.limit),
                                             metadata=_metadata(args), timeout=10)
        except grpc.RpcError as exc:
            _print_rpc_error(exc)
            return 1
    if args.json:
        _print(answer)
    else:
        _print_table([("ACCOUNT", "SYMBOL", "QUANTITY", "MARK", "LIQ_PRICE", "DISTANCE", "MARGIN_RATIO"),
                      *((e.account_id, e.symbol, e.quantity, e.mark, e.liquidation_price, e.distance, e.margin_ratio)
                        for e in answer.entries)])
    return 0


# ---- Stress tests and the insurance fund ----


def _stress(args: argparse.Namespace) -> int:
    from riskgate.v1 import monitor_pb2 as mpb
    from riskgate.v1 import monitor_pb2_grpc as mpb_grpc

    request = mpb.StressRequest(shock=args.shock or "", top=args.top, historical_lookback_days=args.historical,
                                group=[s.strip() for s in args.group.split(",") if s.strip()])
    if args.grid is not None:
        parts = args.grid.split(":")
        if len(parts) != 3:
            print("riskgate stress: --grid is FROM:TO:STEP, e.g. -0.5:0.5:0.05", file=sys.stderr)
            return 2
        request.grid_from, request.grid_to, request.grid_step = parts
    for item in args.symbol_shock:
        symbol, sep, shock = item.partition("=")
        if not sep:
            print(f"riskgate stress: --symbol-shock is SYMBOL=SHOCK, not {item!r}", file=sys.stderr)
            return 2
        request.symbol_shocks.add(symbol=symbol.strip(), shock=shock.strip())
    with _channel(args) as channel:
        stub = mpb_grpc.RiskMonitorStub(channel)
        try:
            report = stub.RunStressTest(request, metadata=_metadata(args), timeout=120)
        except grpc.RpcError as exc:
            _print_rpc_error(exc)
            return 2 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 1  # type: ignore[attr-defined]
    if args.json:
        _print(report)
        return 0
    rows = [("SCENARIO", "SHORTFALL", "SHORT", "LIQUIDATIONS", "COVER-1", "COVER-2", "FUND", "COVERED")]
    for scenario in report.scenarios:
        covered = ("yes" if scenario.cover_2.covered else "cover-1 only" if scenario.cover_1.covered else "no")
        rows.append((scenario.label, scenario.total_shortfall + ("" if scenario.total_shortfall_exact else " ~"),
                     str(scenario.accounts_short), str(scenario.liquidations), scenario.cover_1.amount,
                     scenario.cover_2.amount, report.insurance_fund.balance, covered))
    _print_table(rows)
    return 0


def _insurance(args: argparse.Namespace) -> int:
    from riskgate.v1 import monitor_pb2 as mpb
    from riskgate.v1 import monitor_pb2_grpc as mpb_grpc

    if args.verb == "set" and not args.balance:
        print("riskgate insurance: set needs the balance", file=sys.stderr)
        return 2
    if args.verb == "show" and args.balance:
        print("riskgate insurance: to change the balance: riskgate insurance set BALANCE", file=sys.stderr)
        return 2
    with _channel(args) as channel:
        stub = mpb_grpc.RiskMonitorStub(channel)
        try:
            if args.verb == "set":
                fund = stub.SetInsuranceFund(mpb.InsuranceFund(balance=args.balance), metadata=_metadata(args),
                                             timeout=5)
            else:
                fund = stub.GetInsuranceFund(mpb.GetInsuranceFundRequest(), metadata=_metadata(args), timeout=5)
        except grpc.RpcError as exc:
            _print_rpc_error(exc)
            return 2 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 1  # type: ignore[attr-defined]
    if args.json:
        _print(fund)
    else:
        _print_table([("BALANCE", "VERSION", "UPDATED (UTC)", "BY"),
                      (fund.balance, str(fund.version), _utc(fund.updated_ms) if fund.version else "-",
                       fund.updated_by or "-")])
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
