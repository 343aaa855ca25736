#!/usr/bin/env bash
# make arm-check: proof that the light install gives the int8 models' x86-64 results on arm64, on
# the cores of a Pi 4 (Cortex-A72) and a Pi 5 (Cortex-A76), without a Pi.
#
# 1. The arm64 root of tools/arm_root.sh (make arm-root; cached): qemu-aarch64 -L ROOT, no chroot,
#    no binfmt_misc. The light install goes into ROOT/opt/edgecnn-light: the edgecnn wheel built on
#    the host, and the aarch64 wheels of pillow and click (the host's versions) via pip --target.
# 2. Each model's best trained int8 export under runs/ (else one from fresh weights with the BN
#    statistics re-estimated on bundled training images: tools/int8_tflite.py).
# 3. `edgecnn classify --json` on the bundled CIFAR-10 test images, on the host (x86-64: XNNPACK,
#    builtin kernels, reference kernels) and in the guest (python -m edgecnn.emulate.qemu --board,
#    which places the board's /proc/cpuinfo in the root so XNNPACK engages and picks that core's
#    kernels: XNNPACK on pi4 and pi5, builtin and reference kernels on pi4). It asserts:
#    - XNNPACK engaged in the guest (delegated tensors > 0 on each board);
#    - XNNPACK, arm64 (pi4, pi5) vs x86-64: every score bit-identical;
#    - reference kernels (portable integer arithmetic), arm64 vs x86-64: every score bit-identical;
#    - builtin kernels (NEON vs x86 SIMD requantization, 1 LSB apart in the first CONV_2D): top-1
#      equal on every decisive image, whose x86 top-1 leads by more than twice the largest score
#      difference between x86's own builtin and XNNPACK kernels. ARM_STRICT=1: on every image;
#    - at least one decisive image per model: a model whose outputs are all ties proves nothing.
#
# Timings under emulation are NOT device figures; only the check's wall time is reported.
# Environment knobs: ARM_ROOT (default .arm-root)  ARM_RUNS (default runs: where trained exports
# are looked for)  ARM_IMAGES (default 32 per model)  ARM_MODELS (default "quicknet mobilenetv2_e")
# ARM_BOARDS (default "pi4 pi5": the XNNPACK boards; builtin and reference kernels run on pi4)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
ROOT=$(realpath -m "${ARM_ROOT:-$REPO/.arm-root}")
RUNS=${ARM_RUNS:-$REPO/runs}
N_IMAGES=${ARM_IMAGES:-32}
MODELS=${ARM_MODELS:-quicknet mobilenetv2_e}
BOARDS=${ARM_BOARDS:-pi4 pi5}
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}
WORK=$REPO/runs/arm-check
LIGHT=/opt/edgecnn-light          # guest path of the light install
# The models and images, at one path for host and guest: qemu -L opens a path absent from the root on
# the host, and qemu 7.2's faccessat2 ignores -L (click's "is readable" check fails on root paths).
GUEST_WORK=$WORK/guest
START=$(date +%s)
# This checkout's edgecnn, on the host as in the wheel, whichever checkout the venv was installed from.
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export EDGECNN_ARM_ROOT=$ROOT

say() { printf 'arm-check: %s\n' "$*"; }
die() { printf 'arm-check: FAILED: %s\n' "$*" >&2; exit 1; }
guest() {  # guest BOARD ARGS...: the root's python3.11 with the light install, on BOARD's core
    local board=$1; shift
    # From /: the guest's sys.path starts with its working directory, which must not be a checkout.
    (cd / && "$HOST_PY" -m edgecnn.emulate.qemu --board "$board" --site "$LIGHT" -- "$@")
}

[ -x "$HOST_PY" ] || die "host Python $HOST_PY not found: run make install first"

# ---- 1. the root (cached) and the light install inside it
ARM_ROOT=$ROOT HOST_PY=$HOST_PY bash "$REPO/tools/arm_root.sh"
platforms=()
for v in 17 27 28 31 34 35 36; do platforms+=(--platform "manylinux_2_${v}_aarch64"); done
pins=$("$HOST_PY" -c 'from importlib.metadata import version as v; print(" ".join(f"{p}=={v(p)}" for p in ("pillow", "click")))')
light=$ROOT$LIGHT
if [ "$(cat "$light/.pins" 2>/dev/null)" != "$pins" ]; then
    say "aarch64 wheels: $pins -> $LIGHT"
    rm -rf "$light"
    # shellcheck disable=SC2086  # $pins: two requirements
    "$HOST_PY" -m pip install -q --disable-pip-version-check --target "$light" --only-binary=:all: \
        "${platforms[@]}" --python-version 3.11 --implementation cp --abi cp311 --no-deps $pins 2>&1 \
        | grep -v "^WARNING: Location" >&2 || true
    if [ ! -d "$light/PIL" ] || [ ! -d "$light/click" ]; then die "pip did not install the aarch64 pillow and click wheels"; fi
    echo "$pins" >"$light/.pins"
