"""The boards edgecnn can emulate: which QEMU core, what the guest's /proc/cpuinfo says (XNNPACK
chooses its kernels from it), clock, caches and DRAM bandwidth.

Sources (docs/arm-emulation.md has the links):
- Raspberry Pi documentation, processors/bcm2711.adoc: 4x Cortex-A72 @ 1.5 GHz, 32 KB L1D per
  core, 1 MB L2 (16-way: Cortex-A72 TRM); processors/bcm2712.adoc: 4x Cortex-A76 @ 2.4 GHz, 64 KB
  L1D (4-way), 512 KB L2 per core (8-way), 2 MB shared L3, "up to 17 GB/s" memory bandwidth;
  bcm2837.adoc / rp3a0.adoc: 4x Cortex-A53 @ 1.4 GHz (3 B+) / 1.0 GHz (Zero 2 W), 512 KB L2.
- DRAM bandwidth a program gets (not the bus peak): Pi 4 single-thread STREAM copy 5.5 GB/s
  (sci-pi.org.uk/bench/stream.html; STREAM counts the bytes read and written); Pi 5 tinymembench
  copy 4.9-6.2 GB/s (geerlingguy/sbc-reviews #21, raspberrypi/firmware #1876; tinymembench counts
  each copied byte once, so ~11 GB/s of traffic). Pi 3 / Zero 2: LPDDR2 (32-bit, 900 MHz: 3.6 GB/s
  peak), taken as 2 GB/s sustained (an estimate; no stored measurement).
- The CPU part numbers in cpuinfo are Arm's MIDR values (0xd08 A72, 0xd0b A76, 0xd03 A53).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    core: str            # the core's name in the cost model (edgecnn.emulate.model.CORES)
    qemu_cpu: str        # qemu-aarch64 -cpu
    ghz: float
    cores: int
    caches: Tuple[Tuple[int, int], ...]   # (size bytes, ways) per data-cache level, L1 first
    dram_gbs: float      # sustained DRAM traffic, GB/s (read + write)
    cpuinfo_part: str
    cpuinfo_variant: str
    cpuinfo_revision: int
    features: str
    hardware: str
    model: str
    notes: str = ""
    extra: Dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"emulated {self.name} ({self.core})"

    def cpuinfo(self) -> str:
        """/proc/cpuinfo as the board's 64-bit kernel prints it."""
        blocks = []
        for i in range(self.cores):
            blocks.append(f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {self.features}\n"
                          f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {self.cpuinfo_variant}\n"
                          f"CPU part\t: {self.cpuinfo_part}\nCPU revision\t: {self.cpuinfo_revision}\n")
        return "\n".join(blocks) + f"\nHardware\t: {self.hardware}\nModel\t\t: {self.model}\n"

    def cpu_list(self) -> str:
        return f"0-{self.cores - 1}\n"


BOARDS: Dict[str, Board] = {b.name: b for b in (
    Board("pi4", "Raspberry Pi 4 (BCM2711)", "cortex-a72", "cortex-a72", 1.5, 4,
          ((32 * 1024, 2), (1024 * 1024, 16)), 5.5,
          "0xd08", "0x0", 3, "fp asimd evtstrm crc32 cpuid", "BCM2835", "Raspberry Pi 4 Model B Rev 1.4",
          notes="1.5 GHz: boards from 2020 on run 1.8 GHz (firmware), 20% faster in compute-bound ops"),
    Board("pi5", "Raspberry Pi 5 (BCM2712)", "cortex-a76", "cortex-a76", 2.4, 4,
          ((64 * 1024, 4), (512 * 1024, 8), (2 * 1024 * 1024, 16)), 11.0,
          "0xd0b", "0x4", 1,
          "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
          "BCM2835", "Raspberry Pi 5 Model B Rev 1.0"),
    Board("pi3", "Raspberry Pi 3 B+ (BCM2837B0)", "cortex-a53", "cortex-a53", 1.4, 4,
          ((32 * 1024, 4), (512 * 1024, 16)), 2.0,
          "0xd03", "0x0", 4, "fp asimd evtstrm crc32 cpuid", "BCM2835", "Raspberry Pi 3 Model B Plus Rev 1.3"),
    Board("pi-zero2", "Raspberry Pi Zero 2 W (RP3A0)", "cortex-a53", "cortex-a53", 1.0, 4,
          ((32 * 1024, 4), (512 * 1024, 16)), 2.0,
          "0xd03", "0x0", 4, "fp asimd evtstrm crc32 cpuid", "BCM2835", "Raspberry Pi Zero 2 W Rev 1.0"),
)}
