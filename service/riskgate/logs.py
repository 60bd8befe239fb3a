"""Process logs: JSON lines when stderr is not a terminal (collectors, containers), human
lines on one; the events an SRE and a risk desk look for, each one line with its fields.

Every line has `ts` (ISO-8601 UTC), `level`, `logger` and `msg`; structured fields come from
`extra=` (see `event`). Bearer tokens never reach a line: riskgate logs only the names of
token holders, and as a second line of defence every formatted line is scrubbed of anything
that looks like a credential (`Bearer ...`, `authorization: ...`) before it is written.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import IO, Any, Final

FORMATS: Final = ("auto", "json", "text")

# What a LogRecord carries by itself: everything else on a record came through `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
_CREDENTIAL = re.compile(r"(?i)\b(bearer\s+|authorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',;)]+")
REDACTED: Final = "<redacted>"


def redact(text: str) -> str:
    """text with any bearer credential replaced by <redacted>."""
    lowered = text.lower()
    if "bearer" not in lowered and "authorization" not in lowered:
        return text
    return _CREDENTIAL.sub(lambda m: m.group(1) + REDACTED, text)


def _timestamp(created: float) -> str:
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record was given through `extra=`."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": _timestamp(record.created), "level": record.levelname,
                                "logger": record.name, "msg": record.getMessage()}
        for key, value in fields_of(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        return redact(json.dumps(line, default=str, ensure_ascii=False, separators=(",", ":")))


class TextFormatter(logging.Formatter):
    """`ts LEVEL logger: msg key=value ...` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        extras = " ".join(f"{key}={_text_value(value)}" for key, value in fields_of(record).items())
        if extras:
            text += f" [{extras}]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return json.dumps(text, ensure_ascii=False) if not text or any(c.isspace() for c in text) else text


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure` installs (and replaces when called again)."""


def wants_json(log_format: str, stream: IO[str]) -> bool:
    if log_format == "auto":
        try:
            return not stream.isatty()
        except (AttributeError, ValueError):
            return True
    return log_format == "json"


def configure(log_format: str = "auto", level: str | int = "INFO", stream: IO[str] | None = None) -> None:
    """Logs of this process to stream (stderr) as JSON lines or text; auto: JSON unless stream
    is a terminal. Like logging.basicConfig it leaves a root logger that has handlers of
    somebody else's (a test harness) alone."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    stream = stream if stream is not None else sys.stderr
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if isinstance(handler, _Handler)]
    if root.handlers and not ours:
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter() if wants_json(log_format, stream) else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)


def event(logger: logging.Logger, level: int, msg: str, *args: object, **fields: Any) -> None:
    """logger.log(level, msg, *args) with fields as the line's structured fields."""
    if logger.isEnabledFor(level):
        # A field named like a LogRecord attribute ("process", "name", ...) would make logging raise.
        logger.log(level, msg, *args, extra={f"{k}_" if k in _STANDARD else k: v for k, v in fields.items()})


# ---- admin actions -----------------------------------------------------------------------

admin_log = logging.getLogger("riskgate.admin")
# Refused calls (a client with a wrong token, retrying) are logged at most this often; the
# ones over it are counted in the next line.
DENIED_LINES_PER_S = 20.0
_TARGET_FIELDS = ("id", "rule_id", "symbol", "account_id", "order_id", "date")


def call_target(request: Any) -> str:
    """What an admin call is about, from its request: the first named field set."""
    for field in _TARGET_FIELDS:
        value = getattr(request, field, None)
        if isinstance(value, str) and value:
            return value[:200]
    return ""


class AdminCallLog:
    """Wraps a RiskAdmin or RiskMonitor servicer: one line per call once it is answered, with
    who (the token's holder and roles, never the token), the method, its target, the outcome
    (ok, or the status code and message it was refused with) and the version of the record
    it wrote. Changes and refusals at INFO (refusals for want of a valid token at WARNING);
    reads answered at DEBUG."""

    def __init__(self, servicer: object, identify: Callable[[Any], tuple[str, Iterable[str]]],
                 reads: Iterable[str] = (), logger: logging.Logger = admin_log) -> None:
        self._servicer = servicer
        self._identify = identify
        self._reads = frozenset(reads)
        self._log = logger
        self._denied_allowance = DENIED_LINES_PER_S
        self._denied_at = time.monotonic()
        self._denied_suppressed = 0

    def __getattr__(self, name: str) -> Any:
        behaviour = getattr(self._servicer, name)
        if inspect.iscoroutinefunction(behaviour):
            async def logged(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                try:
                    response = await behaviour(request, context)
                except BaseException:
                    self._line(name, request, context, None, started)
                    raise
                self._line(name, request, context, response, started)
                return response

            return logged
        return behaviour

    def _line(self, method: str, request: Any, context: Any, response: Any, started: float) -> None:
        try:
            code = context.code()
        except Exception:
            code = None
        status = _status_name(code)
        ok = response is not None and status in ("", "OK")
        status = "OK" if ok else status or "ERROR"
        level = logging.INFO
        if ok and method in self._reads:
            level = logging.DEBUG
        elif status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            level = logging.WARNING
            if not self._allow_denied():
                return
        if not self._log.isEnabledFor(level):
            return
        try:
            metadata = context.invocation_metadata()
        except Exception:
            metadata = ()
        actor, roles = self._identify(metadata)
        details = "" if ok else _details(context)
        outcome = "ok" if ok else f"{status}: {details}" if details else status
        fields: dict[str, Any] = {"event": "admin_action", "actor": actor, "roles": sorted(roles),
                                  "action": method, "target": call_target(request), "outcome": outcome[:500],
                                  "duration_ms": round((time.perf_counter() - started) * 1000, 3)}
        version = getattr(response, "version", None) if response is not None else None
        if isinstance(version, int) and version:
            fields["version"] = version
        if self._denied_suppressed and level == logging.WARNING:
            fields["denied_not_logged"], self._denied_suppressed = self._denied_suppressed, 0
        self._log.log(level, "%s %s by %s: %s", method, fields["target"] or "-", actor, outcome[:500],
                      extra=fields)

    def _allow_denied(self) -> bool:
        now = time.monotonic()
        self._denied_allowance = min(DENIED_LINES_PER_S,
                                     self._denied_allowance + (now - self._denied_at) * DENIED_LINES_PER_S)
        self._denied_at = now
        if self._denied_allowance >= 1:
            self._denied_allowance -= 1
            return True
        self._denied_suppressed += 1
        return False


def _status_name(code: Any) -> str:
    name = getattr(code, "name", None)
    return name if isinstance(name, str) else ""


def _details(context: Any) -> str:
    try:
        details = context.details()
    except Exception:
        return ""
    if isinstance(details, bytes):
        details = details.decode("utf-8", "replace")
    return " ".join(str(details or "").split())


def identify_with(auth: Any) -> Callable[[Any], tuple[str, Iterable[str]]]:
    """(name, roles) of the caller by an Authenticator: the token's holder, 'anonymous' or
    'unknown token' when it names none."""
    def identify(metadata: Any) -> tuple[str, Iterable[str]]:
        try:
            principal = auth.authenticate(metadata)
        except Exception as exc:
            return ("unknown token" if "unknown token" in str(exc) else "anonymous"), ()
        return principal.name, principal.roles

    return identify


# ---- the change feed, the link, decisions ------------------------------------------------

feed_log = logging.getLogger("riskgate.changes")


def change_seen(kind: str, record: Any) -> None:
    """A breaker or an account's controls (its restriction) as the change feed brings it."""
    if kind == "breaker":
        scope = record.symbol or "platform"
        state = getattr(record.state, "name", str(record.state))
        event(feed_log, logging.INFO, "circuit breaker %s %s by %s (version %d)%s", scope, state,
              record.set_by or "?", record.version, f": {record.reason}" if record.reason else "",
              event="breaker_change", scope=scope, state=state, set_by=record.set_by, reason=record.reason,
              version=record.version)
    elif kind == "controls":
        restriction = getattr(record.restriction, "name", str(record.restriction))
        event(feed_log, logging.INFO, "account %s controls: restriction %s by %s (version %d)%s",
              record.account_id, restriction, record.set_by or "?", record.version,
              f": {record.reason}" if record.reason else "", event="restriction_change",
              account_id=record.account_id, restriction=restriction, set_by=record.set_by, reason=record.reason,
              version=record.version)


link_log = logging.getLogger("riskgate.link")


class FailClosedLog:
    """One line when the process starts failing closed (why) and one when it recovers (after
    how long)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: float | None = None

    @property
    def failing(self) -> bool:
        return self._since is not None

    def report(self, fresh: bool, why: str = "") -> None:
        now = self._clock()
        if not fresh and self._since is None:
            self._since = now
            event(link_log, logging.ERROR, "failing closed: %s", why or "Redis link unproven",
                  event="fail_closed", why=why)
        elif fresh and self._since is not None:
            seconds = now - self._since
            self._since = None
            event(link_log, logging.WARNING, "recovered: accepting risk-increasing orders again after %.3f s "
                  "failing closed", seconds, event="fail_closed_recovered", failed_closed_s=round(seconds, 3))


decision_log = logging.getLogger("riskgate.decisions")


class DecisionSampler:
    """Per-order decision lines, a sampled fraction of them (0 = none, the default)."""

    __slots__ = ("_random", "ratio")

    def __init__(self, ratio: float, rng: random.Random | None = None) -> None:
        self.ratio = ratio
        self._random = (rng or random.Random()).random

    def maybe(self, request: Any, response: Any) -> None:
        if self.ratio <= 0 or (self.ratio < 1 and self._random() >= self.ratio):
            return
        decision = _enum_name(response, "decision", "Decision")
        reasons = [_reason_name(r) for r in getattr(response, "reasons", ())]
        event(decision_log, logging.INFO, "order %s %s: %s", request.order_id, request.account_id,
              decision, event="decision", order_id=request.order_id, account_id=request.account_id,
              symbol=request.symbol, side=int(request.side), quantity=request.quantity, price=request.price,
              decision=decision, reasons=reasons,
              allowed_quantity=getattr(response, "allowed_quantity", ""))


def _enum_name(message: Any, field: str, enum: str) -> str:
    value = getattr(message, field, 0)
    try:
        return str(type(message).DESCRIPTOR.fields_by_name[field].enum_type.values_by_number[value].name)
    except (AttributeError, KeyError):
        return str(value)


def _reason_name(reason: Any) -> str:
    return _enum_name(reason, "code", "ReasonCode")
