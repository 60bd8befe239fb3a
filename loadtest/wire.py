"""Prebuilt wire bytes: each order's CheckOrderRequest and the ExecutionReport that follows it.

Serialising before the timed run leaves the senders nothing to do per request but send.
The file holds a little-endian u32 count, then per order three u32-length-prefixed blobs:
the request, the report to send if it is accepted, the report to send if it is cut to reduce-only.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

from loadtest.workload import PlannedOrder
from riskgate.v1 import pretrade_pb2 as pb

_U32 = struct.Struct("<I")


def request(order: PlannedOrder) -> pb.CheckOrderRequest:
    return pb.CheckOrderRequest(
        order_id=order.order_id, account_id=order.account_id, symbol=order.symbol, side=order.side,
        order_type=order.order_type, quantity=order.quantity, price=order.price, leverage=order.leverage,
        reduce_only=order.reduce_only,
    )


def on_accept(order: PlannedOrder, sequence: int = 1) -> pb.ExecutionReport:
    """The matching engine's report: a fill with its trade id and feed sequence, or a cancel."""
    if order.fill:
        return pb.ExecutionReport(order_id=order.order_id, account_id=order.account_id,
                                  kind=pb.EXECUTION_KIND_FILL, quantity=order.quantity, price=order.fill_price,
                                  execution_id=f"t-{order.order_id}", sequence=sequence)
    return cancel(order)


def cancel(order: PlannedOrder) -> pb.ExecutionReport:
    """A partly allowed (reduce-only) order is canceled: filling it in full would over-fill it."""
    return pb.ExecutionReport(order_id=order.order_id, account_id=order.account_id,
                              kind=pb.EXECUTION_KIND_CANCELED, execution_id=f"c-{order.order_id}")


def encode_orders(orders: Sequence[PlannedOrder], with_executions: bool = True) -> bytes:
    parts = [_U32.pack(len(orders))]
    for sequence, order in enumerate(orders, start=1):
        blobs = [request(order).SerializeToString()]
        if with_executions:
            blobs += [on_accept(order, sequence).SerializeToString(), cancel(order).SerializeToString()]
        else:
            blobs += [b"", b""]
        for blob in blobs:
            parts.append(_U32.pack(len(blob)))
            parts.append(blob)
    return b"".join(parts)


def write_orders(path: Path, orders: Sequence[PlannedOrder], with_executions: bool = True) -> None:
    path.write_bytes(encode_orders(orders, with_executions))


def decode_orders(data: bytes) -> list[tuple[bytes, bytes, bytes]]:
    (count,) = _U32.unpack_from(data, 0)
    offset = _U32.size
    orders = []
    for _ in range(count):
        blobs = []
        for _ in range(3):
            (size,) = _U32.unpack_from(data, offset)
            offset += _U32.size
            blobs.append(data[offset:offset + size])
            offset += size
        orders.append((blobs[0], blobs[1], blobs[2]))
    return orders
