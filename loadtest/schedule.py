"""The open-loop schedule: when each request is due, and how a sender waits for that moment.

Request i of a sender is due at start + offset + i / rate whatever happened to earlier ones:
a sender never waits for an answer, so a slow server cannot slow the offered load down
(no coordinated omission). Latency is then measured from that planned time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable, Iterator
from typing import Protocol

NS_PER_S = 1_000_000_000
_PR_SET_TIMERSLACK = 29


def planned_ns(start_ns: int, offset_ns: int, index: int, rate: float) -> int:
    return start_ns + offset_ns + round(index * NS_PER_S / rate)


def sender_shares(total_rate: float, senders: int) -> list[tuple[float, int]]:
    """(rate, offset) per sender; sender j takes orders j, j+k, j+2k... so the merged sends stay evenly spaced."""
    return [(total_rate / senders, round(j * NS_PER_S / total_rate)) for j in range(senders)]


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def sleep_until(self, deadline_ns: int) -> None: ...


class MonotonicClock:
    """CLOCK_MONOTONIC, the clock the native sender and every other process read too.

    time.sleep is a clock_nanosleep, accurate to the timer slack, which Linux sets to 50 us by
    default: it is lowered to 1 ns here. There is no spin-wait: on 2 cores a spinning sender
    would take the CPU the server needs.
    """

    def __init__(self) -> None:
        set_timer_slack_ns(1)

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until(self, deadline_ns: int) -> None:
        remaining = deadline_ns - time.monotonic_ns()
        if remaining > 0:
            time.sleep(remaining / NS_PER_S)


def set_timer_slack_ns(slack_ns: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(slack_ns), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def open_loop(count: int, rate: float, start_ns: int, offset_ns: int, clock: Clock) -> Iterator[tuple[int, int]]:
    """Yields (i, planned_ns) once each planned time has come; a late sender goes on at once, never skips."""
    for index in range(count):
        planned = planned_ns(start_ns, offset_ns, index, rate)
        if clock.now_ns() < planned:
            clock.sleep_until(planned)
        yield index, planned


def run_open_loop(count: int, rate: float, start_ns: int, offset_ns: int, clock: Clock,
                  send: Callable[[int, int], None]) -> None:
    """Calls send(i, planned_ns) on schedule. send must not wait for the answer: that is what keeps it open."""
    for index, planned in open_loop(count, rate, start_ns, offset_ns, clock):
        send(index, planned)
