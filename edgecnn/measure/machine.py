"""What machine a number was measured on: CPU model, cores, ISA flags that matter, OS, versions.

Read from /proc/cpuinfo, /proc/device-tree/model (Raspberry Pi boards), /sys cpufreq and the
``platform`` module; standard library only, so it runs on a Pi without TensorFlow. Fields that
a system does not expose are ``None``, never guessed.
"""
from __future__ import annotations

import os
import platform as _platform
import sys
from pathlib import Path
from typing import Dict, List, Optional

from edgecnn.core.files import dist_version

# The flags that decide which int8/fp32 kernels XNNPACK and ONNX Runtime can use.
X86_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")
ARM_FLAGS = ("neon", "asimd", "asimdhp", "fphp", "asimddp", "i8mm", "bf16", "sve", "sve2")

# /proc/cpuinfo "CPU part" of ARM cores (implementer 0x41) seen on boards edgecnn targets.
ARM_PARTS = {"0xb76": "ARM1176", "0xc07": "Cortex-A7", "0xd03": "Cortex-A53", "0xd04": "Cortex-A35",
             "0xd05": "Cortex-A55", "0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd09": "Cortex-A73",
             "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78",
             "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd4b": "Cortex-A78C"}


def _read(path) -> Optional[str]:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def _cpuinfo() -> Dict[str, str]:
    """The first value of each key in /proc/cpuinfo (all cores of these boards are alike)."""
    info: Dict[str, str] = {}
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info.setdefault(k.strip(), v.strip())
    return info


def _os_name() -> str:
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return _platform.platform()


def _cpu_mhz() -> Optional[float]:
    v = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return round(int(v) / 1000.0, 1) if v and v.isdigit() else None


def isa_flags(cpuinfo: Dict[str, str] = None, machine: str = None) -> List[str]:
    """The flags of X86_FLAGS / ARM_FLAGS this CPU reports, in that order."""
    ci = _cpuinfo() if cpuinfo is None else cpuinfo
    have = set((ci.get("flags") or ci.get("Features") or "").split())
    wanted = ARM_FLAGS if (machine or _platform.machine()).lower().startswith(("arm", "aarch")) else X86_FLAGS
    return [f for f in wanted if f in have]


def cpu_model(cpuinfo: Dict[str, str] = None) -> str:
    ci = _cpuinfo() if cpuinfo is None else cpuinfo
    if ci.get("model name"):
        return ci["model name"]
    part = ci.get("CPU part")
    if part:
        return ARM_PARTS.get(part.lower(), f"ARM part {part}")
    return _platform.processor() or _platform.machine()


def platform_info() -> dict:
    """A self-describing dict of the machine, for every result row."""
    ci = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    board = _read("/proc/device-tree/model")
    return {
        "hostname": _platform.node(),
        "machine": _platform.machine(),
        "cpu_model": cpu_model(ci),
        "board": board,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu_max_mhz": _cpu_mhz(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "isa_flags": isa_flags(ci),
        "os": _os_name(),
        "kernel": _platform.release(),
        "python": sys.version.split()[0],
        "numpy": dist_version("numpy"),
    }


def describe(info: dict) -> str:
    """One line: 'Intel(R) Xeon(R) Processor, x86_64, 2 cores (avx2 avx512_vnni amx_int8)'."""
    who = info.get("board") or info.get("cpu_model")
    flags = " ".join(info.get("isa_flags") or []) or "no ISA flags read"
    return f"{who}, {info.get('machine')}, {info.get('usable_cores')} cores ({flags})"


def cpu_label() -> str:
    """The CPU a figure was measured on ('AMD EPYC 9B14, x86_64'): costs belong to one target."""
    return f"{cpu_model()}, {_platform.machine()}"


def short(info: dict) -> str:
    """'Intel(R) Xeon(R) Processor (x86_64)' or 'Raspberry Pi 5 Model B Rev 1.0 (aarch64)'."""
    return f"{info.get('board') or info.get('cpu_model')} ({info.get('machine')})"


# /proc/device-tree/model prefixes -> the board table's keys (edgecnn.measure.boards).
_BOARD_MODELS = (("Raspberry Pi 5", "pi5"), ("Raspberry Pi 500", "pi5"), ("Raspberry Pi Compute Module 5", "pi5"),
                 ("Raspberry Pi 4", "pi4"), ("Raspberry Pi 400", "pi4"), ("Raspberry Pi Compute Module 4", "pi4"),
                 ("Raspberry Pi 3 Model B Plus", "pi3"), ("Raspberry Pi 3", "pi3"), ("Raspberry Pi Zero 2", "pi-zero2"))


def this_board(model: Optional[str] = None, max_mhz: Optional[float] = None) -> Optional[str]:
    """The board table's key for the board this runs on ("pi4", "pi4-1.5ghz", "pi5", ...), from
    /proc/device-tree/model and the CPU's top clock; None on anything else (a PC, a phone)."""
    model = _read("/proc/device-tree/model") if model is None else model
    if not model:
        return None
    key = next((k for prefix, k in _BOARD_MODELS if model.startswith(prefix)), None)
    mhz = _cpu_mhz() if max_mhz is None else max_mhz
    if key == "pi4" and mhz is not None and mhz <= 1500:
        return "pi4-1.5ghz"  # the first BCM2711 boards: their firmware keeps 1.5 GHz
    return key
