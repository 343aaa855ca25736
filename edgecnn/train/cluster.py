"""The cluster of a multi-worker job: TF_CONFIG read and checked before TensorFlow starts, and a
bounded wait for the peers.

``TF_CONFIG`` (as Kubeflow's TFJob and Ray Train set it) is untrusted input like any file: it is
parsed with the contract's bounded JSON reader and typed spec (``edgecnn.contract.checks``), and a
cluster edgecnn cannot run is refused in one line before TensorFlow is imported:

* not JSON, nested too deep, over 1 MiB; a cluster that is not an object of address lists;
* a job other than ``chief`` and ``worker`` (a ``ps`` parameter server, an ``evaluator``: the
  multi-worker strategy runs neither), more than one chief, more than ``MAX_WORKERS`` tasks;
* an address that is not ``host:port`` with a port from 1 to 65535, an address listed twice;
* a task whose type is not in the cluster (``chief`` without a chief job), or whose index is not
  an integer within its job.

TensorFlow waits for every task of the cluster to register when the strategy is created, in C++,
holding Python's lock, deaf to SIGTERM, and without a limit (a worker whose peer never starts
waited forever). So the wait is bounded in two steps, both within ``--cluster-timeout``
(default ``DEFAULT_TIMEOUT_S``):

1. ``wait_for_peers``, before TensorFlow is imported: this task listens on its own port and tries
   every peer's address until each has accepted a TCP connection (an edgecnn task in this step, or
   a TensorFlow server). A peer that never answers ends the job with a TrainingError (exit 8)
   naming it, e.g. ``no answer from worker:1 (10.0.0.2:2222)``; nothing of the run is written yet.
2. ``peers_deadline``, around the strategy's creation: a watcher process (no Python thread runs
   while TensorFlow holds the lock) writes one ``Error:`` line and ends this process with SIGKILL
   (exit status 137) when the cluster still has not formed: a peer that answered and then stopped,
   or an address held by something that is not a TensorFlow task.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
from typing import Dict, Iterator, List, Optional, Tuple

from edgecnn.contract.checks import Anything, Int, ListOf, MapOf, Obj, Str, check, parse_checked
from edgecnn.errors import InvalidConfigError, TrainingError

JOBS = ("chief", "worker")
MAX_WORKERS = 128
DEFAULT_TIMEOUT_S = 120.0
MAX_TIMEOUT_S = 24 * 3600.0
_HOST = r"(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))"
_ADDRESS = Str(300, min_len=3, pattern=_HOST + r":[0-9]{1,6}", what="an address host:port")
TF_CONFIG_SPEC = Obj(
    {"cluster": MapOf(ListOf(_ADDRESS, min_len=1, max_len=MAX_WORKERS), key=Str(32), min_len=1, max_len=8),
     "task": Obj({"type": Str(32), "index": Int(0, MAX_WORKERS - 1)}, {"trial": Str(64)})},
    {"environment": Str(32), "rpc_layer": Str(8, choices=("grpc",))})


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A checked TF_CONFIG: the addresses of each job, and this task."""

    jobs: Dict[str, Tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def workers(self) -> int:
        return sum(len(v) for v in self.jobs.values())

    @property
    def chief(self) -> bool:
        """Task "chief", else worker 0 when there is no chief (TensorFlow's rule)."""
        return self.task_type == "chief" or (self.task_index == 0 and "chief" not in self.jobs)

    def info(self) -> dict:
        """What run.json records and the training loop reads: workers, this task, whether it is chief."""
        return {"workers": self.workers, "task": {"type": self.task_type, "index": self.task_index},
                "chief": self.chief}

    def peers(self) -> List[Tuple[str, str]]:
        """[(task label, address)] of every other task."""
        return [(f"{job}:{i}", addr) for job in JOBS for i, addr in enumerate(self.jobs.get(job, ()))
                if (job, i) != (self.task_type, self.task_index)]

    @property
    def own_port(self) -> int:
        return int(self.jobs[self.task_type][self.task_index].rpartition(":")[2])

    def silent_peers(self, timeout_s: float = 2.0) -> List[str]:
        """'worker:1 (127.0.0.1:2223)' for each peer that accepts no TCP connection now."""
        return [f"{label} ({addr})" for label, addr in self.peers() if not _answers(addr, timeout_s)]


def parse_tf_config(text: str, where: str = "TF_CONFIG") -> Cluster:
    """The Cluster of a TF_CONFIG text, or one InvalidConfigError line naming what is wrong."""
    from edgecnn.contract.checks import _quote

    def bad(msg):
        raise InvalidConfigError(f"{where}: {msg}")

    doc = parse_checked(text, Obj({"cluster": MapOf(Anything(), key=Str(32), min_len=1, max_len=8)}, extra=True),
                        where)
    other = [job for job in doc["cluster"] if job not in JOBS]
    if other:
        bad(f"the cluster has a {_quote(other[0])} job; --strategy multiworker runs 'chief' and 'worker' tasks only "
            f"(no parameter servers or evaluators).")
    check(doc, TF_CONFIG_SPEC, where)
    jobs = {job: tuple(doc["cluster"][job]) for job in JOBS if job in doc["cluster"]}
    if len(jobs.get("chief", ())) > 1:
        bad(f"'cluster.chief' lists {len(jobs['chief'])} tasks; a cluster has at most one chief.")
    total = sum(len(v) for v in jobs.values())
    if total > MAX_WORKERS:
        bad(f"the cluster has {total:,} tasks; at most {MAX_WORKERS} train together.")
    seen = {}
    for job, addrs in jobs.items():
        for i, addr in enumerate(addrs):
            port = int(addr.rpartition(":")[2])
            if not 1 <= port <= 65535:
                bad(f"'cluster.{job}[{i}]' {addr!r}: port {port} is not from 1 to 65535.")
            key = addr.lower()
            if key in seen:
                bad(f"'cluster.{job}[{i}]' {addr!r} is also {seen[key]}; every task needs its own address.")
            seen[key] = f"{job}[{i}]"
    task = doc["task"]
    if task["type"] not in JOBS:
        bad(f"'task.type' {_quote(task['type'])}: --strategy multiworker runs 'chief' and 'worker' tasks only.")
    if task["type"] not in jobs:
        bad(f"'task.type' is {task['type']!r}, but the cluster has no {task['type']!r} job.")
    if task["index"] >= len(jobs[task["type"]]):
        bad(f"'task.index' {task['index']} is out of range: the cluster has {len(jobs[task['type']])} "
            f"{task['type']!r} task(s), numbered from 0.")
    return Cluster(jobs, task["type"], task["index"])


def read_tf_config(environ=None) -> Optional[Cluster]:
    """The cluster of ``TF_CONFIG`` in ``environ`` (os.environ), or None when it is unset or empty
    (a one-worker job, as TensorFlow reads it)."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not text.strip():
        return None
    return parse_tf_config(text)


def wait_for_peers(cluster: Optional[Cluster], timeout_s: float, poll_s: float = 0.5) -> None:
    """Return once every peer of the cluster has accepted a TCP connection, listening meanwhile on
    this task's own port (so that the peers see it too); after ``timeout_s`` a TrainingError names
    the peers that never answered. Runs before TensorFlow takes the port (see the module doc)."""
    if cluster is None or not cluster.peers():
        return
    server = _listen(cluster.own_port)
    stop = threading.Event()
    acceptor = threading.Thread(target=_answer, args=(server, stop), name="edgecnn-cluster-hello", daemon=True)
    acceptor.start()
    try:
        waiting = dict(cluster.peers())
        deadline = time.monotonic() + timeout_s
        while waiting:
            for label, addr in list(waiting.items()):
                if _answers(addr, min(1.0, poll_s * 2)):
                    del waiting[label]
            if not waiting:
                break
            if time.monotonic() >= deadline:
                silent = ", ".join(f"{k} ({v})" for k, v in waiting.items())
                raise TrainingError(f"the {cluster.workers}-task cluster did not come together within "
                                    f"{timeout_s:g} s (--cluster-timeout): no answer from {silent}. Start every "
                                    f"task with its own TF_CONFIG (check the addresses and firewalls), then run the "
                                    f"same command again.")
            time.sleep(poll_s)
    finally:
        stop.set()
        server.close()
        acceptor.join(timeout=5)


def _listen(port: int) -> socket.socket:
    """A listening socket on ``port`` of every address (IPv6 and IPv4 where the system has both)."""
    try:
        try:
            srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            family_any = ("::", port)
        except OSError:
            srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            family_any = ("0.0.0.0", port)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(family_any)
        srv.listen(64)
        srv.settimeout(0.2)
        return srv
    except OSError as e:
        raise TrainingError(f"this task cannot listen on its TF_CONFIG port {port} ({e.strerror or e}); another "
                            f"process holds it, or the address is not this machine's.") from None


def _answer(server: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except OSError:  # the timeout tick, or the socket closed
            continue
        conn.close()


def _answers(addr: str, timeout_s: float) -> bool:
    host, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


_WATCHER = r"""
import os, select, signal, socket, sys
pid, timeout, workers, peers = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]
if select.select([sys.stdin], [], [], timeout)[0]:
    sys.exit(0)
