#!/usr/bin/env bash
# make arm-check: proof that the light install runs the int8 models on arm64, without a Pi.
#
# 1. Builds (once, cached) an arm64 Debian bookworm root with debootstrap --foreign and
#    qemu-user-static (both Debian packages), second stage under emulation, python3 + venv inside.
# 2. Downloads the aarch64 wheels of the light install on the host (pip download --platform),
#    builds the edgecnn wheel, and installs both offline into a venv inside the root.
# 3. Takes each model's best trained int8 export under runs/ (else exports one from fresh weights
#    with the BN statistics re-estimated on bundled training images: tools/int8_tflite.py).
# 4. Runs `edgecnn classify --json` on the bundled CIFAR-10 test images on x86-64 (XNNPACK, builtin
#    kernels, reference kernels) and on arm64 (under qemu, inside the root: builtin and reference
#    kernels; XNNPACK does not engage under qemu-user) and asserts:
#    - reference kernels (portable integer arithmetic): every score bit-identical, hence every top-1;
#    - builtin ISA-optimized kernels (NEON vs x86 SIMD, whose requantization rounds differently by
#      1 LSB): top-1 equal on every decisive image, i.e. whose x86 top-1 leads by more than twice
#      the largest score difference between x86's own builtin and XNNPACK kernels; near-ties may
#      flip, as they do between those two x86 kernel sets. ARM_STRICT=1: equal on every image.
#
# Timings under emulation are NOT device figures; this script reports none.
# Needs root (debootstrap, chroot, binfmt_misc). Environment knobs:
#   ARM_ROOT (default .arm-root)  ARM_MIRROR (default: the Debian mirror of apt's sources)
#   ARM_IMAGES (default 32: images per model)  ARM_MODELS (default "quicknet mobilenetv2_e")
#   ARM_REBUILD=1 (throw the cached root away)   --root-only (stop after step 1)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
ROOT=${ARM_ROOT:-$REPO/.arm-root}
SUITE=bookworm
N_IMAGES=${ARM_IMAGES:-32}
MODELS=${ARM_MODELS:-quicknet mobilenetv2_e}
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}
WORK=$REPO/runs/arm-check
VENV_IN_ROOT=/opt/edgecnn-venv
START=$(date +%s)

