"""Samples the riskgate server with py-spy under load and sums the samples into a hot-function table."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE_HZ = 200
# Where the server's time goes, by the code a sample's innermost frame belongs to (first match wins).
COMPONENTS = (
    ("riskgate engine", ("riskgate/engine/", "riskgate/book/")),
    ("riskgate API (protobuf in/out)", ("riskgate/api/",)),
    ("riskgate Redis write-behind", ("riskgate/store/",)),
    ("redis-py client", ("redis/",)),
    ("grpc (aio runtime)", ("grpc/",)),
    ("waiting in epoll", ("selectors.py:",)),
    ("asyncio event loop and C code it runs", ("asyncio/",)),
    ("threads outside the event loop", ("threading.py:",)),
)


@dataclass(frozen=True)
class Hotspot:
    function: str
    self_share: float
    total_share: float


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, folded: Path) -> subprocess.Popen[bytes] | None:
    """py-spy in the background for `seconds`; None when py-spy is not installed.

    --nonblocking: the server is never paused to be read, so sampling does not slow what it samples.
    """
    binary = py_spy()
    if binary is None:
        return None
    args = [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate",
            str(SAMPLE_RATE_HZ), "--format", "raw", "--nonblocking", "--output", str(folded)]
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes], timeout_s: float) -> str:
    try:
        _, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err.decode(errors="replace") if process.returncode else ""


def _frame_name(frame: str) -> str:
    """'check_order (riskgate/engine/check.py:25)' -> 'riskgate/engine/check.py:check_order'; lines merged."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "service/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{name}" if path else name


def components(by_self_all: dict[str, int], samples: int) -> list[tuple[str, float]]:
    shares: Counter[str] = Counter()
    for function, count in by_self_all.items():
        name = next((label for label, prefixes in COMPONENTS if any(function.startswith(p) for p in prefixes)),
                    "other")
        shares[name] += count
    return [(name, count / samples) for name, count in shares.most_common()]


def self_counts(folded: str) -> tuple[int, Counter[str]]:
    counts: Counter[str] = Counter()
    samples = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if frames and count_text.isdigit():
            counts[_frame_name(frames[-1])] += int(count_text)
            samples += int(count_text)
    return samples, counts


def hotspots(folded: str, top: int = 25) -> tuple[int, list[Hotspot], list[Hotspot]]:
    """(samples, by self time, by inclusive time) from py-spy's collapsed stacks."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        self_counts[frames[-1]] += count
        for name in set(frames):
            total_counts[name] += count
    if not samples:
        return 0, [], []

    def table(counts: Counter[str]) -> list[Hotspot]:
        return [Hotspot(name, self_counts[name] / samples, total_counts[name] / samples)
                for name, _ in counts.most_common(top)]

    return samples, table(self_counts), table(total_counts)


def render(samples: int, by_self: list[Hotspot], by_total: list[Hotspot], context: str,
           shares: list[tuple[str, float]] | None = None) -> str:
    lines = [f"py-spy profile of the riskgate server: {context}", f"{samples} samples at {SAMPLE_RATE_HZ} Hz", ""]
    if shares:
        lines += ["Self time by component"]
        lines += [f"{share:7.1%}  {name}" for name, share in shares]
        lines.append("")
    for title, rows in (("Hottest by self time (the function itself)", by_self),
                        ("Hottest by total time (the function and what it calls)", by_total)):
        lines += [title, f"{'self':>7} {'total':>7}  function"]
        lines += [f"{h.self_share:7.1%} {h.total_share:7.1%}  {h.function}" for h in rows]
        lines.append("")
    return "\n".join(lines)
