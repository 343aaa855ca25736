"""Memory of this process: current and peak resident set size, and resetting the peak.

The benchmark reads these around one model's load and timed loop; the peak is per artifact
because each measurement runs in a fresh process (or, in-process, after ``reset_peak_rss``).
Linux's /proc/self/status where it exists, ``getrusage`` elsewhere.
"""
from __future__ import annotations

import sys
from typing import Optional


def _status_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _maxrss_mb() -> float:
    import resource
    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return v / (1024.0 * 1024.0) if sys.platform == "darwin" else v / 1024.0  # bytes on macOS, KiB on Linux


def rss_mb() -> float:
    """Current resident set size (VmRSS), MiB; the peak so far where /proc is absent."""
    kb = _status_kb("VmRSS")
    return kb / 1024.0 if kb is not None else _maxrss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process (VmHWM; ru_maxrss where /proc is absent), MiB."""
    kb = _status_kb("VmHWM")
    return kb / 1024.0 if kb is not None else _maxrss_mb()


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, /proc/self/clear_refs '5'); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
