"""riskgate.client: the gateway's routing rule (crc32 of the account id modulo the shard count)
sends every order and execution report to the shard that owns the account, against two real
shards sharing one Redis (in-process services, and `riskgate serve --shard-index` processes)."""

from __future__ import annotations

import asyncio
import os
import random
import string
import zlib
from pathlib import Path

import grpc
import pytest

import riskgate.book.state
from riskgate import client as routing
from riskgate.book.state import Book
from riskgate.cli.main import main
from riskgate.client import ShardedClient, SyncShardedClient, shard_of
from riskgate.config import ConfigError, apply_shard_overrides, load_config
from riskgate.store.embedded import EmbeddedRedis, free_port
from riskgate.v1 import pretrade_pb2 as pb
from tests import processes
from tests.conftest import Services
from tests.support import Client, codes, decision

ACCOUNTS = 120


def _random_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "-_.:"
    ids = {"".join(rng.choices(alphabet, k=rng.randint(1, 40))) for _ in range(count)}
    ids |= {"acct-é-ü", "口座-7"}  # non-ASCII: crc32 is of the UTF-8 bytes
    return sorted(ids)


def test_shard_of_is_the_gates_own_function() -> None:
    assert routing.shard_of is riskgate.book.state.shard_of
    for count in range(1, 8):
        books = [Book(100, 300.0, index, count) for index in range(count)]
        for account in _random_ids(200, seed=count):
            owner = shard_of(account, count)
            assert owner == zlib.crc32(account.encode()) % count
            assert [book.owns(account) for book in books] == [index == owner for index in range(count)]


def test_shard_of_refuses_no_shards() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        shard_of("acct-1", 0)


def test_targets_are_a_list_in_shard_order() -> None:
    with pytest.raises(TypeError):
        SyncShardedClient("127.0.0.1:50051")
    with pytest.raises(ValueError):
        SyncShardedClient([])
    with SyncShardedClient(["a:1", "b:2", "c:3"]) as gate:
        assert gate.shard_count == 3
        for account in _random_ids(50, seed=9):
            assert gate.target_for(account) == ["a:1", "b:2", "c:3"][zlib.crc32(account.encode()) % 3]


async def _two_shards(services: Services) -> tuple[list[Client], list[str]]:
    _, zero = await services.start(shard_index=0, shard_count=2)
    _, one = await services.start(shard_index=1, shard_count=2)
    shards = [zero, one]
    await zero.upsert_symbol(mark="50000")  # symbols and marks are every shard's
    accounts = _random_ids(ACCOUNTS, seed=2)
    # Set up through the owning shard, found independently of the code under test.
    for account in accounts:
        await shards[zlib.crc32(account.encode()) % 2].trader(account)
    assert {zlib.crc32(a.encode()) % 2 for a in accounts} == {0, 1}
    return shards, accounts


async def test_sharded_client_when_random_accounts_then_each_order_reaches_its_owning_shard(
        services: Services) -> None:
    shards, accounts = await _two_shards(services)
    async with ShardedClient([shard.target for shard in shards]) as gate:
        for account in accounts:
            owner = zlib.crc32(account.encode()) % 2
            request = shards[owner].request(account=account, quantity="0.01", price="50000")
            response = await gate.check_order(request, timeout=10)
            assert decision(response) == "DECISION_ACCEPT", (account, codes(response))
            # The other shard refuses the same account: the routing is what made it pass.
            other = await shards[1 - owner].pretrade.CheckOrder(
                shards[1 - owner].request(account=account, quantity="0.01", price="50000"))
            assert codes(other) == ["REASON_ACCOUNT_NOT_OWNED"], account

            ack = await gate.report_execution(pb.ExecutionReport(
                order_id=request.order_id, account_id=account, kind=pb.EXECUTION_KIND_CANCELED), timeout=10)
            assert ack.order_id == request.order_id and ack.remaining_quantity == "0"
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await shards[1 - owner].pretrade.ReportExecution(pb.ExecutionReport(
                    order_id=request.order_id, account_id=account, kind=pb.EXECUTION_KIND_CANCELED))
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND


