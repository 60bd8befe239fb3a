"""Faults over a real Redis process: dead, hung (SIGSTOP) and recovered; admin calls racing a
hang; health through load, outage, recovery and stop; overload."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from grpc.aio import AioRpcError
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskgate.api.server import ListenError, RiskgateService
from riskgate.store.embedded import EmbeddedRedis, free_port
from riskgate.store.keys import Keys
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pretrade_grpc
from tests.audit_trail import all_audit
from tests.conftest import Services
from tests.support import Client, decision, test_config

BOUND_MS = 300


async def _until(check, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


def _wait_stopped(pid: int) -> None:
    """Returns once the kernel reports the process stopped: no answer can leave it after this."""
    for _ in range(500):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        time.sleep(0.002)
    raise AssertionError(f"process {pid} did not stop")


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        if server.pid is not None:
            os.kill(server.pid, signal.SIGCONT)
        server.stop()


class _Flow:
    """Risk-increasing orders at a steady pace; records (sent at, decision) of each."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.results: list[tuple[float, str]] = []
        self.errors = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            sent = time.monotonic()
            try:
                response = await self.client.pretrade.CheckOrder(self.client.request(quantity="0.001", price="50000"),
                                                                 timeout=5)
                self.results.append((sent, decision(response)))
            except AioRpcError:
                self.errors += 1
            await asyncio.sleep(0.005)

    def __enter__(self) -> _Flow:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def accepted_after(self, moment: float) -> list[float]:
        return [sent - moment for sent, outcome in self.results if sent > moment and outcome == "DECISION_ACCEPT"]


async def _redis_command(url: str, *command: object) -> None:
    redis = aioredis.Redis.from_url(url)
    try:
        await redis.execute_command(*command)
    finally:
        await redis.aclose()


@pytest.mark.parametrize("fault", ["hung", "dead", "writes paused", "writes refused"])
async def test_redis_fault_when_orders_flow_then_no_increasing_accept_after_bound_and_recovery(
        own_redis: EmbeddedRedis, fault: str) -> None:
    services = Services(own_redis.url)
    restarted: EmbeddedRedis | None = None
    try:
        _, client = await services.start(redis_stale_after_ms=BOUND_MS)
        await client.upsert_symbol(mark="50000", mark_price_max_age_ms=3_600_000)
        await client.trader(balance="100000000")
        with _Flow(client) as flow:
            await _until(lambda: asyncio.sleep(0, len(flow.results) > 20))
            pid = own_redis.pid
            assert pid is not None
            if fault == "hung":
                os.kill(pid, signal.SIGSTOP)
                _wait_stopped(pid)
            elif fault == "dead":
                own_redis.kill()
            elif fault == "writes paused":  # as during a failover: answers reads, holds writes
                await _redis_command(own_redis.url, "CLIENT", "PAUSE", 3000, "WRITE")
            else:  # as a demoted master or a full disk: answers, refuses writes
                await _redis_command(own_redis.url, "CONFIG", "SET", "min-replicas-to-write", 1)
            faulted_at = time.monotonic()
            await asyncio.sleep(BOUND_MS / 1000 * 4)
            # An order sent after the bound was evaluated after it: none may add risk.
            assert flow.accepted_after(faulted_at + BOUND_MS / 1000) == []
            assert any(outcome == "DECISION_REJECT" for sent, outcome in flow.results if sent > faulted_at)
            if fault == "hung":
                os.kill(pid, signal.SIGCONT)
            elif fault == "dead":
                restarted = EmbeddedRedis(own_redis.data_dir, port=own_redis.port).start()
            elif fault == "writes paused":
                await _redis_command(own_redis.url, "CLIENT", "UNPAUSE")
            else:
                await _redis_command(own_redis.url, "CONFIG", "SET", "min-replicas-to-write", 0)
            recovered_from = time.monotonic()
            assert await _until(lambda: asyncio.sleep(0, bool(flow.accepted_after(recovered_from))))
    finally:
        await services.stop_all()
        if restarted is not None:
            restarted.stop()


