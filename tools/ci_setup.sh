#!/usr/bin/env bash
# Installs the system packages the test suite needs on a fresh Debian machine (`make test-deps`,
# run by `make test` and .ci/run), and fails naming whatever is still missing: no test is
# skipped for want of a tool. The Debian packages, and the tests that need them:
#   openssh-server, openssh-client: remote-benchmark tests (they start their own sshd on
#     127.0.0.1 with a throwaway config; nothing is enabled as a service);
#   the shell script linter (package of the same name): the Raspberry Pi install and service scripts;
#   default-jdk-headless, junit4, libhamcrest-java, libandroid-json-java (org.json as Android
#     ships it): the Android app's JVM tests (`make java-test`) and tests/test_android.py;
#   qemu-user (the dynamic build: it loads TCG plugins), debootstrap, gcc: the arm64 root of
#     `make arm-root` and the emulator tests (tests/test_emulate.py), which count under the real qemu.
# Idempotent: installs only what is missing (apt-get, as root or through sudo).
set -uo pipefail

ORG_JSON_JAR=/usr/share/java/com.android.json.jar
missing() {
    local debs=()
    { [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null; } || debs+=(openssh-server)
    command -v ssh >/dev/null || debs+=(openssh-client)
    command -v shellcheck >/dev/null || debs+=(shellcheck)
    command -v javac >/dev/null || debs+=(default-jdk-headless)
    [ -f /usr/share/java/junit4.jar ] || debs+=(junit4)
    [ -f /usr/share/java/hamcrest-core.jar ] || debs+=(libhamcrest-java)
    [ -f "$ORG_JSON_JAR" ] || debs+=(libandroid-json-java)
    command -v qemu-aarch64 >/dev/null || debs+=(qemu-user)
    command -v debootstrap >/dev/null || debs+=(debootstrap)
    command -v gcc >/dev/null || debs+=(gcc)
    echo "${debs[@]}"
}

need=$(missing)
if [ -z "$need" ]; then
    echo "test-deps: sshd, shellcheck, JDK, junit4, hamcrest, org.json, qemu-user, debootstrap and gcc already installed"
else
    if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else sudo=(none); fi
    if [ "${sudo[0]:-}" = none ] || ! command -v apt-get >/dev/null; then
        echo "test-deps: cannot install $need (needs apt-get as root or through sudo); install them and re-run" >&2
        exit 1
    fi
    echo "test-deps: installing $need (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086  # $need is a list of package names
    { "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q --no-install-recommends $need >/dev/null; } ||
        echo "test-deps: apt-get failed" >&2
    # The openssh-server package may start a system sshd on port 22; the tests do not use it.
    need=$(missing)
    if [ -n "$need" ]; then
        echo "test-deps: still missing after apt-get: $need" >&2
        exit 1
    fi
fi
# sshd running as root wants its privilege-separation directory.
if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then mkdir -p /run/sshd && chmod 0755 /run/sshd; fi
exit 0
