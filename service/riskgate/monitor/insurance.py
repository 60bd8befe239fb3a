"""The insurance fund's balance: set by admins with `SetInsuranceFund`, stored versioned in
Redis (`{rg}:insurance_fund`, field "fund"), followed by every monitor; what a stress test's
Cover-1 and Cover-2 are measured against."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from riskgate.monitor.rules import RuleError
from riskgate.v1 import monitor_pb2 as pb
from riskgate.values.money import DecimalFormatError, fmt, parse_non_negative

FIELD = "fund"


class InsuranceSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The fund's balance in quote currency."""

    balance: Decimal
    version: int = 0
    updated_by: str = ""
    updated_ms: int = 0


_decoder = msgspec.json.Decoder(InsuranceSpec)
_encoder = msgspec.json.Encoder(decimal_format="string")


def validate_insurance(spec: InsuranceSpec) -> InsuranceSpec:
    if not spec.balance.is_finite() or spec.balance < 0:
        raise RuleError("balance", "a plain decimal at or above zero")
    return spec


def decode_insurance(raw: msgspec.Raw | bytes, version: int) -> InsuranceSpec:
    return msgspec.structs.replace(validate_insurance(_decoder.decode(raw)), version=version)


def encode_insurance(spec: InsuranceSpec) -> bytes:
    return _encoder.encode(spec)


def insurance_from_message(message: pb.InsuranceFund, actor: str, at_ms: int) -> InsuranceSpec:
    """Raises RuleError naming the field for what cannot be used."""
    try:
        balance = parse_non_negative(message.balance.strip())
    except DecimalFormatError as exc:
        raise RuleError("balance", f"a plain decimal at or above zero such as '25000000': {exc}") from None
    return validate_insurance(InsuranceSpec(balance=balance, updated_by=actor, updated_ms=at_ms))


def insurance_message(spec: InsuranceSpec | None) -> pb.InsuranceFund:
    if spec is None:
        return pb.InsuranceFund(balance="0")
    return pb.InsuranceFund(balance=fmt(spec.balance), version=spec.version, updated_by=spec.updated_by,
                            updated_ms=spec.updated_ms)
