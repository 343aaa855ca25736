"""Hostile TFLite flatbuffers, built with the generated TFLite schema's own builder functions: small
files whose tables point at the same bytes again and again, or that claim more than they hold."""
from __future__ import annotations

import flatbuffers
from ai_edge_litert import schema_py_generated as fb


def _vector_of(b: flatbuffers.Builder, offsets) -> int:
    b.StartVector(4, len(offsets), 4)
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _int32s(b: flatbuffers.Builder, values) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependInt32(v)
    return b.EndVector()


def _tensor(b, *, shape_len: int = 4, name: bytes = b"t", buffer: int = 0) -> int:
    shape = _int32s(b, [1] * shape_len)
    nm = b.CreateString(name)
    fb.TensorStart(b)
    fb.TensorAddShape(b, shape)
    fb.TensorAddType(b, fb.TensorType.FLOAT32)
    fb.TensorAddBuffer(b, buffer)
    fb.TensorAddName(b, nm)
    return fb.TensorEnd(b)


def _model(b, subgraphs, *, opcodes=None, buffers=None) -> bytes:
    if buffers is None:
        fb.BufferStart(b)
        buffers = [fb.BufferEnd(b)]
    if opcodes is None:
        fb.OperatorCodeStart(b)
        fb.OperatorCodeAddBuiltinCode(b, fb.BuiltinOperator.ADD)
        opcodes = [fb.OperatorCodeEnd(b)]
    sg_vec, oc_vec, buf_vec = _vector_of(b, subgraphs), _vector_of(b, opcodes), _vector_of(b, buffers)
    fb.ModelStart(b)
    fb.ModelAddVersion(b, 3)
    fb.ModelAddSubgraphs(b, sg_vec)
    fb.ModelAddOperatorCodes(b, oc_vec)
    fb.ModelAddBuffers(b, buf_vec)
    b.Finish(fb.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _subgraph(b, tensors=(), operators=()) -> int:
    t_vec, o_vec = _vector_of(b, list(tensors)), _vector_of(b, list(operators))
    fb.SubGraphStart(b)
    fb.SubGraphAddTensors(b, t_vec)
    fb.SubGraphAddOperators(b, o_vec)
    return fb.SubGraphEnd(b)


def repeated_tensor(n: int = 20_000, shape_len: int = 20_000) -> bytes:
    """One tensor table with a ``shape_len``-long shape, listed ``n`` times (the audit's 160 KB file
    that took 7.2 GiB and 172 s): each listing costs 4 bytes, walking it once costs the shape."""
    b = flatbuffers.Builder(1 << 20)
    t = _tensor(b, shape_len=shape_len, name=b"x" * 4096)
    return _model(b, [_subgraph(b, [t] * n)])


def many_tensors(n: int = 20_000) -> bytes:
    """``n`` distinct small tensors (the audit's file that ran past 60 s)."""
    b = flatbuffers.Builder(1 << 20)
    return _model(b, [_subgraph(b, [_tensor(b, shape_len=1, name=b"t%d" % i, buffer=0) for i in range(n)])])


def many_operators(n: int = 20_000, subgraphs: int = 1) -> bytes:
    """``n`` operators, their subgraph listed ``subgraphs`` times (the audit's MemoryError)."""
    b = flatbuffers.Builder(1 << 20)
    fb.OperatorStart(b)
    fb.OperatorAddOpcodeIndex(b, 0)
    op = fb.OperatorEnd(b)
    sg = _subgraph(b, [], [op] * n)
    return _model(b, [sg] * subgraphs)


def huge_vector_claim() -> bytes:
    """A valid model whose subgraph vector claims 2^32 - 1 entries."""
    data = bytearray(many_operators(4))
    # the model table's subgraphs field -> the vector's length word
    root = int.from_bytes(data[0:4], "little")
    vt = root - int.from_bytes(data[root:root + 4], "little", signed=True)
    off = int.from_bytes(data[vt + 4 + 2 * 2:vt + 6 + 2 * 2], "little")
    at = root + off
    vec = at + int.from_bytes(data[at:at + 4], "little")
    data[vec:vec + 4] = (0xFFFFFFFF).to_bytes(4, "little")
    return bytes(data)


def control_names() -> bytes:
    """A small valid model whose tensor name, buffer and custom op name hold terminal escapes."""
    b = flatbuffers.Builder(1 << 12)
    data = b.CreateByteVector(b"\0" * 64)
    fb.BufferStart(b)
    empty = fb.BufferEnd(b)
    fb.BufferStart(b)
    fb.BufferAddData(b, data)
    full = fb.BufferEnd(b)
    t = _tensor(b, shape_len=2, name=b"\x1b]0;owned\x07weights\nFAKE LINE", buffer=1)
    custom = b.CreateString(b"\x1b[2Jevil")
    fb.OperatorCodeStart(b)
    fb.OperatorCodeAddBuiltinCode(b, fb.BuiltinOperator.CUSTOM)
    fb.OperatorCodeAddCustomCode(b, custom)
    oc = fb.OperatorCodeEnd(b)
    fb.OperatorStart(b)
    fb.OperatorAddOpcodeIndex(b, 0)
    op = fb.OperatorEnd(b)
    return _model(b, [_subgraph(b, [t], [op])], opcodes=[oc], buffers=[empty, full])


def huge_input_model(side: int = 40_000) -> bytes:
    """A 300-byte model whose input and output tensors are [1, side, side, 3] float32 (one ADD)."""
    b = flatbuffers.Builder(1024)
    shape = [1, side, side, 3]

    def tensor(name, buffer=0):
        sh = _int32s(b, shape)
        nm = b.CreateString(name)
        fb.TensorStart(b)
        fb.TensorAddShape(b, sh)
        fb.TensorAddType(b, fb.TensorType.FLOAT32)
        fb.TensorAddBuffer(b, buffer)
        fb.TensorAddName(b, nm)
        return fb.TensorEnd(b)

    t0, t1 = tensor(b"in"), tensor(b"out")
    ins, outs = _int32s(b, [0, 0]), _int32s(b, [1])
    fb.OperatorStart(b)
    fb.OperatorAddOpcodeIndex(b, 0)
    fb.OperatorAddInputs(b, ins)
    fb.OperatorAddOutputs(b, outs)
    op = fb.OperatorEnd(b)
    tv, ov, gi, go = _vector_of(b, [t0, t1]), _vector_of(b, [op]), _int32s(b, [0]), _int32s(b, [1])
    fb.SubGraphStart(b)
    fb.SubGraphAddTensors(b, tv)
    fb.SubGraphAddOperators(b, ov)
    fb.SubGraphAddInputs(b, gi)
    fb.SubGraphAddOutputs(b, go)
    return _model(b, [fb.SubGraphEnd(b)])


def quantized_model() -> bytes:
    """A small valid model with every table the inspect reader walks: a constant buffer, per-channel
    quantization whose zero-point vector two tensors share, a builtin and a custom op code, two
    operators and a named metadata buffer."""
    b = flatbuffers.Builder(1 << 12)
    weights = b.CreateByteVector(bytes(range(48)))
    meta = b.CreateByteVector(b"1.14.0\0")
    bufs = []
    for data in (None, weights, meta):
        fb.BufferStart(b)
        if data is not None:
            fb.BufferAddData(b, data)
        bufs.append(fb.BufferEnd(b))
    b.StartVector(4, 4, 4)
    for v in (0.5, 0.25, 0.125, 0.0625):
        b.PrependFloat32(v)
    scales = b.EndVector()
    b.StartVector(8, 4, 8)
    for _ in range(4):
        b.PrependInt64(0)
    zeros = b.EndVector()

    def quant():
        fb.QuantizationParametersStart(b)
        fb.QuantizationParametersAddScale(b, scales)
        fb.QuantizationParametersAddZeroPoint(b, zeros)
        return fb.QuantizationParametersEnd(b)

    def tensor(name, shape, buffer, q):
        sh, nm = _int32s(b, shape), b.CreateString(name)
        fb.TensorStart(b)
        fb.TensorAddShape(b, sh)
        fb.TensorAddType(b, fb.TensorType.INT8)
        fb.TensorAddBuffer(b, buffer)
        fb.TensorAddName(b, nm)
        if q is not None:
            fb.TensorAddQuantization(b, q)
        return fb.TensorEnd(b)

    tensors = [tensor(b"input", [1, 4], 0, None), tensor(b"weights", [4, 12], 1, quant()),
               tensor(b"output", [1, 4], 0, quant())]
    custom = b.CreateString("MyOp")
    codes = []
    for code, name in ((fb.BuiltinOperator.FULLY_CONNECTED, None), (fb.BuiltinOperator.CUSTOM, custom)):
        fb.OperatorCodeStart(b)
        fb.OperatorCodeAddBuiltinCode(b, code)
        if name is not None:
            fb.OperatorCodeAddCustomCode(b, name)
        codes.append(fb.OperatorCodeEnd(b))
    ops = []
    for index in (0, 1):
        fb.OperatorStart(b)
        fb.OperatorAddOpcodeIndex(b, index)
        ops.append(fb.OperatorEnd(b))
    sg = _subgraph(b, tensors, ops)
    mname = b.CreateString("min_runtime_version")
    fb.MetadataStart(b)
    fb.MetadataAddName(b, mname)
    fb.MetadataAddBuffer(b, 2)
    md = fb.MetadataEnd(b)
    sg_vec, oc_vec, buf_vec, md_vec = (_vector_of(b, [sg]), _vector_of(b, codes), _vector_of(b, bufs),
                                       _vector_of(b, [md]))
    fb.ModelStart(b)
    fb.ModelAddVersion(b, 3)
    fb.ModelAddSubgraphs(b, sg_vec)
    fb.ModelAddOperatorCodes(b, oc_vec)
    fb.ModelAddBuffers(b, buf_vec)
    fb.ModelAddMetadata(b, md_vec)
    b.Finish(fb.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
