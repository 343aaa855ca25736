"""Runs inside the emulated arm64 guest (python3.11 + numpy + LiteRT only; no edgecnn import).

argv: JOB.json. The job lists TFLite files (paths as the guest sees them) and how many invokes to
count. For each model, in order: load with one thread (XNNPACK engaged unless the job says
``"xnnpack": false``), set a fixed random input, invoke ``warmup`` times (XNNPACK packs weights on
the first invoke), then open region 2k+1 with a marker syscall, invoke ``invokes`` times, close it (region 2k, the same
loop with no invoke, measures the fixed cost of markers and loop, which the host subtracts).
The counting plugin sees only what happens between the markers.

Prints one line to stdout, ``EDGECNN-RESULT <json>``: per model whether XNNPACK took the graph (the
interpreter's execution plan holds XNNPACK's DELEGATE nodes; none when XNNPACK could not start,
e.g. without the board's cpuinfo, and LiteRT silently ran its builtin kernels instead), how many
tensors the delegate owns (no TFLite buffer), and a digest of
the output, so a wrong kernel choice (a core the emulator gets wrong) shows up as a changed answer.
"""
import hashlib
import json
import os
import sys

RESULT_PREFIX = "EDGECNN-RESULT "  # the host reads the one stdout line that starts so
MARK_BASE = 0x6564676563000000  # "edgec" << 24: the plugin's region markers (lseek offsets)


def mark(value):
    try:
        os.lseek(-1, value, 0)  # fd -1: EBADF, no effect; the plugin catches the syscall
    except OSError:
        pass


def main():
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with open(sys.argv[1], encoding="utf-8") as fh:
        job = json.load(fh)
    results = []
    for k, item in enumerate(job["models"]):
        resolver = OpResolverType.AUTO if item.get("xnnpack", True) else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        it = Interpreter(model_path=item["path"], num_threads=1, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        rng = np.random.default_rng(item.get("seed", 0))
        for d in it.get_input_details():
            if np.issubdtype(d["dtype"], np.integer):
                info = np.iinfo(d["dtype"])
                x = rng.integers(info.min, info.max, size=d["shape"], endpoint=True).astype(d["dtype"])
            else:
                x = rng.standard_normal(d["shape"]).astype(d["dtype"])
            it.set_tensor(d["index"], x)
        for _ in range(int(item.get("warmup", 1))):
            it.invoke()
        # Region 2k: the same loop with no invoke, the fixed cost of the markers and the loop (its
        # counts are subtracted from region 2k+1's, so short models count exactly per invoke).
        for region, n in ((2 * k, 0), (2 * k + 1, int(item["invokes"]))):
            mark(MARK_BASE + 2 * region)
            for _ in range(n):
                it.invoke()
            mark(MARK_BASE + 2 * region + 1)
        delegate_nodes = sum(1 for op in it._get_ops_details() if op.get("op_name") == "DELEGATE")
        delegated = 0
        for t in it.get_tensor_details():
            try:
                it.get_tensor(t["index"])
            except ValueError:  # "Tensor data is null": owned by the delegate
                delegated += 1
        out = [it.get_tensor(d["index"]) for d in it.get_output_details()]
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(o).tobytes() for o in out)).hexdigest()
        results.append({"region": k, "delegate_nodes": delegate_nodes, "delegated_tensors": delegated, "tensors": len(it.get_tensor_details()),
                        "output_sha256": digest, "output": [o.astype(float).ravel().tolist()[:16] for o in out]})
    print(RESULT_PREFIX + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
