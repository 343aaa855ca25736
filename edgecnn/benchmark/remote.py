"""Benchmark on a Raspberry Pi (or any SSH host with the light install) from the workstation.

``run_remote_benchmark(paths, "pi@raspberrypi.local", ...)`` does, in one SSH session:

1. streams a tar of the artifacts, manifest.json and run.json (never model.keras: the device
   has no TensorFlow) to a small bootstrap script run by the remote Python;
2. the script unpacks it into a fresh remote temp dir, runs
   ``<remote-python> -m edgecnn.cli benchmark <those paths> ... --out <temp>/bench`` (the same
   command and JSON schema as here; progress streams back on stderr), prints results.json
   between two marker lines on stdout and deletes the temp dir;
3. locally the JSON is checked (markers, schema, sha256 of every row against the file sent), the
   rows get a ``remote`` entry and their local paths, and they are merged with the results
   already in ``out_dir`` into one comparison table, written atomically.

A fleet: ``run_fleet_benchmark(paths, [("pi@a", None), ("pi@b", 2222)], ...)`` sends the same
payload to every board at once (one SSH session each, one thread each, each with its own
timeout) and returns one document: a row per board x artifact, each with the board's own
platform (read on the board by its edgecnn) and ``remote.host`` = ``user@host:port``, plus a
``failures`` list with one line per board that failed or timed out. Only when every board fails
is it an error. ``destinations("pi@a,pi@b:2222", hosts_file)`` parses ``--remote`` and
``--hosts-file``.

Security: host keys are always checked (``StrictHostKeyChecking=yes``, never accept-new); an
unknown or changed key is a RemoteError that says how to add the key. ``BatchMode=yes``: no
password prompt hangs a run. The remote command is built with ``shlex.quote`` for every word;
locally ssh runs from an argument list, never through a shell. A lost connection raises a
RemoteError before anything is written locally.
"""
from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from edgecnn.benchmark.options import BenchmarkOptions, check_ssh_option
from edgecnn.errors import InvalidConfigError, RemoteError
from edgecnn.core.files import sha256_file

BEGIN = "EDGECNN-RESULTS-BEGIN"
END = "EDGECNN-RESULTS-END"
_NOT_INSTALLED = 97  # the bootstrap's exit code when edgecnn is not importable there

# Runs on the device under its Python (3.8+), before edgecnn is known to be importable there.
_BOOTSTRAP = r'''
import json, os, shutil, subprocess, sys, tarfile, tempfile
args = json.loads(sys.argv[1])
try:
    import edgecnn
except ImportError as e:
    sys.stderr.write("EDGECNN-REMOTE-ERROR edgecnn is not installed for %s (%s)\n" % (sys.executable, e))
    sys.exit(97)
d = tempfile.mkdtemp(prefix="edgecnn-remote-")
try:
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
        for m in tar:
            parts = m.name.split("/")
            if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
                sys.stderr.write("EDGECNN-REMOTE-ERROR refusing archive member %r\n" % m.name)
                sys.exit(96)
            tar.extract(m, d, set_attrs=False, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    sys.stderr.write("edgecnn %s, Python %s on %s: benchmarking in %s\n"
                     % (edgecnn.__version__, sys.version.split()[0], os.uname()[1], d))
    sys.stderr.flush()
    out = os.path.join(d, "bench")
    cmd = [sys.executable, "-m", "edgecnn.cli", "benchmark"] + [os.path.join(d, p) for p in args["paths"]]
    cmd += args["options"] + ["--out", out]
    rc = subprocess.call(cmd, stdout=sys.stderr.fileno(), stdin=subprocess.DEVNULL)
    if rc:
        sys.exit(rc)
    with open(os.path.join(out, "results.json"), "r") as f:
        data = f.read()
    sys.stdout.write("%s\n%s\n%s\n" % (args["begin"], data.strip(), args["end"]))
    sys.stdout.flush()
finally:
    shutil.rmtree(d, ignore_errors=True)
'''

