"""`riskgate health --target HOST:PORT [--service NAME]`: the gRPC health of a riskgate
listener (the order port, the operators' or the monitor's), for probes and the image's
HEALTHCHECK. Prints the status; exits 0 only when it is SERVING, 1 when it is anything else
or cannot be asked (one line on stderr saying why), 2 for a mistake in the command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskgate.cli import ops

DEFAULT_TIMEOUT_S = 3.0


def add_command(sub: Any, target_type: Callable[[str], str]) -> None:
    command = sub.add_parser("health", help="ask a listener's gRPC health; exit 0 only when SERVING "
                                            "(for probes and HEALTHCHECK)")
    command.add_argument("--target", type=target_type,
                         default=os.environ.get("RISKGATE_TARGET") or ops.DEFAULT_TARGET,
                         help=f"the listener (default {ops.DEFAULT_TARGET}, env RISKGATE_TARGET)")
    command.add_argument("--service", default="",
                         help="the service name to ask about, e.g. riskgate.v1.PreTradeRisk (default '': the "
                              "process as a whole)")
    command.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for the answer")
    ops.add_client_flags(command)
    command.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.timeout < 1e6:
        print("riskgate health: --timeout must be a positive number of seconds", file=sys.stderr)
        return 2
    try:
        channel = ops.channel(args)
    except ValueError as exc:  # TlsError: a file that cannot be used
        print(f"riskgate health: {exc}", file=sys.stderr)
        return 2
    with channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            details = " ".join((exc.details() or "").split())  # type: ignore[attr-defined]
            if code == grpc.StatusCode.NOT_FOUND:
                print(f"riskgate health: {args.target} knows no service {args.service!r}", file=sys.stderr)
            else:
                print(f"riskgate health: {args.target}: {code.name}: {details}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(status)
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1
