"""gRPC method handlers built from service descriptors, refusing undecodable requests.

The generated `add_*Servicer_to_server()` deserialize with `Message.FromString`: bytes that
are not a valid message raise inside grpc, before any servicer code (authentication
included) runs, and grpc answers UNKNOWN and logs a traceback, once per request. Here every
method of a service gets a deserializer that returns `UNDECODABLE` instead of raising, and a
thin `async` wrapper that answers INVALID_ARGUMENT ("request is not a valid
riskgate.v1.CheckOrderRequest") when it sees the marker. In a request stream, the marker
raises UndecodableRequest from the iterator where the servicer reaches it, and the call
ends with INVALID_ARGUMENT once the servicer lets that out (the execution stream first
acknowledges what it applied). Refusals are logged as
one WARNING per `REPORT_INTERVAL_S`, counting what was refused since the last one.

The price on the hot path is one Python call around `FromString`, one `is` check and one
coroutine frame per call (one async-generator step per streamed request). Python 3.11 has
no public way to make grpc.aio await a plain function's return value (3.12 has
`inspect.markcoroutinefunction`), so the wrapper is a coroutine.

Servicer methods must be `async def` (coroutines or async generators). A method a servicer
leaves to its generated base class (synchronous stubs) answers UNIMPLEMENTED. A servicer
reading its requests with `context.read()` instead of the request iterator would receive
the marker itself: none here does.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Final

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from riskgate.v1 import admin_pb2, pretrade_pb2

log = logging.getLogger(__name__)

PRE_TRADE_RISK: Final = pretrade_pb2.DESCRIPTOR.services_by_name["PreTradeRisk"]
RISK_ADMIN: Final = admin_pb2.DESCRIPTOR.services_by_name["RiskAdmin"]
HEALTH: Final = health_pb2.DESCRIPTOR.services_by_name["Health"]
REFLECTION: Final = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]

REPORT_INTERVAL_S = 10.0

Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
# Wraps one method's behaviour (e.g. a span and an outcome count per call: riskgate.observability).
Wrap = Callable[[MethodDescriptor, Handler], Handler]


class _Undecodable:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<undecodable request>"


UNDECODABLE: Final = _Undecodable()


class RefusalLog:
    """Counts refused requests; logs at most one WARNING per interval, summarising the refusals
    since the previous line (the first refusal after a quiet interval is logged at once)."""

    def __init__(self, interval_s: float = REPORT_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.total = 0
        self._clock = clock
        self._next_report = float("-inf")
        self._pending: Counter[str] = Counter()
        self._last_error = ""

    def failed_to_parse(self, error: BaseException) -> None:
        self._last_error = f"{type(error).__name__}: {error}"[:300]

    def refused(self, method: str, peer: str) -> None:
        self.total += 1
        self._pending[method] += 1
        now = self._clock()
        if now < self._next_report:
            return
        self._next_report = now + self.interval_s
        count = sum(self._pending.values())
        methods = ", ".join(f"{name} x{n}" for name, n in self._pending.most_common(5))
        more = len(self._pending) - 5
        if more > 0:
            methods += f" and {more} more"
        log.warning("refused %d undecodable request%s with INVALID_ARGUMENT since the last report: %s "
                    "(latest from %s; %s)", count, "" if count == 1 else "s", methods, peer[:100],
                    self._last_error or "no parse error recorded")
        self._pending.clear()


REFUSALS: Final = RefusalLog()


def safe_deserializer(message_class: Any, refusals: RefusalLog = REFUSALS) -> Callable[[bytes], Any]:
    """`message_class.FromString`, returning UNDECODABLE where it would raise."""
    parse = message_class.FromString

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:  # whatever cannot be parsed is not a valid request
            refusals.failed_to_parse(exc)
            return UNDECODABLE

    return deserialize


def method_handlers(service: ServiceDescriptor, servicer: object, refusals: RefusalLog = REFUSALS,
                    wrap: Wrap | None = None) -> dict[str, grpc.RpcMethodHandler]:
    """One handler per method of the service, by method name, as the generated code builds them."""
    return {method.name: _method_handler(service, method, servicer, refusals, wrap) for method in service.methods}


def add_servicer(server: grpc.aio.Server, service: ServiceDescriptor, servicer: object,
                 refusals: RefusalLog = REFUSALS, wrap: Wrap | None = None) -> None:
    """What the generated `add_<Service>Servicer_to_server(servicer, server)` does, with the
    handlers of `method_handlers`; `wrap`, when given, wraps each method's behaviour."""
    handlers = method_handlers(service, servicer, refusals, wrap)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """`reflection.enable_server_reflection` for an aio server, through `add_servicer`."""
    add_servicer(server, REFLECTION, reflection.aio.ReflectionServicer(tuple(service_names)))


