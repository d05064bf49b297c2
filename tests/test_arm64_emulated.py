"""The agent on emulated arm64 Debian (tools/arm64-rootfs.sh) and the host's warning about emulated devices."""
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from edgeprune.measure.registry import measurement_warnings

REPO = Path(__file__).resolve().parent.parent


def _virt(**found) -> dict:
    return {"conditions": {"virtualization": {"emulator": None, "hypervisor": None, "container": None, **found}}}


def test_check_warns_about_emulation_vm_and_container():
    text = " | ".join(measurement_warnings(_virt(emulator="qemu-aarch64-static")))
    assert "CPU emulation (qemu-aarch64-static)" in text and "NOT meaningful" in text
    assert "virtual machine (kvm)" in " | ".join(measurement_warnings(_virt(hypervisor="kvm")))
    assert "container (docker)" in " | ".join(measurement_warnings(_virt(container="docker")))
    bare = " | ".join(measurement_warnings(_virt()))
    assert not any(w in bare for w in ("emulation", "virtual machine", "container"))


def _bench():
    spec = importlib.util.spec_from_file_location("arm64_emulated", REPO / "bench" / "arm64_emulated.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a fresh venv from the registry, then everything under qemu: ~5-15 min per release
@pytest.mark.parametrize("release, python", [("bookworm", "3.11"), ("bullseye", "3.9")])
def test_install_serve_calibrate_verify_on_emulated_arm64(release, python):
    missing = [c for c in ("mmdebstrap", "qemu-aarch64-static", "unshare") if shutil.which(c) is None]
    if os.geteuid() != 0 or missing:
        pytest.skip(f"needs root and {', '.join(missing) or 'nothing else'}: apt-get install mmdebstrap "
                    "qemu-user-static (and the Debian mirror and package registry reachable)")
    record = _bench().run_release(release, None, 8792)
    inst = record["install"]
    assert inst["machine"] == "aarch64" and inst["python"].startswith(python)
    assert {"onnxruntime", "ai-edge-litert", "numpy", "edgeprune-agent"} <= set(inst["packages"])
    assert "torch" not in inst["packages"]
    assert record["info"]["arch"] == "aarch64"
    assert record["virtualization"]["emulator"].startswith("qemu-")
    assert record["virtualization"]["native_timings"] is False
    assert any("CPU emulation" in w for w in record["check_warnings"])
    assert {v["runtime"] for v in record["verify"].values()} == {"onnxruntime", "litert"}
    for art, p in record["parity"].items():
        assert p["aarch64"]["machine"] == "aarch64" and p["x86"]["machine"] == "x86_64", art
        assert p["max_abs_diff"] < 1e-4 and p["top1_agreement"] >= 0.99, (art, p)
