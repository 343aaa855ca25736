"""Remote benchmarking over SSH, against a real OpenSSH server on 127.0.0.1 started here.

The server has its own sshd_config, a throwaway host key and a throwaway client key; the client
checks host keys against a known_hosts file this test writes. The "remote" edgecnn is this
machine's Python (or EDGECNN_TEST_REMOTE_PYTHON, e.g. the light venv). Skips, with the reason,
only where sshd is not installed (tools/ci_setup.sh installs it).
"""
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgecnn.benchmark.remote import BEGIN, run_remote_benchmark, ssh_command
from edgecnn.errors import InvalidConfigError, RemoteError

SSHD = "/usr/sbin/sshd"
REMOTE_PYTHON = os.environ.get("EDGECNN_TEST_REMOTE_PYTHON") or sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgecnn-test", "-f", str(path)], check=True)


def _sshd(tmp_path_factory, client_key=None):
    """A real sshd on a free loopback port with its own host key; ``client_key`` (else a new one) may log in."""
    missing = [t for t in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen")) if not t or not os.path.exists(t)]
    if missing or not shutil.which("ssh"):
        pytest.skip("OpenSSH server/client not installed (run tools/ci_setup.sh): remote benchmark tests skipped")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    d = tmp_path_factory.mktemp("sshd")
    _keygen(d / "host_key")
    if client_key is None:
        _keygen(d / "client_key")
        client_key = d / "client_key"
    shutil.copy(f"{client_key}.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(textwrap.dedent(f"""\
        Port {port}
        ListenAddress 127.0.0.1
        HostKey {d}/host_key
        PidFile {d}/sshd.pid
        AuthorizedKeysFile {d}/authorized_keys
        PubkeyAuthentication yes
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        PermitRootLogin prohibit-password
        MaxStartups 20
        """))
    log = open(d / "sshd.log", "wb")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=log, stdin=subprocess.DEVNULL)
    for _ in range(100):  # wait until it listens (bounded), or skip with its log
        if proc.poll() is not None:
            break
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        threading.Event().wait(0.1)
    else:
        proc.kill()
    if proc.poll() is not None:
        log.close()
        pytest.skip(f"sshd could not be started: {(d / 'sshd.log').read_text()[-300:]}")
    host_pub = " ".join((d / "host_key.pub").read_text().split()[:2])
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    yield SimpleNamespace(dir=d, port=port, dest=f"{getpass.getuser()}@127.0.0.1", key=str(client_key),
                          known_hosts=d / "known_hosts", opts=[f"UserKnownHostsFile={d / 'known_hosts'}"])
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    yield from _sshd(tmp_path_factory)


@pytest.fixture(scope="module")
def sshd2(tmp_path_factory, sshd):
    """A second board: another sshd, another host key, the same client key."""
    yield from _sshd(tmp_path_factory, client_key=sshd.key)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    from _tiny_export import build_tiny_export

    # A hostile directory name: it must reach the device as data, never as shell syntax.
    root = tmp_path_factory.mktemp("runs")
    marker = root / "pwned"
    run = root / f"it's a run; touch {marker} $(touch {marker})"
    build_tiny_export(run / "export", precisions=("int8",))
    return SimpleNamespace(run=run, export=run / "export", marker=marker)


def _remote(sshd, **kw):
    kw.setdefault("ssh_options", sshd.opts)
    return dict(port=sshd.port, identity=sshd.key, remote_python=REMOTE_PYTHON, **kw)


def test_ssh_command_checks_host_keys_and_refuses_shell_words():
    cmd = ssh_command("pi@raspberrypi.local", "true", port=2222)
    assert cmd[:3] == ["ssh", "-o", "StrictHostKeyChecking=yes"] and "BatchMode=yes" in cmd
    assert cmd[-3:] == ["--", "pi@raspberrypi.local", "true"]
    for bad in ("-oProxyCommand=touch x", "pi@host; rm -rf ~", "pi@$(id)", "", "pi@ho st"):
        with pytest.raises(InvalidConfigError):
            ssh_command(bad, "true")
    for opt in ("StrictHostKeyChecking=no", "StrictHostKeyChecking accept-new", "ProxyCommand=nc %h %p",
                "LocalCommand=id"):
        with pytest.raises(InvalidConfigError):
            ssh_command("pi@host", "true", ssh_options=[opt])


def test_remote_benchmark_cli_merges_device_rows_into_the_table(sshd, export, tmp_path):
    out = tmp_path / "bench"
    edgecnn = [sys.executable, "-m", "edgecnn.cli", "benchmark"]
    # The local rows first, then the "device" rows join the same table.
    subprocess.run(edgecnn + [str(export.export), "--runs", "5", "--warmup", "1", "--in-process", "--out", str(out)],
                   check=True, capture_output=True)
    r = subprocess.run(edgecnn + [str(export.run), "--remote", sshd.dest, "--port", str(sshd.port),
                                  "--identity", sshd.key, "--ssh-option", sshd.opts[0], "--remote-python",
                                  REMOTE_PYTHON, "--device", "pi4", "--runs", "5", "--warmup", "1", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not export.marker.exists(), "a path reached a remote shell unquoted"
    doc = json.loads((out / "results.json").read_text())
    remote_rows = [row for row in doc["rows"] if row.get("remote")]
    local_rows = [row for row in doc["rows"] if not row.get("remote")]
    assert len(remote_rows) == 1 and len(local_rows) == 1
    rr = remote_rows[0]
    assert rr["artifact"] == "tiny_int8.tflite" and rr["sha256"] == local_rows[0]["sha256"]
    assert rr["device"]["profile"] == "pi4" and "Raspberry Pi 4" in rr["device"]["label"]
    assert rr["timing"]["latency"]["count"] == 5 and rr["remote"]["destination"] == sshd.dest
    assert Path(rr["path"]) == export.export / "tiny_int8.tflite"  # the local file it measured
    assert "Raspberry Pi 4" in (out / "results.md").read_text()
    # The per-run remote temp dir is gone.
    tmp_line = [ln for ln in r.stderr.splitlines() if "benchmarking in " in ln]
    assert tmp_line and not Path(tmp_line[0].rsplit("benchmarking in ", 1)[1].strip()).exists()


def test_unknown_host_key_is_refused_with_how_to_add_it(sshd, export, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(RemoteError, match="ssh-keyscan") as e:
        run_remote_benchmark([export.export], sshd.dest, out_dir=tmp_path / "out",
                             **_remote(sshd, ssh_options=[f"UserKnownHostsFile={empty}"]))
    assert e.value.exit_code == RemoteError.exit_code
    assert not (tmp_path / "out").exists()


def test_changed_host_key_is_refused(sshd, export, tmp_path):
    _keygen(tmp_path / "other")
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {' '.join((tmp_path / 'other.pub').read_text().split()[:2])}\n")
    with pytest.raises(RemoteError, match="CHANGED"):
        run_remote_benchmark([export.export], sshd.dest, out_dir=tmp_path / "out",
                             **_remote(sshd, ssh_options=[f"UserKnownHostsFile={kh}"]))
    assert not (tmp_path / "out").exists()


def test_lost_connection_mid_run_leaves_nothing_written(sshd, export, tmp_path):
    # A "device" that starts sending results, then its SSH session dies (its sshd process killed).
    fake = tmp_path / "dying_python"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, signal, sys
        sys.stdin.buffer.read()
        sys.stdout.write({BEGIN!r} + '\\n{{"schema": 1, "rows": [{{"artifact": "tiny_')
        sys.stdout.flush()
        pid = os.getppid()
        while pid > 1:
            with open(f"/proc/{{pid}}/stat") as f:
                stat = f.read()
            if stat[stat.index("(") + 1:stat.rindex(")")].startswith("sshd"):
                os.kill(pid, signal.SIGKILL)
                break
            pid = int(stat[stat.rindex(")") + 2:].split()[1])
        """))
    fake.chmod(0o755)
    out = tmp_path / "bench"
    out.mkdir()
    (out / "results.json").write_text('{"keep": "me"}')
    with pytest.raises(RemoteError, match="nothing was written locally") as e:
        run_remote_benchmark([export.export], sshd.dest, out_dir=out, **dict(_remote(sshd), remote_python=str(fake)))
    assert "lost" in e.value.message or "ended before" in e.value.message
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    assert (out / "results.json").read_text() == '{"keep": "me"}'


