"""Whether the agent runs under CPU emulation, in a virtual machine or in a container."""
from __future__ import annotations

import os
import platform
from typing import Dict, List, Optional

from .sysfs import read_text

# DMI vendor/product substrings -> hypervisor name (what systemd-detect-virt also keys on).
_DMI_VENDORS = (("qemu", "qemu"), ("kvm", "kvm"), ("vmware", "vmware"), ("virtualbox", "oracle"),
                ("innotek", "oracle"), ("xen", "xen"), ("bochs", "bochs"), ("parallels", "parallels"),
                ("amazon ec2", "amazon"), ("google compute engine", "google"), ("microsoft corporation", "microsoft"),
                ("firecracker", "firecracker"), ("bhyve", "bhyve"))
_CGROUP_MARKS = (("kubepods", "kubernetes"), ("docker", "docker"), ("libpod", "podman"), ("lxc", "lxc"),
                 ("containerd", "containerd"))


def _isa(machine: str) -> Optional[str]:
    """Instruction-set family of a `uname -m` string: x86, arm, riscv, or None."""
    m = machine.lower()
    if m in ("x86_64", "amd64", "i386", "i686"):
        return "x86"
    if m.startswith(("aarch64", "arm")):
        return "arm"
    return "riscv" if m.startswith("riscv") else None


def _cpuinfo_fields(sysfs_root: str) -> Dict[str, str]:
    """First value of each key in /proc/cpuinfo."""
    fields: Dict[str, str] = {}
    for line in (read_text(os.path.join(sysfs_root, "proc/cpuinfo")) or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _cpuinfo_isa(fields: Dict[str, str]) -> Optional[str]:
    """Instruction-set family the kernel's /proc/cpuinfo describes."""
    if "vendor_id" in fields or "flags" in fields:
        return "x86"
    if "CPU implementer" in fields or "Features" in fields:
        return "arm"
    return "riscv" if "isa" in fields else None


def emulator(sysfs_root: str = "/", machine: Optional[str] = None) -> Optional[str]:
    """Name of the user-mode emulator running this process (qemu-user, ...), or None on a native CPU."""
    if machine is None and os.path.realpath(sysfs_root) == "/":
        machine = platform.machine()  # a recorded sysfs tree carries no uname, so only the live one is compared
    try:  # qemu-user fakes /proc/self/exe but not /proc/thread-self/exe, which names the emulator binary
        exe = os.path.basename(os.readlink(os.path.join(sysfs_root, "proc/thread-self/exe")))
    except OSError:
        exe = ""
    if exe.startswith(("qemu-", "box64", "box86", "FEX")):
        return exe
    fields = _cpuinfo_fields(sysfs_root)
    if "emulated" in fields.get("model name", ""):
        return fields["model name"]
    kernel_isa, ours = _cpuinfo_isa(fields), _isa(machine or "")
    if kernel_isa and ours and kernel_isa != ours:
        return f"unknown emulator ({machine} code on a {kernel_isa} CPU)"
    return None


def hypervisor(sysfs_root: str = "/") -> Optional[str]:
    """Hypervisor name from DMI, Xen's sysfs, the device tree or the x86 'hypervisor' CPU flag; None on bare metal."""
    dmi = " ".join(read_text(os.path.join(sysfs_root, "sys/class/dmi/id", f)) or ""
                   for f in ("sys_vendor", "product_name", "bios_vendor")).lower()
    for mark, name in _DMI_VENDORS:
        if mark in dmi:
            return name
    xen = read_text(os.path.join(sysfs_root, "sys/hypervisor/type"))
    if xen:
        return xen
    compatible = (read_text(os.path.join(sysfs_root, "proc/device-tree/compatible")) or "").lower()
    if "dummy-virt" in compatible or "qemu" in compatible:
        return "qemu"
    if "hypervisor" in _cpuinfo_fields(sysfs_root).get("flags", "").split():
        return "unknown hypervisor (x86 'hypervisor' CPU flag)"
    return None


def container(sysfs_root: str = "/") -> Optional[str]:
    """Container engine from its marker files or this process's cgroup; None when not in one."""
    for marker, name in ((".dockerenv", "docker"), ("run/.containerenv", "podman")):
        if os.path.exists(os.path.join(sysfs_root, marker)):
            return name
    declared = read_text(os.path.join(sysfs_root, "run/systemd/container"))
    if declared:
        return declared
    cgroup = (read_text(os.path.join(sysfs_root, "proc/self/cgroup")) or "").lower()
    for mark, name in _CGROUP_MARKS:
        if mark in cgroup:
            return name
    return None


def virtualization(sysfs_root: str = "/", machine: Optional[str] = None) -> Dict[str, object]:
    """Emulator, hypervisor and container found (None each on a bare device) and why timings are not native."""
    found = {"emulator": emulator(sysfs_root, machine), "hypervisor": hypervisor(sysfs_root),
             "container": container(sysfs_root)}
    caveats: List[str] = []
    if found["emulator"]:
        caveats.append("emulated CPU: timings and energy say nothing about the real hardware")
    if found["hypervisor"]:
        caveats.append("virtual machine: timings include hypervisor overhead and other guests' load")
    if found["container"]:
        caveats.append("container: CPU quotas or shared cores may slow it down")
    return {**found, "native_timings": found["emulator"] is None and found["hypervisor"] is None,
            "caveats": caveats}
