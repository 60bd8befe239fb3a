"""Mark history in Redis: one bar per symbol and minute (open, high, low, close, capped in
time) and one close per symbol and UTC day (capped in count), what VaR, backtests and the
historical stress scenarios read.

Bars are merged, never overwritten: a write carries what one writer saw of a minute, and the
script keeps the earliest open, the highest high, the lowest low and the latest close of
everything written for it. A write is therefore idempotent and commutative: every monitor may
record the marks it follows (a standby taking over has no gap to fill), a write resent after a
lost answer changes nothing, and an imported file may overlap what was recorded. Prices are
compared as exact decimal strings in the script, never as Lua floats.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import redis.asyncio as aioredis

from riskgate.monitor.keys import MonitorKeys

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
DAY_MS = 86_400_000

# Exact comparison of two plain non-negative decimal strings ("123.45"): -1, 0 or 1.
_DECIMAL_COMPARE = """
local function dec_cmp(a, b)
  local ai, af = string.match(a, '^(%d*)%.?(%d*)$')
  local bi, bf = string.match(b, '^(%d*)%.?(%d*)$')
  ai = string.gsub(ai, '^0+', ''); bi = string.gsub(bi, '^0+', '')
  if #ai ~= #bi then if #ai < #bi then return -1 else return 1 end end
  if ai ~= bi then if ai < bi then return -1 else return 1 end end
  af = string.gsub(af, '0+$', ''); bf = string.gsub(bf, '0+$', '')
  local n = math.max(#af, #bf)
  af = af .. string.rep('0', n - #af); bf = bf .. string.rep('0', n - #bf)
  if af == bf then return 0 end
  if af < bf then return -1 else return 1 end
end
local function split(text)
  local parts = {}
  for part in string.gmatch(text, '[^|]+') do parts[#parts + 1] = part end
  return parts
end
"""

# KEYS: 1 the symbol's bars, 2 its daily closes. ARGV: 1 the oldest minute kept (ms), 2 how
# many days are kept, then per bar: minute, open, open ms, high, low, close, close ms.
# A bar member is "minute|open|open ms|high|low|close|close ms" (score: the minute); a daily
# member "day|close ms|close" (score: the day number since the epoch).
# Returns how many bars were merged into the minute table (older ones update the day only).
_MERGE_SCRIPT = _DECIMAL_COMPARE + """
local keep_from = tonumber(ARGV[1])
local merged = 0
local i = 3
while i <= #ARGV do
  local minute = ARGV[i]
  local open, open_ms, high, low = ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
  local close, close_ms = ARGV[i + 5], tonumber(ARGV[i + 6])
  i = i + 7
  if tonumber(minute) >= keep_from then
    local held = redis.call('ZRANGEBYSCORE', KEYS[1], minute, minute)
    for _, member in ipairs(held) do
      local p = split(member)
      -- Equal times: the lower open and the higher close, so the order of writes never matters.
      local held_open_ms, held_close_ms = tonumber(p[3]), tonumber(p[7])
      if held_open_ms < open_ms or (held_open_ms == open_ms and dec_cmp(p[2], open) < 0) then
        open, open_ms = p[2], held_open_ms
      end
      if dec_cmp(p[4], high) > 0 then high = p[4] end
      if dec_cmp(p[5], low) < 0 then low = p[5] end
      if held_close_ms > close_ms or (held_close_ms == close_ms and dec_cmp(p[6], close) > 0) then
        close, close_ms = p[6], held_close_ms
      end
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[1], minute, minute)
    redis.call('ZADD', KEYS[1], minute, table.concat({minute, open, open_ms, high, low, close, close_ms}, '|'))
    merged = merged + 1
  end
  local day = math.floor(close_ms / 86400000)
  local latest = true
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], day, day)) do
    local held = split(member)
    local held_ms = tonumber(held[2])
    if held_ms > close_ms or (held_ms == close_ms and dec_cmp(held[3], close) >= 0) then latest = false end
  end
  if latest then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], day, day)
    redis.call('ZADD', KEYS[2], day, day .. '|' .. close_ms .. '|' .. close)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. keep_from)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
return merged
"""


@dataclass
class Bar:
    """One symbol's marks within one minute."""

    minute_ms: int
    open: Decimal
    open_ms: int
    high: Decimal
    low: Decimal
    close: Decimal
    close_ms: int

    @classmethod
    def of(cls, at_ms: int, price: Decimal) -> Bar:
        return cls(at_ms - at_ms % MINUTE_MS, price, at_ms, price, price, price, at_ms)

    def add(self, at_ms: int, price: Decimal) -> None:
        # Equal times: the lower open and the higher close, as the Redis merge decides.
        if at_ms < self.open_ms or (at_ms == self.open_ms and price < self.open):
            self.open, self.open_ms = price, at_ms
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        if at_ms > self.close_ms or (at_ms == self.close_ms and price > self.close):
            self.close, self.close_ms = price, at_ms

    def merge(self, other: Bar) -> None:
        self.add(other.open_ms, other.open)
        self.add(other.close_ms, other.close)
        self.high = max(self.high, other.high)
        self.low = min(self.low, other.low)

    def args(self) -> list[str | int]:
        return [self.minute_ms, plain(self.open), self.open_ms, plain(self.high), plain(self.low),
                plain(self.close), self.close_ms]


