"""What `riskgate serve` and `riskgate monitor` take to be operable (log format, TLS, the
shutdown bound, --production) and what the client verbs take to reach a TLS listener; kept
here so that main.py only registers them."""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from riskgate import logs

if TYPE_CHECKING:
    from riskgate.config import Config

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_ADMIN_TARGET = "127.0.0.1:50052"
# Client verbs of the order port; every other verb of the gate is RiskAdmin's (the admin port).
ORDER_VERBS = frozenset({"check", "execution"})
# Exit code of a start refused for its configuration (as every other configuration mistake).
EXIT_CONFIG = 2
# Exit code when a stop was not clean (work unfinished) or the shutdown bound was hit.
EXIT_UNCLEAN = 1
# How long before the shutdown bound the watchdog ends the process: time to say so and exit.
WATCHDOG_MARGIN_S = 0.5

log = logging.getLogger("riskgate")


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A positive number of seconds (argparse type), as the flags that bound a wait take it."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < 1e9:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def add_log_format(command: argparse.ArgumentParser) -> None:
    command.add_argument("--log-format", choices=logs.FORMATS, default=os.environ.get("RISKGATE_LOG_FORMAT", "auto"),
                         help="json lines, text, or auto (default: json unless stderr is a terminal; "
                              "env RISKGATE_LOG_FORMAT)")


def _add_listener_tls(command: argparse.ArgumentParser) -> None:
    command.add_argument("--tls-cert", help="PEM certificate (chain) of the listeners: TLS on (with --tls-key)")
    command.add_argument("--tls-key", help="PEM private key of --tls-cert")
    command.add_argument("--production", action="store_true",
                         help="refuse to start with the demo tokens of the sample configuration, or (serve) the "
                              f"embedded Redis (exit {EXIT_CONFIG})")


def add_serve_flags(serve: argparse.ArgumentParser) -> None:
    add_log_format(serve)
    serve.add_argument("--log-decisions-sample", type=_ratio, metavar="RATIO",
                       help="log this fraction of order decisions, one line each (default from config: 0 = none)")
    _add_listener_tls(serve)
    serve.add_argument("--client-ca", help="PEM CA: the order port requires client certificates it signed (mTLS)")
    serve.add_argument("--shutdown-timeout", type=seconds, metavar="SECONDS",
                       help="after SIGTERM/SIGINT the process exits within this long whatever its tasks do "
                            "(default from config: 10)")


def add_monitor_flags(monitor: argparse.ArgumentParser) -> None:
    add_log_format(monitor)
    _add_listener_tls(monitor)


def add_client_flags(command: argparse.ArgumentParser) -> None:
    """TLS of a client verb's channel (env RISKGATE_TLS_CA, RISKGATE_TLS_CERT, RISKGATE_TLS_KEY)."""
    command.add_argument("--tls-ca", default=os.environ.get("RISKGATE_TLS_CA", ""),
                         help="connect with TLS, verifying the service by this PEM CA (env RISKGATE_TLS_CA)")
    command.add_argument("--tls", action="store_true", help="connect with TLS, verifying by the system's CAs")
    command.add_argument("--tls-cert", default=os.environ.get("RISKGATE_TLS_CERT", ""),
                         help="client certificate, for an order port that requires one (mTLS)")
    command.add_argument("--tls-key", default=os.environ.get("RISKGATE_TLS_KEY", ""),
                         help="the client certificate's key")
    command.add_argument("--tls-server-name", default="",
                         help="the name the service's certificate must carry, when not the target's host")


def default_target(verb: str) -> tuple[str, str]:
    """(default, help) of --target for a client verb of the gate."""
    if verb in ORDER_VERBS:
        return (os.environ.get("RISKGATE_TARGET") or DEFAULT_TARGET,
                f"the order port (default {DEFAULT_TARGET}, env RISKGATE_TARGET)")
    return (os.environ.get("RISKGATE_ADMIN_TARGET") or DEFAULT_ADMIN_TARGET,
            f"the operators' listener (default {DEFAULT_ADMIN_TARGET}, env RISKGATE_ADMIN_TARGET)")


