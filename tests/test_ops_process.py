"""`riskgate serve` (and `riskgate monitor`) as real processes: JSON logs with no secret in
them or in Redis, the demo tokens' warning and --production's refusals, and SIGTERM under
load exiting within its bound, every time.

Every process started here is stopped by its pid in a finally; the only timing assertions are
the documented bounds."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import grpc
import pytest
import redis

from riskgate.cli import ops
from riskgate.config import load_config
from riskgate.store.embedded import EmbeddedRedis, free_port
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import admin_pb2_grpc as admin_grpc
from riskgate.v1 import monitor_pb2 as mpb
from riskgate.v1 import monitor_pb2_grpc as mpb_grpc
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc

READY = "riskgate ready on"
MONITOR_READY = "riskgate monitor ready on"
START_BOUND_S = 60.0
# The documented default: a stopping process exits within 10 s of SIGTERM, whatever its tasks do.
SHUTDOWN_BOUND_S = 10.0
SIGTERM_ROUNDS = 50
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SAMPLE_HASHES = [t.token_sha256 for t in load_config(None).admin_tokens]  # admin, operator, viewer


def _riskgate(*argv: str, stderr: Path) -> subprocess.Popen[bytes]:
    with stderr.open("wb") as err:
        return subprocess.Popen([sys.executable, "-m", "riskgate.cli.main", *argv], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err)


def _ready_lines(process: subprocess.Popen[bytes], *prefixes: str) -> list[str]:
    """The stdout lines starting with each prefix, in order (within a bound)."""
    assert process.stdout is not None
    found: list[str] = []
    deadline = time.monotonic() + START_BOUND_S
    for prefix in prefixes:
        while time.monotonic() < deadline:
            line = process.stdout.readline().decode()
            if not line:
                raise AssertionError(f"exited (code {process.wait()}) before {prefix!r}")
            if line.startswith(prefix):
                found.append(line.strip())
                break
    return found


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _address(line: str, marker: str = " on ") -> str:
    return line.split(marker, 1)[1].split()[0].rstrip(")")


def _json_lines(text: str) -> list[dict[str, object]]:
    """Every line of a log: a JSON object with ts (ISO-8601 UTC), level, logger and msg."""
    parsed = []
    for line in text.splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= set(entry), line
        assert ISO_UTC.match(str(entry["ts"])), line
        parsed.append(entry)
    return parsed


def _config_with_tokens(tmp_path: Path, secrets: list[str], **server: str) -> Path:
    """The sample configuration with its demo token hashes replaced by those of secrets."""
    text = resources.files("riskgate").joinpath("sample_config.toml").read_text()
    for sample, secret in zip(SAMPLE_HASHES, secrets, strict=True):
        text = text.replace(sample, hashlib.sha256(secret.encode()).hexdigest())
    for key, value in server.items():
        text = re.sub(rf"^{key} = .*$", f'{key} = "{value}"', text, count=1, flags=re.M)
    path = tmp_path / "riskgate.toml"
    path.write_text(text)
    return path


def _redis_contents(url: str) -> bytes:
    """Everything the Redis holds, as bytes, whatever the type of each key."""
    client = redis.Redis.from_url(url)
    try:
        chunks: list[bytes] = []
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            if kind == b"stream":
                chunks += [repr(entry).encode() for entry in client.xrange(key)]
            elif kind == b"hash":
                chunks.append(repr(client.hgetall(key)).encode())
            elif kind == b"string":
                chunks.append(client.get(key) or b"")
            elif kind == b"list":
                chunks += client.lrange(key, 0, -1)
            elif kind == b"set":
                chunks += list(client.smembers(key))
            elif kind == b"zset":
                chunks += client.zrange(key, 0, -1)
            chunks.append(key)
        return b"\n".join(chunks)
    finally:
        client.close()


def _session(order: str, operators: str, monitor: str, secrets: dict[str, str]) -> None:
    """An operator session with valid tokens, a wrong one, and tokens in the wrong headers."""
    bearer = {name: [("authorization", f"Bearer {secret}")] for name, secret in secrets.items()}
    wrong_headers = [
        [("x-api-key", secrets["admin"])],
        [("authorization", secrets["admin"])],  # no "Bearer "
        [("authorization", f"Basic {secrets['admin']}")],
        [("x-authorization", f"Bearer {secrets['admin']}")],
        [("authorization", f"Bearer {secrets['admin']}"), ("authorization", f"Bearer {secrets['viewer']}")],
    ]
    with grpc.insecure_channel(operators) as channel:
        stub = admin_grpc.RiskAdminStub(channel)
        stub.SetCircuitBreaker(admin.CircuitBreaker(symbol="BTCUSDT", state=admin.BREAKER_HALTED, reason="drill"),
                               metadata=bearer["admin"], timeout=5)
        controls = admin.AccountControls(account_id="demo-alice", restriction=admin.RESTRICTION_REDUCE_ONLY,
                                         kyc_level=2)
        stub.SetAccountControls(controls, metadata=bearer["admin"], timeout=5)
        stub.ListCircuitBreakers(admin.ListCircuitBreakersRequest(), metadata=bearer["viewer"], timeout=5)
        for metadata in [bearer["bogus"], *wrong_headers]:
            with pytest.raises(grpc.RpcError) as refused:
                stub.SetCircuitBreaker(admin.CircuitBreaker(symbol="BTCUSDT", state=admin.BREAKER_NORMAL),
                                       metadata=metadata, timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        stub.SetCircuitBreaker(admin.CircuitBreaker(symbol="BTCUSDT", state=admin.BREAKER_NORMAL),
                               metadata=bearer["admin"], timeout=5)
    with grpc.insecure_channel(order) as channel:
        stub = pb_grpc.PreTradeRiskStub(channel)
        for n, metadata in enumerate([bearer["admin"], *wrong_headers, []]):  # a gateway that leaks a token
            stub.CheckOrder(pb.CheckOrderRequest(order_id=f"o-{n}", account_id="demo-bob", symbol="BTCUSDT",
                                                 side=pb.SIDE_BUY, order_type=pb.ORDER_TYPE_LIMIT, quantity="0.01",
                                                 price="60000", leverage=10), metadata=metadata, timeout=5)
    with grpc.insecure_channel(monitor) as channel:
        stub = mpb_grpc.RiskMonitorStub(channel)
        stub.SetInsuranceFund(mpb.InsuranceFund(balance="1000000"), metadata=bearer["admin"], timeout=5)
        for metadata in [bearer["bogus"], bearer["viewer"], *wrong_headers]:
            with pytest.raises(grpc.RpcError):
                stub.SetInsuranceFund(mpb.InsuranceFund(balance="1"), metadata=metadata, timeout=5)


def test_session_when_tokens_valid_invalid_and_misplaced_then_json_logs_and_no_token_anywhere(tmp_path: Path) -> None:
    secrets = {name: f"{name}-secret-{uuid.uuid4().hex}" for name in ("admin", "operator", "viewer", "bogus")}
    config = _config_with_tokens(tmp_path, [secrets["admin"], secrets["operator"], secrets["viewer"]])
    data_dir = tmp_path / "data"
    stderr = tmp_path / "serve.err"
    # The demo layout: embedded Redis, the monitor in this process; decisions all logged.
    process = _riskgate("serve", "--config", str(config), "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
                        "--log-format", "json", "--log-decisions-sample", "1", stderr=stderr)
    try:
        ready, monitor_ready = _ready_lines(process, READY, MONITOR_READY)
        order, operators = _address(ready), _address(ready, "operators on ")
        _session(order, operators, _address(monitor_ready), secrets)
        [redis_url] = {m.group(0) for m in re.finditer(r"redis://127\.0\.0\.1:\d+/0", stderr.read_text())}
        stored = _redis_contents(redis_url)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=SHUTDOWN_BOUND_S + 5) == 0
        stdout = process.stdout.read() if process.stdout is not None else b""
    finally:
        _end(process)
    text = stderr.read_text()
    entries = _json_lines(text)
    persisted = b"".join(path.read_bytes() for path in data_dir.rglob("*") if path.is_file())
    assert b"demo-alice" in persisted and b"drill" in stored  # what is searched does hold the session
    for secret in secrets.values():
        assert secret not in text
        assert secret.encode() not in stdout
        assert secret.encode() not in stored
        assert secret.encode() not in persisted

    def events(name: str) -> list[dict[str, object]]:
        return [e for e in entries if e.get("event") == name]

    assert {"started", "stop_requested", "stopped", "shutdown"} <= {str(e.get("event")) for e in entries}
    actions = [(e["action"], e["actor"], str(e["outcome"]).split(":")[0]) for e in events("admin_action")]
    assert ("SetCircuitBreaker", "demo-admin", "ok") in actions
    assert ("SetAccountControls", "demo-admin", "ok") in actions
    assert ("SetCircuitBreaker", "unknown token", "UNAUTHENTICATED") in actions
    assert ("SetCircuitBreaker", "anonymous", "UNAUTHENTICATED") in actions
    assert ("SetInsuranceFund", "demo-admin", "ok") in actions  # the monitor's RiskMonitor
    assert ("SetInsuranceFund", "demo-viewer", "PERMISSION_DENIED") in actions
    assert all(isinstance(e.get("roles"), list) for e in events("admin_action"))
    ok_breaker = next(e for e in events("admin_action") if e["action"] == "SetCircuitBreaker"
                      and e["outcome"] == "ok")
    assert any(b["scope"] == "BTCUSDT" and b["state"] == "HALTED" and b["set_by"] == "demo-admin"
               and b["version"] == ok_breaker["version"] for b in events("breaker_change"))
    assert any(r["account_id"] == "demo-alice" and r["restriction"] == "REDUCE_ONLY"
               for r in events("restriction_change"))
    assert len(events("decision")) == 7
    [started] = [e for e in events("started") if e["logger"] == "riskgate.api.server"]
    assert [e["logger"] for e in events("started")] == ["riskgate.api.server", "riskgate.monitor.service"]
    assert started["accounts"] and "load_s" in started and set(started["listeners"]) == {"orders", "admin"}  # type: ignore[arg-type]
    [shutdown] = events("shutdown")
    assert shutdown["exit_code"] == 0


def test_demo_tokens_when_listener_not_loopback_then_loud_warning_and_production_refuses(
        tmp_path: Path, flushed_redis: EmbeddedRedis) -> None:
    stderr = tmp_path / "serve.err"
    process = _riskgate("serve", "--redis-url", flushed_redis.url, "--listen", f"0.0.0.0:{free_port()}",
                        "--log-format", "json", stderr=stderr)
    try:
        _ready_lines(process, READY)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=SHUTDOWN_BOUND_S + 5) == 0
    finally:
        _end(process)
    [warning] = [e for e in _json_lines(stderr.read_text()) if e.get("event") == "demo_tokens_exposed"]
    assert warning["level"] == "WARNING" and "DEMO ADMIN TOKENS" in str(warning["msg"])
    assert warning["tokens"] == ["demo-admin", "demo-operator", "demo-viewer"]

    def refused(*argv: str) -> str:
        result = subprocess.run([sys.executable, "-m", "riskgate.cli.main", *argv], capture_output=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == ops.EXIT_CONFIG and len(lines) == 1 and READY.encode() not in result.stdout, (
            result)
        return lines[0]

    assert "demo admin tokens" in refused("serve", "--production", "--redis-url", flushed_redis.url,
                                          "--listen", "127.0.0.1:0")
    own = _config_with_tokens(tmp_path, [uuid.uuid4().hex for _ in range(3)])
    assert "embedded Redis" in refused("serve", "--production", "--config", str(own), "--listen", "127.0.0.1:0",
                                       "--data-dir", str(tmp_path / "data"))
    assert not (tmp_path / "data").exists()
    assert "demo admin tokens" in refused("monitor", "--production", "--redis-url", flushed_redis.url,
                                          "--listen", "127.0.0.1:0")


def test_check_production_when_demo_tokens_on_loopback_then_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(None)
    assert ops.check_production(config, ["127.0.0.1:50051", "[::1]:50052", "localhost:1"], False, True) is None
    assert not [r for r in caplog.records if getattr(r, "event", None) == "demo_tokens_exposed"]
    assert ops.check_production(config, ["127.0.0.1:50051", "10.0.0.5:50052"], False, True) is None
    assert [r.listeners for r in caplog.records  # type: ignore[attr-defined]
            if getattr(r, "event", None) == "demo_tokens_exposed"] == [["10.0.0.5:50052"]]
    assert [ops.is_loopback(a) for a in ("0.0.0.0:1", "[::]:1", ":1", "riskgate:1", "127.0.0.2:1", "unix:/x")] == [
        False, False, False, False, True, True]


class _Load:
    """A gateway thread sending checks back to back until told to stop."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = pb_grpc.PreTradeRiskStub(channel)
            n = 0
            while not self._stop.is_set():
                n += 1
                with contextlib.suppress(grpc.RpcError):
                    stub.CheckOrder(pb.CheckOrderRequest(
                        order_id=f"load-{n}", account_id="demo-alice", symbol="BTCUSDT", side=pb.SIDE_BUY,
                        order_type=pb.ORDER_TYPE_LIMIT, quantity="0.001", price="60000", leverage=20), timeout=2)
                    self.answered += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@contextlib.contextmanager
