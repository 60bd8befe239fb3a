"""CPU placement and CPU-time accounting of processes, read from /proc (Linux)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Placement:
    """Which CPUs the servers get and which the harness (senders, feeders, Redis) gets."""

    server: frozenset[int]
    client: frozenset[int]

    @classmethod
    def split(cls, enabled: bool = True) -> Placement:
        available = sorted(os.sched_getaffinity(0))
        if not enabled or len(available) < 2:
            return cls(frozenset(available), frozenset(available))
        # The server under test gets the last CPU to itself; everything the harness runs shares the rest.
        return cls(frozenset(available[-1:]), frozenset(available[:-1]))

    @property
    def pinned(self) -> bool:
        return self.server != self.client


def children(pid: int) -> list[int]:
    found = []
    for task in _tasks(pid):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (Path(f"/proc/{pid}/task/{task}/children").read_text().split())]
    return found


def tree(pid: int) -> list[int]:
    pids = [pid]
    for child in children(pid):
        pids += tree(child)
    return pids


def _tasks(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def pin(pid: int, cpus: frozenset[int]) -> None:
    """Every thread of the process: threads started later inherit their creator's CPUs."""
    for task in _tasks(pid):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(task, cpus)


def cpu_seconds(pid: int) -> float:
    """User + system time of the whole process (all its threads), zombies included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all CPUs, all processes) since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(f) for f in fields[:8])
    # Interrupt time is left out: on loopback it is mostly the harness's own packets being delivered.
    # Steal stays in: time the hypervisor gave to someone else disturbs a step like a busy neighbour.
    return (user + nice + system + steal) / _CLOCK_TICKS


def describe_machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model or 'unknown model'}), Linux {os.uname().release}"
