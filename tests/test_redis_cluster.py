"""Riskgate on a real Redis Cluster (three masters from the embedded redis-server binary in
cluster mode, tests/redis_cluster.py): two gate shards whose keys sit on different nodes,
orders answered by both, a breaker set through one reaching the other, and a failover of the
node that holds the global records and one shard, survived without granting margin twice.
Real gRPC, real Redis; nothing asserts on timing."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from riskgate.store.connect import redis_client
from riskgate.store.keys import Keys, shard_tag
from riskgate.v1 import admin_pb2 as admin
from tests.conftest import Services
from tests.monitor_support import running_monitor, until
from tests.redis_cluster import LocalCluster
from tests.support import Client, codes, decision

KEYS = Keys("rg")
SHARDS = KEYS.shards(2)
# An account of each shard (crc32 % 2, as Book.owns assigns them).
ACCOUNTS = [next(f"acct-{n}" for n in range(100) if zlib.crc32(f"acct-{n}".encode()) % 2 == shard)
            for shard in (0, 1)]


def _master_index(key: str, masters: int = 3) -> int:
    return min(masters - 1, key_slot(key.encode()) // (REDIS_CLUSTER_HASH_SLOTS // masters))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "cluster", masters=3) as started:
        yield started


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three masters, and a replica of the one holding the global records."""
    with LocalCluster(tmp_path / "cluster", masters=3, replicated=(_master_index(KEYS.seq),)) as started:
        yield started


async def _gates(services: Services, **server: object) -> list[Client]:
    """Shard 0 and shard 1 of 2, a symbol with its mark, and an account with 100,000 on each."""
    clients = [(await services.start(shard_index=index, shard_count=2, **server))[1] for index in (0, 1)]
    await clients[0].upsert_symbol(mark="50000")
    for shard, account in enumerate(ACCOUNTS):
        # An account's state is written by its shard's gate (the other answers FAILED_PRECONDITION).
        await clients[shard].trader(account=account, balance="100000")
    return clients


@pytest.fixture
async def on_cluster(cluster: LocalCluster) -> AsyncIterator[Services]:
    services = Services(cluster.url)
    try:
        yield services
    finally:
        await services.stop_all()


async def _eventually(check, bound: int = 3000) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(bound):
        if await check():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_two_shards_when_on_a_cluster_then_their_keys_on_different_nodes_and_orders_answered_by_both(
        cluster: LocalCluster, on_cluster: Services) -> None:
    gates = await _gates(on_cluster)
    for shard, gate in enumerate(gates):
        response = await gate.check(account=ACCOUNTS[shard], quantity="0.1", order_id=f"o-{shard}")
        assert decision(response) == "DECISION_ACCEPT", codes(response)
    # Each shard's hash tag is served by another master, and its records are there.
    nodes = [cluster.master_of(shard.accounts) for shard in SHARDS]
    assert nodes[0].port != nodes[1].port
    redis = redis_client(cluster.url)
    try:
        for shard, keys in enumerate(SHARDS):
            assert await redis.hexists(keys.accounts, ACCOUNTS[shard])
            assert not await redis.hexists(keys.accounts, ACCOUNTS[1 - shard])

            async def reserved(keys: Keys = keys, shard: int = shard) -> bool:
                return bool(await redis.hexists(keys.orders, f"{ACCOUNTS[shard]}\x1fo-{shard}"))

            assert await _eventually(reserved)
            assert await redis.xlen(keys.account_events) >= 1
        assert int(await redis.get(KEYS.account_shards)) == 2
    finally:
        await redis.aclose()


async def test_breaker_when_set_through_one_shard_on_a_cluster_then_the_other_refuses(
        on_cluster: Services) -> None:
    gates = await _gates(on_cluster)
    await gates[0].set_breaker(admin.BREAKER_HALTED, reason="cluster-wide halt")

    async def halted_on_the_other() -> bool:
        response = await gates[1].check(account=ACCOUNTS[1], quantity="0.1")
        return codes(response) == ["REASON_PLATFORM_HALTED"]

    assert await _eventually(halted_on_the_other)
    # And back: lifted through the other gate, the first one accepts again.
    await gates[1].set_breaker(admin.BREAKER_NORMAL, reason="resumed")

    async def accepted_on_the_first() -> bool:
        return decision(await gates[0].check(account=ACCOUNTS[0], quantity="0.1")) == "DECISION_ACCEPT"

    assert await _eventually(accepted_on_the_first)


