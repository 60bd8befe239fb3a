"""The engine's enums and the generated code stay in step with proto/."""

from enum import IntEnum

import pytest

from riskgate import protogen
from riskgate.v1 import admin_pb2, pretrade_pb2
from riskgate.values import codes


@pytest.mark.parametrize(
    ("engine_enum", "proto_enum", "prefix"),
    [
        (codes.Side, pretrade_pb2.Side, "SIDE_"),
        (codes.OrderType, pretrade_pb2.OrderType, "ORDER_TYPE_"),
        (codes.Decision, pretrade_pb2.Decision, "DECISION_"),
        (codes.ReasonCode, pretrade_pb2.ReasonCode, "REASON_"),
        (codes.ExecutionKind, pretrade_pb2.ExecutionKind, "EXECUTION_KIND_"),
        (codes.BreakerState, admin_pb2.BreakerState, "BREAKER_"),
        (codes.Restriction, admin_pb2.Restriction, "RESTRICTION_"),
    ],
)
def test_engine_enum_when_compared_with_proto_then_same_names_and_numbers(engine_enum: type[IntEnum], proto_enum,
                                                                          prefix: str) -> None:
    proto = {name.removeprefix(prefix): number for name, number in proto_enum.items() if number != 0}
    assert {member.name: member.value for member in engine_enum} == proto


def test_generated_code_when_rebuilt_from_proto_then_matches_committed_files() -> None:
    assert protogen.stale_files() == []


def test_readme_reason_table_when_generated_then_matches_every_code() -> None:
    from pathlib import Path

    from riskgate.engine.reason_docs import markdown_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert markdown_table() in readme