async def test_admin_change_when_caller_deadline_passes_during_hang_then_never_applied_and_audited(
        own_redis: EmbeddedRedis) -> None:
    services = Services(own_redis.url)
    redis = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        _, client = await services.start(redis_stale_after_ms=2000)
        await client.upsert_symbol(mark="50000")
        pid = own_redis.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        _wait_stopped(pid)
        with pytest.raises(AioRpcError) as error:
            await client.admin.SetCircuitBreaker(
                admin.CircuitBreaker(state=admin.BREAKER_HALTED, reason="during hang"),
                metadata=client.auth(), timeout=0.3)
        assert error.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
        await asyncio.sleep(1.0)
        os.kill(pid, signal.SIGCONT)

        async def audited() -> list[dict[str, str]]:
            rows = await all_audit(redis)  # refusals are written behind: the shard's stream
            return [f for _, f in rows if f["action"] == "SetCircuitBreaker"]

        assert await _until(audited)
        entries = await audited()
        # Not acknowledged, so not applied: not in Redis, not in the book, and audited as such.
        assert await redis.hget(Keys("rg").breakers, "") is None
        breakers = await client.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(), metadata=client.auth())
        assert [b.state for b in breakers.breakers] == [admin.BREAKER_NORMAL]
        assert [e["outcome"].split(":")[0] for e in entries] in (
            ["abandoned"], ["expired"], ["unavailable"], ["unconfirmed"])
        # Once Redis answers again, an acknowledged change is applied.
        async def acknowledged() -> bool:
            try:
                await client.set_breaker(admin.BREAKER_HALTED, reason="after hang")
            except AioRpcError:
                return False
            return True

        assert await _until(acknowledged)
        assert await redis.hget(Keys("rg").breakers, "") is not None
    finally:
        await redis.aclose()
        await services.stop_all()


async def _health(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return (await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)).status


async def test_health_when_loading_failing_closed_recovered_and_stopping_then_follows_each(
        own_redis: EmbeddedRedis) -> None:
    service = RiskgateService(test_config(redis_stale_after_ms=BOUND_MS), own_redis.url)
    port = await service.bind()
    client = Client(port, service.admin_port)
    try:
        # Bound, not loaded: health says so, and orders are refused as unavailable.
        assert await _health(client.channel) == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(AioRpcError) as error:
            await client.check()
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        await service.start()
        assert await _health(client.channel) == health_pb2.HealthCheckResponse.SERVING

        pid = own_redis.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        _wait_stopped(pid)

        async def status_is(expected: int) -> bool:
            return await _health(client.channel, "riskgate.v1.PreTradeRisk") == expected

        assert await _until(lambda: status_is(health_pb2.HealthCheckResponse.NOT_SERVING))
        os.kill(pid, signal.SIGCONT)
        assert await _until(lambda: status_is(health_pb2.HealthCheckResponse.SERVING))

        watch = health_pb2_grpc.HealthStub(client.channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.get_running_loop().create_task(service.stop(grace_s=0.5))
        # The first thing a stop does is say it: before the port closes.
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        report = await stopping
        assert report.clean, report.unfinished
    finally:
        await client.close()
        await service.stop()


async def _saturate(client: Client, slots: int) -> list[grpc.aio.StreamStreamCall]:
    """Opens `slots` order streams and keeps them open: they occupy the in-flight slots, as a
    burst of slow calls would."""
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="100000000")
    held = [client.pretrade.CheckOrders() for _ in range(slots)]
    for stream in held:
        await stream.write(client.request(quantity="0.001"))
        await stream.read()
    return held


async def test_check_orders_when_offered_beyond_admission_then_resource_exhausted_at_once_and_recovers(
        services: Services) -> None:
    _, client = await services.start(max_concurrent_rpcs=4)
    held = await _saturate(client, 4)
    with pytest.raises(AioRpcError) as error:
        await client.check(quantity="0.001")
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for stream in held:
        await stream.done_writing()
        assert await stream.read() is grpc.aio.EOF
    assert await _until(lambda: _accepts(client))


