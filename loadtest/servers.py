"""Starts, watches and stops the two servers under test as child processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from loadtest import cpus, riskgate_config
from loadtest.workload import Workload
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    helpers: list[int] = field(default_factory=list)
    # riskgate's operators' listener (RiskAdmin is not served on the order port).
    admin_port: int = 0
    metrics_port: int = 0

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def admin_target(self) -> str:
        return f"{HOST}:{self.admin_port or self.port}"

    def cpu_seconds(self) -> float:
        return cpus.cpu_seconds(self.process.pid)

    def helper_cpu_seconds(self) -> float:
        return sum(cpus.cpu_seconds(pid) for pid in self.helpers)

    def alive(self) -> bool:
        return self.process.poll() is None

    def place(self, server_cpus: frozenset[int], helper_cpus: frozenset[int]) -> None:
        """The gRPC process on the server CPUs; its helpers (riskgate's embedded Redis) with the harness."""
        cpus.pin(self.process.pid, server_cpus)
        self.helpers = cpus.tree(self.process.pid)[1:]
        for pid in self.helpers:
            cpus.pin(pid, helper_cpus)

    def stop(self) -> None:
        stop_process(self.process)

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


def child_env() -> dict[str, str]:
    """The harness is run from the checkout, not installed: its children import it from there."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _spawn(name: str, args: list[str], port: int, workdir: Path, wait: bool) -> Server:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=workdir, env=child_env())
    server = Server(name, port, process, log_path)
    if wait:
        try:
            wait_ready(server)
        except BaseException:
            server.stop()
            raise
    return server


def start_riskgate(workload: Workload, workdir: Path, wait: bool = True, metrics: bool = True,
                   name: str = "riskgate") -> Server:
    """metrics: serve /metrics (on a free port, `Server.metrics_port`) as production does, or not at all."""
    port, admin_port = free_port(), free_port()
    metrics_port = free_port() if metrics else 0
    data_dir = workdir / f"{name}-data"
    config = riskgate_config.write(workdir / f"{name}.toml", workload, f"{HOST}:{port}", data_dir)
    args = [sys.executable, "-m", "riskgate.cli.main", "serve", "--config", str(config), "--listen",
            f"{HOST}:{port}", "--admin-listen", f"{HOST}:{admin_port}", "--data-dir", str(data_dir),
            "--log-level", "WARNING", "--metrics-listen", f"{HOST}:{metrics_port}" if metrics else "",
            # The gate alone is measured: the demo's in-process monitor would share its event loop.
            "--no-monitor"]
    server = _spawn(name, args, port, workdir, wait)
    server.admin_port = admin_port
    server.metrics_port = metrics_port
    return server


def start_baseline(workdir: Path, wait: bool = True) -> Server:
    port = free_port()
    args = [sys.executable, "-m", "loadtest.baseline_server", "--listen", f"{HOST}:{port}"]
    return _spawn("baseline", args, port, workdir, wait)


def wait_ready(server: Server, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Ready once a CheckOrder is answered (riskgate seeds its Redis and loads its book first)."""
    deadline = time.monotonic() + timeout_s
    probe = pb.CheckOrderRequest(order_id="ready-probe", account_id="ready-probe", symbol="BTCUSDT",
                                 side=pb.SIDE_BUY, order_type=pb.ORDER_TYPE_MARKET, quantity="1")
    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.PreTradeRiskStub(channel)
        while True:
            if not server.alive():
                raise RuntimeError(f"{server.name} exited at start: {server.log_tail()}")
            try:
                stub.CheckOrder(probe, timeout=1.0)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.name} not ready after {timeout_s:.0f} s: {server.log_tail()}"
                                       ) from None
                time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL if it has not exited within timeout_s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
