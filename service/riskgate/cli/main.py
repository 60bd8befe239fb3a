"""`riskgate serve` runs the service; the other commands are clients of a running one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
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

from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import admin_pb2_grpc as admin_grpc
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from riskgate.api.server import RiskgateService
    from riskgate.config import Config
    from riskgate.store.datadir import DataDirLock
    from riskgate.store.embedded import EmbeddedRedis

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MONITOR_TARGET = "127.0.0.1:50053"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns its exit code: 0 done, 1 failed (the service refused, is
    unreachable, or could not start or stop cleanly), 2 a mistake in the command or the
    configuration, 130 interrupted, 141 output pipe closed. Errors are one line on stderr."""
    try:
        try:
            code = _dispatch(argv)
        except SystemExit as exc:  # argparse after --help or a usage mistake
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
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


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="riskgate", description="Pre-trade risk gate for perpetual futures.")
    sub = parser.add_subparsers(title="commands")

    serve = sub.add_parser("serve", help="run the service (embedded Redis unless --redis-url is given)")
    serve.add_argument("--config", help="TOML configuration (default: the bundled sample configuration)")
    serve.add_argument("--listen", help="HOST:PORT to serve gRPC on (default from config: 127.0.0.1:50051)")
    serve.add_argument("--admin-listen",
                       help="HOST:PORT of the operators' own listener (RiskAdmin, health), outside the order "
                            "port's admission limit; '' = none (env RISKGATE_ADMIN_LISTEN; sample config: "
                            "127.0.0.1:50052)")
    serve.add_argument("--redis-url", help="production Redis, e.g. redis://host:6379/0 (env RISKGATE_REDIS_URL)")
    serve.add_argument("--data-dir", help="data folder of the embedded Redis, locked while serving "
                                          "(env RISKGATE_DATA_DIR)")
    serve.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS,
                       help="DEBUG, INFO (default), WARNING, ERROR or CRITICAL")
    serve.set_defaults(handler=_serve)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--target", type=_target, default=os.environ.get("RISKGATE_TARGET") or DEFAULT_TARGET,
                             help=f"service address (default {DEFAULT_TARGET}, env RISKGATE_TARGET)")
        command.add_argument("--token", default=os.environ.get("RISKGATE_ADMIN_TOKEN", ""),
                             help="admin bearer token (env RISKGATE_ADMIN_TOKEN)")
        return command

    check = client("check", "send one order to a running service and print the decision")
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
    breaker.add_argument("--symbol", default="")
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

    monitor = sub.add_parser("monitor", help="run the monitor (rules that watch markets and act, alerts) on a "
                                             "Redis the gate uses")
    monitor.add_argument("--redis-url", help="the gate's Redis, e.g. redis://host:6379/0 (env RISKGATE_REDIS_URL)")
    monitor.add_argument("--listen", help="HOST:PORT of RiskMonitor and health (env RISKGATE_MONITOR_LISTEN; "
                                          "default from config: 127.0.0.1:50053)")
    monitor.add_argument("--config", help="TOML configuration: admin tokens, key prefix and the [monitor] rules "
                                          "(default: the bundled sample configuration)")
    monitor.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS,
                         help="DEBUG, INFO (default), WARNING, ERROR or CRITICAL")
    monitor.set_defaults(handler=_monitor)

    alerts = sub.add_parser("alerts", help="list the monitor's alerts, or acknowledge, escalate or resolve one")
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
    alerts.add_argument("--json", action="store_true", help="JSON instead of a table")
    alerts.add_argument("--target", type=_target,
                        default=os.environ.get("RISKGATE_MONITOR_TARGET") or DEFAULT_MONITOR_TARGET,
                        help=f"monitor address (default {DEFAULT_MONITOR_TARGET}, env RISKGATE_MONITOR_TARGET)")
    alerts.add_argument("--token", default=os.environ.get("RISKGATE_ADMIN_TOKEN", ""),
                        help="admin bearer token (env RISKGATE_ADMIN_TOKEN)")
    alerts.set_defaults(handler=_alerts)

    funding = sub.add_parser("funding", help="set a symbol's funding rate on the monitor, or list the rates")
    funding.add_argument("verb", nargs="?", default="list", choices=["list", "set"])
    funding.add_argument("symbol", nargs="?", default="", help="the symbol (set)")
    funding.add_argument("rate", nargs="?", default="",
                         help="per funding interval, signed (set): 0.0001 is 0.01%%, longs pay shorts")
    funding.add_argument("--interval-ms", type=_count, default=0, help="the funding interval (0 = 8 h)")
    funding.add_argument("--json", action="store_true", help="JSON instead of a table (list)")
    funding.add_argument("--target", type=_target,
                         default=os.environ.get("RISKGATE_MONITOR_TARGET") or DEFAULT_MONITOR_TARGET,
                         help=f"monitor address (default {DEFAULT_MONITOR_TARGET}, env RISKGATE_MONITOR_TARGET)")
    funding.add_argument("--token", default=os.environ.get("RISKGATE_ADMIN_TOKEN", ""),
                         help="admin bearer token (env RISKGATE_ADMIN_TOKEN)")
    funding.set_defaults(handler=_funding)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from riskgate.config import ConfigError, apply_overrides, load_config
    from riskgate.store.datadir import DataDirBusy, DataDirError, DataDirLock, refuse_if_redis_running

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = apply_overrides(load_config(args.config), args.listen, args.redis_url, args.data_dir,
                                 args.admin_listen)
    except ConfigError as exc:
        return _fail(exc, 2)
    for listen in filter(None, (config.server.listen, config.server.admin_listen)):
        if problem := _listen_syntax_problem(listen):
            return _fail(problem, 2)
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
        return asyncio.run(_Serving(config, lock).run())
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
    """One run of `riskgate serve`: bind, start the embedded Redis, start, wait for SIGTERM or
    SIGINT, stop. Nothing is written before the listener is bound, so a start that cannot
    listen leaves the data dir as it was."""

    def __init__(self, config: Config, lock: DataDirLock | None) -> None:
        self.config = config
        self.lock = lock
        self.service: RiskgateService | None = None
        self.embedded: EmbeddedRedis | None = None
        self.log = logging.getLogger("riskgate")

    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            # Stays installed until the loop closes: a second signal during shutdown is a no-op.
            loop.add_signal_handler(sig, stop.set)
        starting = asyncio.ensure_future(self._start())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                port = starting.result()  # raises what made the start fail
                admin_port = self.service.admin_port if self.service is not None else 0
                operators = (f" (operators also on {_with_port(self.config.server.admin_listen, admin_port)})"
                             if admin_port else "")
                print(f"riskgate ready on {_with_port(self.config.server.listen, port)}{operators}", flush=True)
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

    async def _stop(self) -> int:
        code = 0
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
        return code