async def _accepts(client: Client) -> bool:
    try:
        return decision(await client.check(quantity="0.001")) == "DECISION_ACCEPT"
    except AioRpcError:
        return False


async def test_duplicate_order_id_when_within_window_then_refused_and_after_it_accepted(services: Services) -> None:
    _, client = await services.start(duplicate_window_seconds=1.0)
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="100000000")
    await client.check(quantity="0.001", order_id="reused")
    await client.close_order("acct-1", "reused")
    closed_at = time.monotonic()
    refused = await client.check(quantity="0.001", order_id="reused")
    assert decision(refused) == "DECISION_REJECT"
    while time.monotonic() - closed_at < 1.2:
        await asyncio.sleep(0.05)
    assert decision(await client.check(quantity="0.001", order_id="reused")) == "DECISION_ACCEPT"


async def test_reservations_when_listed_and_one_released_then_gone_from_book_and_redis(
        services: Services, redis_server) -> None:
    _, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await client.check(quantity="0.01", order_id="zombie")
    await client.check(quantity="0.01", order_id="live")
    listed = await client.admin.ListReservations(admin.ListReservationsRequest(account_id="acct-1"),
                                                 metadata=client.auth())
    assert [r.order_id for r in listed.reservations] == ["zombie", "live"] and listed.total == 2
    with pytest.raises(AioRpcError) as error:
        await client.admin.ReleaseReservation(admin.ReleaseReservationRequest(account_id="acct-1", order_id="zombie"),
                                              metadata=client.auth())
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # a reason is required
    released = await client.admin.ReleaseReservation(
        admin.ReleaseReservationRequest(account_id="acct-1", order_id="zombie", reason="cancel report lost"),
        metadata=client.auth())
    assert released.order_id == "zombie" and released.reserved_cost == "50"
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        fields = await redis.hkeys(Keys("rg").orders)  # answered only after Redis has it
        assert [f.decode().split("\x1f")[1] for f in fields] == ["live"]
    finally:
        await redis.aclose()
    risk = await client.risk("acct-1")
    assert (risk.open_orders, risk.reserved_order_cost) == (1, "50")
    with pytest.raises(AioRpcError) as error:
        await client.admin.ReleaseReservation(
            admin.ReleaseReservationRequest(account_id="acct-1", order_id="zombie", reason="again"),
            metadata=client.auth())
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_check_when_deadline_passed_before_server_could_answer_then_no_reservation_is_left(
        services: Services) -> None:
    _, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="100000000")

    def fire() -> list[grpc.StatusCode]:
        # A caller on its own thread, so its deadlines run out while this event loop (the
        # server's) is blocked, as under overload.
        with grpc.insecure_channel(client.target) as channel:
            stub = pretrade_grpc.PreTradeRiskStub(channel)
            calls = [stub.CheckOrder.future(client.request(quantity="0.001", order_id=f"late-{n}"), timeout=0.1)
                     for n in range(20)]
            return [call.exception().code() if call.exception() else grpc.StatusCode.OK for call in calls]

    caller = threading.Thread(target=lambda: outcomes.extend(fire()))
    outcomes: list[grpc.StatusCode] = []
    caller.start()
    time.sleep(0.5)  # the server's loop is stalled past every deadline
    await asyncio.to_thread(caller.join)
    assert outcomes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 20
    assert decision(await client.check(quantity="0.001", order_id="fresh")) == "DECISION_ACCEPT"
    listed = await client.admin.ListReservations(admin.ListReservationsRequest(), metadata=client.auth())
    assert [r.order_id for r in listed.reservations] == ["fresh"]


async def test_stop_when_redis_holds_writes_then_reports_what_was_not_written(own_redis: EmbeddedRedis) -> None:
    service = RiskgateService(test_config(), own_redis.url)
    client = Client(await service.start(), service.admin_port)
    try:
        await client.upsert_symbol(mark="50000")
        await client.trader()
        await _redis_command(own_redis.url, "CLIENT", "PAUSE", 5000, "WRITE")
        assert decision(await client.check(quantity="0.01")) == "DECISION_ACCEPT"
        report = await service.stop(grace_s=0.2, drain_s=0.5)
        # Never "clean" while an acknowledged reservation is not in Redis.
        assert not report.clean
        assert any("write-behind not drained" in line for line in report.unfinished), report.unfinished
    finally:
        await _redis_command(own_redis.url, "CLIENT", "UNPAUSE")
        await client.close()
        await service.stop()


