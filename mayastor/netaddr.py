"""host:port as gRPC targets, URIs and etcd endpoints need it: an IPv6 literal goes in brackets."""

from __future__ import annotations


def bracket(host: str) -> str:
    """``fd00::1`` -> ``[fd00::1]``; names, IPv4 and already bracketed literals stay as they are."""
    host = str(host)
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def host_port(host: str, port: int | str) -> str:
    return f"{bracket(host)}:{port}"