say() { printf 'arm-check: %s\n' "$*"; }
die() { printf 'arm-check: FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap and chroot); run it as root or with sudo"
for tool in debootstrap chroot; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install debootstrap qemu-user-static binfmt-support"
done
[ -x /usr/bin/qemu-aarch64-static ] || die "qemu-aarch64-static not found: apt-get install qemu-user-static"
[ -x "$HOST_PY" ] || die "host Python $HOST_PY not found: run make install first"

mirror() {
    if [ -n "${ARM_MIRROR:-}" ]; then echo "$ARM_MIRROR"; return; fi
    # The first Debian (not -security) URI in apt's own sources: the mirror this machine reaches.
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

ensure_binfmt() {
    # The kernel must hand arm64 ELF files to qemu; qemu-user-static registers itself with the F
    # (fix binary) flag, so the chroot needs no copy of the emulator.
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
            || die "binfmt_misc is not mounted and cannot be (container without privileges?)"
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        if command -v update-binfmts >/dev/null; then update-binfmts --enable qemu-aarch64 || true; fi
    fi
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
        || die "qemu-aarch64 is not registered with binfmt_misc: apt-get install binfmt-support qemu-user-static"
}

build_root() {
    if [ -n "${ARM_REBUILD:-}" ] && [ -d "$ROOT" ]; then say "ARM_REBUILD set: removing $ROOT"; rm -rf "$ROOT"; fi
    if [ -f "$ROOT/.edgecnn-root-ready" ]; then say "cached arm64 root: $ROOT"; return; fi
    rm -rf "$ROOT"
    local m; m=$(mirror)
    say "debootstrap $SUITE arm64 from $m into $ROOT (first stage, on the host)"
    debootstrap --arch=arm64 --foreign --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$ROOT" "$m"
    say "second stage under qemu-aarch64 emulation (slow: several minutes)"
    chroot "$ROOT" /debootstrap/debootstrap --second-stage
    [ "$(chroot "$ROOT" /usr/bin/uname -m)" = aarch64 ] || die "the root does not run as aarch64"
    chroot "$ROOT" /usr/bin/python3 -c 'import platform, sys; print("arm-check: root python", sys.version.split()[0], platform.machine())'
    touch "$ROOT/.edgecnn-root-ready"
}

ensure_binfmt
build_root
[ "${1:-}" = "--root-only" ] && { say "root ready ($(( $(date +%s) - START )) s)"; exit 0; }

# ---- 2. wheels (host, pip download) and the light venv inside the root
WHL=$REPO/.whl/aarch64-cp311
mkdir -p "$WHL"
say "aarch64 wheels of the light install -> $WHL"
platforms=()
for v in 17 27 28 31 34 35 36; do platforms+=(--platform "manylinux_2_${v}_aarch64"); done
"$HOST_PY" -m pip download -q --only-binary=:all: "${platforms[@]}" --python-version 3.11 \
    --implementation cp --abi cp311 -d "$WHL" ai-edge-litert numpy pillow click
rm -f "$WHL"/edgecnn-*.whl
"$HOST_PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WHL" "$REPO"
rm -rf "$ROOT/tmp/wheels" && cp -r "$WHL" "$ROOT/tmp/wheels"
[ -x "$ROOT$VENV_IN_ROOT/bin/python" ] || chroot "$ROOT" /usr/bin/python3 -m venv "$VENV_IN_ROOT"
say "installing the light edgecnn into $VENV_IN_ROOT inside the root (offline, under emulation)"
chroot "$ROOT" "$VENV_IN_ROOT/bin/pip" install -q --no-index --find-links /tmp/wheels --force-reinstall edgecnn
chroot "$ROOT" "$VENV_IN_ROOT/bin/python" - <<'EOF'
import importlib.util, platform
assert platform.machine() == "aarch64", platform.machine()
assert importlib.util.find_spec("tensorflow") is None, "TensorFlow must not be in the light install"
from edgecnn import runtime
print("arm-check: arm64 venv ok:", platform.machine(), "runtimes", runtime.available_backends())
EOF

# ---- 3. models and images
mkdir -p "$WORK"
"$HOST_PY" - "$WORK/images" "$N_IMAGES" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
from edgecnn.data.sample import load_sample
out, n = Path(sys.argv[1]), int(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
_, (x, y), labels = load_sample()
for i in range(n):
    Image.fromarray(x[i]).save(out / f"test_{i:03d}_{labels[int(y[i])]}.png")
EOF
images=()
while IFS= read -r f; do images+=("$f"); done < <(ls "$WORK/images"/*.png | head -n "$N_IMAGES")

export_int8() {  # $1 model -> prints the export dir: the best trained run's export, else a cached one
    local model=$1 dir="$WORK/$1/export" trained
    trained=$("$HOST_PY" - "$REPO/runs/$model" "$model" <<'PYEOF'
import pathlib, sys
from edgecnn.errors import EdgecnnError
from edgecnn.runs import read_manifest
root, model = pathlib.Path(sys.argv[1]), sys.argv[2]
found = []
for m in root.glob("*/export/manifest.json"):
    try:
        d = read_manifest(m, check_files=True)  # validated, every artifact's sha256 checked
    except EdgecnnError:
        continue
    if d["trained"] and f"{model}_int8.tflite" in d["artifacts"]:
        # The best-trained run (Keras top-1 in the manifest), the newest among equals.
        found.append((float((d.get("keras") or {}).get("top1") or 0.0), m.stat().st_mtime, str(m.parent)))
print(max(found)[2] if found else "")
PYEOF
)
    if [ -n "$trained" ]; then echo "$trained"; return; fi
    if [ -f "$dir/${model}_int8.tflite" ] && [ -f "$dir/manifest.json" ] && [ "$dir/manifest.json" -nt "$REPO/tools/int8_tflite.py" ]; then
        echo "$dir"; return
    fi
    # Not `edgecnn export MODEL --int8`: fresh weights give ten equal probabilities for every image
    # (every top-1 a tie). int8_tflite.py uses the same converter (edgecnn.export.tflite) after
    # re-estimating the BN statistics on bundled training images; see its docstring.
    "$HOST_PY" "$REPO/tools/int8_tflite.py" "$model" "$dir" >&2
    [ -f "$dir/${model}_int8.tflite" ] || die "no $dir/${model}_int8.tflite after export"
    echo "$dir"
}

total=0; ref_total=0; opt_total=0; fails=""
for model in $MODELS; do
    dir=$(export_int8 "$model")
    art="${model}_int8.tflite"
    rm -rf "$ROOT/tmp/check/$model" && mkdir -p "$ROOT/tmp/check/$model/images"
    cp "$dir/$art" "$dir/manifest.json" "$ROOT/tmp/check/$model/"
    cp "${images[@]}" "$ROOT/tmp/check/$model/images/"
    trained=$("$HOST_PY" -c "import json,sys; print(int(bool(json.load(open(sys.argv[1])).get('trained'))))" "$dir/manifest.json")
    say "$model: x86-64 runs: XNNPACK, builtin kernels, reference kernels (source: $dir, trained=$trained)"
    for k in xnnpack builtin reference; do
        case $k in xnnpack) flag="";; builtin) flag="--no-xnnpack";; reference) flag="--reference-kernels";; esac
        "$REPO/.venv/bin/edgecnn" classify "$dir" --artifact "$art" --runtime litert $flag --json -k 10 "${images[@]}" \
            > "$WORK/$model.x86-$k.jsonl"
    done
    say "$model: arm64 runs under emulation: builtin kernels, reference kernels"
    # No /proc or /sys in the root: LiteRT's cpuinfo cannot read the (emulated) CPU, so XNNPACK does
    # not engage and the arm64 builtin (NEON) kernels run; with them mounted, qemu-user segfaults.
    for k in builtin reference; do
        case $k in builtin) flag="";; reference) flag="--reference-kernels";; esac
        chroot "$ROOT" /bin/sh -c "cd /tmp/check/$model && $VENV_IN_ROOT/bin/edgecnn classify . --artifact $art --runtime litert $flag --json -k 10 images/*.png" \
            > "$WORK/$model.arm64-$k.jsonl" 2> "$WORK/$model.arm64-$k.stderr"
    done
    read -r n ref_same ref_ident opt_same d_opt x_ctl d_ctl n_dec n_flip < <("$HOST_PY" - "$WORK/$model" <<'EOF'
import json, os, sys
def rows(path):
    out = {}
    for line in open(path):
        r = json.loads(line) if line.strip() else {}
        if "image" in r:
            out[os.path.basename(r["image"])] = [t["score"] for t in sorted(r["top"], key=lambda t: t["index"])]
    return out
base = sys.argv[1]
xx, xb, xr, ab, ar = (rows(f"{base}.{tag}.jsonl") for tag in
                      ("x86-xnnpack", "x86-builtin", "x86-reference", "arm64-builtin", "arm64-reference"))
assert xx and xx.keys() == xb.keys() == xr.keys() == ab.keys() == ar.keys(), "image sets differ"
top1 = lambda s: max(range(len(s)), key=lambda i: (s[i], -i))
same = lambda u, v: sum(top1(u[k]) == top1(v[k]) for k in u)
diff = lambda u, v: max(abs(p - q) for k in u for p, q in zip(u[k], v[k]))
# A decisive image: its x86 top-1 leads the runner-up by more than twice the largest score difference
# between x86's own two kernel sets (builtin vs XNNPACK), so kernel rounding alone cannot flip it.
tol = diff(xb, xx)
margin = lambda s: sorted(s)[-1] - sorted(s)[-2]
decisive = [k for k in xb if margin(xb[k]) > 2 * tol]
flipped = [k for k in decisive if top1(xb[k]) != top1(ab[k])]
print(len(xx), same(xr, ar), sum(xr[k] == ar[k] for k in xr), same(xb, ab), f"{diff(xb, ab):.5f}",
      same(xb, xx), f"{tol:.5f}", len(decisive), len(flipped))
EOF
)
    [ -n "${n:-}" ] || die "$model: could not compare the runs (see above)"
    say "$model: reference kernels, arm64 vs x86-64: top-1 equal on $ref_same of $n images, scores bit-identical on $ref_ident of $n"
    say "$model: builtin (ISA-optimized) kernels, arm64 vs x86-64: top-1 equal on $opt_same of $n, largest score difference $d_opt" \
        "(x86-64 builtin vs XNNPACK on one machine: top-1 equal on $x_ctl of $n, largest difference $d_ctl);" \
        "top-1 equal on $((n_dec - n_flip)) of the $n_dec decisive images (x86 margin > 2 x $d_ctl)"
    total=$((total + n)); ref_total=$((ref_total + ref_same)); opt_total=$((opt_total + opt_same))
    # The assertion. Reference kernels: the same integer arithmetic on both ISAs, so every score must be
    # bit-identical (hence every top-1). Optimized kernels round requantization per ISA (the first
    # difference is 1 LSB in the first CONV_2D, docs/arm-check.md), and so do x86's own two kernel sets:
    # top-1 must agree on every image whose x86 margin is beyond that rounding (decisive); near-ties
    # may flip, as they do between XNNPACK and the builtin kernels on one x86 machine.
    # ARM_STRICT=1: top-1 equal on every image with the optimized kernels too.
    if [ "$ref_same" != "$n" ] || [ "$ref_ident" != "$n" ]; then fails="$fails $model(reference kernels)"; fi
    if [ "$n_flip" != 0 ]; then fails="$fails $model(builtin kernels: a decisive top-1 differs)"; fi
    if [ "${ARM_STRICT:-0}" = 1 ] && [ "$opt_same" != "$n" ]; then fails="$fails $model(ARM_STRICT: builtin kernels top-1)"; fi
done
elapsed=$(( $(date +%s) - START ))
say "RESULT: top-1 arm64 = x86-64 on $ref_total of $total images with the reference kernels (scores bit-identical)," \
    "on $opt_total of $total with the ISA-optimized builtin kernels; wall time ${elapsed} s (emulated run; no device timings)"
[ -z "$fails" ] || die "arm64 results outside the bar for:$fails"
