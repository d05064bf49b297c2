"""Emulation, VM and container detection from fake /proc and /sys trees."""
import os

from agent_testlib import write_file
from edgeprune_agent.fingerprint import conditions
from edgeprune_agent.virt import container, emulator, hypervisor, virtualization

X86_CPUINFO = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu sse2 avx2\n"
PI5_CPUINFO = ("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes\nCPU implementer\t: 0x41\n"
               "CPU part\t: 0xd0b\n\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n")


def test_bare_pi_is_native(tmp_path):
    write_file(tmp_path, "proc/cpuinfo", PI5_CPUINFO)
    os.makedirs(tmp_path / "proc/thread-self")
    os.symlink("/usr/bin/python3.11", tmp_path / "proc/thread-self/exe")
    v = virtualization(str(tmp_path), machine="aarch64")
    assert v == {"emulator": None, "hypervisor": None, "container": None, "native_timings": True, "caveats": []}


def test_qemu_user_named_by_thread_self_exe(tmp_path):
    write_file(tmp_path, "proc/cpuinfo", PI5_CPUINFO)  # an arm cpuinfo does not hide the emulator binary
    os.makedirs(tmp_path / "proc/thread-self")
    os.symlink("/usr/bin/qemu-aarch64-static", tmp_path / "proc/thread-self/exe")
    v = virtualization(str(tmp_path), machine="aarch64")
    assert v["emulator"] == "qemu-aarch64-static" and v["native_timings"] is False
    assert "emulated CPU" in v["caveats"][0]


def test_isa_mismatch_between_uname_and_cpuinfo(tmp_path):
    write_file(tmp_path, "proc/cpuinfo", X86_CPUINFO)
    assert emulator(str(tmp_path), machine="aarch64") == "unknown emulator (aarch64 code on a x86 CPU)"
    assert emulator(str(tmp_path), machine="x86_64") is None
    write_file(tmp_path, "proc/cpuinfo", PI5_CPUINFO)
    assert emulator(str(tmp_path), machine="x86_64") == "unknown emulator (x86_64 code on a arm CPU)"
    assert emulator(str(tmp_path)) is None  # a recorded tree has no uname to compare with


def test_hypervisors(tmp_path):
    assert hypervisor(str(tmp_path)) is None
    write_file(tmp_path / "kvm", "sys/class/dmi/id/sys_vendor", "QEMU\n")
    write_file(tmp_path / "kvm", "sys/class/dmi/id/product_name", "Standard PC (Q35 + ICH9, 2009)\n")
    assert hypervisor(str(tmp_path / "kvm")) == "qemu"
    write_file(tmp_path / "flag", "proc/cpuinfo", X86_CPUINFO.replace("avx2", "avx2 hypervisor"))
    assert "hypervisor" in hypervisor(str(tmp_path / "flag"))
    write_file(tmp_path / "bare", "proc/cpuinfo", X86_CPUINFO)
    assert hypervisor(str(tmp_path / "bare")) is None
    write_file(tmp_path / "virt", "proc/device-tree/compatible", "linux,dummy-virt\0")
    assert hypervisor(str(tmp_path / "virt")) == "qemu"
    write_file(tmp_path / "xen", "sys/hypervisor/type", "xen\n")
    assert hypervisor(str(tmp_path / "xen")) == "xen"


def test_containers(tmp_path):
    assert container(str(tmp_path)) is None
    write_file(tmp_path / "d", ".dockerenv", "")
    assert container(str(tmp_path / "d")) == "docker"
    write_file(tmp_path / "p", "run/.containerenv", "engine=\"podman\"\n")
    assert container(str(tmp_path / "p")) == "podman"
    write_file(tmp_path / "k", "proc/self/cgroup", "0::/kubepods/burstable/pod1/abc\n")
    assert container(str(tmp_path / "k")) == "kubernetes"
    write_file(tmp_path / "n", "proc/self/cgroup", "0::/\n")
    assert container(str(tmp_path / "n")) is None


def test_recorded_in_conditions(tmp_path):
    os.makedirs(tmp_path / "proc/thread-self")
    os.symlink("/usr/bin/qemu-aarch64-static", tmp_path / "proc/thread-self/exe")
    assert conditions(str(tmp_path))["virtualization"]["emulator"] == "qemu-aarch64-static"
