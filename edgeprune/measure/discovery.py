"""Find device agents announced with zeroconf (`_edgeprune._tcp`) on the local network."""
from __future__ import annotations

import threading
import time

from edgeprune.errors import EdgepruneError

SERVICE_TYPE = "_edgeprune._tcp.local."


class DiscoveryUnavailable(EdgepruneError):
    """zeroconf is not installed or cannot open a socket here."""


def _zeroconf():
    """The zeroconf module, with an install hint when missing."""
    try:
        import zeroconf
    except ImportError as exc:
        raise DiscoveryUnavailable("device discovery needs zeroconf: pip install 'edgeprune[discovery]'") from exc
    return zeroconf


def entry_from_info(info) -> dict:
    """A resolved ServiceInfo -> {name, url, addresses, port, properties} (TXT values decoded)."""
    props = {k.decode(errors="replace"): (v.decode(errors="replace") if v is not None else None)
             for k, v in (info.properties or {}).items()}
    addresses = info.parsed_addresses()
    name = info.name[:-len("." + SERVICE_TYPE)] if info.name.endswith("." + SERVICE_TYPE) else info.name
    return {"name": name, "url": f"http://{addresses[0]}:{info.port}" if addresses else None,
            "addresses": addresses, "port": info.port, "properties": props}


class _Collector:
    """ServiceBrowser listener that remembers every announced instance name."""

    def __init__(self):
        self.names: set[str] = set()
        self.lock = threading.Lock()

    def add_service(self, zc, type_, name) -> None:
        """A new instance appeared."""
        with self.lock:
            self.names.add(name)

    def update_service(self, zc, type_, name) -> None:
        """An instance changed its records."""
        self.add_service(zc, type_, name)

    def remove_service(self, zc, type_, name) -> None:
        """An instance said goodbye."""
        with self.lock:
            self.names.discard(name)


def discover(timeout_s: float = 3.0, interfaces: list[str] | None = None) -> list[dict]:
    """Browse for `timeout_s` seconds and resolve every agent found; sorted by name."""
    zc_mod = _zeroconf()
    try:
        zc = zc_mod.Zeroconf(interfaces=interfaces or zc_mod.InterfaceChoice.All,
                             ip_version=zc_mod.IPVersion.V4Only)
    except OSError as exc:
        raise DiscoveryUnavailable(f"cannot open an mDNS socket: {exc}") from exc
    collector = _Collector()
    try:
        browser = zc_mod.ServiceBrowser(zc, SERVICE_TYPE, collector)
        time.sleep(timeout_s)
        browser.cancel()
        with collector.lock:
            names = sorted(collector.names)
        found = []
        for name in names:
            info = zc.get_service_info(SERVICE_TYPE, name, timeout=2000)
            if info is not None:
                found.append(entry_from_info(info))
        return found
    finally:
        zc.close()


def mark_registered(found: list[dict], registry: dict[str, dict]) -> list[dict]:
    """Add `registered_as` to agents whose URL is already in the device registry."""
    by_url = {entry.get("url"): name for name, entry in registry.items()}
    return [{**agent, "registered_as": by_url.get(agent["url"])} for agent in found]
