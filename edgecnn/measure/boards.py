"""The boards edgecnn targets, in one table: what each is (SoC, cores, clock, caches, DRAM, ISA
features, RAM), how the emulator runs it (the QEMU core and the /proc/cpuinfo XNNPACK chooses its
kernels from) and how a benchmark on this machine stands in for it (``profiles.plan_device``).
The device profiles, the emulator, its cost model and the per-op precision choice all read it.

Sources (docs/arm-emulation.md has the links):
- Raspberry Pi documentation, processors/bcm2711.adoc: 4x Cortex-A72, 32 KB L1D per core, 1 MB L2
  (16-way: Cortex-A72 TRM); 1.5 GHz on the first boards, 1.8 GHz on boards with the C0 stepping
  (Pi 4 rev 1.4 and later, sold since 2020; the firmware raised the clock): ``pi4`` is that board,
  ``pi4-1.5ghz`` the earlier one. processors/bcm2712.adoc: 4x Cortex-A76 @ 2.4 GHz, 64 KB L1D
  (4-way), 512 KB L2 per core (8-way), 2 MB shared L3; bcm2837.adoc / rp3a0.adoc: 4x Cortex-A53 @
  1.4 GHz (3 B+) / 1.0 GHz (Zero 2 W), 512 KB L2. RAM from the product briefs.
- DRAM bandwidth a program gets (not the bus peak): Pi 4 single-thread STREAM copy 5.5 GB/s
  (sci-pi.org.uk/bench/stream.html; STREAM counts the bytes read and written); Pi 5 tinymembench
  copy 4.9-6.2 GB/s (geerlingguy/sbc-reviews #21, raspberrypi/firmware #1876; tinymembench counts
  each copied byte once, so ~11 GB/s of traffic). Pi 3 / Zero 2: LPDDR2 (32-bit, 900 MHz: 3.6 GB/s
  peak), taken as 2 GB/s sustained (an estimate; no stored measurement).
- The CPU part numbers in cpuinfo are Arm's MIDR values (0xd08 A72, 0xd0b A76, 0xd03 A53).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

from edgecnn.errors import InvalidConfigError, did_you_mean


@dataclass(frozen=True)
class Board:
    name: str            # the key: --device, --emulate, --target
    title: str           # the product: "Raspberry Pi 4"; a variant says what differs ("Raspberry Pi 4 (1.5 GHz)")
    soc: str
    cpu: str             # "Cortex-A72"
    arch: str            # "ARMv8-A"
    isa: Tuple[str, ...]  # the ISA features that matter to int8 kernels (/proc/cpuinfo names)
    ram: str
    core: str            # the core's name in the cost model (edgecnn.emulate.model.CORES)
    qemu_cpu: str        # qemu-aarch64 -cpu
    ghz: float
    cores: int
    caches: Tuple[Tuple[int, int], ...]   # (size bytes, ways) per data-cache level, L1 first
    dram_gbs: float      # sustained DRAM traffic, GB/s (read + write)
    cpuinfo_part: str
    cpuinfo_variant: str
    cpuinfo_revision: int
    features: str        # the cpuinfo "Features" line of its 64-bit kernel
    hardware: str
    model: str           # /proc/device-tree/model
    notes: str = ""

    @property
    def label(self) -> str:
        return f"emulated {self.name} ({self.core})"

    @property
    def threads(self) -> int:
        return self.cores

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

    def to_dict(self) -> dict:
        """What a results row records of the board it stands for."""
        d = asdict(self)
        return {"key": d["name"], "name": d["title"], "soc": d["soc"], "cpu": d["cpu"], "cores": d["cores"],
                "max_clock_ghz": d["ghz"], "arch": d["arch"], "isa": list(d["isa"]), "ram": d["ram"],
                "notes": d["notes"]}


_A72 = dict(cpu="Cortex-A72", arch="ARMv8-A", isa=("asimd",), ram="1/2/4/8 GB LPDDR4",
            core="cortex-a72", qemu_cpu="cortex-a72", cores=4, caches=((32 * 1024, 2), (1024 * 1024, 16)),
            dram_gbs=5.5, cpuinfo_part="0xd08", cpuinfo_variant="0x0", cpuinfo_revision=3,
            features="fp asimd evtstrm crc32 cpuid", hardware="BCM2835")
_A53 = dict(cpu="Cortex-A53", arch="ARMv8-A", isa=("asimd",), core="cortex-a53", qemu_cpu="cortex-a53", cores=4,
            caches=((32 * 1024, 4), (512 * 1024, 16)), dram_gbs=2.0, cpuinfo_part="0xd03", cpuinfo_variant="0x0",
            cpuinfo_revision=4, features="fp asimd evtstrm crc32 cpuid", hardware="BCM2835")

BOARDS: Dict[str, Board] = {b.name: b for b in (
    Board("pi4", "Raspberry Pi 4", soc="BCM2711 (C0 stepping)", ghz=1.8, model="Raspberry Pi 4 Model B Rev 1.4",
          notes="1.8 GHz: boards sold since 2020 (rev 1.4+); no dot-product instructions", **_A72),
    Board("pi4-1.5ghz", "Raspberry Pi 4 (1.5 GHz)", soc="BCM2711 (B0 stepping)", ghz=1.5,
          model="Raspberry Pi 4 Model B Rev 1.2", notes="the first boards (2019, rev 1.1-1.2)", **_A72),
    Board("pi5", "Raspberry Pi 5", "BCM2712", "Cortex-A76", "ARMv8.2-A", ("asimd", "asimddp", "fphp", "asimdhp"),
          "2/4/8/16 GB LPDDR4X", "cortex-a76", "cortex-a76", 2.4, 4,
          ((64 * 1024, 4), (512 * 1024, 8), (2 * 1024 * 1024, 16)), 11.0, "0xd0b", "0x4", 1,
          "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
          "BCM2835", "Raspberry Pi 5 Model B Rev 1.0", notes="dot-product (asimddp) int8 kernels; no i8mm"),
    Board("pi3", "Raspberry Pi 3 Model B+", soc="BCM2837B0", ram="1 GB LPDDR2", ghz=1.4,
          model="Raspberry Pi 3 Model B Plus Rev 1.3", notes="in-order cores; 1.2 GHz on the 3 Model B", **_A53),
    Board("pi-zero2", "Raspberry Pi Zero 2 W", soc="RP3A0 (BCM2710A1)", ram="512 MB LPDDR2", ghz=1.0,
          model="Raspberry Pi Zero 2 W Rev 1.0", notes="512 MB RAM: watch peak RSS", **_A53),
)}
ALIASES = {"pi400": "pi4", "cm4": "pi4", "cm5": "pi5", "pi500": "pi5", "pi3b": "pi3", "pi3b+": "pi3",
           "pizero2": "pi-zero2", "pi-zero-2": "pi-zero2", "zero2": "pi-zero2", "pi4-1.5": "pi4-1.5ghz"}


def get_board(name: str, option: str = "--device") -> Board:
    """The board ``name`` names (a key or an alias, any case); unknown names get a did-you-mean."""
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in BOARDS:
        raise InvalidConfigError(f"Unknown board '{name}' ({option}).{did_you_mean(key, list(BOARDS) + list(ALIASES))} "
                                 f"Known boards: {', '.join(BOARDS)}.")
    return BOARDS[key]


# ---------------------------------------------------------------------------- targets
HOST = "host"  # a target that is this machine: measured, not emulated


def target_names() -> List[str]:
    """What a --target may name: this machine, or a board of the table."""
    return [HOST, *BOARDS]


def parse_targets(values, option: str = "--target", host: bool = True) -> List[str]:
    """'pi4,pi5,host' and/or repeated values -> ['pi4', 'pi5', 'host'] (aliases of the board table
    accepted, unknown names refused with a did-you-mean); ``host=False``: boards only."""
    from edgecnn.measure.backends import split_list

    known = target_names() if host else list(BOARDS)
    what = "a target" if host else "an emulated board"
    out: List[str] = []
    for part in split_list(values):
        key = ALIASES.get(part.lower(), part.lower())
        if key not in known:
            raise InvalidConfigError(f"Received `{option} {part}`: not {what} ({'targets' if host else 'boards'}: "
                                     f"{', '.join(known)}).{did_you_mean(key, known + list(ALIASES))}")
        if key not in out:
            out.append(key)
    return out
