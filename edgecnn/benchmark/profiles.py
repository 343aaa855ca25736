"""Device profiles: what a target board is, so that a run here can be an honest *baseline* of it.

``--device pi4`` on this x86 machine runs the benchmark with the board's thread count, pinned to
as many cores as the board has (where this machine has that many), and labels every result
"x86 baseline of Raspberry Pi 4": a number measured here is never a device figure. On an ARM
machine (``platform.machine()`` aarch64 / armv7l) the same command measures the real thing and
is labelled "measured on <the board this is>".

Facts are the boards' published specifications (raspberrypi.com product briefs).
"""
from __future__ import annotations

import dataclasses
import os
import platform as _platform
from typing import Dict, List, Optional, Tuple

from edgecnn.errors import InvalidConfigError, did_you_mean

ARM_MACHINES = ("aarch64", "arm64", "armv7l", "armv8l", "armv6l")


@dataclasses.dataclass(frozen=True)
class DeviceProfile:
    key: str
    name: str
    soc: str
    cpu: str
    cores: int
    max_clock_ghz: float
    arch: str
    isa: Tuple[str, ...]  # the ISA features that matter to int8 kernels (/proc/cpuinfo names)
    ram: str
    notes: str = ""

    @property
    def threads(self) -> int:
        return self.cores

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["isa"] = list(self.isa)
        return d


PROFILES: Dict[str, DeviceProfile] = {p.key: p for p in (
    DeviceProfile("pi5", "Raspberry Pi 5", "BCM2712", "Cortex-A76", 4, 2.4, "ARMv8.2-A",
                  ("asimd", "asimddp", "fphp", "asimdhp"), "2/4/8/16 GB LPDDR4X",
                  "dot-product (asimddp) int8 kernels; no i8mm"),
    DeviceProfile("pi4", "Raspberry Pi 4", "BCM2711", "Cortex-A72", 4, 1.8, "ARMv8-A",
                  ("asimd",), "1/2/4/8 GB LPDDR4",
                  "1.5 GHz on boards before 2020 revisions; no dot-product instructions"),
    DeviceProfile("pi3", "Raspberry Pi 3 Model B+", "BCM2837B0", "Cortex-A53", 4, 1.4, "ARMv8-A",
                  ("asimd",), "1 GB LPDDR2", "in-order cores; 1.2 GHz on the 3 Model B"),
    DeviceProfile("pi-zero2", "Raspberry Pi Zero 2 W", "RP3A0 (BCM2710A1)", "Cortex-A53", 4, 1.0, "ARMv8-A",
                  ("asimd",), "512 MB LPDDR2", "512 MB RAM: watch peak RSS"),
)}
ALIASES = {"pi400": "pi4", "cm4": "pi4", "cm5": "pi5", "pi500": "pi5", "pi3b": "pi3", "pi3b+": "pi3",
           "pizero2": "pi-zero2", "pi-zero-2": "pi-zero2", "zero2": "pi-zero2"}


def get_profile(name: str) -> DeviceProfile:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PROFILES:
        raise InvalidConfigError(
            f"Unknown device '{name}'.{did_you_mean(name.lower(), list(PROFILES) + list(ALIASES))} "
            f"Known devices: {', '.join(PROFILES)}.")
    return PROFILES[key]


def is_arm(machine: str = None) -> bool:
    return (machine or _platform.machine()).lower() in ARM_MACHINES


@dataclasses.dataclass
class DevicePlan:
    """How a benchmark runs for a device: its label, threads and the CPUs it is pinned to."""

    label: str
    kind: str  # "baseline" (x86 stand-in for a board) or "measured" (on the machine itself)
    profile: Optional[str]
    threads: int
    cpus: Optional[List[int]]  # None: not pinned
    notes: List[str]

    def to_dict(self) -> dict:
        return {"label": self.label, "kind": self.kind, "profile": self.profile,
                "threads": self.threads, "pinned_cpus": self.cpus, "notes": list(self.notes)}


def _available_cpus() -> List[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity API
        return list(range(os.cpu_count() or 1))


def plan_device(device: Optional[str], host_description: str, machine: str = None,
                host_model: str = "") -> DevicePlan:
    """The label, thread count and pinning for ``--device`` (or for none: this machine)."""
    if device is None:
        return DevicePlan(f"measured on {host_description}", "measured", None, 0, None, [])
    prof = get_profile(device)
    cpus = _available_cpus()
    notes = []
    if is_arm(machine):
        label = f"measured on {host_model or host_description}"
        if host_model and prof.name.split(" Model")[0] not in host_model:
            notes.append(f"profile {prof.key} asked for, but this machine is {host_model}")
        pinned = None
    else:
        label = f"x86 baseline of {prof.name}"
        pinned = cpus[:prof.cores]
        notes.append(f"measured on this {machine or _platform.machine()} host, not on a {prof.name}: "
                     f"{prof.threads} threads, pinned to CPUs {pinned}")
        if len(pinned) < prof.cores:
            notes.append(f"only {len(pinned)} CPUs available here for {prof.cores} device cores: "
                         f"{prof.threads} threads share {len(pinned)} cores")
    return DevicePlan(label, "measured" if is_arm(machine) else "baseline", prof.key, prof.threads, pinned, notes)
