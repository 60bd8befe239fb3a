"""Builders and a client harness for tests over the real gRPC server and a real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

import grpc

from riskgate.api.server import RiskgateService
from riskgate.config import AdminToken, Config, ServerConfig
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import admin_pb2_grpc as admin_grpc
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc

ADMIN_TOKEN = "test-admin-token"
OPERATOR_TOKEN = "test-operator-token"
VIEWER_TOKEN = "test-viewer-token"

# Binance USD-M BTCUSDT brackets from the reference: (cap, max leverage, MMR).
BTC_TIERS: Sequence[tuple[str, int, str]] = (
    ("50000", 125, "0.004"), ("250000", 100, "0.005"), ("1000000", 50, "0.01"), ("7500000", 20, "0.025"),
    ("40000000", 10, "0.05"), ("100000000", 5, "0.10"), ("200000000", 4, "0.125"), ("400000000", 3, "0.15"),
    ("600000000", 2, "0.25"), ("1000000000", 1, "0.50"),
)


# The matching engine's execution sequence, shared by every client of a test run.
SEQUENCES = itertools.count(1)


def test_config(**server: object) -> Config:
    tokens = [
        AdminToken(name="test-admin", token_sha256=hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(), roles=["admin"]),
        AdminToken(name="test-operator", token_sha256=hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest(),
                   roles=["operator"]),
        AdminToken(name="test-viewer", token_sha256=hashlib.sha256(VIEWER_TOKEN.encode()).hexdigest(),
                   roles=["viewer"]),
    ]
    # RiskAdmin is served on the operators' listener only: an ephemeral port of its own. No
    # metrics listener unless a test asks for one (tests run many services at once).
    settings = {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "default_max_orders_per_second": 100_000,
                "metrics_listen": "", **server}
    return Config(server=ServerConfig(**settings), admin_tokens=tokens)  # type: ignore[arg-type]


test_config.__test__ = False  # type: ignore[attr-defined]  # a builder, not a test


def symbol_spec(symbol: str = "BTCUSDT", tiers: Sequence[tuple[str, int, str]] = BTC_TIERS, **fields: object
                ) -> admin.SymbolSpec:
    values: dict[str, object] = {
        "symbol": symbol,
        "tick_size": "0.1",
        "lot_size": "0.001",
        "min_quantity": "0.001",
        "max_quantity": "1000",
        "min_notional": "5",
        "max_order_notional": "100000000",
        "price_band": "0.05",
        "taker_fee_rate": "0",
        "mark_price_max_age_ms": 60_000,
    }
    values.update(fields)
    spec = admin.SymbolSpec(**values)  # type: ignore[arg-type]
    spec.tiers.extend(admin.Tier(notional_cap=c, max_leverage=lev, maintenance_margin_rate=m) for c, lev, m in tiers)
    return spec


class Client:
    """A gateway (the order port) + operator (the operators' listener, admin_port) talking to
    one service over loopback gRPC."""

    def __init__(self, port: int, admin_port: int = 0) -> None:
        self.target = f"127.0.0.1:{port}"
        self.channel = grpc.aio.insecure_channel(self.target)
        self.pretrade = pb_grpc.PreTradeRiskStub(self.channel)
        # The order port does not serve RiskAdmin: without an admin port, admin calls are
        # UNIMPLEMENTED (which is what tests of that separation want to see).
        self.admin_target = f"127.0.0.1:{admin_port}" if admin_port else self.target
        self.admin_channel = grpc.aio.insecure_channel(self.admin_target) if admin_port else self.channel
        self.admin = admin_grpc.RiskAdminStub(self.admin_channel)
        self._ids = itertools.count(1)

    @classmethod
    def of(cls, service: RiskgateService) -> Client:
        """A client of a started service: its order port and its operators' listener."""
        return cls(service.port, service.admin_port)

    async def close(self) -> None:
        await self.channel.close()
        if self.admin_channel is not self.channel:
            await self.admin_channel.close()

    @staticmethod
    def auth(token: str = ADMIN_TOKEN) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {token}")]

    async def upsert_symbol(self, spec: admin.SymbolSpec | None = None, mark: str | None = None, **fields: object
                            ) -> admin.SymbolSpec:
        stored = await self.admin.UpsertSymbol(spec or symbol_spec(**fields), metadata=self.auth())
        if mark is not None:
            await self.set_mark(stored.symbol, mark)
        return stored

    async def set_mark(self, symbol: str, price: str, confirmed: bool = False) -> admin.MarkPrice:
        """confirmed: the move is real even beyond the symbol's max_mark_move (a scenario's
        jump to another price level, not a test of the bound)."""
        return await self.admin.SetMarkPrice(admin.MarkPrice(symbol=symbol, price=price, confirmed_move=confirmed),
                                             metadata=self.auth())

    async def upsert_account(self, account_id: str, balance: str,
                             positions: Sequence[tuple[str, str, str, int]] = (), cutoff_sequence: int = 0,
                             includes_all_fills: bool = True) -> admin.AccountState:
        """An operator's snapshot "as of now" unless a clearing cut-off is given."""
        state = admin.AccountState(account_id=account_id, balance=balance, positions=[
            admin.Position(symbol=s, quantity=q, entry_price=e, leverage=lev) for s, q, e, lev in positions],
            cutoff_sequence=cutoff_sequence, includes_all_fills=includes_all_fills and not cutoff_sequence)
        return await self.admin.UpsertAccount(state, metadata=self.auth())

    async def set_controls(self, account_id: str, **fields: object) -> admin.AccountControls:
        values: dict[str, object] = {"restriction": admin.RESTRICTION_NONE, "kyc_level": 5,
                                     "qualified_investor": True}
        values.update(fields)
        return await self.admin.SetAccountControls(admin.AccountControls(account_id=account_id, **values),
                                                   metadata=self.auth())

    async def set_breaker(self, state: int, symbol: str = "", reason: str = "test") -> admin.CircuitBreaker:
        return await self.admin.SetCircuitBreaker(admin.CircuitBreaker(symbol=symbol, state=state, reason=reason),
                                                  metadata=self.auth())

    def request(self, account: str = "acct-1", symbol: str = "BTCUSDT", side: str = "buy", quantity: str = "1",
                price: str | None = "50000", leverage: int = 10, reduce_only: bool = False,
                order_id: str | None = None, order_type: int | None = None) -> pb.CheckOrderRequest:
        return pb.CheckOrderRequest(
            order_id=order_id or f"ord-{next(self._ids)}",
            account_id=account,
            symbol=symbol,
            side=pb.SIDE_BUY if side == "buy" else pb.SIDE_SELL,
            order_type=order_type or (pb.ORDER_TYPE_LIMIT if price is not None else pb.ORDER_TYPE_MARKET),
            quantity=quantity,
            price=price or "",
            leverage=leverage,
            reduce_only=reduce_only,
        )

    async def check(self, **kwargs: object) -> pb.CheckOrderResponse:
        return await self.pretrade.CheckOrder(self.request(**kwargs))  # type: ignore[arg-type]

    async def fill(self, account: str, order_id: str, quantity: str, price: str, execution_id: str | None = None,
                   sequence: int = 0, **fields: object) -> pb.ExecutionAck:
        """A fill with a fresh execution id unless one is given (the same id again = a retry)."""
        return await self.pretrade.ReportExecution(pb.ExecutionReport(
            order_id=order_id, account_id=account, kind=pb.EXECUTION_KIND_FILL, quantity=quantity, price=price,
            execution_id=execution_id or f"exec-{uuid.uuid4().hex[:12]}", sequence=sequence or next(SEQUENCES),
            **fields))

    async def close_order(self, account: str, order_id: str, kind: int = pb.EXECUTION_KIND_CANCELED
                          ) -> pb.ExecutionAck:
        return await self.pretrade.ReportExecution(pb.ExecutionReport(order_id=order_id, account_id=account,
                                                                      kind=kind))

    async def risk(self, account: str) -> admin.AccountRisk:
        return await self.admin.GetAccountRisk(admin.GetAccountRiskRequest(account_id=account),
                                               metadata=self.auth(VIEWER_TOKEN))

    async def trader(self, account: str = "acct-1", balance: str = "100000",
                     positions: Sequence[tuple[str, str, str, int]] = (), **controls: object) -> None:
        """An account with generous controls (KYC 5, qualified) unless overridden."""
        await self.upsert_account(account, balance, positions)
        await self.set_controls(account, **controls)


def codes(response: pb.CheckOrderResponse) -> list[str]:
    return [pb.ReasonCode.Name(r.code) for r in response.reasons]


def decision(response: pb.CheckOrderResponse) -> str:
    return pb.Decision.Name(response.decision)


def dec(text: str) -> Decimal:
    return Decimal(text)


async def eventually(probe: Callable[[], Awaitable[object]], timeout_s: float = 5.0) -> bool:
    """Whether probe() turns truthy within timeout_s, asked every 20 ms (a bound, not a timing claim)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await probe():
            return True
        await asyncio.sleep(0.02)
    return bool(await probe())
