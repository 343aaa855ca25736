"""What a benchmark is asked to do, here, on a remote board or a fleet: one frozen object.

``BenchmarkOptions`` is built by ``edgecnn benchmark`` from its flags and passed whole to
``run_benchmark``, ``run_interleaved``, the harness and the SSH runners (``edgecnn.core.options``
explains ``make`` and ``from_cli``). The remote side receives the same options as flags
(``remote.benchmark_options``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

from edgecnn.core.options import Options
from edgecnn.errors import InvalidConfigError

DEFAULT_REMOTE_PYTHON = "edgecnn-venv/bin/python"  # raspi/install.sh's venv, relative to the remote $HOME


def _tuple(v) -> tuple:
    if v is None:
        return ()
    if isinstance(v, (str, int)):
        return (v,)
    return tuple(v)


@dataclasses.dataclass(frozen=True)
class BenchmarkOptions(Options):
    """How each combination is measured (runtimes x threads; warmup, runs or seconds, batch,
    device profile, random inputs, in this process), what is added (op profiles, emulated rows
    of these boards, interleaved rounds, the recommended artifact for each of ``targets``: boards
    of the board table or "host"), and where it runs (remote SSH destinations and/or a
    hosts file; the remote Python, port, key, extra ssh options and the per-board timeout)."""

    runtimes: Tuple[str, ...] = dataclasses.field(default=(), metadata={"flag": "--runtime"})
    threads: Tuple = ()
    warmup: int = 10
    runs: int = 100
    seconds: Optional[float] = None
    batch: int = 1
    device: Optional[str] = None
    random_inputs: bool = False
    in_process: bool = False
    op_profile: bool = False
    rounds: int = 9
    emulate: Tuple[str, ...] = ()
    targets: Tuple[str, ...] = dataclasses.field(default=(), metadata={"flag": "--target"})
    remote: Optional[str] = None
    hosts_file: Optional[str] = None
    remote_python: str = DEFAULT_REMOTE_PYTHON
    port: Optional[int] = None
    identity: Optional[str] = None
    ssh_options: Tuple[str, ...] = dataclasses.field(default=(), metadata={"flag": "--ssh-option"})
    timeout: float = dataclasses.field(default=3600.0, metadata={"flag": "--remote-timeout"})

    def __post_init__(self):
        for name in ("runtimes", "threads", "emulate", "ssh_options", "targets"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))
        super().__post_init__()

    @property
    def remote_run(self) -> bool:
        return bool(self.remote) or self.hosts_file is not None

    def check(self) -> None:
        def integer(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not integer(self.runs) or (self.runs < 1 and not self.seconds):
            self._bad("runs", "at least 1 timed run is needed")
        if not integer(self.warmup) or self.warmup < 0:
            self._bad("warmup", "must be 0 or more")
        if not integer(self.batch) or self.batch < 1:
            self._bad("batch", "must be 1 or more")
        if not integer(self.rounds) or self.rounds < 1:
            self._bad("rounds", "must be 1 or more")
        if self.seconds is not None and not (isinstance(self.seconds, (int, float)) and math.isfinite(self.seconds)
                                             and self.seconds > 0):
            self._bad("seconds", "must be a positive number of seconds")
        if not (isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout) and self.timeout > 0):
            self._bad("timeout", "must be a positive number of seconds")
        if self.port is not None and not (integer(self.port) and 1 <= self.port <= 65535):
            self._bad("port", "must be a TCP port, 1 to 65535")
        if self.targets:
            from edgecnn.measure.boards import parse_targets

            object.__setattr__(self, "targets", tuple(parse_targets(list(self.targets))))
        if self.ssh_options:
            from edgecnn.benchmark.remote import check_ssh_option

            for opt in self.ssh_options:  # refused before any work: an allow-list of ssh -o options
                check_ssh_option(opt)
        if self.remote_run and self.op_profile:
            raise InvalidConfigError("--op-profile runs here, not on the remote host: leave it out with --remote")
