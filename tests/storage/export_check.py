"""Checks files of `dptrain export` against `dptrain predict` (tests/storage/export_test.cpp).

  export_check.py PYTHON_DIR DATA.h5 PRED.h5 [--safetensors F] [--onnx F] [--cv2] [--tol 1e-4]

safetensors: the layout (header length, 8-byte alignment, contiguous offsets), then
python/dptrain_torch.load() (a strict load_state_dict) run on every row of DATA's /x.
onnx: onnx.checker.check_model, the graph run op by op by run_reference() (numpy, after the
operator specs), and with --cv2 OpenCV's cv2.dnn.readNetFromONNX run on the rows.
Each is compared with PRED's /outputs: max absolute difference within --tol and, for classifiers,
the same predicted class. Prints one line per check, "<what> max_abs=<d> argmax=<agree>/<rows>"
(no argmax for regression and reconstruction); exits 1 on any mismatch.
"""

import argparse
import json
import struct
import sys

import h5py
import numpy as np


def check_layout(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0, f"header of {n} bytes leaves the data unaligned"
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    assert all(isinstance(v, str) for v in meta.values()), "metadata values must be strings"
    spans = sorted(tuple(t["data_offsets"]) for t in header.values())
    end = 0
    for begin, stop in spans:
        assert begin == end, f"tensor data not contiguous at byte {begin}"
        end = stop
    assert 8 + n + end == len(raw), f"data is {len(raw) - 8 - n} bytes, the header covers {end}"
    for name, t in header.items():
        width = {"F32": 4, "I64": 8}[t["dtype"]]
        assert t["data_offsets"][1] - t["data_offsets"][0] == width * int(np.prod(t["shape"])), name
    return header, meta


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _recurrent(op, a, x, w, r, b):
    """ONNX RNN, LSTM and GRU by the operator spec (gates i o f c, z r h), zero initial state,
    forward direction, default activations; x [T, n, F]. Returns (Y [T, 1, n, H], Y_h [1, n, H])."""
    h = a["hidden_size"]
    w, r, b = w[0], r[0], b[0]
    g = w.shape[0]
    wb, rb = b[:g], b[g:]
    ht = np.zeros((x.shape[1], h), np.float32)
    ct = np.zeros_like(ht)
    ys = []
    for xt in x:
        if op == "RNN":
            ht = np.tanh(xt @ w.T + ht @ r.T + wb + rb)
        elif op == "LSTM":
            z = xt @ w.T + ht @ r.T + wb + rb
            i, o, f, c = (z[:, k * h:(k + 1) * h] for k in range(4))
            ct = _sigmoid(f) * ct + _sigmoid(i) * np.tanh(c)
            ht = _sigmoid(o) * np.tanh(ct)
        else:
            gx = xt @ w.T + wb
            gh = ht @ r.T + rb
            zt = _sigmoid(gx[:, :h] + gh[:, :h])
            rt = _sigmoid(gx[:, h:2 * h] + gh[:, h:2 * h])
            assert a.get("linear_before_reset", 0) == 1
            nt = np.tanh(gx[:, 2 * h:] + rt * gh[:, 2 * h:])
            ht = (1 - zt) * nt + zt * ht
        ys.append(ht)
    return np.stack(ys)[:, None], ht[None]


def run_reference(model, x):
    """The ONNX graph evaluated op by op after the operator specs: numpy, with torch's functional
    convolution, pooling and erf. For graphs OpenCV's importer does not read (recurrent layers,
    attention)."""
    import torch
    import torch.nn.functional as F
    from onnx import numpy_helper
    v = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    v[model.graph.input[0].name] = x
    for node in model.graph.node:
        a = {at.name: (list(at.ints) if at.ints else at.i if at.type == at.INT else at.s if at.type == at.STRING
                       else at.f) for at in node.attribute}
        i = [v[name] if name else None for name in node.input]
        op = node.op_type
        t = lambda arr: torch.from_numpy(np.array(arr, dtype=np.float32))  # noqa: E731
        if op in ("Add", "Sub", "Mul", "Div", "MatMul"):
            out = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
                   "MatMul": np.matmul}[op](i[0], i[1])
        elif op == "Gemm":
            b = i[1].T if a.get("transB", 0) else i[1]
            out = i[0] @ b + (i[2] if len(i) > 2 else 0)
        elif op in ("Relu", "Sigmoid", "Tanh", "Sqrt", "Identity"):
            out = {"Relu": lambda z: np.maximum(z, 0), "Sigmoid": _sigmoid, "Tanh": np.tanh, "Sqrt": np.sqrt,
                   "Identity": lambda z: z}[op](i[0])
        elif op == "LeakyRelu":
            out = np.where(i[0] >= 0, i[0], i[0] * a.get("alpha", 0.01))
        elif op == "Erf":
            out = torch.erf(t(i[0])).numpy()
        elif op == "Softmax":
            z = np.exp(i[0] - i[0].max(axis=a.get("axis", -1), keepdims=True))
            out = z / z.sum(axis=a.get("axis", -1), keepdims=True)
        elif op == "Flatten":
            out = i[0].reshape(i[0].shape[0], -1)
        elif op == "Reshape":
            shape = [d if d != 0 else i[0].shape[k] for k, d in enumerate(i[1])]
            out = i[0].reshape(shape)
        elif op == "Transpose":
            out = np.transpose(i[0], a["perm"])
        elif op == "Cast":
            out = i[0].astype({1: np.float32, 7: np.int64}[a["to"]])
        elif op == "Equal":
            out = i[0] == i[1]
        elif op == "Not":
            out = np.logical_not(i[0])
        elif op == "Max":
            out = np.maximum(i[0], i[1])
        elif op == "ReduceSum":
            out = np.sum(i[0], axis=tuple(i[1]), keepdims=bool(a.get("keepdims", 1)))
        elif op == "Gather":
            out = np.take(i[0], i[1], axis=a.get("axis", 0))
        elif op in ("ReduceMean", "ReduceMax"):
            fn = np.mean if op == "ReduceMean" else np.max
            out = fn(i[0], axis=tuple(a["axes"]), keepdims=bool(a.get("keepdims", 1)))
        elif op == "Pad":
            p = i[1]
            half = len(p) // 2
            out = np.pad(i[0], [(p[k], p[k + half]) for k in range(half)])
        elif op == "Conv":
            pads = a.get("pads", [0, 0, 0, 0])
            out = F.conv2d(t(i[0]), t(i[1]), t(i[2]) if len(i) > 2 else None, stride=a.get("strides", 1),
                           padding=(pads[0], pads[1]), dilation=a.get("dilations", 1), groups=a.get("group", 1)).numpy()
        elif op == "ConvTranspose":
            pads = a.get("pads", [0, 0, 0, 0])
            out = F.conv_transpose2d(t(i[0]), t(i[1]), t(i[2]) if len(i) > 2 else None, stride=a.get("strides", 1),
                                     padding=(pads[0], pads[1]), output_padding=a.get("output_padding", 0),
                                     dilation=a.get("dilations", 1)).numpy()
        elif op == "Resize":
            assert node.attribute and a["mode"] == b"nearest" and a["coordinate_transformation_mode"] == b"asymmetric"
            sh, sw = int(i[2][2]), int(i[2][3])
            out = np.repeat(np.repeat(i[0], sh, axis=2), sw, axis=3)
        elif op == "Slice":
            index = [slice(None)] * i[0].ndim
            for begin, end, axis in zip(i[1], i[2], i[3]):
                index[axis] = slice(begin, end)
            out = i[0][tuple(index)]
        elif op == "Concat":
            out = np.concatenate(i, axis=a["axis"])
        elif op in ("MaxPool", "AveragePool"):
            pads = a.get("pads", [0, 0, 0, 0])
            fn = F.max_pool2d if op == "MaxPool" else F.avg_pool2d
            out = fn(t(i[0]), a["kernel_shape"], a["strides"], (pads[0], pads[1])).numpy()
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            fn = np.mean if op == "GlobalAveragePool" else np.max
            out = fn(i[0], axis=(2, 3), keepdims=True)
        elif op == "BatchNormalization":
            shape = (1, -1) + (1,) * (i[0].ndim - 2)
            out = (i[0] - i[3].reshape(shape)) / np.sqrt(i[4].reshape(shape) + a.get("epsilon", 1e-5)) \
                * i[1].reshape(shape) + i[2].reshape(shape)
        elif op in ("RNN", "LSTM", "GRU"):
            out = _recurrent(op, a, *i)
        else:
            raise NotImplementedError(f"reference evaluator: no {op}")
        outs = out if isinstance(out, tuple) else (out,)
        for name, value in zip(node.output, outs):
            value = np.asarray(value)
            v[name] = value if value.dtype in (np.int64, np.bool_) else value.astype(np.float32)
    return v[model.graph.output[0].name]