def _loaded_serve(redis_url: str, log: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[bytes], _Load]]:
    process = _riskgate("serve", "--redis-url", redis_url, "--listen", "127.0.0.1:0", "--admin-listen",
                        "127.0.0.1:0", "--log-format", "json", *extra, stderr=log)
    load: _Load | None = None
    try:
        [ready] = _ready_lines(process, READY)
        load = _Load(_address(ready))
        deadline = time.monotonic() + START_BOUND_S
        while load.answered < 20 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.005)
        assert load.answered >= 20, log.read_text()
        yield process, load
    finally:
        if load is not None:
            load.stop()
        _end(process)


@pytest.mark.timeout(300)
def test_sigterm_when_loaded_then_exits_zero_within_the_bound_every_time(
        tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        for round_ in range(SIGTERM_ROUNDS):
            client.flushall()
            log = tmp_path / f"serve-{round_}.err"
            with _loaded_serve(redis_server.url, log) as (process, _):
                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                try:
                    code = process.wait(timeout=SHUTDOWN_BOUND_S + 5)
                except subprocess.TimeoutExpired:
                    code = None
                took = time.monotonic() - signalled
            assert code == 0 and took < SHUTDOWN_BOUND_S, (round_, code, took, log.read_text()[-3000:])
            [shutdown] = [e for e in _json_lines(log.read_text()) if e.get("event") == "shutdown"]
            assert shutdown["exit_code"] == 0
    finally:
        client.close()


def test_sigterm_when_redis_hangs_during_the_stop_then_exits_within_the_shutdown_bound(tmp_path: Path) -> None:
    bound_s = 2.0
    own = EmbeddedRedis(tmp_path / "redis").start()
    log = tmp_path / "serve.err"
    try:
        with _loaded_serve(own.url, log, "--shutdown-timeout", str(bound_s)) as (process, _):
            assert own.pid is not None
            os.kill(own.pid, signal.SIGSTOP)  # Redis hangs: the write-behind drain cannot finish
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            code = process.wait(timeout=bound_s + 10)
            took = time.monotonic() - signalled
    finally:
        if own.pid is not None:
            os.kill(own.pid, signal.SIGCONT)
        own.stop()
    entries = _json_lines(log.read_text())
    assert code == ops.EXIT_UNCLEAN and took < bound_s, (code, took, log.read_text()[-3000:])
    assert [e["bound_s"] for e in entries if e.get("event") == "shutdown_timeout"] == [bound_s]