_DEST = re.compile(r"^(?:[A-Za-z0-9._][A-Za-z0-9._-]*@)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])$")
def check_destination(dest: str) -> str:
    """``[user@]host``; anything else (an option, spaces, a shell word) is refused."""
    if not dest or dest.startswith("-") or not _DEST.fullmatch(dest):
        raise InvalidConfigError(
            f"Received `--remote {dest}`: expected USER@HOST or HOST (e.g. pi@raspberrypi.local).")
    return dest


def ssh_command(dest: str, remote_command: str, *, port: Optional[int] = None, identity: Optional[str] = None,
                ssh_options: Sequence[str] = (), connect_timeout: int = 15) -> List[str]:
    """The ssh argument list. Host keys are checked; options that would switch that off are refused."""
    check_destination(dest)
    ssh_options = [check_ssh_option(opt, dest) for opt in ssh_options]
    # ssh keeps the first value it sees for an option: ours come first, so they hold.
    cmd = ["ssh", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
           "-o", f"ConnectTimeout={int(connect_timeout)}", "-o", "ServerAliveInterval=10",
           "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
    for opt in ssh_options:
        cmd += ["-o", opt]
    if port:
        cmd += ["-p", str(int(port))]
    if identity:
        if not Path(identity).is_file():
            raise InvalidConfigError(f"Received `--identity {identity}`: no such key file.")
        cmd += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
    return cmd + ["--", dest, remote_command]


def _host_of(dest: str) -> str:
    return dest.rsplit("@", 1)[-1].strip("[]")


def explain_ssh_failure(dest: str, port: Optional[int], stderr: str, rc: int) -> RemoteError:
    """ssh's exit 255 and its stderr -> one RemoteError line that says what to do."""
    host = _host_of(dest)
    p = f" -p {port}" if port else ""
    err = " ".join(stderr.split())
    low = err.lower()
    if "remote host identification has changed" in low or "host key for" in low and "has changed" in low:
        return RemoteError(
            f"The host key of {host} has CHANGED since it was added to known_hosts: refusing to connect (someone may "
            f"be intercepting the connection). If the Pi was re-installed, remove the old key with "
            f"`ssh-keygen -R {host if not port else f'[{host}]:{port}'}`, then add the new one after checking its "
            f"fingerprint.")
    if "host key verification failed" in low or "no " in low and "host key is known" in low:
        return RemoteError(
            f"The host key of {host} is not in known_hosts, and edgecnn does not trust unknown hosts. Add it once: "
            f"`ssh{p} {dest}` and answer yes after comparing the fingerprint with the Pi's "
            f"(`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the Pi), or "
            f"`ssh-keyscan{p} {host} >> ~/.ssh/known_hosts` on a network you trust.")
    if "permission denied" in low:
        return RemoteError(
            f"{dest} refused the login ({err[:160]}). edgecnn uses key authentication without prompts: "
            f"`ssh-copy-id{p} {dest}`, or pass --identity KEY.")
    if "could not resolve hostname" in low or "name or service not known" in low:
        return RemoteError(f"Cannot resolve {host}: check the name (raspberrypi.local needs mDNS) "
                           f"or use its IP address.")
    if "connection refused" in low:
        return RemoteError(f"{host}{' port ' + str(port) if port else ''} refused the connection: is the SSH server "
                           f"enabled on the Pi (sudo raspi-config > Interface Options > SSH)?")
    if "timed out" in low:
        return RemoteError(f"Connecting to {host} timed out: is it on and on this network?")
    detail = err[-300:] if err else f"ssh exited with {rc}"
    return RemoteError(f"The SSH connection to {dest} was lost or closed ({detail}); nothing was written locally.")


# ----------------------------------------------------------------------------- the payload
def _payload(paths: Sequence) -> Tuple[bytes, List[str], Dict[str, Path]]:
    """(tar bytes, remote-relative benchmark arguments, remote-relative file -> local file)."""
    from edgecnn import contract
    from edgecnn.errors import ModelFileError, RunError

    buf = io.BytesIO()
    args: List[str] = []
    files: Dict[str, Path] = {}
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(local: Path, rel: str):
            info = tar.gettarinfo(str(local), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(local, "rb") as f:
                tar.addfile(info, f)
            files[rel] = local

        def add_export(export_dir: Path, manifest: dict, rel: str, only: Optional[str] = None):
            # Only the manifest and the artifacts it lists, each inside the export and matching its
            # sha256: nothing else on this machine is ever read or sent.
            add(export_dir / contract.MANIFEST, f"{rel}/{contract.MANIFEST}")
            for name in [only] if only else list(manifest["artifacts"]):
                add(contract.artifact_path(export_dir, manifest, name), f"{rel}/{name}")

        for i, arg in enumerate(paths):
            p = Path(arg)
            if not p.exists():
                raise ModelFileError(f"Model file or run directory not found: {p}")
            base = f"r{i}"
            t = contract.resolve(p)
            if t.artifact is not None:
                if t.manifest is not None:
                    add_export(t.export_dir, t.manifest, f"{base}/export", only=t.artifact.name)
                else:
                    add(contract.regular_file(t.artifact, "model file"), f"{base}/export/{t.artifact.name}")
                if t.run_dir is not None:
                    add(t.run_dir / contract.RUN_FILE, f"{base}/{contract.RUN_FILE}")
                args.append(f"{base}/export/{t.artifact.name}")
            elif t.run_dir is not None and Path(arg).resolve() == t.run_dir.resolve():
                rel = f"{base}/{contract.check_name(t.run_dir.resolve().name, 'run folder', RunError)}"
                add(t.run_dir / contract.RUN_FILE, f"{rel}/{contract.RUN_FILE}")
                if t.manifest is not None:
                    add_export(t.export_dir, t.manifest, f"{rel}/{contract.EXPORT_DIR}")
                args.append(rel)
            else:
                add_export(t.export_dir, t.require_manifest(), f"{base}/export")
                if t.run_dir is not None:
                    add(t.run_dir / contract.RUN_FILE, f"{base}/{contract.RUN_FILE}")
                args.append(f"{base}/export")
    if not any(k.endswith((".tflite", ".onnx")) for k in files):
        raise RemoteError("Nothing to send: no .tflite/.onnx artifacts in " + ", ".join(map(str, paths)))
    return buf.getvalue(), args, files



def benchmark_options(o: BenchmarkOptions) -> List[str]:
    """The remote `edgecnn benchmark` flags for ``o``, the same spelling as here."""
    opts: List[str] = []
    for rt in o.runtimes:
        opts += ["--runtime", str(rt)]
    for th in o.threads:
        opts += ["--threads", str(th)]
    for flag, value in (("--runs", o.runs), ("--warmup", o.warmup), ("--seconds", o.seconds), ("--batch", o.batch),
                        ("--device", o.device), ("--preprocess", o.preprocess)):
        if value is not None:
            opts += [flag, str(value)]
    if o.random_inputs:
        opts.append("--random-inputs")
    if o.in_process:
        opts.append("--in-process")
    return opts


# ----------------------------------------------------------------------------- the session
def _run_ssh(cmd: List[str], stdin_bytes: bytes, timeout: float, progress: Callable[[str], None]):
    """Run ssh, feed stdin, stream stderr lines to ``progress``; (rc, stdout, stderr tail)."""
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise RemoteError("The ssh client is not installed here (apt-get install openssh-client).") from None
    tail: List[str] = []

    def feed():
        try:
            proc.stdin.write(stdin_bytes)
        except (BrokenPipeError, OSError):
            pass  # the connection failed; its reason is on stderr
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def drain():
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            tail.append(line)
            del tail[:-60]
            if line and not line.startswith("EDGECNN-REMOTE-ERROR"):
                progress(line)

    threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=drain, daemon=True)]
    for t in threads:
        t.start()
    expired = threading.Event()

    def stop():
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout, stop)
    timer.start()
    try:
        out = proc.stdout.read()
        rc = proc.wait()
    finally:
        timer.cancel()
    for t in threads:
        t.join(timeout=10)
    if expired.is_set():
        raise RemoteError(f"The remote benchmark did not finish within {timeout:g} s; it was stopped, "
                          f"nothing was written locally.")
    return rc, out.decode("utf-8", "replace"), "\n".join(tail)


