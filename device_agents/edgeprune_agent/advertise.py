"""Announce the agent on the local network with zeroconf/mDNS (`_edgeprune._tcp`); optional extra `discovery`."""
from __future__ import annotations

import importlib
import socket
from typing import Any, Dict, List, Optional

from .errors import AgentError

SERVICE_TYPE = "_edgeprune._tcp.local."
LOOPBACK = ("127.0.0.1", "localhost")


def service_properties(info: Dict[str, Any], version: str, sensor: Optional[str]) -> Dict[str, str]:
    """TXT record: what a host needs to pick devices before asking for a token (no secrets)."""
    runtimes = ",".join(f"{k}={v}" for k, v in sorted((info.get("runtime_versions") or {}).items()))
    return {"version": version, "fingerprint_id": str(info.get("fingerprint_id", "")),
            "hostname": str(info.get("hostname", "")), "cpu_model": str(info.get("cpu_model", ""))[:120],
            "arch": str(info.get("arch", "")), "runtimes": runtimes[:200], "sensor": sensor or "none",
            "path": "/v1"}


def _addresses(host: str, zeroconf_module: Any) -> List[str]:
    """IPv4 addresses to announce: the bind address, or every non-loopback one for 0.0.0.0."""
    if host in LOOPBACK:
        return ["127.0.0.1"]
    if host not in ("0.0.0.0", ""):
        return [socket.gethostbyname(host)]
    found = [a for a in zeroconf_module.get_all_addresses() if not a.startswith("127.")]
    return found or ["127.0.0.1"]


class Advertiser:
    """Registers one service instance and removes it again on close()."""

    def __init__(self, name: str, host: str, port: int, properties: Dict[str, str],
                 zeroconf_module: Optional[Any] = None):
        try:
            zc = zeroconf_module or importlib.import_module("zeroconf")
        except ImportError as exc:
            raise AgentError("--advertise needs zeroconf: pip install 'edgeprune-agent[discovery]'") from exc
        self.addresses = _addresses(host, zc)
        interfaces = self.addresses if host not in ("0.0.0.0", "") else zc.InterfaceChoice.All
        self._zc = zc.Zeroconf(interfaces=interfaces, ip_version=zc.IPVersion.V4Only)
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:60] or "edgeprune-agent"
        self.info = zc.ServiceInfo(SERVICE_TYPE, f"{safe}.{SERVICE_TYPE}", port=port, properties=properties,
                                   addresses=[socket.inet_aton(a) for a in self.addresses],
                                   server=f"{safe}.local.")
        self._zc.register_service(self.info, allow_name_change=True)

    @property
    def instance_name(self) -> str:
        """The registered instance name (may have gained a suffix to stay unique)."""
        return self.info.name

    def close(self) -> None:
        """Withdraw the announcement and stop the responder."""
        self._zc.unregister_service(self.info)
        self._zc.close()
