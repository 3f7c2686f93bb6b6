"""The /metrics HTTP server every daemon runs, and the registry it serves.

Each metrics module (the mount's, the checker's, syncd's, the S3 client's)
registers its series in its own `CollectorRegistry`, never in prometheus_client's
global one: importing a module must not add series to a daemon that does not
own them (the checker once exported `fsgateway_mount_up 0` because it imported
a mount module, and the MountDown alert fired on every healthy host). A daemon
serves exactly the registries it names here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, start_http_server


def parse_address(address: str) -> tuple[str, int] | None:
    """`host:port`, `[::1]:port` or `:port` (means 127.0.0.1); None for `off`. ValueError if malformed."""
    if address.strip().lower() in ("off", "none", ""):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"metrics_address needs HOST:PORT with a port of 1-65535 (or off), got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def daemon_registry(*registries: CollectorRegistry) -> CollectorRegistry:
    """One daemon's exposition: the process collectors plus the named module registries."""
    combined = CollectorRegistry(auto_describe=False)
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=combined)
    for registry in registries:
        combined.register(registry)  # a registry is a collector; no describe(), so no name clash check
    return combined


def serve(address: str, *registries: CollectorRegistry) -> None:
    """Start the /metrics HTTP server in a daemon thread (OSError if the port is taken)."""
    parsed = parse_address(address)
    if parsed is not None:
        start_http_server(parsed[1], addr=parsed[0], registry=daemon_registry(*registries))
