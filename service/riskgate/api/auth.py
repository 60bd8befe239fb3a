"""Bearer-token authentication and role-based authorisation of admin calls."""

from __future__ import annotations

import hashlib
import hmac

import grpc

from riskgate.config import AdminToken

# Which roles may call which RiskAdmin method.
PERMISSIONS: dict[str, frozenset[str]] = {
    "UpsertSymbol": frozenset({"admin"}),
    "UpsertAccount": frozenset({"admin", "clearing"}),
    "SetMarkPrice": frozenset({"admin", "operator", "market_data"}),
    # The mark feed (a stream of ticks): the market-data service, or an admin.
    "PublishMarks": frozenset({"admin", "market_data"}),
    "SetCircuitBreaker": frozenset({"admin", "operator"}),
    "SetAccountControls": frozenset({"admin", "operator"}),
    "ListCircuitBreakers": frozenset({"admin", "operator", "viewer"}),
    "GetAccountRisk": frozenset({"admin", "operator", "viewer"}),
    "ListReservations": frozenset({"admin", "operator", "viewer"}),
    "ReleaseReservation": frozenset({"admin", "operator"}),
    "GetSymbol": frozenset({"admin", "operator", "viewer"}),
    "ListSymbols": frozenset({"admin", "operator", "viewer"}),
    # Money: as UpsertAccount, without clearing (clearing sends whole snapshots).
    "AdjustBalance": frozenset({"admin"}),
    # The audit trail names who did what: operators and admins, not viewers.
    "ListAuditEvents": frozenset({"admin", "operator"}),
    # RiskMonitor (the `riskgate monitor` process, same tokens).
    "ListAlerts": frozenset({"admin", "operator", "viewer"}),
    "AckAlert": frozenset({"admin", "operator"}),
    "EscalateAlert": frozenset({"admin", "operator"}),
    "ResolveAlert": frozenset({"admin", "operator"}),
    "ListRules": frozenset({"admin", "operator", "viewer"}),
    "UpsertRule": frozenset({"admin"}),
    "GetMonitorStatus": frozenset({"admin", "operator", "viewer"}),
    "SetFundingRate": frozenset({"admin"}),
    "ListFundingRates": frozenset({"admin", "operator", "viewer"}),
    "SetAccountGroup": frozenset({"admin"}),
    "ListAccountGroups": frozenset({"admin", "operator", "viewer"}),
    # ADL ranking and liquidation risk (reads).
    "GetAdlRanking": frozenset({"admin", "operator", "viewer"}),
    "GetLiquidationRisk": frozenset({"admin", "operator", "viewer"}),
    # ---- Stress tests and the insurance fund ----
    "SetInsuranceFund": frozenset({"admin"}),
    "GetInsuranceFund": frozenset({"admin", "operator", "viewer"}),
    "RunStressTest": frozenset({"admin", "operator", "viewer"}),
    # ---- Mark history, value at risk, the daily report ----
    "ImportMarkHistory": frozenset({"admin"}),
    "GetMarkHistory": frozenset({"admin", "operator", "viewer"}),
    "GetValueAtRisk": frozenset({"admin", "operator", "viewer"}),
    "BacktestVaR": frozenset({"admin", "operator", "viewer"}),
    "GetDailyReport": frozenset({"admin", "operator", "viewer"}),
}
KNOWN_ROLES = frozenset().union(*PERMISSIONS.values())


class Principal:
    __slots__ = ("name", "roles")

    def __init__(self, name: str, roles: frozenset[str]) -> None:
        self.name = name
        self.roles = roles


class AuthError(Exception):
    def __init__(self, status: grpc.StatusCode, message: str, actor: str = "anonymous") -> None:
        super().__init__(message)
        self.status = status
        self.actor = actor


class Authenticator:
    def __init__(self, tokens: list[AdminToken]) -> None:
        for token in tokens:
            unknown = set(token.roles) - KNOWN_ROLES
            if unknown:
                raise ValueError(f"admin token {token.name!r}: unknown roles {sorted(unknown)}")
            if len(token.token_sha256) != 64:
                raise ValueError(f"admin token {token.name!r}: token_sha256 must be 64 hex digits")
        self._tokens = [(bytes.fromhex(t.token_sha256), Principal(t.name, frozenset(t.roles))) for t in tokens]

    def authenticate(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> Principal:
        headers = [value for key, value in metadata or () if key == "authorization"]
        if len(headers) > 1:
            # Which one counts would be up to whichever proxy or library looks at them: none does.
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                            f"ambiguous credentials: {len(headers)} authorization headers")
        header = headers[0] if headers else ""
        if isinstance(header, bytes):
            header = header.decode("utf-8", "replace")
        if not header.startswith("Bearer ") or len(header) <= len("Bearer "):
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "missing 'authorization: Bearer <token>' metadata")
        digest = hashlib.sha256(header[len("Bearer "):].encode()).digest()
        for expected, principal in self._tokens:
            if hmac.compare_digest(digest, expected):
                return principal
        raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "unknown token")

    def authorize(self, principal: Principal, method: str) -> None:
        if not principal.roles & PERMISSIONS[method]:
            raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                            f"{principal.name} ({', '.join(sorted(principal.roles))}) may not call {method}",
                            principal.name)
