"""Which addresses WebRTC offers as ICE host candidates (aioice's choice is every interface but loopback)."""

from __future__ import annotations

import aioice.ice


def limit_ice_addresses(addresses: tuple[str, ...]) -> None:
    """Gather ICE host candidates on `addresses` only (process-wide: aioice would take every
    interface's address, and never 127.0.0.1)."""
    chosen = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [
        address for address in chosen if (":" in address and use_ipv6) or (":" not in address and use_ipv4)]