async def test_reconnect_when_redis_lost_what_it_was_written_then_memory_is_written_back(
        services: Services, redis_server: EmbeddedRedis) -> None:
    service, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="10000")
    await client.check(quantity="0.1", order_id="kept")
    await client.check(quantity="0.1", order_id="filled")
    await client.fill("acct-1", "filled", "0.1", "50000")
    redis = aioredis.Redis.from_url(redis_server.url)
    try:
        keys = Keys("rg")
        # As after a failover to a replica that missed the last writes: the reservation and
        # the fill are gone from Redis, and a reservation closed here is back.
        await redis.hdel(keys.orders, "acct-1\x1fkept")
        await redis.hdel(keys.accounts, "acct-1")
        await redis.hset(keys.orders, "acct-1\x1fghost", json.dumps({
            "order_id": "ghost", "account_id": "acct-1", "symbol": "BTCUSDT", "side": 1, "price": "50000",
            "leverage": 10, "remaining": "0.1", "reducing_left": "0", "increasing_left": "0.1",
            "cost_left": "500", "created_ms": 1}))
        # A failover also gives Redis another replication id: the gate cannot resume from the
        # change stream (tests/test_resume.py) and reloads in full, comparing and writing back.
        await redis.execute_command("DEBUG", "CHANGE-REPL-ID")
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # the link drops; riskgate reloads

        async def written_back() -> bool:
            orders = {f.decode().split("\x1f")[1] for f in await redis.hkeys(keys.orders)}
            account = await redis.hget(keys.accounts, "acct-1")
            return orders == {"kept"} and account is not None and json.loads(account)["d"]["positions"] != []

        assert await _until(written_back)
    finally:
        await redis.aclose()
    assert service.book.accounts["acct-1"].orders.keys() == {"kept"}


async def test_start_when_redis_holds_an_inconsistent_reservation_then_it_is_skipped_and_orders_flow(
        flushed_redis: EmbeddedRedis) -> None:
    redis = aioredis.Redis.from_url(flushed_redis.url)
    try:
        await redis.hset(Keys("rg").orders, "acct-1\x1fpoison", json.dumps({
            "order_id": "poison", "account_id": "acct-1", "symbol": "BTCUSDT", "side": 2, "price": "50000",
            "leverage": 0, "remaining": "1", "reducing_left": "1", "increasing_left": "0", "cost_left": "0",
            "created_ms": 1}))
    finally:
        await redis.aclose()
    services = Services(flushed_redis.url)
    try:
        service, client = await services.start()
        await client.upsert_symbol(mark="50000")
        await client.trader()
        assert decision(await client.check(quantity="0.01")) == "DECISION_ACCEPT"
        assert "poison" not in service.book.accounts["acct-1"].orders
    finally:
        await services.stop_all()


async def test_operators_when_order_port_is_saturated_then_their_own_listener_still_answers(
        services: Services) -> None:
    _, client = await services.start(max_concurrent_rpcs=4, admin_listen="127.0.0.1:0")
    held = await _saturate(client, 4)
    try:
        with pytest.raises(AioRpcError) as error:
            await client.check(quantity="0.001")
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # RiskAdmin is on the operators' listener only (client.admin), outside the order port's limit.
        halted = await client.set_breaker(admin.BREAKER_HALTED, reason="kill switch")
        assert halted.state == admin.BREAKER_HALTED
        assert await _health(client.admin_channel) == health_pb2.HealthCheckResponse.SERVING
    finally:
        for stream in held:
            await stream.done_writing()
            assert await stream.read() is grpc.aio.EOF

    async def halted_answer() -> bool:
        # The held streams' slots are freed once the server has ended them: until then the
        # order port may still say RESOURCE_EXHAUSTED.
        try:
            return [r.code for r in (await client.check(quantity="0.001")).reasons][:1] == [300]  # PLATFORM_HALTED
        except AioRpcError:
            return False
    assert await _until(halted_answer)


