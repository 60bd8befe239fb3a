"""The one-command demo: `riskgate serve` with its embedded Redis also runs the monitor, which
shows the sample configuration's demo account above the margin-ratio warning at once;
`--no-monitor` and an external Redis run none.

Every process started here is stopped by its pid in a finally; the only timing assumptions
are generous bounds on how long something may take.
"""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

import grpc
import pytest

from riskgate.cli.main import main
from riskgate.config import load_config
from riskgate.monitor.rules import default_rules
from riskgate.store.embedded import EmbeddedRedis
from riskgate.v1 import monitor_pb2 as mpb
from riskgate.v1 import monitor_pb2_grpc as mpb_grpc

READY = "riskgate ready on"
MONITOR_READY = "riskgate monitor ready on"
START_BOUND_S = 60.0
EXIT_BOUND_S = 20.0
# The sample configuration's demo secrets.
DEMO_VIEWER = "demo-viewer-token"
SAMPLE_RULES = sorted(rule.id for rule in default_rules())
T = TypeVar("T")


class Serve:
    """A `riskgate serve` child process whose stdout lines are read as they come."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        # Sample configuration; conftest gives the operators' and the monitor's listeners ephemeral ports.
        self.process = subprocess.Popen([sys.executable, "-m", "riskgate.cli.main", "serve", *argv],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log.open("wb"))
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.lines.put(line.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def line_starting(self, prefix: str) -> str:
        """The next stdout line starting with prefix (within a bound); AssertionError if the
        process ends or the bound passes first."""
        deadline = time.monotonic() + START_BOUND_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no {prefix!r} line: stdout {self.seen!r}, stderr {self.log.read_text()!r}")

    def stop(self) -> tuple[int, list[str]]:
        """SIGTERM; the exit code and the rest of stdout."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=EXIT_BOUND_S)
        rest = []
        while (line := self.lines.get(timeout=EXIT_BOUND_S)) is not None:
            rest.append(line)
        return code, rest

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@contextmanager
def serving(tmp_path: Path, *argv: str) -> Iterator[Serve]:
    serve = Serve(["--listen", "127.0.0.1:0", *argv], tmp_path / "serve.log")
    try:
        yield serve
    finally:
        serve.end()


def address(ready_line: str) -> str:
    return ready_line.split(" on ", 1)[1].split()[0]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def eventually(probe: Callable[[], T], ok: Callable[[T], bool], bound_s: float = 20.0) -> T:
    deadline = time.monotonic() + bound_s
    value = probe()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    assert ok(value), f"not within {bound_s} s; last: {value!r}"
    return value


def test_serve_when_no_redis_url_then_runs_a_monitor_showing_the_demo_margin_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serving(tmp_path, "--data-dir", str(tmp_path / "data")) as serve:
        serve.line_starting(READY)
        target = address(serve.line_starting(MONITOR_READY))

        with grpc.insecure_channel(target) as channel:
            status = mpb_grpc.RiskMonitorStub(channel).GetMonitorStatus(
                mpb.MonitorStatusRequest(), metadata=[("authorization", f"Bearer {DEMO_VIEWER}")], timeout=5)
        assert status.rules == len(SAMPLE_RULES) and status.symbols == 3

        # demo-dave: maintenance 550 over a margin balance of 650 (see sample_config.toml).
        code, out, _ = eventually(
            lambda: cli(capsys, "alerts", "--target", target, "--token", DEMO_VIEWER, "--account", "demo-dave"),
            lambda answer: "margin-ratio-warning" in answer[1])
        header, row = out.splitlines()
        assert code == 0 and header.startswith("ID")
        assert row.split()[3:8] == ["OPEN", "margin-ratio-warning", "demo-dave", "0.846154", "0.8"]

        code, out, _ = cli(capsys, "rules", "--target", target, "--token", DEMO_VIEWER)
        assert code == 0 and sorted(line.split()[0] for line in out.splitlines()[1:]) == SAMPLE_RULES

        code, rest = serve.stop()
    assert code == 0 and rest == []
    assert "Traceback" not in serve.log.read_text()


def test_serve_when_no_monitor_then_runs_none_and_says_so(tmp_path: Path) -> None:
    with serving(tmp_path, "--data-dir", str(tmp_path / "data"), "--no-monitor", "--log-level", "INFO") as serve:
        serve.line_starting(READY)
        code, rest = serve.stop()
    assert code == 0
    assert not any(line.startswith(MONITOR_READY) for line in [*serve.seen, *rest])
    log = serve.log.read_text()
    assert "no monitor in this process (--no-monitor)" in log
    assert "riskgate.monitor" not in log  # no monitor module logged a thing


def test_serve_when_external_redis_url_then_runs_no_monitor_and_says_so(
        tmp_path: Path, flushed_redis: EmbeddedRedis) -> None:
    with serving(tmp_path, "--redis-url", flushed_redis.url, "--log-level", "INFO") as serve:
        serve.line_starting(READY)
        code, rest = serve.stop()
    assert code == 0
    assert not any(line.startswith(MONITOR_READY) for line in [*serve.seen, *rest])
    lines = [line for line in serve.log.read_text().splitlines() if "no monitor in this process" in line]
    assert len(lines) == 1 and "riskgate monitor --redis-url" in lines[0]


def test_serve_when_monitor_port_taken_then_logs_it_and_the_gate_keeps_serving(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with serving(tmp_path, "--data-dir", str(tmp_path / "data"), "--monitor-listen", f"127.0.0.1:{port}") as serve:
            gate = address(serve.line_starting(READY))
            eventually(lambda: serve.log.read_text(), lambda log: "monitor not started" in log)

            code, out, _ = cli(capsys, "check", "--target", gate, "--account", "demo-alice", "--symbol", "BTCUSDT",
                               "--side", "buy", "--quantity", "0.01", "--price", "60000", "--json")
            assert code == 0 and json.loads(out)["decision"] == "DECISION_ACCEPT"
            code, rest = serve.stop()
    assert code == 0
    assert not any(line.startswith(MONITOR_READY) for line in [*serve.seen, *rest])
    assert f"cannot listen on 127.0.0.1:{port}" in serve.log.read_text()


def test_sample_config_when_loaded_then_its_rules_are_the_six_defaults() -> None:
    # Its rules list replaces the defaults: it must not drop one.
    assert load_config(None).monitor.rules == default_rules()
    assert sorted(rule.id for rule in default_rules()) == SAMPLE_RULES
