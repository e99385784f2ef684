"""ICE settings of the server's connections: which addresses are offered as host candidates, and how
fast a vanished visitor is noticed (consent checks).

aioice reads both from module globals and has no per-connection setting (aiortc's RTCConfiguration
carries only STUN/TURN servers), so they are installed once, when the server starts
(`configure_ice`, the app's start-up hook), never by a constructor; embedding the server elsewhere
means accepting the same process-wide settings.
"""

from __future__ import annotations

import aioice.ice

#: How often a visitor is asked for consent, and how many misses end its session: a visitor that
#: vanished without a goodbye is gone in about 6 s (aioice's defaults: 5 s and 6, half a minute).
CONSENT_INTERVAL, CONSENT_FAILURES = 2, 3


def limit_ice_addresses(addresses: tuple[str, ...]) -> None:
    """Gather ICE host candidates on `addresses` only (process-wide: aioice would take every
    interface's address, and never 127.0.0.1)."""
    chosen = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [
        address for address in chosen if (":" in address and use_ipv6) or (":" not in address and use_ipv4)]


def configure_ice(addresses: tuple[str, ...], consent_interval: float = CONSENT_INTERVAL,
                  consent_failures: int = CONSENT_FAILURES) -> None:
    """Install the server's ICE settings (process-wide, see the module's note): host candidates on
    `addresses` (all interfaces when empty) and consent checks every `consent_interval` seconds,
    a session ended after `consent_failures` misses."""
    if addresses:
        limit_ice_addresses(addresses)
    # aioice declares the interval as an int constant; it is seconds to sleep, a float works.
    aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES = consent_interval, consent_failures  # type: ignore[assignment]