def compare(what, got, want, tol, classify):
    got = np.asarray(got, dtype=np.float64).reshape(want.shape)
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    if not classify:  # regression or reconstruction: values only
        print(f"{what} max_abs={diff:.3g}")
        return diff <= tol
    if want.shape[-1] > 1:
        agree = int(np.sum(np.argmax(got, -1) == np.argmax(want, -1)))
        rows = int(np.prod(want.shape[:-1]))
    else:
        agree = int(np.sum((got > 0.5) == (want > 0.5)))
        rows = int(want.size)
    print(f"{what} max_abs={diff:.3g} argmax={agree}/{rows}")
    return diff <= tol and agree == rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("python_dir")
    ap.add_argument("data")
    ap.add_argument("pred")
    ap.add_argument("--safetensors")
    ap.add_argument("--onnx")
    ap.add_argument("--cv2", action="store_true")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    sys.path.insert(0, a.python_dir)
    with h5py.File(a.data, "r") as f:
        x = f["x"][:].astype(np.float32)
    with h5py.File(a.pred, "r") as f:
        want = f["outputs"][:].astype(np.float64)
    ok = True
    if a.safetensors:
        import torch
        import dptrain_torch
        header, meta = check_layout(a.safetensors)
        arch = json.loads(meta["dptrain.architecture"])
        assert arch["head"] == meta["dptrain.head"]
        model = dptrain_torch.load(a.safetensors)
        assert set(model.state_dict().keys()) == set(header.keys()), "state_dict names differ from the file's"
        with torch.no_grad():
            got = model(torch.from_numpy(x)).numpy()
        ok = compare("safetensors", got, want, a.tol, meta["dptrain.head"] != "none") and ok
    if a.onnx:
        import onnx
        m = onnx.load(a.onnx)
        onnx.checker.check_model(m)
        print(f"onnx checker ok opset={m.opset_import[0].version} nodes={len(m.graph.node)}")
        classify = {p.key: p.value for p in m.metadata_props}["dptrain.head"] != "none"
        ok = compare("onnx-reference", run_reference(m, x), want, a.tol, classify) and ok
        if a.cv2:
            import cv2
            net = cv2.dnn.readNetFromONNX(a.onnx)
            net.setInput(x)
            ok = compare("onnx-cv2", net.forward(), want, a.tol, classify) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