def _monitor(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from riskgate.config import ConfigError, load_config
    from riskgate.monitor.rules import RuleError, validate_rule

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
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

    async def run(self) -> int:
        from riskgate.monitor.service import MonitorService

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        _probe_listen(self.listen)
        service = MonitorService(self.config, self.redis_url, self.listen)
        starting = asyncio.ensure_future(service.start())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                port = starting.result()
                print(f"riskgate monitor ready on {_with_port(self.listen, port)}", flush=True)
                await stopping
            else:
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
            self.log.info("stopping")
        finally:
            stopping.cancel()
            report = await service.stop()
        return 0 if report.clean else 1


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
    with _channel(args) as channel:
        stub = mpb_grpc.RiskMonitorStub(channel)
        try:
            if args.verb == "list":
                request = mpb.ListAlertsRequest(
                    state=_ALERT_STATES.get(args.state or "", 0), severity=_SEVERITIES.get(args.severity or "", 0),
                    rule_id=args.rule, symbol=args.symbol, account_id=args.account, since_ms=args.since_ms,
                    limit=args.limit)
                answer = stub.ListAlerts(request, metadata=_metadata(args), timeout=5)
                if args.json:
                    _print(answer)
                else:
                    _print_alert_table(answer)
                return 0
            method = {"ack": stub.AckAlert, "escalate": stub.EscalateAlert, "resolve": stub.ResolveAlert}[args.verb]
            _print(method(mpb.AlertActionRequest(id=args.id, note=args.note), metadata=_metadata(args), timeout=5))
        except grpc.RpcError as exc:
            print(f"riskgate: {exc.code().name}: {_one_line(exc.details())}", file=sys.stderr)  # type: ignore[attr-defined]
            return 1
    return 0


def _print_alert_table(answer: Any) -> None:
    """One line per alert, newest first: what an operator on shift scans."""
    from riskgate.v1 import monitor_pb2 as mpb

    rows = [("ID", "CREATED (UTC)", "SEVERITY", "STATE", "RULE", "SCOPE", "VALUE", "THRESHOLD", "WINDOW", "ACTION")]
    for alert in answer.alerts:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(alert.created_ms / 1000))
        scope = " ".join(filter(None, (alert.symbol, alert.account_id)))
        state = mpb.AlertState.Name(alert.state).removeprefix("ALERT_")
        if alert.cleared_ms and state != "RESOLVED":
            state += " (calm)"
        rows.append((alert.id, created, mpb.Severity.Name(alert.severity).removeprefix("SEVERITY_"), state,
                     alert.rule_id, scope, alert.value, alert.threshold, f"{alert.window_ms / 1000:g}s",
                     _one_line(alert.action_taken)[:60]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    shown = len(answer.alerts)
    if answer.total > shown:
        print(f"({shown} of {answer.total}; --limit for more)")


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
            return _call(lambda: stub.SetFundingRate(request, metadata=_metadata(args), timeout=5))
        try:
            answer = stub.ListFundingRates(mpb.ListFundingRatesRequest(), metadata=_metadata(args), timeout=5)
        except grpc.RpcError as exc:
            print(f"riskgate: {exc.code().name}: {_one_line(exc.details())}", file=sys.stderr)  # type: ignore[attr-defined]
            return 1
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
        updated = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(rate.updated_ms / 1000))
        percent = f"{fmt(Decimal(rate.rate) * 100)}%"
        rows.append((rate.symbol, rate.rate, percent, f"{rate.interval_ms / 3_600_000:g}h", str(rate.version),
                     updated, rate.updated_by))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _with_port(listen: str, port: int) -> str:
    host, _, _ = listen.rpartition(":")
    return f"{host}:{port}" if host else listen


def _channel(args: argparse.Namespace) -> grpc.Channel:
    return grpc.insecure_channel(args.target)


def _metadata(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {args.token}")] if args.token else []


def _print(message: Message) -> None:
    print(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2))


def _call(function: object) -> int:
    try:
        _print(function())  # type: ignore[operator]
    except grpc.RpcError as exc:
        print(f"riskgate: {exc.code().name}: {_one_line(exc.details())}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    return 0


def _check(args: argparse.Namespace) -> int:
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
        return _call(lambda: pb_grpc.PreTradeRiskStub(channel).CheckOrder(request, timeout=5))


def _execution(args: argparse.Namespace) -> int:
    kinds = {"fill": pb.EXECUTION_KIND_FILL, "canceled": pb.EXECUTION_KIND_CANCELED,
             "expired": pb.EXECUTION_KIND_EXPIRED, "rejected": pb.EXECUTION_KIND_REJECTED,
             "not-sent": pb.EXECUTION_KIND_NOT_SENT}
    request = pb.ExecutionReport(order_id=args.order_id, account_id=args.account, kind=kinds[args.kind],
                                 quantity=args.quantity, price=args.price,
                                 execution_id=args.execution_id or f"cli-{uuid.uuid4().hex}",
                                 sequence=args.sequence or time.time_ns())
    with _channel(args) as channel:
        return _call(lambda: pb_grpc.PreTradeRiskStub(channel).ReportExecution(request, timeout=5))


def _breaker(args: argparse.Namespace) -> int:
    with _channel(args) as channel:
        stub = admin_grpc.RiskAdminStub(channel)
        if args.state == "list":
            return _call(lambda: stub.ListCircuitBreakers(admin.ListCircuitBreakersRequest(),
                                                          metadata=_metadata(args), timeout=5))
        states = {"normal": admin.BREAKER_NORMAL, "reduce-only": admin.BREAKER_REDUCE_ONLY,
                  "halted": admin.BREAKER_HALTED}
        request = admin.CircuitBreaker(symbol=args.symbol, state=states[args.state], reason=args.reason)
        return _call(lambda: stub.SetCircuitBreaker(request, metadata=_metadata(args), timeout=5))


def _controls(args: argparse.Namespace) -> int:
    restrictions = {"none": admin.RESTRICTION_NONE, "reduce-only": admin.RESTRICTION_REDUCE_ONLY,
                    "frozen": admin.RESTRICTION_FROZEN}
    with _channel(args) as channel:
        stub = admin_grpc.RiskAdminStub(channel)
        # Read, change what was given, write back: a flag left out must not reset a limit.
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
            current = admin.AccountControls(restriction=admin.RESTRICTION_NONE)
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
        return _call(lambda: stub.SetAccountControls(request, metadata=_metadata(args), timeout=5))

def _mark(args: argparse.Namespace) -> int:
    request = admin.MarkPrice(symbol=args.symbol, price=args.price, confirmed_move=args.confirm_move)
    with _channel(args) as channel:
        return _call(lambda: admin_grpc.RiskAdminStub(channel).SetMarkPrice(
            request, metadata=_metadata(args), timeout=5))


def _account_risk(args: argparse.Namespace) -> int:
    request = admin.GetAccountRiskRequest(account_id=args.account)
    with _channel(args) as channel:
        return _call(lambda: admin_grpc.RiskAdminStub(channel).GetAccountRisk(
            request, metadata=_metadata(args), timeout=5))


def _reservations(args: argparse.Namespace) -> int:
    request = admin.ListReservationsRequest(account_id=args.account, min_age_ms=args.min_age_ms, limit=args.limit)
    with _channel(args) as channel:
        return _call(lambda: admin_grpc.RiskAdminStub(channel).ListReservations(
            request, metadata=_metadata(args), timeout=5))


def _release(args: argparse.Namespace) -> int:
    request = admin.ReleaseReservationRequest(account_id=args.account, order_id=args.order_id, reason=args.reason)
    with _channel(args) as channel:
        return _call(lambda: admin_grpc.RiskAdminStub(channel).ReleaseReservation(
            request, metadata=_metadata(args), timeout=5))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