async def test_stop_when_an_execution_waits_for_a_slow_redis_then_unavailable_and_its_retry_is_a_duplicate(
        own_redis: EmbeddedRedis) -> None:
    service = RiskgateService(test_config(redis_stale_after_ms=3000), own_redis.url)
    client = Client(await service.start(), service.admin_port)
    restarted: RiskgateService | None = None
    try:
        await client.upsert_symbol(mark="50000")
        await client.trader()
        await client.check(quantity="1", order_id="o-1")
        await _redis_command(own_redis.url, "CLIENT", "PAUSE", 2500, "WRITE")
        fill = asyncio.get_running_loop().create_task(
            client.fill("acct-1", "o-1", "0.4", "50000", execution_id="t-1", sequence=1))
        await asyncio.sleep(0.2)  # the fill is applied and waits for its batch
        assert not fill.done()
        report = await service.stop(grace_s=0.5, drain_s=5.0)
        # Not known to be in Redis when the stop answered: the engine must report it again.
        with pytest.raises(AioRpcError) as error:
            await fill
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert report.clean, report.unfinished  # the drain wrote it once Redis took writes
        await client.close()
        restarted = RiskgateService(test_config(), own_redis.url)
        client = Client(await restarted.start(), restarted.admin_port)
        ack = await client.fill("acct-1", "o-1", "0.4", "50000", execution_id="t-1", sequence=1)
        assert ack.duplicate
        assert (ack.remaining_quantity, ack.position_quantity) == ("0.6", "0.4")
    finally:
        await _redis_command(own_redis.url, "CLIENT", "UNPAUSE")
        await client.close()
        await service.stop()
        if restarted is not None:
            await restarted.stop()


async def test_stop_when_an_execution_without_id_waits_for_a_slow_redis_then_it_is_acknowledged(
        own_redis: EmbeddedRedis) -> None:
    # Compatibility mode: a retry without an id could not be told apart, so the ack goes.
    service = RiskgateService(test_config(redis_stale_after_ms=3000, require_execution_id=False), own_redis.url)
    client = Client(await service.start(), service.admin_port)
    try:
        await client.upsert_symbol(mark="50000")
        await client.trader()
        await client.check(quantity="1", order_id="o-1")
        await _redis_command(own_redis.url, "CLIENT", "PAUSE", 2500, "WRITE")
        report_fill = client.pretrade.ReportExecution(pb.ExecutionReport(
            order_id="o-1", account_id="acct-1", kind=pb.EXECUTION_KIND_FILL, quantity="0.4", price="50000"))
        fill = asyncio.ensure_future(report_fill)
        await asyncio.sleep(0.2)
        assert not fill.done()
        report = await service.stop(grace_s=0.5, drain_s=5.0)
        ack = await fill
        assert (ack.remaining_quantity, ack.position_quantity) == ("0.6", "0.4")
        assert report.clean, report.unfinished
    finally:
        await _redis_command(own_redis.url, "CLIENT", "UNPAUSE")
        await client.close()
        await service.stop()


async def test_release_when_caller_deadline_passes_during_hang_then_not_released_anywhere(
        own_redis: EmbeddedRedis) -> None:
    services = Services(own_redis.url)
    redis = aioredis.Redis.from_url(own_redis.url)
    try:
        service, client = await services.start(redis_stale_after_ms=2000)
        await client.upsert_symbol(mark="50000")
        await client.trader()
        await client.check(quantity="0.01", order_id="kept")
        assert await _until(lambda: redis.hexists(Keys("rg").orders, "acct-1\x1fkept"))
        pid = own_redis.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        _wait_stopped(pid)
        with pytest.raises(AioRpcError) as error:
            await client.admin.ReleaseReservation(
                admin.ReleaseReservationRequest(account_id="acct-1", order_id="kept", reason="drill"),
                metadata=client.auth(), timeout=0.3)
        assert error.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(0.5)
        # Not acknowledged, so not applied: still held here and still in Redis.
        assert "kept" in service.book.accounts["acct-1"].orders
        assert await redis.hexists(Keys("rg").orders, "acct-1\x1fkept")
    finally:
        await redis.aclose()
        await services.stop_all()