fi
whl=$WORK/wheel
rm -rf "$whl" "$light"/edgecnn "$light"/edgecnn-*.dist-info "${light:?}"/bin
"$HOST_PY" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$whl" "$REPO" >/dev/null
"$HOST_PY" -m pip install -q --disable-pip-version-check --target "$light" --no-deps "$whl"/edgecnn-*.whl 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
[ -f "$light/edgecnn/cli.py" ] || die "the edgecnn wheel did not install into $LIGHT"

# ---- 2. models and images
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
while IFS= read -r f; do images+=("$f"); done < <(cd "$WORK/images" && printf '%s\n' test_*.png | head -n "$N_IMAGES")

export_int8() {  # $1 model -> prints the export dir: the best trained run's export, else a cached one
    local model=$1 dir="$WORK/$1/export" trained
    trained=$("$HOST_PY" - "$RUNS/$model" "$model" <<'PYEOF'
import pathlib, sys
from edgecnn.errors import EdgecnnError
from edgecnn.contract import read_manifest
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

rm -rf "$GUEST_WORK"
for model in $MODELS; do
    dir=$(export_int8 "$model")
    trained=$("$HOST_PY" -c "import json,sys; print(int(bool(json.load(open(sys.argv[1])).get('trained'))))" "$dir/manifest.json")
    say "$model: $dir (trained=$trained)"
    mkdir -p "$GUEST_WORK/$model/images"
    cp "$dir/${model}_int8.tflite" "$dir/manifest.json" "$GUEST_WORK/$model/"
    cp "$WORK/images"/*.png "$GUEST_WORK/$model/images/"
done

# XNNPACK must take each model on each board's core: delegated tensors have no TFLite buffer.
# Also checks the guest is the light install (aarch64, edgecnn from $LIGHT, no TensorFlow).
for board in $BOARDS; do
    # shellcheck disable=SC2086  # $MODELS: one argument per model
    delegated=$(guest "$board" -c '
import importlib.util, platform, sys
import edgecnn
from ai_edge_litert.interpreter import Interpreter
assert platform.machine() == "aarch64", platform.machine()
assert edgecnn.__file__.startswith(sys.argv[1]), edgecnn.__file__
assert importlib.util.find_spec("tensorflow") is None, "TensorFlow must not be in the light install"
counts = []
for model in sys.argv[3:]:
    it = Interpreter(model_path=f"{sys.argv[2]}/{model}/{model}_int8.tflite")
    it.allocate_tensors()
    it.invoke()
    n = 0
    for t in it.get_tensor_details():
        try:
            it.get_tensor(t["index"])
        except ValueError:
            n += 1
    counts.append(f"{model}={n}")
print(" ".join(counts))
' "$LIGHT" "$GUEST_WORK" $MODELS 2>"$WORK/$board-delegate.stderr") \
        || die "$board: the light install does not run in the guest: $(tail -n 1 "$WORK/$board-delegate.stderr")"
    say "$board: light install ok (aarch64, no TensorFlow); XNNPACK delegated tensors: $delegated"
    case " $delegated" in *"=0 "*|*"=0") die "$board: XNNPACK did not engage ($delegated)";; esac
done

# ---- 3. classify on both ISAs and compare
runs_arm=("pi4 builtin" "pi4 reference")
for board in $BOARDS; do runs_arm+=("$board xnnpack"); done
kflag() { case $1 in xnnpack) ;; builtin) echo "--no-xnnpack";; reference) echo "--reference-kernels";; esac; }
declare -A arm_s=()
fails=""
for model in $MODELS; do
    art="${model}_int8.tflite"
    for k in xnnpack builtin reference; do
        # shellcheck disable=SC2046  # kflag: zero or one flag
        (cd "$GUEST_WORK/$model" && "$HOST_PY" -m edgecnn.cli classify . --artifact "$art" --runtime litert \
            $(kflag $k) --json -k 10 "${images[@]/#/images/}") > "$WORK/$model.x86-$k.jsonl" 2> "$WORK/$model.x86-$k.stderr" \
            || die "$model: classify on x86-64 ($k) failed: $(tail -n 1 "$WORK/$model.x86-$k.stderr")"
    done
    for run in "${runs_arm[@]}"; do
        read -r board k <<<"$run"
        t0=$(date +%s)
        # shellcheck disable=SC2046  # kflag: zero or one flag
        guest "$board" -m edgecnn.cli classify "$GUEST_WORK/$model" --artifact "$art" --runtime litert $(kflag "$k") \
            --json -k 10 "${images[@]/#/$GUEST_WORK/$model/images/}" \
            > "$WORK/$model.$board-$k.jsonl" 2> "$WORK/$model.$board-$k.stderr" \
            || die "$model: classify on $board ($k) failed: $(tail -n 1 "$WORK/$model.$board-$k.stderr")"
        arm_s[$board $k]=$(( ${arm_s[$board $k]:-0} + $(date +%s) - t0 ))
    done
    # One line per check: board kernels n decisive identical top1-equal decisive-top1-equal maxdiff
    # shellcheck disable=SC2086  # $BOARDS: one argument per board
    report=$("$HOST_PY" - "$WORK/$model" $BOARDS <<'EOF'
import json, os, sys
def rows(path):
    out = {}
    for line in open(path):
        r = json.loads(line) if line.strip() else {}
        if "image" in r:
            out[os.path.basename(r["image"])] = [t["score"] for t in sorted(r["top"], key=lambda t: t["index"])]
    return out
base, boards = sys.argv[1], sys.argv[2:]
x = {k: rows(f"{base}.x86-{k}.jsonl") for k in ("xnnpack", "builtin", "reference")}
arm = {(b, k): rows(f"{base}.{b}-{k}.jsonl") for b, k in
       [("pi4", "builtin"), ("pi4", "reference")] + [(b, "xnnpack") for b in boards]}
assert x["xnnpack"] and all(r.keys() == x["xnnpack"].keys() for r in [*x.values(), *arm.values()]), "image sets differ"
top1 = lambda s: max(range(len(s)), key=lambda i: (s[i], -i))
diff = lambda u, v: max(abs(p - q) for k in u for p, q in zip(u[k], v[k]))
# A decisive image: its x86 top-1 leads the runner-up by more than twice the largest score difference
# between x86's own two kernel sets (builtin vs XNNPACK), so kernel rounding alone cannot flip it.
tol = diff(x["builtin"], x["xnnpack"])
margin = lambda s: sorted(s)[-1] - sorted(s)[-2]
decisive = [k for k in x["builtin"] if margin(x["builtin"][k]) > 2 * tol]
n = len(x["xnnpack"])
def line(tag, u, v):
    print(tag, n, len(decisive), sum(u[k] == v[k] for k in u), sum(top1(u[k]) == top1(v[k]) for k in u),
          sum(top1(u[k]) == top1(v[k]) for k in decisive), f"{diff(u, v):.5f}")
line("x86 builtin-vs-xnnpack", x["builtin"], x["xnnpack"])
for (b, k), r in arm.items():
    line(f"{b} {k}", r, x[k])
EOF
) || die "$model: could not compare the runs (see above)"
    while read -r board k n n_dec ident same dec_same d; do
        case $board in
            x86) say "$model: x86-64 builtin vs XNNPACK (the rounding bar): scores identical on $ident of $n images," \
                     "top-1 equal on $same, max score difference $d; decisive images (margin > 2 x $d): $n_dec of $n"
                 [ "$n_dec" -gt 0 ] || fails="$fails $model(0 decisive images: every top-1 within rounding of a tie)"
                 continue;;
        esac
        say "$model: $board $k arm64 vs x86-64: scores bit-identical on $ident of $n images," \
            "top-1 equal on $same of $n, on $dec_same of $n_dec decisive, max score difference $d"
        case $k in
            xnnpack|reference) [ "$ident" = "$n" ] || fails="$fails $model($board $k: scores differ)";;
            builtin) [ "$dec_same" = "$n_dec" ] || fails="$fails $model($board builtin: a decisive top-1 differs)"
                     if [ "${ARM_STRICT:-0}" = 1 ] && [ "$same" != "$n" ]; then fails="$fails $model(ARM_STRICT: $board builtin top-1)"; fi;;
        esac
    done <<<"$report"
done
times=""
for run in "${runs_arm[@]}"; do times="$times $run ${arm_s[$run]} s,"; done
say "RESULT: $([ -z "$fails" ] && echo passed || echo FAILED); wall time $(( $(date +%s) - START )) s" \
    "(emulated classify runs:${times%,}; emulated timings are not device figures)"
[ -z "$fails" ] || die "arm64 results outside the bar for:$fails"