def _parse_results(out: str, dest: str) -> dict:
    if BEGIN not in out or END not in out.split(BEGIN, 1)[1]:
        raise RemoteError(f"The connection to {dest} ended before the results arrived complete; "
                          f"nothing was written locally.")
    body = out.split(BEGIN, 1)[1].split(END, 1)[0]
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise RemoteError(f"{dest} sent unreadable results ({' '.join(str(e).split())[:160]}); nothing was written "
                          f"locally.") from None
    if not isinstance(doc, dict) or doc.get("schema") != 1 or not isinstance(doc.get("rows"), list):
        raise RemoteError(f"{dest} sent results in an unknown schema "
                          f"({doc.get('schema') if isinstance(doc, dict) else type(doc).__name__!r}): update edgecnn "
                          f"there.")
    from edgecnn.benchmark.report import results_spec
    from edgecnn.contract.checks import parse_checked

    return parse_checked(body, results_spec(), f"the results {dest} sent", RemoteError, max_bytes=256 << 20)


def run_remote_benchmark(paths: Sequence, remote: str, options: Optional[BenchmarkOptions] = None, *, out_dir=None,
                         merge: bool = True, progress: Optional[Callable[[str], None]] = None, **overrides) -> dict:
    """Benchmark ``paths`` (run dirs, export dirs, model files) on ``remote`` over SSH.

    Returns the results document of the remote rows (each with ``remote`` and its local
    ``path``). With ``out_dir``: results.json and the report there are rewritten atomically with
    the remote rows merged into the rows already there (``merge``), plus ``remote-<host>.json``,
    the device's own document.
    """
    o = BenchmarkOptions.make(options, **overrides)
    check_destination(remote)
    payload = _payload(paths)
    doc = _session(payload, benchmark_options(o), remote, port=o.port, remote_python=o.remote_python,
                   identity=o.identity, ssh_options=o.ssh_options, timeout=o.timeout,
                   progress=progress or (lambda s: None))
    if out_dir is not None:
        write_remote_results(doc, out_dir, remote, merge=merge)
    return doc


