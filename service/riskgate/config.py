"""The configuration file (TOML): server settings, admin tokens, and seed state.

Seed symbols, accounts and marks are written to Redis at start only where Redis has none
yet: Redis stays the source of truth once it holds a record.
"""

from __future__ import annotations

import os
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec

from riskgate.book.specs import SymbolSpec
from riskgate.monitor.rules import Rule, default_rules

SAMPLE_CONFIG = "sample_config.toml"


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True):
    listen: str = "127.0.0.1:50051"
    # Empty: start the embedded redis-server with its data in data_dir.
    redis_url: str = ""
    data_dir: str = ".riskgate-data"
    key_prefix: str = "rg"
    # Fail closed once Redis has been unreachable for longer than this.
    redis_stale_after_ms: int = 1000
    default_max_orders_per_second: int = 100
    duplicate_window_seconds: float = 300.0
    # Execution ids applied are remembered this long (durably) so a retried report is never
    # applied twice; longer while clearing's next snapshot may still need the fill.
    execution_id_window_seconds: float = 3600.0
    # Fills without an execution_id and a sequence are refused (INVALID_ARGUMENT): without the
    # id a retried partial fill cannot be told from a new one, without the sequence clearing's
    # snapshot cannot say whether it includes the fill. false = compatibility (old feeds).
    require_execution_id: bool = True
    shard_index: int = 0
    shard_count: int = 1
    audit_stream_maxlen: int = 1_000_000
    # Entries kept (approximately) in the account-event stream the monitor follows.
    account_events_maxlen: int = 1_000_000
    # Entries kept (approximately) in the order-flow stream the monitor follows (one per
    # write-behind batch with any order flow).
    order_flow_maxlen: int = 1_000_000
    # Entries kept (approximately) in the change stream (every published change: admin changes,
    # marks, the monitor's actions): a gate back from a lost link resumes from it instead of
    # reloading the book, if it was away for less than what the cap holds.
    change_stream_maxlen: int = 300_000
    # false: every reconnect reloads the whole book instead of resuming from the change stream
    # (while older processes, which do not append to it, still write: a rolling upgrade).
    resume_from_change_stream: bool = True
    # Days each UTC day's decision counts (`decision_counts:<YYYY-MM-DD>`, for the daily risk
    # report) are kept after the last batch that added to them.
    decision_counts_retention_days: int = 35
    # Reservations and fills are written to Redis in batches at most this far apart.
    write_behind_ms: float = 5.0
    # "uvloop" or "asyncio": the event loop `riskgate serve` runs on.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # Calls in progress at once (a stream counts as one); past it, RESOURCE_EXHAUSTED at once
    # rather than a queue that grows until callers time out. 0 = unbounded.
    max_concurrent_rpcs: int = 256
    # HOST:PORT of the operators' listener: RiskAdmin, health and reflection, outside that limit,
    # so order traffic cannot lock operators out. The order port never serves RiskAdmin; empty =
    # no operators' listener at all (RiskAdmin not served).
    admin_listen: str = "127.0.0.1:50052"
    # TLS for both listeners (PEM files; both or neither). client_ca: the order port requires
    # client certificates signed by it (mTLS for the gateway); the operators' listener relies on
    # bearer tokens and does not ask for one.
    tls_cert: str = ""
    tls_key: str = ""
    client_ca: str = ""
    # A stop lets calls in flight finish this long, and the whole process exits within
    # shutdown_timeout_s of the signal whatever its tasks do.
    shutdown_grace_s: float = 1.0
    shutdown_timeout_s: float = 10.0
    # The fraction of order checks logged one line each (0 = none; 1 = every one).
    log_decisions_sample: float = 0.0
    # HOST:PORT serving Prometheus text at /metrics (port 0: any free port); "" = none.
    metrics_listen: str = "127.0.0.1:9464"
    # Share of checks traced (spans exported only with OTLP configured); 0 = none.
    trace_check_sample_ratio: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.log_decisions_sample <= 1:
            raise ValueError("server.log_decisions_sample must be between 0 and 1")
        if not 0 < self.shutdown_timeout_s < 1e6 or not 0 <= self.shutdown_grace_s < self.shutdown_timeout_s:
            raise ValueError("server.shutdown_timeout_s must be > 0 and server.shutdown_grace_s in [0, it)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("server.tls_cert and server.tls_key go together")
        if self.client_ca and not self.tls_cert:
            raise ValueError("server.client_ca (mTLS) needs server.tls_cert and server.tls_key")
        if not 0.0 <= self.trace_check_sample_ratio <= 1.0:
            raise ValueError("server.trace_check_sample_ratio must be in [0, 1]")


class AdminToken(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    # Hex SHA-256 of the bearer token: the file never holds the secret itself.
    token_sha256: str
    roles: list[str]


class PositionSeed(msgspec.Struct, forbid_unknown_fields=True):
    symbol: str
    quantity: Decimal
    entry_price: Decimal
    leverage: int


class AccountSeed(msgspec.Struct, forbid_unknown_fields=True):
    account_id: str
    balance: Decimal
    positions: list[PositionSeed] = []
    restriction: Literal["NONE", "REDUCE_ONLY", "FROZEN"] = "NONE"
    kyc_level: int = 0
    qualified_investor: bool = False
    max_leverage: int = 0
    max_orders_per_second: int = 0
    max_gross_notional: Decimal | None = None


class MarkSeed(msgspec.Struct, forbid_unknown_fields=True):
    symbol: str
    price: Decimal


class MonitorConfig(msgspec.Struct, forbid_unknown_fields=True):
    """`riskgate monitor`: its listener, its lease, and the rules it seeds into Redis (where
    Redis has no rule of that id yet; after that Redis is the truth and UpsertRule changes it)."""

    listen: str = "127.0.0.1:50053"
    # HOST:PORT serving the monitor's Prometheus text at /metrics; "" = none.
    metrics_listen: str = "127.0.0.1:9465"
    # One monitor acts (holds the lease); the others take over once it lapses.
    lease_ms: int = 2000
    renew_ms: int = 500
    # How often rules that are not calm yet are evaluated between mark ticks.
    evaluate_ms: int = 250
    # Mark history (what VaR, backtests and historical stress read): minute bars kept this
    # long, daily closes this many days, written to Redis this often.
    mark_bar_retention_minutes: int = 10_080
    mark_daily_retention_days: int = 3_650
    mark_bar_flush_ms: int = 1_000
    rules: list[Rule] = msgspec.field(default_factory=default_rules)
    # TLS of the monitor's listener; empty = the [server] ones.
    tls_cert: str = ""
    tls_key: str = ""

    def __post_init__(self) -> None:
        for name in ("mark_bar_retention_minutes", "mark_daily_retention_days", "mark_bar_flush_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"monitor.{name} must be > 0")


class Config(msgspec.Struct, forbid_unknown_fields=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    monitor: MonitorConfig = msgspec.field(default_factory=MonitorConfig)
    admin_tokens: list[AdminToken] = []
    symbols: list[SymbolSpec] = []
    accounts: list[AccountSeed] = []
    marks: list[MarkSeed] = []


class ConfigError(ValueError):
    pass


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Reads the file at path, or the bundled sample configuration when path is None."""
    if path is None:
        text = resources.files("riskgate").joinpath(SAMPLE_CONFIG).read_bytes()
        origin = "bundled sample configuration"
    else:
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
        origin = str(path)
    try:
        return msgspec.toml.decode(text, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from exc


def apply_overrides(config: Config, listen: str | None, redis_url: str | None, data_dir: str | None,
                    admin_listen: str | None = None, metrics_listen: str | None = None) -> Config:
    """Flags win over the environment, which wins over the file."""
    server = config.server
    chosen_metrics = metrics_listen if metrics_listen is not None else os.environ.get("RISKGATE_METRICS_LISTEN")
    server.metrics_listen = server.metrics_listen if chosen_metrics is None else chosen_metrics
    server.listen = listen or os.environ.get("RISKGATE_LISTEN") or server.listen
    chosen = admin_listen if admin_listen is not None else os.environ.get("RISKGATE_ADMIN_LISTEN")
    server.admin_listen = server.admin_listen if chosen is None else chosen
    server.redis_url = redis_url or os.environ.get("RISKGATE_REDIS_URL") or server.redis_url
    server.data_dir = data_dir or os.environ.get("RISKGATE_DATA_DIR") or server.data_dir
    return config


def apply_shard_overrides(config: Config, shard_index: int | None, shard_count: int | None) -> Config:
    """`--shard-index` / `--shard-count` (then RISKGATE_SHARD_INDEX / RISKGATE_SHARD_COUNT) win
    over the file, so one configuration serves every shard: a StatefulSet passes each pod its
    ordinal. Raises ConfigError unless 0 <= shard_index < shard_count."""
    server = config.server
    for name, given in (("shard_index", shard_index), ("shard_count", shard_count)):
        if given is None:
            env_name = f"RISKGATE_{name.upper()}"
            text = os.environ.get(env_name, "").strip()
            if not text:
                continue
            try:
                given = int(text)
            except ValueError:
                raise ConfigError(f"{env_name}: expected a whole number, got {text!r}") from None
        setattr(server, name, given)
    if server.shard_count < 1:
        raise ConfigError(f"shard_count must be at least 1, got {server.shard_count}")
    if not 0 <= server.shard_index < server.shard_count:
        raise ConfigError(f"shard_index must be in [0, shard_count) = [0, {server.shard_count}), "
                          f"got {server.shard_index}")
    return config
