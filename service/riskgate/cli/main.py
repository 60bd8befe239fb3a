"""`riskgate serve` runs the service; the other commands are clients of a running one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import uuid
from collections.abc import Sequence

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import admin_pb2_grpc as admin_grpc
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc

DEFAULT_TARGET = "127.0.0.1:50051"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    return int(args.handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskgate", description="Pre-trade risk gate for perpetual futures.")
    sub = parser.add_subparsers(title="commands")

    serve = sub.add_parser("serve", help="run the service (embedded Redis unless --redis-url is given)")
    serve.add_argument("--config", help="TOML configuration (default: the bundled sample configuration)")
    serve.add_argument("--listen", help="HOST:PORT to serve gRPC on (default from config: 127.0.0.1:50051)")
    serve.add_argument("--redis-url", help="production Redis, e.g. redis://host:6379/0 (env RISKGATE_REDIS_URL)")
    serve.add_argument("--data-dir", help="data folder of the embedded Redis (env RISKGATE_DATA_DIR)")
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(handler=_serve)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--target", default=os.environ.get("RISKGATE_TARGET", DEFAULT_TARGET),
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
    check.add_argument("--leverage", type=int, default=0, help="0 = the account's current leverage")
    check.add_argument("--reduce-only", action="store_true")
    check.add_argument("--order-id", default="", help="default: a fresh uuid")
    check.set_defaults(handler=_check)

    execution = client("execution", "report a fill, cancel, expiry or reject of an accepted order")
    execution.add_argument("kind", choices=["fill", "canceled", "expired", "rejected"])
    execution.add_argument("--account", required=True)
    execution.add_argument("--order-id", required=True)
    execution.add_argument("--quantity", default="")
    execution.add_argument("--price", default="")
    execution.set_defaults(handler=_execution)

    breaker = client("breaker", "set a circuit breaker (symbol '' = the platform) or list them")
    breaker.add_argument("state", choices=["normal", "reduce-only", "halted", "list"])
    breaker.add_argument("--symbol", default="")
    breaker.add_argument("--reason", default="")
    breaker.set_defaults(handler=_breaker)

    controls = client("controls", "change an account's controls; fields not given keep their current value")
    controls.add_argument("--account", required=True)
    controls.add_argument("--restriction", choices=["none", "reduce-only", "frozen"])
    controls.add_argument("--kyc-level", type=int)
    controls.add_argument("--qualified", choices=["yes", "no"])
    controls.add_argument("--max-leverage", type=int, help="0 = no account cap")
    controls.add_argument("--max-orders-per-second", type=int, help="0 = the service default")
    controls.add_argument("--max-gross-notional", help="'' = no limit")
    controls.add_argument("--create", action="store_true",
                          help="the account has no controls yet: start from the defaults")
    controls.set_defaults(handler=_controls)

    mark = client("mark", "set a symbol's mark price")
    mark.add_argument("symbol")
    mark.add_argument("price")
    mark.set_defaults(handler=_mark)

    risk = client("account-risk", "show an account's balance, positions and margin")
    risk.add_argument("account")
    risk.set_defaults(handler=_account_risk)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from riskgate.api.server import RiskgateService
    from riskgate.config import ConfigError, apply_overrides, load_config
    from riskgate.store.embedded import EmbeddedRedis

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = apply_overrides(load_config(args.config), args.listen, args.redis_url, args.data_dir)
    except ConfigError as exc:
        print(f"riskgate: {exc}", file=sys.stderr)
        return 2
    embedded = None
    redis_url = config.server.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(config.server.data_dir).start()
        redis_url = embedded.url
        logging.getLogger("riskgate").info("embedded redis-server on %s, data in %s", redis_url, embedded.data_dir)

    async def run() -> None:
        service = RiskgateService(config, redis_url)
        await service.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"riskgate ready on {config.server.listen}", flush=True)
        await stop.wait()
        await service.stop()

    if config.server.event_loop == "uvloop":
        import uvloop

        uvloop.install()
    try:
        asyncio.run(run())
    except (ValueError, RuntimeError, OSError, RedisError) as exc:
        print(f"riskgate: {exc}", file=sys.stderr)
        return 1
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


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
        print(f"riskgate: {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
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
             "expired": pb.EXECUTION_KIND_EXPIRED, "rejected": pb.EXECUTION_KIND_REJECTED}
    request = pb.ExecutionReport(order_id=args.order_id, account_id=args.account, kind=kinds[args.kind],
                                 quantity=args.quantity, price=args.price)
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
                print(f"riskgate: {exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
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
    request = admin.MarkPrice(symbol=args.symbol, price=args.price)
    with _channel(args) as channel:
        return _call(lambda: admin_grpc.RiskAdminStub(channel).SetMarkPrice(
            request, metadata=_metadata(args), timeout=5))


def _account_risk(args: argparse.Namespace) -> int:
    request = admin.GetAccountRiskRequest(account_id=args.account)
    with _channel(args) as channel:
        return _call(lambda: admin_grpc.RiskAdminStub(channel).GetAccountRisk(
            request, metadata=_metadata(args), timeout=5))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