def host_label(dest: str, port: Optional[int]) -> str:
    """``user@host:port`` (``user@[v6]:port``): how a board is named in a fleet's table."""
    host = _host_of(dest)
    user = dest.rsplit("@", 1)[0] + "@" if "@" in dest else ""
    return f"{user}{'[' + host + ']' if ':' in host else host}:{port or 22}"


def _session(payload, options: List[str], remote: str, *, port, remote_python, identity, ssh_options, timeout,
             progress: Callable[[str], None]) -> dict:
    """One SSH session: send the payload, run the benchmark there, check and return its rows."""
    tar_bytes, rel_args, files = payload
    args = {"paths": rel_args, "begin": BEGIN, "end": END, "options": options}
    remote_cmd = " ".join(shlex.quote(w) for w in (remote_python, "-c", _BOOTSTRAP, json.dumps(args)))
    cmd = ssh_command(remote, remote_cmd, port=port, identity=identity, ssh_options=ssh_options)
    say = progress
    tag = host_label(remote, port) if port else _host_of(remote)
    say(f"sending {sum(1 for k in files if k.endswith(('.tflite', '.onnx')))} artifacts "
        f"({len(tar_bytes) / 1024:.0f} KiB) to {remote}{f' port {port}' if port else ''} ...")
    rc, out, err = _run_ssh(cmd, tar_bytes, timeout, lambda line: say(f"[{tag}] {line}"))
    if rc == 255:
        raise explain_ssh_failure(remote, port, err, rc)
    if rc == _NOT_INSTALLED or (rc == 127 and ("not found" in err or "No such file" in err)):
        raise RemoteError(
            f"No edgecnn for '{remote_python}' on {remote}: install it there with raspi/install.sh "
            f"(see raspi/README.md), or point --remote-python at the Python of the venv that has it.")
    if rc != 0:
        last = [ln for ln in err.splitlines() if ln.strip()]
        why = next((ln for ln in reversed(last) if ln.startswith(("Error:", "EDGECNN-REMOTE-ERROR"))),
                   last[-1] if last else "")
        if rc < 0 or (BEGIN in out and END not in out):
            raise RemoteError(f"The connection to {remote} was lost during the benchmark; nothing was written locally.")
        raise RemoteError(f"The benchmark on {remote} failed (exit {rc}): "
                          f"{why.replace('EDGECNN-REMOTE-ERROR ', '')[:300]}")
    doc = _parse_results(out, remote)

    by_remote_rel = {rel: local for rel, local in files.items()}
    for row in doc["rows"]:
        rel = _relative_remote_path(row.get("path") or "", by_remote_rel)
        local = by_remote_rel.get(rel) if rel else None
        if local is None or sha256_file(local) != row.get("sha256"):
            raise RemoteError(f"{remote} reports {row.get('artifact')} with a sha256 that matches no file sent; "
                              f"results discarded.")
        row["path"] = str(local)
        row["remote"] = {"destination": remote, "port": port, "python": remote_python, "remote_path": rel,
                         "host": host_label(remote, port)}
    doc.setdefault("notes", []).append(f"measured over SSH on {host_label(remote, port)} with {remote_python}")
    return doc


