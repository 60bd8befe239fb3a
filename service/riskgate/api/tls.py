"""TLS for the listeners (and for the CLI's channels): PEM files in, gRPC credentials out.

The order port may require client certificates signed by a CA of its own (mTLS for the
gateway); the operators' listener and the monitor's use TLS without client certificates
(their callers carry bearer tokens, which TLS keeps off the wire in the clear).
"""

from __future__ import annotations

from pathlib import Path

import grpc


class TlsError(ValueError):
    """A certificate, key or CA file that cannot be used (one line, naming the file)."""


def _read(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise TlsError(f"{what} {path} is not a PEM file")
    return data


def server_credentials(cert: str, key: str, client_ca: str = "") -> grpc.ServerCredentials | None:
    """Credentials of a listener; None when cert and key are empty (plaintext)."""
    if not cert and not key:
        if client_ca:
            raise TlsError("a client CA (mTLS) needs the listener's own certificate and key (--tls-cert, --tls-key)")
        return None
    if not cert or not key:
        raise TlsError("TLS needs both a certificate and its key (--tls-cert and --tls-key)")
    pair = (_read(key, "TLS key"), _read(cert, "TLS certificate"))
    ca = _read(client_ca, "client CA") if client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(ca: str = "", cert: str = "", key: str = "") -> grpc.ChannelCredentials:
    """Client credentials: the CA to verify the server by (the system's roots when empty), and
    a client certificate and key for a listener that requires one."""
    if bool(cert) != bool(key):
        raise TlsError("a client certificate needs its key (--tls-cert and --tls-key)")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "TLS CA") if ca else None,
        private_key=_read(key, "TLS key") if key else None,
        certificate_chain=_read(cert, "TLS certificate") if cert else None)


def add_port(server: grpc.aio.Server | grpc.Server, address: str,
             credentials: grpc.ServerCredentials | None) -> int:
    """server.add_(in)secure_port: the port bound (0 when it could not be)."""
    if credentials is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, credentials)
