#!/usr/bin/env bash
# Installs what the remote-benchmark tests need on a fresh Debian machine: an OpenSSH server
# (the tests start their own sshd on 127.0.0.1 with a throwaway config; nothing is enabled as a
# service). Idempotent; where it cannot install, it says why and exits 0 so that the tests
# skip with a visible reason instead of failing.
set -uo pipefail

have_sshd() { [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null; }

if have_sshd; then
    echo "ci_setup: openssh-server already installed"
else
    if [ "$(id -u)" != 0 ]; then
        echo "ci_setup: SKIP installing openssh-server: not root (the remote-benchmark tests will skip)"
    elif ! command -v apt-get >/dev/null; then
        echo "ci_setup: SKIP installing openssh-server: no apt-get here (the remote-benchmark tests will skip)"
    else
        echo "ci_setup: installing openssh-server (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        if ! { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends openssh-server openssh-client >/dev/null; }; then
            echo "ci_setup: SKIP: apt-get could not install openssh-server (the remote-benchmark tests will skip)"
        fi
        # The package may start a system sshd on port 22; the tests do not use it.
    fi
fi
# sshd running as root wants its privilege-separation directory.
if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then mkdir -p /run/sshd && chmod 0755 /run/sshd; fi
have_sshd && echo "ci_setup: sshd ready: $(/usr/sbin/sshd -V 2>&1 | head -n1 || true)"
exit 0