# ----------------------------------------------------------------------------- a fleet
MAX_HOSTS = 256
_MAX_HOSTS_FILE_BYTES = 64 * 1024


def parse_host(entry: str, default_port: Optional[int] = None, where: str = "--remote") -> Tuple[str, Optional[int]]:
    """``user@host``, ``user@host:port`` or ``user@[v6]:port`` -> (destination, port)."""
    text = entry.strip()
    dest, port = text, default_port
    m = re.match(r"^(.*?)(?::(\d{1,5}))?$", text)
    if m and m.group(2) and (m.group(1).endswith("]") or ":" not in m.group(1)):
        dest, port = m.group(1), int(m.group(2))
        if not 1 <= port <= 65535:
            raise InvalidConfigError(f"Received `{where} {entry}`: port {port} is not in 1..65535.")
    try:
        check_destination(dest)
    except InvalidConfigError:
        raise InvalidConfigError(f"Received `{where} {entry}`: expected USER@HOST or USER@HOST:PORT "
                                 f"(e.g. pi@raspberrypi.local:22).") from None
    return dest, port


def read_hosts_file(path, default_port: Optional[int] = None) -> List[Tuple[str, Optional[int]]]:
    """One ``user@host[:port]`` per line; '#' starts a comment; blank lines are skipped. Read by the
    contract's line reader: a regular file of at most 64 KiB, UTF-8, no control characters."""
    from edgecnn.contract.checks import read_text_lines

    out = []
    for n, line in read_text_lines(path, "hosts file", InvalidConfigError, max_bytes=_MAX_HOSTS_FILE_BYTES,
                                   max_lines=4 * MAX_HOSTS):
        entry = line.split("#", 1)[0].strip()
        if entry:
            out.append(parse_host(entry, default_port, where=f"--hosts-file {path} line {n}:"))
    return out


def destinations(remote: Optional[str], hosts_file=None, default_port: Optional[int] = None
                 ) -> List[Tuple[str, Optional[int]]]:
    """``--remote a,b:2222`` and ``--hosts-file`` -> the boards, in order, each once."""
    found = [parse_host(e, default_port) for e in (remote or "").split(",") if e.strip()]
    if remote is not None and not found:
        raise InvalidConfigError(f"Received `--remote {remote}`: no USER@HOST in it.")
    if hosts_file is not None:
        listed = read_hosts_file(hosts_file, default_port)
        if not listed:
            raise InvalidConfigError(f"{hosts_file}: no user@host[:port] line in it.")
        found += listed
    seen, out = set(), []
    for dest, port in found:
        key = host_label(dest, port)
        if key not in seen:
            seen.add(key)
            out.append((dest, port))
    if len(out) > MAX_HOSTS:
        raise InvalidConfigError(f"{len(out)} boards: at most {MAX_HOSTS} are benchmarked in one run.")
    return out


