"""The baseline: PreTradeRisk with no logic, answering one prebuilt constant.

Set up as riskgate's server is (grpc.aio, the same options, the same event loop, the start-up
heap frozen), so the gap between the two is riskgate's own work and nothing else.
`python -m loadtest.baseline_server --listen 127.0.0.1:PORT`; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
from collections.abc import AsyncIterator, Sequence

import grpc

from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc

# Shaped like a typical riskgate accept, so both servers put the same bytes on the wire.
RESPONSE = pb.CheckOrderResponse(
    order_id="baseline-constant-order-id-000000", decision=pb.DECISION_ACCEPT, allowed_quantity="1.234",
    initial_margin="3702.41", order_cost="3704.44", available_margin="96295.56", max_leverage=125,
    estimated_liquidation_price="57123.4",
)
ACK = pb.ExecutionAck(order_id="baseline-constant-order-id-000000", remaining_quantity="0",
                      position_quantity="1.234", balance="100000", available_margin="96295.56")


class BaselineServicer(pb_grpc.PreTradeRiskServicer):
    async def CheckOrder(self, request: pb.CheckOrderRequest, context: grpc.aio.ServicerContext
                         ) -> pb.CheckOrderResponse:
        return RESPONSE

    async def CheckOrders(self, request_iterator: AsyncIterator[pb.CheckOrderRequest],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.CheckOrderResponse]:
        async for _ in request_iterator:
            yield RESPONSE

    async def ReportExecution(self, request: pb.ExecutionReport, context: grpc.aio.ServicerContext
                              ) -> pb.ExecutionAck:
        return ACK

    async def ReportExecutions(self, request_iterator: AsyncIterator[pb.ExecutionFeedMessage],
                               context: grpc.aio.ServicerContext) -> None:
        # The protocol with nothing behind it: one task reads, another acknowledges everything
        # read so far whenever it runs (riskgate's acknowledger, without Redis to wait for).
        read = {"through": 0, "acked": 0, "done": False}
        more = asyncio.Event()

        async def acknowledge() -> None:
            while True:
                await more.wait()
                more.clear()
                if read["through"] > read["acked"]:
                    read["acked"] = read["through"]
                    await context.write(pb.ExecutionFeedAck(acked_through=read["through"]))
                if read["done"] and read["acked"] == read["through"]:
                    return

        sender = asyncio.get_running_loop().create_task(acknowledge())
        try:
            async for message in request_iterator:
                read["through"] = message.offset
                more.set()
            read["done"] = True
            more.set()
            await sender
        finally:
            sender.cancel()


async def serve(listen: str, stop: asyncio.Event) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_PreTradeRiskServicer_to_server(BaselineServicer(), server)
    port = server.add_insecure_port(listen)
    if not port:
        raise RuntimeError(f"cannot listen on {listen}")
    await server.start()
    gc.collect()
    gc.freeze()
    print(f"baseline ready on port {port}", flush=True)
    await stop.wait()
    await server.stop(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.baseline_server")
    parser.add_argument("--listen", default="127.0.0.1:0")
    # The same event loop as `riskgate serve` (server.event_loop), so the floor is comparable.
    parser.add_argument("--event-loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args(argv)
    if args.event_loop == "uvloop":
        import uvloop

        uvloop.install()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(args.listen, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