def plain(value: Decimal) -> str:
    """A price as the script compares it: plain digits, no exponent, no sign."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def day_of(at_ms: int) -> int:
    return at_ms // DAY_MS


class MarkBars:
    """Writes bars to Redis. `merge` is safe to call again with the same bars."""

    # Bars per script call: keeps each call's ARGV and the time Redis spends in it small.
    CHUNK = 2000

    def __init__(self, client: aioredis.Redis, keys: MonitorKeys, retention_minutes: int, retention_days: int
                 ) -> None:
        self.client = client
        self.keys = keys
        self.retention_ms = retention_minutes * MINUTE_MS
        self.retention_days = retention_days
        self._merge = client.register_script(_MERGE_SCRIPT)

    async def merge(self, bars: Mapping[str, Sequence[Bar]], now_ms: int,
                    audit: tuple[str, dict[str, str], int] | None = None) -> int:
        """Every symbol's bars, in one transaction (with `audit`: stream, entry, its max
        length, written in the same transaction); how many went into the minute tables."""
        keep_from = now_ms - now_ms % MINUTE_MS - self.retention_ms
        merged = 0
        async with self.client.pipeline(transaction=True) as pipe:
            calls = 0
            for symbol, symbol_bars in bars.items():
                for start in range(0, len(symbol_bars), self.CHUNK):
                    args: list[str | int] = [keep_from, self.retention_days]
                    for bar in symbol_bars[start:start + self.CHUNK]:
                        args += bar.args()
                    await self._merge(keys=[self.keys.mark_bars(symbol), self.keys.mark_daily(symbol)], args=args,
                                      client=pipe)
                    calls += 1
            if audit is not None:
                stream, entry, maxlen = audit
                pipe.xadd(stream, entry, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
            if calls:
                merged = sum(int(n) for n in (await pipe.execute())[:calls])
        return merged


class MarkRecorder:
    """The bars of the marks the monitor follows, kept in memory until Redis has them."""

    def __init__(self, writer: MarkBars) -> None:
        self.writer = writer
        self._pending: dict[str, dict[int, Bar]] = {}

    def record(self, symbol: str, at_ms: int, price: Decimal) -> None:
        minute = at_ms - at_ms % MINUTE_MS
        bars = self._pending.setdefault(symbol, {})
        bar = bars.get(minute)
        if bar is None:
            bars[minute] = Bar.of(at_ms, price)
        else:
            bar.add(at_ms, price)

    @property
    def pending(self) -> int:
        return sum(len(bars) for bars in self._pending.values())

    async def flush(self, now_ms: int) -> int:
        """Writes what is pending; on failure it stays pending (merged with what comes next)."""
        if not self._pending:
            return 0
        taken, self._pending = self._pending, {}
        try:
            await self.writer.merge({symbol: sorted(bars.values(), key=lambda b: b.minute_ms)
                                     for symbol, bars in taken.items()}, now_ms)
        except BaseException:
            for symbol, bars in taken.items():
                into = self._pending.setdefault(symbol, {})
                for minute, bar in bars.items():
                    if minute in into:
                        into[minute].merge(bar)
                    else:
                        into[minute] = bar
            raise
        return sum(len(bars) for bars in taken.values())


async def daily_closes(client: aioredis.Redis, keys: MonitorKeys, symbols: Iterable[str], first_day: int,
                       last_day: int) -> dict[str, dict[int, Decimal]]:
    """Each symbol's close per day number in [first_day, last_day] (days without one absent)."""
    async with client.pipeline(transaction=False) as pipe:
        names = list(symbols)
        for symbol in names:
            pipe.zrangebyscore(keys.mark_daily(symbol), first_day, last_day)
        replies = await pipe.execute()
    closes: dict[str, dict[int, Decimal]] = {}
    for symbol, members in zip(names, replies, strict=True):
        days: dict[int, Decimal] = {}
        for member in members:
            try:
                day, _, close = member.decode().split("|")
                days[int(day)] = Decimal(close)
            except (ValueError, ArithmeticError):
                log.error("ignoring unreadable daily close %r of %s", member[:100], symbol)
        closes[symbol] = days
    return closes


async def minute_bars(client: aioredis.Redis, keys: MonitorKeys, symbol: str, from_ms: int, to_ms: int,
                      limit: int) -> list[Bar]:
    members = await client.zrangebyscore(keys.mark_bars(symbol), from_ms, to_ms, start=0, num=limit)
    bars = []
    for member in members:
        try:
            minute, open_, open_ms, high, low, close, close_ms = member.decode().split("|")
            bars.append(Bar(int(minute), Decimal(open_), int(open_ms), Decimal(high), Decimal(low), Decimal(close),
                            int(close_ms)))
        except (ValueError, ArithmeticError):
            log.error("ignoring unreadable bar %r of %s", member[:100], symbol)
    return bars