def run_fleet_benchmark(paths: Sequence, hosts: Sequence[Tuple[str, Optional[int]]],
                        options: Optional[BenchmarkOptions] = None, *, parallel: int = 16,
                        progress: Optional[Callable[[str], None]] = None, **overrides) -> dict:
    """Benchmark ``paths`` on every board of ``hosts`` at once; one merged document.

    Rows of every board that answered, each keeping its own platform and ``remote.host``;
    ``failures``: ``{"host", "destination", "port", "status": "failed", "reason", "seconds"}`` for
    each board that failed or passed ``timeout`` seconds; ``fleet``: every board, in order.
    Raises RemoteError (nothing returned) only when every board failed.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    from edgecnn.errors import EdgecnnError

    o = BenchmarkOptions.make(options, **overrides)
    if not hosts:
        raise InvalidConfigError("No board to benchmark on: give --remote USER@HOST[,...] or --hosts-file FILE.")
    for dest, _ in hosts:
        check_destination(dest)
    say = progress or (lambda s: None)
    payload = _payload(paths)  # once: every board gets the same checked bytes
    flags = benchmark_options(o)
    lock = threading.Lock()

    def locked_say(line: str):
        with lock:
            say(line)

    def one(host):
        dest, port = host
        t0 = time.monotonic()
        try:
            return _session(payload, flags, dest, port=port, remote_python=o.remote_python, identity=o.identity,
                            ssh_options=o.ssh_options, timeout=o.timeout, progress=locked_say), None
        except EdgecnnError as e:
            why = " ".join(str(e.message).split())
        except Exception as e:  # a board's failure never costs the others their results
            why = f"{type(e).__name__}: {' '.join(str(e).split())}"
        locked_say(f"[{host_label(dest, port)}] FAILED: {why}")
        return None, {"host": host_label(dest, port), "destination": dest, "port": port, "status": "failed",
                      "reason": why[:500], "seconds": round(time.monotonic() - t0, 1)}

    with ThreadPoolExecutor(max_workers=max(1, min(int(parallel), len(hosts)))) as pool:
        results = list(pool.map(one, hosts))
    failures = [f for _, f in results if f is not None]
    docs = [d for d, _ in results if d is not None]
    if not docs:
        raise RemoteError(f"Every board failed ({len(failures)}): "
                          + "; ".join(f"{f['host']}: {f['reason']}" for f in failures)[:1500])
    from edgecnn.benchmark.report import merge_results

    doc = merge_results(docs)
    doc["notes"] = [n for d in docs for n in d.get("notes") or []] + \
        [f"{f['host']}: FAILED ({f['reason']})" for f in failures]
    doc["fleet"] = [host_label(d, p) for d, p in hosts]
    doc["failures"] = failures
    return doc


def _relative_remote_path(path: str, known: Dict[str, Path]) -> Optional[str]:
    """The remote temp dir is unknown here: match the row's path by its known suffix."""
    for rel in known:
        if path == rel or path.endswith("/" + rel):
            return rel
    return None


def write_remote_results(doc: dict, out_dir, remote: str, merge: bool = True) -> dict:
    """The device's document as remote-<host>.json, and results.* merged with what is there."""
    from edgecnn.benchmark.report import merge_results, write_results
    from edgecnn.core.files import atomic_write_json

    out = Path(out_dir)
    existing = out / "results.json"
    merged = merge_results([existing, doc]) if merge and existing.is_file() else merge_results([doc])
    atomic_write_json(out / f"remote-{re.sub(r'[^A-Za-z0-9._-]', '_', _host_of(remote))}.json", doc)
    write_results(merged, out)
    return merged
