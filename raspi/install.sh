#!/usr/bin/env bash
# Light edgecnn install for a Raspberry Pi (Raspberry Pi OS bookworm, 64-bit): a venv with
# numpy, pillow, click and ai-edge-litert (the LiteRT interpreter) — no TensorFlow.
# Works the same on x86-64 Linux. Safe to re-run: an existing venv is reused and upgraded.
#
#   raspi/install.sh                      # from this checkout if run inside one, else PyPI "edgecnn"
#   raspi/install.sh ~/edgecnn            # a checkout (folder with setup.py) or a .whl file
#   raspi/install.sh --camera             # venv sees apt's python3-picamera2 (system site packages)
#   raspi/install.sh --venv DIR           # default: $EDGECNN_VENV or ~/edgecnn-venv
#   raspi/install.sh --python python3.11  # which Python makes the venv (default python3)
set -euo pipefail

VENV=${EDGECNN_VENV:-$HOME/edgecnn-venv}
PY=python3
CAMERA=0
SOURCE=""
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: ERROR: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --venv) [ $# -ge 2 ] || die "--venv needs a directory"; VENV=$2; shift 2 ;;
        --venv=*) VENV=${1#*=}; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs an interpreter"; PY=$2; shift 2 ;;
        --python=*) PY=${1#*=}; shift ;;
        --camera) CAMERA=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$SOURCE" ] || die "give one source (checkout, wheel or PyPI name), got '$SOURCE' and '$1'"
           SOURCE=$1; shift ;;
    esac
done

# ---- the machine: LiteRT has wheels for aarch64 and x86-64 only
ARCH=$(uname -m)
case "$ARCH" in
    aarch64|arm64|x86_64|amd64) ;;
    armv7l|armv6l|armhf|arm)
        die "this is a 32-bit OS ($ARCH): ai-edge-litert publishes no wheels for it, so the light install cannot
       work here. Best: flash Raspberry Pi OS (64-bit) bookworm — every Pi from the 3 on runs it.
       Fallback (not set up by this script): the older tflite-runtime 2.14 wheels, which need Python <= 3.11
       and numpy < 2 (pip install 'numpy<2' tflite-runtime==2.14.0 pillow click, then pip install --no-deps
       this package); edgecnn uses them when ai-edge-litert is missing (--runtime tflite-runtime)." ;;
    *) die "unsupported machine '$ARCH': ai-edge-litert ships wheels for aarch64 and x86_64 Linux only" ;;
esac

command -v "$PY" >/dev/null || die "$PY not found (sudo apt install python3)"
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$PYVER" in
    3.10|3.11|3.12) ;;
    *) die "Python $PYVER: edgecnn supports 3.10 to 3.12 (Raspberry Pi OS bookworm ships 3.11)" ;;
esac

# ---- what to install: an explicit source, else the checkout this script is in, else PyPI
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "$SOURCE" ]; then
    if [ -f "$HERE/../setup.py" ] && grep -q 'name="edgecnn"' "$HERE/../setup.py"; then
        SOURCE=$(cd "$HERE/.." && pwd)
    else
        SOURCE=edgecnn
    fi
fi
if [ -d "$SOURCE" ]; then
    [ -f "$SOURCE/setup.py" ] || die "$SOURCE has no setup.py: not an edgecnn checkout"
    SOURCE=$(cd "$SOURCE" && pwd)
elif [ -e "$SOURCE" ] || [[ "$SOURCE" == */* ]] || [[ "$SOURCE" == *.whl ]]; then
    [ -f "$SOURCE" ] || die "$SOURCE does not exist"
fi

# ---- the venv (re-used when it is there)
if [ -x "$VENV/bin/python" ]; then
    say "re-using the venv $VENV"
    if [ "$CAMERA" = 1 ] && ! grep -qi 'include-system-site-packages *= *true' "$VENV/pyvenv.cfg"; then
        die "$VENV was made without --camera, so it cannot see apt's picamera2: remove it (rm -r $VENV) and re-run with --camera"
    fi
else
    opts=()
    [ "$CAMERA" = 1 ] && opts+=(--system-site-packages)
    say "creating the venv $VENV with $PY ($PYVER)${opts[*]:+ ${opts[*]}}"
    "$PY" -m venv "${opts[@]}" "$VENV" 2>/dev/null || {
        rm -rf "$VENV"
        die "'$PY -m venv' failed: sudo apt install python3-venv, then re-run"
    }
fi
if [ "$CAMERA" = 1 ] && ! "$VENV/bin/python" -c 'import picamera2' 2>/dev/null; then
    say "note: picamera2 is not importable; for the Pi camera: sudo apt install -y python3-picamera2 --no-install-recommends"
fi

say "installing edgecnn (light: numpy, pillow, click, ai-edge-litert) from $SOURCE"
# Not editable, no extras: this is the device install, never TensorFlow.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$SOURCE"

# ---- check what a device needs, and that TensorFlow is not part of it
"$VENV/bin/python" - <<'EOF' || die "the runtime check failed (see above)"
import importlib.metadata as md, importlib.util, platform, sys
import numpy, PIL, click
from ai_edge_litert import interpreter  # noqa: F401  (the interpreter the device runs)
import edgecnn
from edgecnn.measure import runtime
assert importlib.util.find_spec("tensorflow") is None, "TensorFlow is installed in this venv: not a light install"
v = lambda d: md.version(d)
print(f"install: OK  edgecnn {edgecnn.__version__} | Python {sys.version.split()[0]} on {platform.machine()} | "
      f"numpy {numpy.__version__} | pillow {PIL.__version__} | click {v('click')} | ai-edge-litert {v('ai-edge-litert')}")
print(f"install: runtimes available: {', '.join(runtime.available_backends())}; TensorFlow: not installed")
from edgecnn.measure.machine import this_board
b = this_board()
print(f"install: board {b or 'not one of the board table (edgecnn/measure/boards.py)'}: 'edgecnn classify' uses the "
      f"artifact an export recommends for {b or 'host'} (its manifest's 'recommended'), else its int8 TFLite")
EOF

say "done. Next:"
cat <<EOF
  source $VENV/bin/activate
  edgecnn benchmark EXPORT_DIR --device pi4          # FPS, latency, peak RSS -> EXPORT_DIR/../bench/
  edgecnn classify EXPORT_DIR photo.jpg              # top-3 labels and FPS
  edgecnn classify EXPORT_DIR --camera               # live (picamera2 or a USB camera with OpenCV)
EOF