async def test_sync_sharded_client_routes_the_same_way(services: Services) -> None:
    shards, accounts = await _two_shards(services)

    def send_all() -> list[str]:
        with SyncShardedClient([shard.target for shard in shards]) as gate:
            return [decision(gate.check_order(shards[0].request(account=account, quantity="0.01", price="50000"),
                                              timeout=10)) for account in accounts]

    assert await asyncio.to_thread(send_all) == ["DECISION_ACCEPT"] * len(accounts)


def test_shard_overrides_from_flags_then_environment_then_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKGATE_SHARD_INDEX", raising=False)
    monkeypatch.delenv("RISKGATE_SHARD_COUNT", raising=False)
    assert apply_shard_overrides(load_config(None), 2, 3).server.shard_index == 2
    monkeypatch.setenv("RISKGATE_SHARD_INDEX", "1")
    monkeypatch.setenv("RISKGATE_SHARD_COUNT", "4")
    config = apply_shard_overrides(load_config(None), None, None)
    assert (config.server.shard_index, config.server.shard_count) == (1, 4)
    assert apply_shard_overrides(load_config(None), 3, None).server.shard_index == 3
    with pytest.raises(ConfigError, match=r"shard_index must be in \[0, shard_count\)"):
        apply_shard_overrides(load_config(None), 4, None)
    monkeypatch.setenv("RISKGATE_SHARD_INDEX", "riskgate-1")
    with pytest.raises(ConfigError, match="RISKGATE_SHARD_INDEX: expected a whole number"):
        apply_shard_overrides(load_config(None), None, None)


def test_serve_when_shard_index_outside_the_count_then_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKGATE_SHARD_INDEX", raising=False)
    monkeypatch.delenv("RISKGATE_SHARD_COUNT", raising=False)
    assert main(["serve", "--redis-url", "redis://127.0.0.1:1/0", "--shard-index", "2", "--shard-count", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shard_index must be in [0, shard_count)" in err
    assert main(["serve", "--shard-index", "-1"]) == 2
    assert "must be 0 or more" in capsys.readouterr().err


async def test_two_serve_processes_from_flags_and_environment_route_the_demo_accounts(
        redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """`riskgate serve --shard-index 0 --shard-count 2` and one given its shard by environment
    (as the StatefulSet's command does), on the sample configuration's demo accounts."""
    await processes.flush(redis_server.url)
    ports = [free_port(), free_port()]
    first = processes.serve(redis_server.url, ports[0], tmp_path / "shard-0.log", "--shard-index", "0",
                            "--shard-count", "2")
    env = {"RISKGATE_SHARD_INDEX": "1", "RISKGATE_SHARD_COUNT": "2"}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        second = processes.serve(redis_server.url, ports[1], tmp_path / "shard-1.log")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    shards = [Client(port) for port in ports]
    try:
        await processes.ready(first)
        await processes.ready(second)
        demo = ["demo-alice", "demo-bob", "demo-carol", "demo-dave", "demo-erin", "demo-frozen"]
        assert {shard_of(account, 2) for account in demo} == {0, 1}
        async with ShardedClient([f"127.0.0.1:{port}" for port in ports]) as gate:
            for account in demo:
                routed = await gate.check_order(
                    shards[0].request(account=account, symbol="BTCUSDT", quantity="0.001", price="60000"),
                    timeout=10)
                assert "REASON_ACCOUNT_NOT_OWNED" not in codes(routed), account
                assert "REASON_UNKNOWN_ACCOUNT" not in codes(routed), account  # the owner holds it
                other = await shards[1 - shard_of(account, 2)].check(account=account, quantity="0.001",
                                                                      price="60000")
                assert codes(other) == ["REASON_ACCOUNT_NOT_OWNED"], account
    finally:
        for shard in shards:
            await shard.close()
        processes.end(first)
        processes.end(second)
