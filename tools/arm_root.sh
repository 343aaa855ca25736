#!/usr/bin/env bash
# make arm-root: the arm64 root that `edgecnn benchmark --emulate`, the cost-model tests and
# `make arm-check` run LiteRT in, under qemu-user (no chroot, no binfmt_misc: qemu-aarch64 -L ROOT
# redirects the guest's file opens into the root).
#
# 1. Debian packages on the host, installed with apt-get where missing (as root or through sudo):
#    qemu-user (the dynamic build: it loads TCG plugins; qemu-user-static cannot), debootstrap,
#    gcc (builds the counting plugin on first use).
# 2. debootstrap --foreign of Debian bookworm arm64 (minbase + python3): it only downloads and
#    unpacks; every .deb it fetched is then unpacked with dpkg-deb (nothing is configured or run).
# 3. The aarch64 wheels of LiteRT (the host's version, for comparable kernels) and numpy, from
#    PyPI, installed with pip --target into ROOT/opt/edgecnn-site; the guest's PYTHONPATH.
#
# Cached: a root whose stamp (ROOT/.edgecnn-root) matches is kept. ARM_ROOT (default .arm-root),
# ARM_MIRROR (default: apt's Debian mirror), ARM_REBUILD=1 (start over).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
ROOT=${ARM_ROOT:-$REPO/.arm-root}
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}
say() { printf 'arm-root: %s\n' "$*"; }
die() { printf 'arm-root: FAILED: %s\n' "$*" >&2; exit 1; }

[ -x "$HOST_PY" ] || die "host Python $HOST_PY not found: run make install first"
LITERT=$("$HOST_PY" -c 'from importlib.metadata import version; print(version("ai-edge-litert"))') \
    || die "ai-edge-litert is not installed in $HOST_PY: run make install first"
# Bump FORMAT when the root's layout changes: edgecnn refuses a root with another stamp.
FORMAT=1
STAMP="format=$FORMAT litert=$LITERT"

debs=()
command -v qemu-aarch64 >/dev/null || debs+=(qemu-user)
command -v debootstrap >/dev/null || debs+=(debootstrap)
command -v gcc >/dev/null || debs+=(gcc)
command -v dpkg-deb >/dev/null || debs+=(dpkg)
if [ ${#debs[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
        die "missing ${debs[*]}: apt-get install ${debs[*]} (as root)"; fi
    say "installing ${debs[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    { "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q --no-install-recommends "${debs[@]}" >/dev/null; } \
        || die "apt-get install ${debs[*]} failed"
fi

if [ -z "${ARM_REBUILD:-}" ] && [ "$(cat "$ROOT/.edgecnn-root" 2>/dev/null)" = "$STAMP" ]; then
    say "arm64 root ready: $ROOT ($STAMP)"
    exit 0
fi

mirror() {
    if [ -n "${ARM_MIRROR:-}" ]; then echo "$ARM_MIRROR"; return; fi
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

START=$(date +%s)
TMP="$ROOT.tmp"
rm -rf "$TMP"
m=$(mirror)
say "debootstrap --foreign bookworm arm64 (minbase + python3) from $m"
debootstrap --arch=arm64 --foreign --variant=minbase --include=python3 bookworm "$TMP" "$m" >"$TMP.log" 2>&1 \
    || { tail -n 5 "$TMP.log" >&2; die "debootstrap failed (log: $TMP.log)"; }
say "unpacking $(find "$TMP/var/cache/apt/archives" -name '*.deb' | wc -l) packages (dpkg-deb -x; nothing runs)"
find "$TMP/var/cache/apt/archives" -name '*.deb' -print0 | xargs -0 -I{} dpkg-deb -x {} "$TMP"
rm -rf "$TMP/var/cache/apt/archives"/*.deb "$TMP/debootstrap"
[ -x "$TMP/usr/bin/python3.11" ] || die "no python3.11 in the unpacked root"

say "aarch64 wheels: ai-edge-litert==$LITERT numpy -> /opt/edgecnn-site"
platforms=()
for v in 17 27 28 31 34 35 36; do platforms+=(--platform "manylinux_2_${v}_aarch64"); done
"$HOST_PY" -m pip install -q --disable-pip-version-check --target "$TMP/opt/edgecnn-site" --only-binary=:all: \
    "${platforms[@]}" --python-version 3.11 --implementation cp --abi cp311 "ai-edge-litert==$LITERT" numpy 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
[ -d "$TMP/opt/edgecnn-site/ai_edge_litert" ] || die "pip did not install the aarch64 LiteRT wheel"

# The guest must be able to start: the smoke test runs LiteRT's import under emulation.
qemu-aarch64 -L "$TMP" -cpu cortex-a72 -E PYTHONPATH=/opt/edgecnn-site "$TMP/usr/bin/python3.11" -c \
    'import platform, numpy, ai_edge_litert.interpreter; assert platform.machine() == "aarch64"' \
    || die "the root's python cannot import LiteRT under qemu-aarch64"
echo "$STAMP" >"$TMP/.edgecnn-root"
rm -rf "$ROOT" "$TMP.log"
mv "$TMP" "$ROOT"
say "arm64 root ready: $ROOT ($(du -sm "$ROOT" | cut -f1) MB, $(( $(date +%s) - START )) s)"
