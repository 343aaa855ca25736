"""Our measured numbers beside each paper's: the table behind ``edgecnn models --paper``."""
from __future__ import annotations

import functools
from typing import Dict, List

from edgecnn.registry import get_entry, list_models


@functools.lru_cache(maxsize=None)
def _measure(name: str, kwargs_items: tuple = ()) -> Dict[str, float]:
    from edgecnn.analysis import analyze  # imports nothing heavy itself; the model build does
    from edgecnn.registry import create_model
    import tf_keras

    model = create_model(name, **dict(kwargs_items))
    st = analyze(model)
    out = {"params": st.params, "macs": st.macs, "fp32_bytes": st.fp32_bytes,
           "peak_activation_bytes": st.peak_activation_bytes,
           "input_shape": list(model.input_shape[1:]), "output_shape": list(model.output_shape[1:])}
    del model
    tf_keras.backend.clear_session()
    return out


def measure(name: str, **kwargs) -> Dict[str, float]:
    return dict(_measure(name, tuple(sorted(kwargs.items()))))


def paper_rows(name: str) -> List[dict]:
    """One row per paper figure the builder claims: ours, the paper's, ratio, within tolerance."""
    rows = []
    for fig in get_entry(name).paper:
        kw = fig.build_kwargs or {}
        ours = measure(name, **kw)[fig.metric]
        if fig.relative_to:
            ours = ours / measure(fig.relative_to, **kw)[fig.metric]
        ratio = ours / fig.value if fig.value else float("nan")
        rows.append({"figure": fig.label, "ours": ours, "paper": fig.value, "ratio": ratio,
                     "rtol": fig.rtol, "ok": abs(ratio - 1.0) <= fig.rtol + 1e-12, "source": fig.source,
                     "build_kwargs": kw})
    return rows


def zoo_table(names=None, paper: bool = False) -> List[dict]:
    out = []
    for name in names or list_models():
        m = measure(name)
        row = {"name": name, "family": get_entry(name).family, "params": m["params"], "macs": m["macs"],
               "fp32_bytes": m["fp32_bytes"], "input_shape": m["input_shape"]}
        if paper:
            row["paper"] = {r["figure"]: r["paper"] for r in paper_rows(name)}
            row["paper_check"] = paper_rows(name)
        out.append(row)
    return out


def _fmt(v: float) -> str:
    if isinstance(v, float) and v < 10:
        return f"{v:.3f}"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.3f} {unit}"
    return f"{v:.0f}"


def format_table(rows: List[dict], paper: bool = False) -> str:
    lines = []
    if not paper:
        lines.append(f"{'model':<22} {'input':<12} {'params':>12} {'MACs':>12} {'fp32 size':>12}")
        for r in rows:
            inp = "x".join(str(d) for d in r["input_shape"])
            lines.append(f"{r['name']:<22} {inp:<12} {r['params']:>12,} {_fmt(r['macs']):>12} "
                         f"{r['fp32_bytes'] / 1e6:>9.2f} MB")
        return "\n".join(lines)
    lines.append(f"{'model':<22} {'figure':<20} {'ours':>14} {'paper':>14} {'ratio':>7} {'tol':>6}  ok")
    for r in rows:
        checks = r["paper_check"] or [None]
        for c in checks:
            if c is None:
                lines.append(f"{r['name']:<22} {'(no paper figure)':<20} {r['params']:>14,}")
                continue
            lines.append(f"{r['name']:<22} {c['figure']:<20} {_fmt(c['ours']):>14} {_fmt(c['paper']):>14} "
                         f"{c['ratio']:>7.3f} {'±' + format(c['rtol'] * 100, 'g') + '%':>6}  {'yes' if c['ok'] else 'NO'}")
    return "\n".join(lines)
