"""The monitor's writes to Redis: each one Lua call (see scripts.py), so an action, its
record, its alert and its audit entry are all there or none is."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec
import redis.asyncio as aioredis

from riskgate.book.specs import BreakerSpec, ControlsSpec
from riskgate.monitor import scripts
from riskgate.monitor.alerts import Alert, Transition, Verb, decode_alert
from riskgate.monitor.keys import MonitorKeys, account_episode_field, episode_field
from riskgate.monitor.rules import SYMBOL_ACTIONS, Rule
from riskgate.store.change_stream import CHANGE_STREAM_MAXLEN
from riskgate.store.codec import encode
from riskgate.values.codes import BreakerState, Restriction

_json = msgspec.json.Encoder(decimal_format="string")


class LeaseLost(RuntimeError):
    """This monitor no longer holds the lease: it must not act (another one does)."""


class AlertMissing(LookupError):
    pass


class AlertStateRefused(RuntimeError):
    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


@dataclass(frozen=True)
class Fired:
    """What a rule firing did: its alert, the version its action wrote (0 = none), the
    audit entry's id and the action in words. `already_open`: an episode was open, nothing done."""

    alert_id: str
    version: int = 0
    audit_id: str = ""
    action: str = ""
    already_open: bool = False


@dataclass(frozen=True)
class Cleared:
    alert_id: str
    version: int
    audit_id: str
    outcome: str


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class MonitorWrites:
    def __init__(self, client: aioredis.Redis, keys: MonitorKeys, audit_maxlen: int,
                 change_stream_maxlen: int = CHANGE_STREAM_MAXLEN) -> None:
        self.client = client
        self.keys = keys
        self.audit_maxlen = audit_maxlen
        self.lease_token = ""
        # A write was refused for want of the lease: the service steps every watcher down and
        # takes over afresh (re-reading the episodes) if it gets the lease again.
        self.fenced = False
        # The highest version seen on the feed: every write lifts the counter past it.
        self.floor = 0
        self.candidates_maxlen = 100_000
        # For metrics: alerts this monitor raised, by rule id, and actions it took, by action.
        self.raised: dict[str, int] = {}
        self.actions: dict[str, int] = {}
        # These four publish gate changes: the change stream is the last of their KEYS.
        capped = scripts.with_change_stream_maxlen
        self._fire = client.register_script(capped(scripts.FIRE, change_stream_maxlen))
        self._account_fire = client.register_script(capped(scripts.ACCOUNT_FIRE, change_stream_maxlen))
        self._account_clear = client.register_script(capped(scripts.ACCOUNT_CLEAR, change_stream_maxlen))
        self._clear = client.register_script(capped(scripts.CLEAR, change_stream_maxlen))
        self._transition = client.register_script(scripts.TRANSITION)
        self._put_record = client.register_script(scripts.PUT_RECORD)
        self._lease = client.register_script(scripts.TAKE_OR_RENEW_LEASE)
        self._release = client.register_script(scripts.RELEASE_LEASE)

    # ---- the lease --------------------------------------------------------------------

    async def take_or_renew_lease(self, lease_ms: int) -> int:
        """2: taken afresh, 1: renewed, 0: another monitor holds it."""
        return int(await self._lease(keys=[self.keys.lease], args=[self.lease_token, lease_ms]))

    async def release_lease(self) -> None:
        await self._release(keys=[self.keys.lease], args=[self.lease_token])

    # ---- actions ----------------------------------------------------------------------

    async def fire(self, rule: Rule, symbol: str, alert: dict[str, Any], evidence: dict[str, str],
                   reason: str, at_ms: int, episodes: str = "") -> Fired:
        """Opens an episode of rule on symbol: the alert, and (mode act) the breaker, tripped
        only if NORMAL or absent (or set by a rule to a milder state). `episodes`: the hash
        of open episodes ("" = the mark rules'; the funding rules keep their own)."""
        record = b""
        state_name = ""
        if rule.acts:
            state_name = SYMBOL_ACTIONS[rule.action]
            record = encode(BreakerSpec(symbol=symbol, state=BreakerState[state_name], reason=reason[:500],
                                        set_by=rule.actor, updated_ms=at_ms))
        result = await self._fire(
            keys=[self.keys.seq, self.keys.breakers, self.keys.audit, self.keys.lease, self.keys.alerts,
                  self.keys.alert_events, episodes or self.keys.episodes, self.keys.alert_seq, self.keys.holds,
                  self.keys.change_stream],
            args=[self.lease_token, self.floor, symbol, record, self.keys.changes,
                  int(BreakerState[state_name]) if state_name else 0, self.audit_maxlen,
                  episode_field(rule.id, symbol), _json.encode(alert), at_ms, rule.actor, state_name,
                  *_pairs({"rule": rule.id, "rule_version": str(rule.version), **evidence})])
        code = _text(result[0])
        if code == "lease":
            self.fenced = True
            raise LeaseLost("the monitor lease is held by another monitor")
        if code == "open":
            return Fired(alert_id=_text(result[1]), already_open=True)
        return self._fired(rule, Fired(alert_id=_text(result[1]), version=int(result[2]), audit_id=_text(result[3]),
                                       action=_text(result[4])))

    def _fired(self, rule: Rule, fired: Fired) -> Fired:
        self.raised[rule.id] = self.raised.get(rule.id, 0) + 1
        if rule.acts and fired.version:  # its action wrote a record (breaker, controls, candidate)
            self.actions[rule.action] = self.actions.get(rule.action, 0) + 1
        return fired

    async def clear(self, rule: Rule, symbol: str, note: str, evidence: dict[str, str], at_ms: int,
                    episodes: str = "") -> Cleared | None:
        """Ends the episode and lets go of the breaker it held: loosened only as far as the
        episodes left want, and only if it is still the record the monitor wrote."""
        result = await self._clear(
            keys=[self.keys.seq, self.keys.breakers, self.keys.audit, self.keys.lease, self.keys.alerts,
                  self.keys.alert_events, episodes or self.keys.episodes, self.keys.holds, self.keys.change_stream],
            args=[self.lease_token, self.floor, symbol, "", self.keys.changes, self.audit_maxlen,
                  episode_field(rule.id, symbol), rule.actor, at_ms, note,
                  *_pairs({"rule": rule.id, "rule_version": str(rule.version), **evidence})])
        code = _text(result[0])
        if code == "lease":
            self.fenced = True
            raise LeaseLost("the monitor lease is held by another monitor")
        if code == "none":
            return None
        return Cleared(alert_id=_text(result[1]), version=int(result[2]), audit_id=_text(result[3]),
                       outcome=_text(result[4]))

    async def account_fire(self, rule: Rule, account_id: str, symbol: str, alert: dict[str, Any],
                           evidence: dict[str, str], reason: str, candidate: bytes, at_ms: int) -> Fired:
        """Opens an episode of an account rule: the alert, and (mode act) the account's
        close-only (compare-and-set: only an unrestricted account) or the liquidation candidate."""
        kind = "alert"
        if rule.acts:
            kind = "reduce_only" if rule.action == "account_reduce_only" else "candidate"
        record = encode(ControlsSpec(account_id=account_id, restriction=Restriction.REDUCE_ONLY, set_by=rule.actor,
                                     reason=reason[:500]))
        result = await self._account_fire(
            keys=[self.keys.seq, self.keys.controls, self.keys.audit, self.keys.lease, self.keys.alerts,
                  self.keys.alert_events, self.keys.account_episodes, self.keys.alert_seq,
                  self.keys.liquidation_candidates, self.keys.holds, self.keys.change_stream],
            args=[self.lease_token, self.floor, account_id, kind, record, self.keys.changes, self.audit_maxlen,
                  account_episode_field(rule.id, account_id, symbol), _json.encode(alert), at_ms, rule.actor,
                  reason[:500], candidate, self.candidates_maxlen,
                  *_pairs({"rule": rule.id, "rule_version": str(rule.version), **evidence})])
        code = _text(result[0])
        if code == "lease":
            self.fenced = True
            raise LeaseLost("the monitor lease is held by another monitor")
        if code == "open":
            return Fired(alert_id=_text(result[1]), already_open=True)
        return self._fired(rule, Fired(alert_id=_text(result[1]), version=int(result[2]), audit_id=_text(result[3]),
                                       action=_text(result[4])))

    async def account_clear(self, rule: Rule, account_id: str, symbol: str, note: str, evidence: dict[str, str],
                            at_ms: int) -> Cleared | None:
        result = await self._account_clear(
            keys=[self.keys.seq, self.keys.controls, self.keys.audit, self.keys.lease, self.keys.alerts,
                  self.keys.alert_events, self.keys.account_episodes, self.keys.holds, self.keys.change_stream],
            args=[self.lease_token, self.floor, account_id, self.keys.changes, self.audit_maxlen,
                  account_episode_field(rule.id, account_id, symbol), rule.actor, at_ms, note[:500],
                  *_pairs({"rule": rule.id, "rule_version": str(rule.version), **evidence})])
        code = _text(result[0])
        if code == "lease":
            self.fenced = True
            raise LeaseLost("the monitor lease is held by another monitor")
        if code == "none":
            return None
        return Cleared(alert_id=_text(result[1]), version=int(result[2]), audit_id=_text(result[3]),
                       outcome=_text(result[4]))

    async def account_episodes(self) -> set[tuple[str, str, str]]:
        fields = await self.client.hkeys(self.keys.account_episodes)
        return {tuple(_text(field).split("\x1f", 2)) for field in fields}  # type: ignore[misc]

    async def episodes(self) -> dict[str, dict[str, Any]]:
        rows = await self.client.hgetall(self.keys.episodes)
        return {_text(field): msgspec.json.decode(data) for field, data in rows.items()}

    # ---- people ----------------------------------------------------------------------

    async def transition(self, alert_id: str, verb: Verb, method: str, actor: str, note: str, request: str
                         ) -> Alert:
        result = await self._transition(
            keys=[self.keys.alerts, self.keys.alert_events, self.keys.audit],
            args=[alert_id, verb.action, verb.to, " ".join(verb.allowed_from), actor, note, now_ms(),
                  self.audit_maxlen, method, request])
        code = _text(result[0])
        if code == "missing":
            raise AlertMissing(alert_id)
        if code == "state":
            raise AlertStateRefused(_text(result[1]))
        return decode_alert(result[1])

    async def alerts(self) -> list[Alert]:
        rows = await self.client.hgetall(self.keys.alerts)
        return [decode_alert(data) for data in rows.values()]

    async def put_record(self, kind: str, field: str, record: bytes, audit: dict[str, str], seed: bool = False
                         ) -> int:
        """Stores a record people set on the monitor (kind "rule", "funding", "group" or
        "insurance") under
        the next version, publishes it on the rule channel and audits it: one script. Returns
        the version (0: `seed` found one stored already)."""
        hashes = {"rule": self.keys.rules, "funding": self.keys.funding, "group": self.keys.account_groups,
                  "insurance": self.keys.insurance_fund}
        return int(await self._put_record(
            keys=[self.keys.seq, hashes[kind], self.keys.audit],
            args=[kind, self.floor, field, record, self.keys.rule_changes, self.audit_maxlen, "nx" if seed else "",
                  *_pairs({"ts_ms": str(now_ms()), **audit})]))

    async def put_rule(self, rule: Rule, audit: dict[str, str], seed: bool = False) -> int:
        return await self.put_record("rule", rule.id, _json.encode(rule), audit, seed)

    async def put_funding(self, symbol: str, record: bytes, audit: dict[str, str]) -> int:
        return await self.put_record("funding", symbol, record, audit)

    async def audit(self, entry: dict[str, str]) -> None:
        """An entry of a read or a refusal (changes are audited inside their script)."""
        await self.client.xadd(self.keys.audit, {"ts_ms": str(now_ms()), **entry},  # type: ignore[arg-type]
                               maxlen=self.audit_maxlen, approximate=True)


def _pairs(entry: dict[str, str]) -> list[str]:
    return [item for pair in entry.items() for item in pair]


def first_transition(rule: Rule, note: str, at_ms: int) -> Transition:
    return Transition(actor=rule.actor, action="fired", note=note, at_ms=at_ms)
