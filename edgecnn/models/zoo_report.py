"""Our measured numbers beside each paper's: the table behind ``edgecnn models --paper``."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Dict, List, Tuple

from edgecnn.models.registry import get_entry, list_models

# Building the whole zoo takes ~30 s and 1 GB (cmiv4/miv4 at 299x299 alone are 60 M parameters),
# so `edgecnn models` reads the figures of every model at its default arguments, and at the
# arguments its paper figures are measured with, from this table. tests/test_zoo.py rebuilds every
# model and fails when a row differs; `python -m edgecnn.models.zoo_report` rewrites it.
TABLE = Path(__file__).with_name("zoo_table.json")
FIGURES = ("params", "macs", "fp32_bytes", "peak_activation_bytes", "input_shape", "output_shape")


def stats_of(model) -> Dict[str, object]:
    """The table's figures of a built model."""
    from edgecnn.models.analysis import analyze  # imports nothing heavy itself; the model build does

    st = analyze(model)
    return {"params": st.params, "macs": st.macs, "fp32_bytes": st.fp32_bytes,
            "peak_activation_bytes": st.peak_activation_bytes,
            "input_shape": list(model.input_shape[1:]), "output_shape": list(model.output_shape[1:])}


def _key(name: str, kwargs: dict) -> Tuple[str, str]:
    return name, json.dumps(kwargs, sort_keys=True)


@functools.lru_cache(maxsize=None)
def _build(name: str, kwargs_json: str) -> Dict[str, object]:
    from edgecnn.models.registry import create_model
    import tf_keras

    model = create_model(name, **json.loads(kwargs_json))
    out = stats_of(model)
    del model
    tf_keras.backend.clear_session()
    return out


@functools.lru_cache(maxsize=1)
def _table() -> Dict[Tuple[str, str], dict]:
    try:
        rows = json.loads(TABLE.read_text())["rows"]
        return {_key(r["name"], r["kwargs"]): {k: r[k] for k in FIGURES} for r in rows}
    except (OSError, ValueError, KeyError, TypeError):  # no table (or a broken one): build what is asked
        return {}


def measure(name: str, *, exact: bool = False, **kwargs) -> Dict[str, object]:
    """params, MACs, fp32 bytes, peak activation bytes and shapes of ``name`` built with ``kwargs``.

    From the committed table where it has the row, unless ``exact``: then the model is built.
    """
    key = _key(name, kwargs)
    row = None if exact else _table().get(key)
    return dict(row if row is not None else _build(*key))


def table_keys() -> List[Tuple[str, dict]]:
    """Every (model, kwargs) the table holds: each model at its defaults, and the builds its paper
    figures are measured with."""
    keys = {_key(name, {}) for name in list_models()}
    for name in list_models():
        for fig in get_entry(name).paper:
            kw = fig.build_kwargs or {}
            keys.add(_key(name, kw))
            if fig.relative_to:
                keys.add(_key(fig.relative_to, kw))
    return [(n, json.loads(kw)) for n, kw in sorted(keys)]


def write_table(path=TABLE, say=print) -> Path:
    """Build every model of :func:`table_keys` and write the table (a minute, ~1 GB)."""
    from edgecnn.core.files import atomic_write_text

    rows = []
    for name, kw in table_keys():
        say(f"building {name} {kw or ''}".rstrip())
        rows.append(json.dumps({"name": name, "kwargs": kw, **_build(*_key(name, kw))}))
    atomic_write_text(path, '{"rows": [\n  ' + ",\n  ".join(rows) + "\n]}\n")  # a row per line: readable diffs
    return Path(path)


def paper_rows(name: str, *, exact: bool = False) -> List[dict]:
    """One row per paper figure the builder claims: ours, the paper's, ratio, within tolerance."""
    rows = []
    for fig in get_entry(name).paper:
        kw = fig.build_kwargs or {}
        ours = measure(name, exact=exact, **kw)[fig.metric]
        if fig.relative_to:
            ours = ours / measure(fig.relative_to, exact=exact, **kw)[fig.metric]
        ratio = ours / fig.value if fig.value else float("nan")
        rows.append({"figure": fig.label, "ours": ours, "paper": fig.value, "ratio": ratio,
                     "rtol": fig.rtol, "ok": abs(ratio - 1.0) <= fig.rtol + 1e-12, "source": fig.source,
                     "build_kwargs": kw})
    return rows


def zoo_table(names=None, paper: bool = False, *, exact: bool = False) -> List[dict]:
    """One row per model; ``exact`` builds the models instead of reading the committed table."""
    out = []
    for name in names or list_models():
        m = measure(name, exact=exact)
        row = {"name": name, "family": get_entry(name).family, "params": m["params"], "macs": m["macs"],
               "fp32_bytes": m["fp32_bytes"], "input_shape": m["input_shape"]}
        if paper:
            checks = paper_rows(name, exact=exact)
            row["paper"] = {r["figure"]: r["paper"] for r in checks}
            row["paper_check"] = checks
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


if __name__ == "__main__":
    print(f"wrote {write_table()}")
