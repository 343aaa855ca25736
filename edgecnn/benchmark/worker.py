"""``python -m edgecnn.benchmark.worker``: one measurement in a fresh process.

Reads one job (JSON, see ``harness.measure``) on stdin; prints one line
``EDGECNN_BENCH_RESULT {"ok": true, "result": {...}}`` or
``EDGECNN_BENCH_RESULT {"ok": false, "error": "<EdgecnnError subclass>", "message": "..."}``
on stdout, which the parent turns back into the same exception. Anything else a runtime prints
is ignored.
"""
from __future__ import annotations

import json
import sys


def main() -> int:
    from edgecnn.benchmark.harness import WORKER_MARK, measure
    from edgecnn.errors import EdgecnnError

    job = json.loads(sys.stdin.read())
    try:
        msg = {"ok": True, "result": measure(job)}
    except EdgecnnError as e:
        msg = {"ok": False, "error": type(e).__name__, "message": e.message}
    except Exception as e:  # a runtime's own exception type: report it in one line
        first = (str(e).splitlines() or [""])[0][:300]
        msg = {"ok": False, "error": "BenchmarkError",
               "message": f"{job.get('path')} on {job.get('runtime')}: {type(e).__name__}: {first}"}
    sys.stdout.write("\n" + WORKER_MARK + json.dumps(msg) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