async def test_failover_when_master_of_global_records_killed_then_gates_fail_closed_and_resume_without_double_margin(
        replicated_cluster: LocalCluster) -> None:
    cluster = replicated_cluster
    services = Services(cluster.url)
    try:
        gates = await _gates(services, redis_stale_after_ms=1000)
        # Both have seen the other's start (the lease generation): a gate whose lease lapses
        # takes it back only if no process took a lease afresh since its last look (the rule
        # of redis_store's _PROBE_SCRIPT), so one killed too early would rightly stay closed.
        stores = [service.store for service, _ in services.running]

        async def generations_seen() -> bool:
            return len({store.lease_generation for store in stores if store is not None}) == 1

        assert await _eventually(generations_seen)
        # Shard 1's account reserves 66,000 of its 100,000 (6.6 BTC at 50,000, 5x).
        first = await gates[1].check(account=ACCOUNTS[1], quantity="6.6", leverage=5, order_id="big-1")
        assert decision(first) == "DECISION_ACCEPT", codes(first)
        victim = cluster.master_of(KEYS.seq)
        assert victim is cluster.masters[_master_index(KEYS.seq)]
        victim.kill()
        answers: list[tuple[str, list[str]]] = []
        # Each change of the three answers' reasons, for the failure message.
        history: list[tuple[list[str], list[str], list[str]]] = []

        async def served_again() -> bool:
            # The same margin again must never be granted: through the outage, the failover
            # and the reload the reservation holds (or the gate refuses as state-unavailable).
            again = await gates[1].check(account=ACCOUNTS[1], quantity="6.6", leverage=5)
            answers.append((decision(again), codes(again)))
            small = await gates[1].check(account=ACCOUNTS[1], quantity="0.1", leverage=5)
            other = await gates[0].check(account=ACCOUNTS[0], quantity="0.1")
            state = (codes(again), codes(small), codes(other))
            if not history or history[-1] != state:
                history.append(state)
            return decision(small) == "DECISION_ACCEPT" and decision(other) == "DECISION_ACCEPT"

        assert await _eventually(served_again, bound=6000), history
        assert all(answer == "DECISION_REJECT" for answer, _ in answers), answers
        assert {tuple(reasons) for _, reasons in answers} <= {("REASON_INSUFFICIENT_MARGIN",),
                                                              ("REASON_STATE_UNAVAILABLE",)}
        # Served by the replica that took over (as every live node's view says, once gossip settled).
        cluster.wait_ok()
        replica = cluster.replicas[_master_index(KEYS.seq)]

        async def replica_serves() -> bool:
            return cluster.master_of(KEYS.seq) is replica

        assert await _eventually(replica_serves)
        # The reservation is in Redis again (shard 1's tag sat on the killed master too: what
        # the replica had not received, the gate's reload wrote back).
        redis = redis_client(cluster.url)
        try:
            async def reservation_stored() -> bool:
                return bool(await redis.hexists(SHARDS[1].orders, f"{ACCOUNTS[1]}\x1fbig-1"))

            assert await _eventually(reservation_stored)
        finally:
            await redis.aclose()
    finally:
        await services.stop_all()


async def test_monitor_when_on_a_cluster_with_two_shards_then_follows_both_shards_accounts(
        cluster: LocalCluster, on_cluster: Services) -> None:
    gates = await _gates(on_cluster)
    async with running_monitor(cluster.url, []) as (monitor, _):
        feed = monitor.account_feed
        assert feed is not None and len(feed.shard_keys) == 2
        assert set(monitor.columns.ids) >= set(ACCOUNTS)
        before = feed.events
        for shard, gate in enumerate(gates):
            response = await gate.check(account=ACCOUNTS[shard], quantity="0.1", order_id=f"m-{shard}")
            assert decision(response) == "DECISION_ACCEPT", codes(response)
        # One account event per shard's batch at least: each followed from its own stream.
        await until(lambda: asyncio.sleep(0, feed.events), lambda events: events >= before + 2)


def test_shard_tags_when_computed_then_spread_evenly_over_the_slots_and_deterministic() -> None:
    for count in (1, 2, 3, 4, 10, 16):
        band = REDIS_CLUSTER_HASH_SLOTS / count
        tags = [shard_tag("rg", index, count) for index in range(count)]
        assert len(set(tags)) == count
        for index, tag in enumerate(tags):
            # In its own band, well inside it: equal slot ranges put shards on distinct masters.
            slot = key_slot(tag.encode())
            assert abs(slot - band * (index + 0.5)) < band / 4, (tag, slot)
            assert tag == Keys("rg", index, count).shard_tag
            assert tag.startswith(f"{{rg:s{index}of{count}") and tag.endswith("}")
    assert shard_tag("rg", 0, 2) == "{rg:s0of2.22}"  # stable across releases: keys in Redis depend on it


