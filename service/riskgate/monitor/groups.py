"""Linked accounts: an account's group (one beneficial owner, shared devices or funding
sources), set by admins with `SetAccountGroup`, stored versioned in Redis and followed by
every monitor. A fill between two accounts of one group is a wash trade, as one against the
account itself is."""

from __future__ import annotations

import msgspec

from riskgate.api.echo import echo
from riskgate.engine.spec_rules import SpecError, validate_account_id
from riskgate.monitor.rules import RuleError
from riskgate.v1 import monitor_pb2 as pb

MAX_GROUP = 64


class GroupSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    account_id: str
    # "" = in no group.
    group: str
    version: int = 0
    updated_by: str = ""
    updated_ms: int = 0


_decoder = msgspec.json.Decoder(GroupSpec)
_encoder = msgspec.json.Encoder()


def decode_group(raw: msgspec.Raw | bytes, version: int) -> GroupSpec:
    return msgspec.structs.replace(validate_group(_decoder.decode(raw)), version=version)


def encode_group(spec: GroupSpec) -> bytes:
    return _encoder.encode(spec)


def validate_group(spec: GroupSpec) -> GroupSpec:
    """Raises RuleError naming the field for what cannot be used."""
    try:
        validate_account_id("account_id", spec.account_id)
    except SpecError as exc:
        raise RuleError("account_id", exc.message) from None
    if len(spec.group) > MAX_GROUP or not spec.group.isprintable():
        raise RuleError("group", f"at most {MAX_GROUP} printable characters, not {echo(spec.group)}")
    return spec


def group_message(spec: GroupSpec) -> pb.AccountGroup:
    return pb.AccountGroup(account_id=spec.account_id, group=spec.group, version=spec.version,
                           updated_by=spec.updated_by, updated_ms=spec.updated_ms)