def test_server_that_closes_the_connection(export, tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(60)  # the thread ends by itself
    port = srv.getsockname()[1]

    def close_each():
        try:
            for _ in range(4):
                conn, _ = srv.accept()
                conn.close()
        except OSError:
            pass

    t = threading.Thread(target=close_each, daemon=True)
    t.start()
    try:
        with pytest.raises(RemoteError, match="closed|lost"):
            run_remote_benchmark([export.export], "pi@127.0.0.1", port=port, out_dir=tmp_path / "out",
                                 ssh_options=[f"UserKnownHostsFile={tmp_path / 'kh'}"])
    finally:
        srv.close()
    assert not (tmp_path / "out").exists()


def test_remote_python_without_edgecnn_says_how_to_install(sshd, export, tmp_path):
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    with pytest.raises(RemoteError, match="raspi/install.sh"):
        run_remote_benchmark([export.export], sshd.dest, **dict(_remote(sshd), remote_python=str(bare / "bin/python")))
    with pytest.raises(RemoteError, match="raspi/install.sh"):
        run_remote_benchmark([export.export], sshd.dest,
                             **dict(_remote(sshd), remote_python="/nonexistent/python"))


# ----------------------------------------------------------------------------- a fleet of boards
def test_hosts_file_and_remote_list_are_parsed_and_checked(tmp_path):
    from edgecnn.benchmark.remote import destinations

    hosts = tmp_path / "boards.txt"
    hosts.write_text("# the lab's boards\npi@pi4-a.local\n\npi@pi5-b.local:2222   # the fast one\npi@[::1]:2200\n")
    assert destinations("pi@pi4-a.local:22,pi@c", hosts, default_port=None) == [
        ("pi@pi4-a.local", 22), ("pi@c", None), ("pi@pi5-b.local", 2222), ("pi@[::1]", 2200)]
    hosts.write_text("pi@ok\npi@bad host\n")
    with pytest.raises(InvalidConfigError, match="line 2"):
        destinations(None, hosts)
    for bad in ("pi@a,-oProxyCommand=id", "pi@a:70000", "pi@$(id):22", ","):
        with pytest.raises(InvalidConfigError):
            destinations(bad)


def test_fleet_benchmark_two_boards_and_a_closed_port(sshd, sshd2, export, tmp_path):
    """Two real sshd "boards" (different host keys, both in one known_hosts) and a port nobody
    listens on: one table with a row per board x artifact, and one failure row saying why."""
    kh = tmp_path / "known_hosts"
    kh.write_text(sshd.known_hosts.read_text() + sshd2.known_hosts.read_text())
    closed = _free_port()
    hosts = tmp_path / "boards.txt"
    hosts.write_text(f"# a board that is switched off\n{sshd.dest}:{closed}\n")
    a, b, c = (f"{sshd.dest}:{p}" for p in (sshd.port, sshd2.port, closed))
    out = tmp_path / "bench"
    r = subprocess.run([sys.executable, "-m", "edgecnn.cli", "benchmark", str(export.export), "--remote", f"{a},{b}",
                        "--hosts-file", str(hosts), "--identity", sshd.key, "--ssh-option", f"UserKnownHostsFile={kh}",
                        "--remote-python", REMOTE_PYTHON, "--runs", "20", "--warmup", "2", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["fleet"] == [a, b, c]
    assert sorted(row["remote"]["host"] for row in doc["rows"]) == sorted([a, b])
    for row in doc["rows"]:  # each row carries the platform its board reported
        assert row["artifact"] == "tiny_int8.tflite" and row["timing"]["latency"]["count"] == 20
        assert row["platform"]["cpu_model"] and "isa_flags" in row["platform"]
    assert len(doc["failures"]) == 1
    fail = doc["failures"][0]
    assert fail["host"] == c and fail["status"] == "failed" and "refused the connection" in fail["reason"]
    assert "\n" not in fail["reason"]
    md = (out / "results.md").read_text()
    main = md.split("## Boards")[0]  # the main table names each row's board
    assert " board |" in main and main.count(f"| {a} |") == main.count(f"| {b} |") == 1
    assert "## Boards" in md and f"| {c} |" in md and "FAILED: " in md and f"| {a} |" in md and f"| {b} |" in md
    assert (out / "fleet.png").stat().st_size > 1000 and "fleet.png" in (out / "report.md").read_text()
    assert f"Warning: {c} failed" in r.stderr
    table = r.stdout[r.stdout.index("\n\nboard ") + 2:r.stdout.index("Written:")].rstrip()
    assert table.count("\n") == 4 and "FAILED" in table.splitlines()[-1]
    print("\n" + table)


def test_fleet_where_every_board_fails_writes_nothing(tmp_path, export):
    """A board that accepts the connection and never answers is stopped at the timeout; with a
    closed port beside it every board failed: one error, exit code 14, nothing written."""
    from edgecnn.benchmark.remote import run_fleet_benchmark
    from edgecnn.benchmark.outputs import run_benchmark

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    silent = srv.getsockname()[1]
    try:
        with pytest.raises(RemoteError, match="Every board failed") as e:
            run_fleet_benchmark([export.export], [("pi@127.0.0.1", silent), ("pi@127.0.0.1", _free_port())],
                                ssh_options=[f"UserKnownHostsFile={tmp_path / 'kh'}"], timeout=3)
        assert f"pi@127.0.0.1:{silent}: The remote benchmark did not finish within 3 s" in e.value.message
        assert "refused the connection" in e.value.message and e.value.exit_code == RemoteError.exit_code
        with pytest.raises(RemoteError):
            run_benchmark([export.export], remote=f"pi@127.0.0.1:{silent},pi@127.0.0.1:{_free_port()}",
                          out_dir=tmp_path / "out", timeout=3, ssh_options=[f"UserKnownHostsFile={tmp_path / 'kh'}"])
    finally:
        srv.close()
    assert not (tmp_path / "out").exists()
