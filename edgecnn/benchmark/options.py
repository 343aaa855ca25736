"""What a benchmark is asked to do, here, on a remote board or a fleet: one frozen object.

``BenchmarkOptions`` is built by ``edgecnn benchmark`` from its flags and passed whole to
``run_benchmark``, ``run_interleaved``, the harness and the SSH runners (``edgecnn.core.options``
explains ``make`` and ``from_cli``). The remote side receives the same options as flags
(``remote.benchmark_options``).
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Optional, Tuple

from edgecnn.core.options import Options
from edgecnn.errors import InvalidConfigError

DEFAULT_REMOTE_PYTHON = "edgecnn-venv/bin/python"  # raspi/install.sh's venv, relative to the remote $HOME

# The ssh -o options a user may add: an allow-list, since a deny-list cannot hold (PKCS11Provider,
# SecurityKeyProvider, KnownHostsCommand, Include, Match exec, ... load a library, read other
# configuration or run a local command). None of these runs code on this machine, switches
# host-key checking off or forwards anything; each value is checked by its pattern.
_WORD = r"[A-Za-z0-9._@%+-]+"
_PATH = r"[A-Za-z0-9._@%+~/-]+"
_LIST = r"[A-Za-z0-9._@+,-]+"
_NUM = r"[0-9]{1,6}"
_YESNO = r"(?i:yes|no)"
_JUMP = r"(?:[A-Za-z0-9._][A-Za-z0-9._-]*@)?[A-Za-z0-9._-]+(?::[0-9]{1,5})?"
SSH_OPTIONS = {
    "Port": _NUM, "User": r"[A-Za-z0-9._][A-Za-z0-9._-]*", "HostName": r"[A-Za-z0-9._:-]+",
    "HostKeyAlias": _WORD, "IdentityFile": _PATH, "CertificateFile": _PATH, "IdentitiesOnly": _YESNO,
    "UserKnownHostsFile": _PATH, "GlobalKnownHostsFile": _PATH, "ConnectTimeout": _NUM,
    "ConnectionAttempts": _NUM, "ServerAliveInterval": _NUM, "ServerAliveCountMax": _NUM, "TCPKeepAlive": _YESNO,
    "Compression": _YESNO, "AddressFamily": r"(?i:any|inet|inet6)", "Ciphers": _LIST, "MACs": _LIST,
    "KexAlgorithms": _LIST, "HostKeyAlgorithms": _LIST, "PubkeyAcceptedAlgorithms": _LIST,
    "PreferredAuthentications": _LIST, "PubkeyAuthentication": _YESNO, "ProxyJump": rf"{_JUMP}(?:,{_JUMP})*",
}
_SSH_KEYS = {k.lower(): k for k in SSH_OPTIONS}


def check_ssh_option(opt: str, dest: str = "HOST") -> str:
    """``Key=Value`` (or ``Key Value``) for ssh -o, if ``Key`` is in ``SSH_OPTIONS`` and the value
    matches its pattern; returned as ``Key=Value``. Anything else is refused in one line."""
    m = re.match(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*(?:=|\s)\s*(\S.*?)\s*$", str(opt))
    if not m:
        raise InvalidConfigError(f"Received `--ssh-option {opt}`: expected Key=Value, as for ssh -o.")
    key = _SSH_KEYS.get(m.group(1).lower())
    if key is None:
        hint = ("edgecnn always checks host keys and runs no local commands; add the Pi's key to known_hosts instead "
                f"(ssh-keyscan, or one manual `ssh {dest}`)" if m.group(1).lower() in (
                    "stricthostkeychecking", "batchmode", "proxycommand", "localcommand", "permitlocalcommand",
                    "knownhostscommand") else
                "it is not one edgecnn passes to ssh")
        raise InvalidConfigError(f"Received `--ssh-option {opt}`: {hint}. Allowed: {', '.join(sorted(SSH_OPTIONS))}.")
    if not re.fullmatch(SSH_OPTIONS[key], m.group(2)):
        raise InvalidConfigError(f"Received `--ssh-option {opt}`: the value {m.group(2)!r} is not one edgecnn passes "
                                 f"to ssh for {key} (no spaces, quotes or shell characters).")
    return f"{key}={m.group(2)}"


def _tuple(v) -> tuple:
    if v is None:
        return ()
    if isinstance(v, (str, int)):
        return (v,)
    return tuple(v)


@dataclasses.dataclass(frozen=True)
class BenchmarkOptions(Options):
    """How each combination is measured (runtimes x threads; warmup, runs or seconds, batch,
    device profile, random inputs or the preprocessing of files that do not say theirs, in this
    process), what is added (op profiles, emulated rows of these boards, interleaved rounds, the
    recommended artifact for each of ``targets``: boards of the board table or "host"), and where
    it runs (remote SSH destinations and/or a
    hosts file; the remote Python, port, key, extra ssh options and the per-board timeout)."""

    runtimes: Tuple[str, ...] = dataclasses.field(default=(), metadata={"flag": "--runtime"})
    threads: Tuple = ()
    warmup: int = 10
    runs: int = 100
    seconds: Optional[float] = None
    batch: int = 1
    device: Optional[str] = None
    random_inputs: bool = False
    preprocess: Optional[str] = None
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
            for opt in self.ssh_options:  # refused before any work: an allow-list of ssh -o options
                check_ssh_option(opt)
        if self.remote_run and self.op_profile:
            raise InvalidConfigError("--op-profile runs here, not on the remote host: leave it out with --remote")