async def test_link_loss_when_on_a_cluster_then_gate_resumes_from_change_stream_without_reload(
        cluster: LocalCluster, on_cluster: Services) -> None:
    # The change stream and the identity read are on the node of the global tag; a gate cut off
    # from every node catches up from there instead of reloading its book.
    service, gate = await on_cluster.start(shard_index=0, shard_count=2)
    _, other = await on_cluster.start(shard_index=1, shard_count=2)
    await gate.upsert_symbol(mark="50000")
    await gate.trader(account=ACCOUNTS[0], balance="100000")
    store = service.store
    assert store is not None and store.loads_done == 1 and store.resumes_done == 0
    for node in cluster.masters:
        client = node.client()
        try:
            for kind in ("pubsub", "normal"):
                client.client_kill_filter(_type=kind, skipme=True)
        finally:
            client.close()

    async def mark_set() -> bool:  # through the other gate, itself reconnecting
        try:
            await other.set_mark("BTCUSDT", "50100")
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return False
        return True

    assert await _eventually(mark_set)

    async def caught_up() -> bool:
        mark = service.book.symbols["BTCUSDT"].mark
        return store.resumes_done >= 1 and mark is not None and str(mark.price) == "50100"

    assert await _eventually(caught_up)
    assert store.loads_done == 1  # no full reload
    assert decision(await gate.check(account=ACCOUNTS[0], quantity="0.1", price="50100")) == "DECISION_ACCEPT"


async def test_failover_when_node_of_a_shard_but_not_global_tag_lost_batches_then_reloads_and_writes_back(
        tmp_path: Path) -> None:
    # The subscription and the change stream live on the global tag's node, so a failover of the
    # node holding only a shard's keys breaks neither: the health round must notice the node
    # changed and reload, or what the replica missed stays lost in Redis and a restarted gate
    # grants the same margin again.
    own = [f"acct-{n}" for n in range(100) if zlib.crc32(f"acct-{n}".encode()) % 2 == 0]
    account, probe = own[0], own[1]
    with LocalCluster(tmp_path / "cluster", masters=3, replicated=(0,)) as cluster:
        assert cluster.master_of(SHARDS[0].accounts) is cluster.masters[0]
        assert cluster.master_of(KEYS.seq) is not cluster.masters[0]
        url = f"redis+cluster://127.0.0.1:{cluster.masters[1].port}"
        services = Services(url)
        try:
            service, gate = await services.start(shard_index=0, shard_count=2, redis_stale_after_ms=1000)
            await gate.upsert_symbol(mark="50000")
            await gate.trader(account=account, balance="100000")
            await gate.trader(account=probe, balance="100000")
            store = service.store
            assert store is not None
            # A replica that lags (its reconnects fail authentication) and takes over anyway.
            replica = cluster.replicas[0]
            with contextlib.closing(replica.client()) as client:
                client.config_set("cluster-replica-validity-factor", 0)
                client.config_set("masteruser", "nobody")
                client.config_set("masterauth", "wrong")
            with contextlib.closing(cluster.masters[0].client()) as client:
                client.execute_command("CLIENT", "KILL", "TYPE", "replica")
            await asyncio.sleep(0.5)
            # Acknowledged while the replica lags: a reservation of 66,000 and a fill.
            assert decision(await gate.check(account=account, quantity="6.6", leverage=5,
                                             order_id="big-1")) == "DECISION_ACCEPT"
            await gate.fill(account, "big-1", "3.3", "50000", execution_id="exec-A")
            loads = store.loads_done
            cluster.masters[0].kill()

            async def written_back() -> bool:
                if cluster.master_of(SHARDS[0].accounts) is not replica or store.loads_done <= loads:
                    return False
                redis = redis_client(url)
                try:
                    executions = await redis.hkeys(SHARDS[0].executions)
                    orders = await redis.hkeys(SHARDS[0].orders)
                finally:
                    await redis.aclose()
                return any(b"exec-A" in key for key in executions) and any(b"big-1" in key for key in orders)

            assert await _eventually(written_back, bound=6000)
            await services.stop(service)
            _, restarted = await services.start(shard_index=0, shard_count=2, redis_stale_after_ms=1000)
            again = await restarted.check(account=account, quantity="6.6", leverage=5, order_id="big-2")
            assert decision(again) != "DECISION_ACCEPT", codes(again)
            assert (await restarted.fill(account, "big-1", "3.3", "50000", execution_id="exec-A")).duplicate
        finally:
            await services.stop_all()
