"""Zeroconf discovery: an agent started with --advertise is found on loopback by `edgeprune device discover`."""
import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from conftest import run_cli
from edgeprune.measure.discovery import discover, entry_from_info, mark_registered
from edgeprune.measure.registry import add_device, load_registry


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgeprune_agent", "serve", "--port", str(port), "--token-file",
                             str(token), "--sensor", "estimate", "--advertise", "lab-pi"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("agent did not start: " + proc.stderr.read().decode()[-2000:])
        found = discover(timeout_s=1.5, interfaces=["127.0.0.1"])
        mine = [a for a in found if a["url"] == url]
        assert len(mine) == 1 and mine[0]["name"] == "lab-pi"
        info = httpx.get(url + "/v1/info", headers={"Authorization": "Bearer discover-token"}).json()
        props = mine[0]["properties"]
        assert props["fingerprint_id"] == info["fingerprint_id"] and props["sensor"] == "estimate"
        assert "onnxruntime=" in props["runtimes"] and "token" not in json.dumps(props).lower()
        add_device("pi", url, token)
        listed = json.loads(run_cli("device", "discover", "--interface", "127.0.0.1", "--timeout", "1.5",
                                    "--json").stdout)
        assert [a["registered_as"] for a in listed["agents"] if a["url"] == url] == ["pi"]
        assert load_registry()["pi"]["url"] == url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert all(a["url"] != url for a in discover(timeout_s=1.0, interfaces=["127.0.0.1"]))  # said goodbye