async def test_reconnect_when_redis_holds_a_reservation_as_it_was_before_a_fill_then_it_is_rewritten(
        services: Services, redis_server: EmbeddedRedis) -> None:
    _, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await client.check(quantity="1", order_id="o-1")
    redis = aioredis.Redis.from_url(redis_server.url)
    keys = Keys("rg")
    try:
        async def persisted() -> bool:
            return await redis.hexists(keys.orders, "acct-1\x1fo-1")

        assert await _until(persisted)
        before_fill = await redis.hget(keys.orders, "acct-1\x1fo-1")
        await client.fill("acct-1", "o-1", "0.6", "50000")
        # As after a failover to a replica that missed the fill's batch for the order only.
        await redis.hset(keys.orders, "acct-1\x1fo-1", before_fill)
        # A failover also gives Redis another replication id: the gate cannot resume from the
        # change stream (tests/test_resume.py) and reloads in full, comparing and writing back.
        await redis.execute_command("DEBUG", "CHANGE-REPL-ID")
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")

        async def rewritten() -> bool:
            stored = await redis.hget(keys.orders, "acct-1\x1fo-1")
            return stored is not None and json.loads(stored)["remaining"] == "0.4"

        assert await _until(rewritten)
    finally:
        await redis.aclose()


async def test_list_reservations_when_limit_given_then_oldest_first_and_total_counts_all(client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader()
    for n in range(3):
        await client.check(quantity="0.01", order_id=f"o-{n}")
        await asyncio.sleep(0.002)  # distinct creation times
    listed = await client.admin.ListReservations(admin.ListReservationsRequest(limit=2), metadata=client.auth())
    assert ([r.order_id for r in listed.reservations], listed.total) == (["o-0", "o-1"], 3)


async def test_start_when_operators_address_is_taken_then_fails_and_frees_the_order_port(
        flushed_redis: EmbeddedRedis) -> None:
    order_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        admin_address = f"127.0.0.1:{taken.getsockname()[1]}"
        service = RiskgateService(test_config(listen=f"127.0.0.1:{order_port}", admin_listen=admin_address),
                                  flushed_redis.url)
        with pytest.raises(ListenError):
            await service.start()
        await service.stop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", order_port))  # free again: nothing of the failed start holds it


async def test_write_behind_when_redis_loses_its_scripts_then_later_batches_still_land(
        own_redis: EmbeddedRedis) -> None:
    # A batch of one script call goes without a MULTI and reloads a lost script itself; a batch
    # with an audit entry goes in a MULTI after the pipeline's SCRIPT EXISTS: both must land.
    services = Services(own_redis.url)
    redis = aioredis.Redis.from_url(own_redis.url)
    try:
        _, client = await services.start()
        await client.upsert_symbol(mark="50000")
        await client.trader()
        await client.check(quantity="0.01", order_id="before")
        assert await _until(lambda: redis.hexists(Keys("rg").orders, "acct-1\x1fbefore"))
        await redis.script_flush()
        await client.check(quantity="0.01", order_id="alone")
        assert await _until(lambda: redis.hexists(Keys("rg").orders, "acct-1\x1falone"))
        await redis.script_flush()
        await client.admin.ReleaseReservation(
            admin.ReleaseReservationRequest(account_id="acct-1", order_id="before", reason="drill"),
            metadata=client.auth())
        await client.check(quantity="0.01", order_id="with-audit")
        assert await _until(lambda: redis.hexists(Keys("rg").orders, "acct-1\x1fwith-audit"))
        assert not await redis.hexists(Keys("rg").orders, "acct-1\x1fbefore")
    finally:
        await redis.aclose()
        await services.stop_all()