def channel(args: argparse.Namespace) -> grpc.Channel:
    """The channel of a client verb: TLS when any TLS flag is given, plaintext otherwise."""
    ca, cert, key = (getattr(args, name, "") or "" for name in ("tls_ca", "tls_cert", "tls_key"))
    if not (ca or cert or key or getattr(args, "tls", False)):
        return grpc.insecure_channel(args.target)
    from riskgate.api.tls import TlsError, channel_credentials

    options = [("grpc.ssl_target_name_override", args.tls_server_name)] if getattr(args, "tls_server_name", "") \
        else []
    try:
        credentials = channel_credentials(ca, cert, key)
    except TlsError as exc:  # a mistake in the command: one line, exit 2
        print(f"riskgate: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    return grpc.secure_channel(args.target, credentials, options=options)


def configure_logging(args: argparse.Namespace) -> None:
    logs.configure(getattr(args, "log_format", "auto"), args.log_level)


def apply(config: Config, args: argparse.Namespace) -> Config:
    """Flags over the file: TLS, decision sampling, the shutdown bound. Raises ConfigError."""
    from riskgate.config import ConfigError

    server = config.server
    for flag, field in (("tls_cert", "tls_cert"), ("tls_key", "tls_key"), ("client_ca", "client_ca"),
                        ("log_decisions_sample", "log_decisions_sample"), ("shutdown_timeout", "shutdown_timeout_s")):
        value = getattr(args, flag, None)
        if value is not None:
            setattr(server, field, value)
    if server.shutdown_grace_s >= server.shutdown_timeout_s:
        # A short bound given on the command line: the grace fits inside it.
        server.shutdown_grace_s = server.shutdown_timeout_s / 4
    try:
        server.__post_init__()
        _check_tls(server.tls_cert, server.tls_key, server.client_ca)
    except ValueError as exc:  # TlsError included
        raise ConfigError(str(exc)) from None
    return config


def _check_tls(cert: str, key: str, client_ca: str = "") -> None:
    """The files are read now, so a start that cannot use them starts nothing."""
    from riskgate.api.tls import server_credentials

    server_credentials(cert, key, client_ca)


def apply_monitor(config: Config, args: argparse.Namespace) -> Config:
    from riskgate.config import ConfigError

    monitor = config.monitor
    monitor.tls_cert = args.tls_cert or monitor.tls_cert
    monitor.tls_key = args.tls_key or monitor.tls_key
    try:
        _check_tls(monitor.tls_cert or config.server.tls_cert, monitor.tls_key or config.server.tls_key)
    except ValueError as exc:
        raise ConfigError(f"monitor: {exc}") from None
    return config


# ---- demo tokens and --production --------------------------------------------------------


def demo_token_hashes() -> frozenset[str]:
    """The token hashes of the bundled sample configuration (whose secrets are public)."""
    from riskgate.config import load_config

    return frozenset(token.token_sha256.lower() for token in load_config(None).admin_tokens)


def is_loopback(listen: str) -> bool:
    """Whether a listen address is reachable from this host only."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return True
    host, _, _ = listen.rpartition(":")
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name, or '' / 0.0.0.0 / [::] (every interface)


def check_production(config: Config, listens: list[str], production: bool, embedded_redis: bool,
                     process: str = "riskgate") -> str | None:
    """A refusal (one line) under --production, else None. Without --production, the demo
    tokens on a listener other hosts can reach are a loud WARNING."""
    demo = sorted(t.name for t in config.admin_tokens if t.token_sha256.lower() in demo_token_hashes())
    if production:
        if demo:
            return (f"--production: the demo admin tokens of the sample configuration are configured "
                    f"({', '.join(demo)}): their secrets are public; configure your own [[admin_tokens]]")
        if embedded_redis:
            return "--production: the embedded Redis is for the demo; give the production Redis (--redis-url)"
        return None
    exposed = [listen for listen in listens if listen and not is_loopback(listen)]
    if demo and exposed:
        logs.event(log, logging.WARNING,
                   "!!! DEMO ADMIN TOKENS (%s) ARE CONFIGURED ON %s, REACHABLE FROM OTHER HOSTS: their secrets are "
                   "public, so anyone who can connect can change risk controls. Replace them (and start with "
                   "--production to make this a refusal). !!!", ", ".join(demo), ", ".join(exposed),
                   event="demo_tokens_exposed", tokens=demo, listeners=exposed, component=process)
    return None


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# ---- the shutdown bound ------------------------------------------------------------------


def stop_requested(stop: Any, watchdog: ExitWatchdog, sig: int) -> None:
    """The handler of SIGTERM and SIGINT: the stop begins, bounded by the watchdog. A second
    signal changes nothing."""
    if not stop.is_set():
        name = getattr(sig, "name", str(sig))
        logs.event(log, logging.INFO, "%s: stopping (exit within %.1f s)", name, watchdog.bound_s,
                   event="stop_requested", signal=name, bound_s=watchdog.bound_s)
    stop.set()
    watchdog.arm()


def stopped(watchdog: ExitWatchdog, began: float, code: int) -> None:
    """The last line of a stop: how long from the signal (or from the stop's start) and the exit code."""
    watchdog.disarm()
    if not watchdog.ready and watchdog.armed_at is None:
        return  # a start that failed: its one error line says it all
    now = time.monotonic()
    since = watchdog.armed_at if watchdog.armed_at is not None else began
    logs.event(log, logging.INFO if code == 0 else logging.ERROR, "shutdown %s in %.3f s (exit code %d)",
               "complete" if code == 0 else "not clean", now - since, code, event="shutdown", exit_code=code,
               shutdown_s=round(now - since, 3), stop_s=round(now - began, 3))


class ExitWatchdog:
    """Ends the process within the shutdown bound whatever its tasks do: armed when a stop is
    asked for; if the process has not exited WATCHDOG_MARGIN_S before the bound, it says so in
    one line, runs `last` (bounded by the caller: e.g. stop the embedded Redis), and exits
    with EXIT_UNCLEAN."""

    def __init__(self, bound_s: float, last: Callable[[], Any] | None = None) -> None:
        self.bound_s = bound_s
        self.last = last
        self.armed_at: float | None = None
        self.ready = False  # set once the process said it is ready
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is not None:
            return
        self.armed_at = time.monotonic()
        self._timer = threading.Timer(max(0.1, self.bound_s - WATCHDOG_MARGIN_S), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        try:
            logs.event(log, logging.CRITICAL, "shutdown did not finish within its bound of %.1f s: exiting now",
                       self.bound_s, event="shutdown_timeout", bound_s=self.bound_s)
            if self.last is not None:
                self.last()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
        finally:
            os._exit(EXIT_UNCLEAN)
