"""Zeroconf discovery: an agent started with --advertise is found on loopback by `edgeprune device discover`."""
import json
import signal

import httpx

from conftest import run_cli, start_agent
from edgeprune.measure.discovery import discover, entry_from_info, mark_registered
from edgeprune.measure.registry import add_device, load_registry


class FakeInfo:
    """The parts of zeroconf.ServiceInfo that entry_from_info reads."""

    name = "lab-pi._edgeprune._tcp.local."
    port = 8765
    properties = {b"fingerprint_id": b"0123456789abcdef", b"sensor": b"rpi_pmic", b"empty": None}

    def parsed_addresses(self):
        return ["192.168.1.20"]


def test_entry_from_service_info_and_registration_mark():
    entry = entry_from_info(FakeInfo())
    assert entry == {"name": "lab-pi", "url": "http://192.168.1.20:8765", "addresses": ["192.168.1.20"],
                     "port": 8765, "properties": {"fingerprint_id": "0123456789abcdef", "sensor": "rpi_pmic",
                                                  "empty": None}}
    marked = mark_registered([entry], {"pi": {"url": "http://192.168.1.20:8765"}})
    assert marked[0]["registered_as"] == "pi"
    assert mark_registered([entry], {})[0]["registered_as"] is None


def test_advertised_agent_is_discovered_on_loopback(tmp_path):
    token = tmp_path / "t"
    token.write_text("discover-token\n")
    proc, url = start_agent(token, "--advertise", "lab-pi", command=("edgeprune_agent",))
    try:
        found = discover(timeout_s=3.0, interfaces=["127.0.0.1"])
        mine = [a for a in found if a["url"] == url]
        assert len(mine) == 1 and mine[0]["name"] == "lab-pi"
        info = httpx.get(url + "/v1/info", headers={"Authorization": "Bearer discover-token"}).json()
        props = mine[0]["properties"]
        assert props["fingerprint_id"] == info["fingerprint_id"] and props["sensor"] == "estimate"
        assert "onnxruntime=" in props["runtimes"] and "token" not in json.dumps(props).lower()
        add_device("pi", url, token)
        # 3 s (the default): a responder multicasts a record at most once a second (RFC 6762 §6.2), so a query
        # right after the one above may be answered only at the browser's next query, ~1 s later, later on a busy CI
        listed = json.loads(run_cli("device", "discover", "--interface", "127.0.0.1", "--timeout", "3",
                                    "--json").stdout)
        assert [a["registered_as"] for a in listed["agents"] if a["url"] == url] == ["pi"]
        assert load_registry()["pi"]["url"] == url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert all(a["url"] != url for a in discover(timeout_s=1.0, interfaces=["127.0.0.1"]))  # said goodbye
