"""Device plans: how a benchmark stands for a board (``edgecnn.measure.boards``), so that a run
here can be an honest *baseline* of it.

``--device pi4`` on this x86 machine runs the benchmark with the board's thread count, pinned to
as many cores as the board has (where this machine has that many), and labels every result
"x86 baseline of Raspberry Pi 4": a number measured here is never a device figure. On an ARM
machine (``platform.machine()`` aarch64 / armv7l) the same command measures the real thing and
is labelled "measured on <the board this is>".

The boards' facts are in the one board table, ``edgecnn.measure.boards``.
"""
from __future__ import annotations

import dataclasses
import os
import platform as _platform
from typing import List, Optional

from edgecnn.measure.boards import get_board

ARM_MACHINES = ("aarch64", "arm64", "armv7l", "armv8l", "armv6l")


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
    prof = get_board(device)
    cpus = _available_cpus()
    notes = []
    if is_arm(machine):
        label = f"measured on {host_model or host_description}"
        if host_model and prof.title.split(" (")[0] not in host_model:
            notes.append(f"profile {prof.name} asked for, but this machine is {host_model}")
        pinned = None
    else:
        label = f"x86 baseline of {prof.title}"
        pinned = cpus[:prof.cores]
        notes.append(f"measured on this {machine or _platform.machine()} host, not on a {prof.title}: "
                     f"{prof.threads} threads, pinned to CPUs {pinned}")
        if len(pinned) < prof.cores:
            notes.append(f"only {len(pinned)} CPUs available here for {prof.cores} device cores: "
                         f"{prof.threads} threads share {len(pinned)} cores")
    return DevicePlan(label, "measured" if is_arm(machine) else "baseline", prof.name, prof.threads, pinned, notes)
