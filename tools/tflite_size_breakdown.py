"""Where the bytes of a .tflite file go: constant tensors by type, quantization parameters
(scales and zero points, per tensor or per channel; a vector shared by several tensors counted
once), and the rest (graph, metadata, padding).

    .venv/bin/python tools/tflite_size_breakdown.py a.tflite [b.tflite ...]

Reads the flatbuffer with TensorFlow's generated schema (tensorflow.lite.python.schema_py_generated).
"""
import sys
from collections import Counter
from pathlib import Path

import edgecnn  # noqa: F401

_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8", 7: "int16"}


def breakdown(path) -> dict:
    from tensorflow.lite.python import schema_py_generated as fb

    data = Path(path).read_bytes()
    model = fb.Model.GetRootAs(data, 0)
    const = Counter()
    q_scale = q_zero = q_channels = 0
    seen, seen_buffers = set(), set()
    for si in range(model.SubgraphsLength()):
        sg = model.Subgraphs(si)
        for ti in range(sg.TensorsLength()):
            t = sg.Tensors(ti)
            if t.Buffer() in seen_buffers:  # tensors may share a constant buffer: count it once
                n, buf = 0, None
            else:
                seen_buffers.add(t.Buffer())
                buf = model.Buffers(t.Buffer())
                n = buf.DataLength() if buf is not None else 0
            if n == 0 and buf is not None and buf.Size():  # buffers stored after the flatbuffer (>2 GB models)
                n = buf.Size()
            if n:
                const[_TYPES.get(t.Type(), str(t.Type()))] += n
            q = t.Quantization()
            if q is not None:
                # Count each stored vector once: edgecnn's compaction shares identical zero points.
                for slot, width, name in ((8, 4, "scale"), (10, 8, "zero")):
                    n = q.ScaleLength() if name == "scale" else q.ZeroPointLength()
                    if n and q._tab.Offset(slot):
                        pos = q._tab.Vector(q._tab.Offset(slot))
                        if pos not in seen:
                            seen.add(pos)
                            if name == "scale":
                                q_scale += width * n
                            else:
                                q_zero += width * n
                if q.ScaleLength() > 1:
                    q_channels += q.ScaleLength()
    total = len(data)
    out = {"file": Path(path).name, "bytes": total, "constants": dict(const), "quant_scales": q_scale,
           "quant_zero_points": q_zero, "per_channel_entries": q_channels}
    out["other"] = total - sum(const.values()) - q_scale - q_zero
    return out


def main():
    for p in sys.argv[1:]:
        b = breakdown(p)
        print(f"{b['file']}: {b['bytes']:,} bytes")
        for k, v in sorted(b["constants"].items(), key=lambda kv: -kv[1]):
            print(f"  constants {k:8s} {v:>10,}  {v / b['bytes']:6.1%}")
        print(f"  quant scales (float32)   {b['quant_scales']:>10,}  {b['quant_scales'] / b['bytes']:6.1%}")
        print(f"  quant zero points (int64){b['quant_zero_points']:>10,}  {b['quant_zero_points'] / b['bytes']:6.1%}"
              f"  ({b['per_channel_entries']:,} per-channel entries)")
        print(f"  graph, metadata, padding {b['other']:>10,}  {b['other'] / b['bytes']:6.1%}")


if __name__ == "__main__":
    main()