silent = []
for p in peers:
    label, _, addr = p.partition("=")
    host, _, port = addr.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
    except OSError:
        silent.append(label + " (" + addr + ")")
who = ("no answer from " + ", ".join(silent) if silent else
       "every peer answers on its port, but not all joined (one that is no TensorFlow task, or stopped before joining)")
sys.stderr.write("Error: the " + workers + "-task cluster did not come together within %g s (--cluster-timeout): "
                 % timeout + who + ". Start every task with its own TF_CONFIG, then run the same command again.\n")
sys.stderr.flush()
os.kill(pid, signal.SIGKILL)
"""


@contextlib.contextmanager
def peers_deadline(cluster: Optional[Cluster], timeout_s: float) -> Iterator[None]:
    """Run the block (the strategy's creation: TensorFlow waits there for every task, in C++, holding
    Python's lock) within ``timeout_s``. A watcher process outside this one writes the Error line
    naming the silent peers and ends this process (SIGKILL: TensorFlow ignores SIGTERM there)."""
    if cluster is None or not cluster.peers():
        yield
        return
    import subprocess
    import sys

    from edgecnn.core import quiet

    peers = [f"{label}={addr}" for label, addr in cluster.peers()]
    try:
        watcher = subprocess.Popen([sys.executable, "-I", "-c", _WATCHER, str(os.getpid()), str(timeout_s),
                                    str(cluster.workers), *peers], stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=quiet.terminal())
    except (OSError, ValueError):
        watcher = None  # no watcher (no stderr descriptor): the wait for peers above still bounded the start
    try:
        yield
    finally:
        if watcher is not None:
            watcher.stdin.close()
            watcher.wait()
