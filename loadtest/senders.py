"""Runs one load step: k sender processes share the rate, start together, and hand back their records."""

from __future__ import annotations

import math
import select
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest import cpus, native, wire
from loadtest import records as rec
from loadtest.schedule import sender_shares
from loadtest.servers import child_env
from loadtest.workload import PlannedOrder

READY_TIMEOUT_S = 20.0
# Lets every sender get from reading "start" to sleeping on its first planned time.
START_DELAY_NS = 100_000_000
DEADLINE_MS = 5000


@dataclass(frozen=True)
class Backend:
    name: str
    command: tuple[str, ...]
    # Beyond this a sender would spend too long on its own CPU per request, so more are started.
    max_rate_per_sender: float
    streams_per_sender: int = 1
    extra_args: tuple[str, ...] = ()
    # How execution reports go: "stream" (one ReportExecutions stream per sender, acknowledged in
    # batches) or "unary" (one ReportExecution call each, as before the stream existed).
    exec_mode: str = "stream"

    def senders_for(self, rate: float) -> int:
        return max(1, math.ceil(rate / self.max_rate_per_sender))


def native_backend(spin_us: int) -> Backend:
    return Backend("native", (str(native.build()),), max_rate_per_sender=20_000,
                   extra_args=("--spin-us", str(spin_us)))


def python_backend() -> Backend:
    return Backend("python", (sys.executable, "-m", "loadtest.pysender"), max_rate_per_sender=1_500)


def choose_backend(name: str, spin_us: int = 0) -> tuple[Backend, str]:
    """The native sender unless it cannot be built; the second value says why, when it falls back.

    spin_us: how long before each send the native sender stops sleeping and spins; worth it only
    when the harness has a CPU of its own.
    """
    if name == "python":
        return python_backend(), "asked for the Python sender"
    try:
        return native_backend(spin_us), ""
    except (native.BuildError, OSError, subprocess.SubprocessError) as exc:
        if name == "native":
            raise
        return python_backend(), str(exc)


@dataclass
class StepRun:
    records: rec.Records
    client_cpu_s: float
    senders: int
    wall_s: float
    realtime: bool


class SenderError(RuntimeError):
    pass


def _read_line(process: subprocess.Popen[str], deadline: float, tick: Callable[[], None] | None = None) -> str:
    assert process.stdout is not None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SenderError("sender timed out")
        ready, _, _ = select.select([process.stdout], [], [], min(remaining, 0.1))
        if ready:
            line = process.stdout.readline()
            if not line:
                raise SenderError(f"sender exited with {process.wait()}")
            return line.strip()
        if tick is not None:
            tick()


def run_step(backend: Backend, target: str, style: str, rate: float, orders: Sequence[PlannedOrder], workdir: Path,
             client_cpus: frozenset[int], progress: Callable[[float], None] | None = None,
             on_start: Callable[[], None] | None = None) -> StepRun:
    senders = backend.senders_for(rate)
    processes: list[subprocess.Popen[str]] = []
    outputs = []
    realtime = True
    try:
        for j, (share, offset) in enumerate(sender_shares(rate, senders)):
            source, output = workdir / f"orders-{j}.bin", workdir / f"records-{j}.bin"
            output.unlink(missing_ok=True)
            wire.write_orders(source, orders[j::senders])
            outputs.append(output)
            args = [*backend.command, "--target", target, "--mode", style, "--input", str(source), "--output",
                    str(output), "--rate", repr(share), "--offset-ns", str(offset), "--streams",
                    str(backend.streams_per_sender), "--deadline-ms", str(DEADLINE_MS), "--exec-mode",
                    backend.exec_mode, *backend.extra_args]
            processes.append(subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                              env=child_env()))
        for process in processes:
            said = _read_line(process, time.monotonic() + READY_TIMEOUT_S).split()
            if not said or said[0] != "ready":
                raise SenderError(f"sender said {said!r}, not ready")
            realtime = realtime and "realtime" in said
            cpus.pin(process.pid, client_cpus)
        start_ns = time.monotonic_ns() + START_DELAY_NS
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"start {start_ns}\n")
            process.stdin.flush()
        if on_start is not None:
            on_start()
        run_s = len(orders) / rate
        deadline = time.monotonic() + START_DELAY_NS / 1e9 + run_s + DEADLINE_MS / 1000 + 20

        def tick() -> None:
            if progress is not None:
                progress(min(1.0, max(0.0, (time.monotonic_ns() - start_ns) / 1e9 / run_s)))

        client_cpu = 0.0
        for process in processes:
            word, _, cpu = _read_line(process, deadline, tick).partition(" ")
            if word != "done":
                raise SenderError(f"sender said {word!r}")
            client_cpu += float(cpu or 0)
        wall_s = (time.monotonic_ns() - start_ns) / 1e9
        for process in processes:
            process.wait(5)
        records = np.concatenate([rec.load(path) for path in outputs])
        records.sort(order="planned_ns")
        return StepRun(records, client_cpu, senders, wall_s, realtime)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