def _method_handler(service: ServiceDescriptor, method: MethodDescriptor, servicer: object,
                    refusals: RefusalLog, wrap: Wrap | None = None) -> grpc.RpcMethodHandler:
    path = f"/{service.full_name}/{method.name}"
    request_name = method.input_type.full_name
    deserializer = safe_deserializer(GetMessageClass(method.input_type), refusals)
    serializer = GetMessageClass(method.output_type).SerializeToString
    behaviour = getattr(servicer, method.name)

    async def refuse(context: grpc.aio.ServicerContext) -> None:
        refusals.refused(path, context.peer())
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid {request_name}")

    if inspect.isasyncgenfunction(behaviour):
        respond = _write_each(behaviour)
    elif inspect.iscoroutinefunction(behaviour):
        respond = behaviour
    elif _is_generated_stub(behaviour):
        respond = _unimplemented
    else:
        raise TypeError(f"{type(servicer).__name__}.{method.name} must be async def (grpc.aio serves it)")
    if method.client_streaming:
        # Inside `wrap`: the call's metrics and span see the INVALID_ARGUMENT.
        respond = _refusing_undecodable(respond)
    if wrap is not None:
        respond = wrap(method, respond)

    if not method.client_streaming:
        handler = _unary_request(respond, refuse)
        if method.server_streaming:
            return grpc.unary_stream_rpc_method_handler(handler, deserializer, serializer)
        return grpc.unary_unary_rpc_method_handler(handler, deserializer, serializer)
    handler = _stream_request(respond, refuse)
    if method.server_streaming:
        return grpc.stream_stream_rpc_method_handler(handler, deserializer, serializer)
    return grpc.stream_unary_rpc_method_handler(handler, deserializer, serializer)


def _unary_request(respond: Handler, refuse: Callable[[grpc.aio.ServicerContext], Awaitable[None]]) -> Handler:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request is UNDECODABLE:
            await refuse(context)
        return await respond(request, context)

    return handle


class UndecodableRequest(Exception):
    """Raised by a client stream's iterator at bytes that are not the method's message. The
    handler refuses the call with INVALID_ARGUMENT once the method lets it out. A method may
    catch it first, to finish what the messages before it started (the execution stream
    acknowledges what it applied), and then `refuse` the call itself: inside any wrapper of
    the servicer, whose log line then reads INVALID_ARGUMENT."""

    def __init__(self, refuse: Callable[[grpc.aio.ServicerContext], Awaitable[None]]) -> None:
        super().__init__("request is not a valid message")
        self._refuse = refuse

    async def refuse(self, context: grpc.aio.ServicerContext) -> None:
        """Ends the call with INVALID_ARGUMENT (raises, as context.abort does)."""
        await self._refuse(context)


def _stream_request(respond: Handler, refuse: Callable[[grpc.aio.ServicerContext], Awaitable[None]]) -> Handler:
    async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            if request is UNDECODABLE:
                raise UndecodableRequest(refuse)
            yield request

    async def handle(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        stream = checked(requests)
        try:
            return await respond(stream, context)
        finally:
            await stream.aclose()

    return handle


def _refusing_undecodable(respond: Handler) -> Handler:
    async def guarded(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        try:
            return await respond(requests, context)
        except UndecodableRequest as undecodable:
            await undecodable.refuse(context)
            raise  # not reached: refuse aborts the call

    return guarded


def _write_each(behaviour: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]) -> Handler:
    """An async-generator servicer method as a coroutine: what grpc.aio does with one, writing
    each response as it is yielded."""
    async def respond(request: Any, context: grpc.aio.ServicerContext) -> None:
        async for response in behaviour(request, context):
            await context.write(response)

    return respond


async def _unimplemented(request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")


def _is_generated_stub(behaviour: Any) -> bool:
    """The synchronous placeholder of a generated `<Service>Servicer` base class."""
    function = getattr(behaviour, "__func__", behaviour)
    return getattr(function, "__module__", "").endswith("_pb2_grpc")
