"""The gateway's side of sharding: send each order and each execution report to the riskgate
shard that owns its account.

Every account belongs to exactly one shard: `shard_of(account_id, shard_count)`, crc32 of the
account id's UTF-8 bytes modulo the number of shards. It is the gate's own function (the one
`Book.owns` uses to accept or refuse an account), imported here, not a copy of it. A shard
asked about an account it does not own rejects the order with REASON_ACCOUNT_NOT_OWNED, and
an execution report of an order it never saw with NOT_FOUND.

    async with ShardedClient(["riskgate-0.riskgate:50051", "riskgate-1.riskgate:50051"]) as gate:
        response = await gate.check_order(request)      # routed by request.account_id
        ack = await gate.report_execution(report)       # routed by report.account_id

Targets are listed in shard order: targets[i] is the shard started with shard_index = i, and
len(targets) is the shard_count every shard was started with. Create a ShardedClient inside
the event loop that will use it (gRPC's asyncio channels belong to one loop);
`SyncShardedClient` is the same over blocking channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Self

import grpc

from riskgate.book.state import shard_of
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc

__all__ = ["ShardedClient", "SyncShardedClient", "shard_of"]

Metadata = Sequence[tuple[str, str | bytes]]
ChannelOptions = Sequence[tuple[str, object]]


def _checked_targets(targets: Sequence[str]) -> list[str]:
    if isinstance(targets, str):
        raise TypeError("targets is a list of HOST:PORT in shard order, not one string")
    listed = list(targets)
    if not listed:
        raise ValueError("at least one shard target is needed")
    if any(not target or any(c.isspace() for c in target) for target in listed):
        raise ValueError(f"each target must be HOST:PORT, got {listed!r}")
    return listed


class _Routing:
    targets: list[str]

    @property
    def shard_count(self) -> int:
        return len(self.targets)

    def shard_for(self, account_id: str) -> int:
        """The index of the shard that owns account_id."""
        return shard_of(account_id, self.shard_count)

    def target_for(self, account_id: str) -> str:
        """The address of the shard that owns account_id."""
        return self.targets[self.shard_for(account_id)]


class ShardedClient(_Routing):
    """One grpc.aio channel per shard; each call goes to the shard that owns its account."""

    def __init__(self, targets: Sequence[str], credentials: grpc.ChannelCredentials | None = None,
                 options: ChannelOptions | None = None) -> None:
        """targets: HOST:PORT of each shard's order port, in shard order. credentials: TLS (or
        mTLS) channel credentials for every shard; None = plaintext."""
        self.targets = _checked_targets(targets)
        opts = list(options or [])
        self.channels = [grpc.aio.secure_channel(target, credentials, opts) if credentials is not None
                         else grpc.aio.insecure_channel(target, opts) for target in self.targets]
        self.stubs = [pb_grpc.PreTradeRiskStub(channel) for channel in self.channels]

    async def check_order(self, request: pb.CheckOrderRequest, timeout: float | None = None,
                          metadata: Metadata | None = None) -> pb.CheckOrderResponse:
        """CheckOrder on the shard that owns request.account_id."""
        stub = self.stubs[self.shard_for(request.account_id)]
        return await stub.CheckOrder(request, timeout=timeout, metadata=metadata)

    async def report_execution(self, report: pb.ExecutionReport, timeout: float | None = None,
                               metadata: Metadata | None = None) -> pb.ExecutionAck:
        """ReportExecution on the shard that owns report.account_id (the one that accepted the order)."""
        stub = self.stubs[self.shard_for(report.account_id)]
        return await stub.ReportExecution(report, timeout=timeout, metadata=metadata)

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class SyncShardedClient(_Routing):
    """ShardedClient over blocking gRPC channels, for scripts and threads without an event loop."""

    def __init__(self, targets: Sequence[str], credentials: grpc.ChannelCredentials | None = None,
                 options: ChannelOptions | None = None) -> None:
        self.targets = _checked_targets(targets)
        opts = list(options or [])
        self.channels = [grpc.secure_channel(target, credentials, opts) if credentials is not None
                         else grpc.insecure_channel(target, opts) for target in self.targets]
        self.stubs = [pb_grpc.PreTradeRiskStub(channel) for channel in self.channels]

    def check_order(self, request: pb.CheckOrderRequest, timeout: float | None = None,
                    metadata: Metadata | None = None) -> pb.CheckOrderResponse:
        return self.stubs[self.shard_for(request.account_id)].CheckOrder(request, timeout=timeout, metadata=metadata)

    def report_execution(self, report: pb.ExecutionReport, timeout: float | None = None,
                         metadata: Metadata | None = None) -> pb.ExecutionAck:
        return self.stubs[self.shard_for(report.account_id)].ReportExecution(report, timeout=timeout,
                                                                              metadata=metadata)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
