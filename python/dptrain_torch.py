"""PyTorch modules for models exported by `dptrain export --format safetensors`.

The safetensors file holds the model's tensors under the state_dict names of the module
`build()` makes from the architecture stored in its metadata, so

    import dptrain_torch
    model = dptrain_torch.load("model.safetensors")      # nn.Sequential, eval mode, strict load
    probs = model(torch.from_numpy(x))                    # what `dptrain predict` writes to /outputs

Layer i of dptrain's model ("03_dense") is module "3" of the nn.Sequential; a residual block's
body and shortcut are "body" and "shortcut"; input scaling, when the model was trained with
data.normalize, is the module "normalize" ahead of them, and the softmax or sigmoid that predict
applies is the module "head" after them (head=False leaves it out). docs/export.md lists every
layer's module. Needs torch and numpy only (the file is read here; the `safetensors` package
is not needed).
"""

import json
import math
import struct
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["read_safetensors", "build", "load", "Normalize"]

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    """(tensors, metadata): a dict of torch tensors by name and the file's __metadata__ strings."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        values = np.frombuffer(data[begin:end], dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name] = torch.from_numpy(values.copy())
    return tensors, metadata


def _activation(name, slope=0.01):
    if name == "identity":
        return nn.Identity()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(slope)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    raise NotImplementedError(f"activation {name!r}")


class Normalize(nn.Module):
    """dptrain's input scaling (data.normalize = "zscore"): (x - mean) * (1 / std) per value."""

    def __init__(self, shape):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    def forward(self, x):
        return (x - self.mean) * torch.reciprocal(self.std)


class Linear(nn.Linear):
    """dptrain's dense layer: each sample taken flat, act(x W^T + b)."""

    def __init__(self, in_features, out_features, bias, act, flatten):
        super().__init__(in_features, out_features, bias)
        self.act = act
        self.flatten = flatten

    def forward(self, x):
        if self.flatten:
            x = x.flatten(1)
        return self.act(super().forward(x))


class Conv2d(nn.Conv2d):
    """dptrain's conv2d with its fused activation."""

    def __init__(self, spec, act):
        super().__init__(spec["in_channels"], spec["out_channels"], tuple(spec["kernel"]), stride=spec["stride"],
                         padding=spec["padding"], dilation=spec["dilation"], groups=spec["groups"],
                         bias=spec["bias"])
        self.act = act

    def forward(self, x):
        return self.act(super().forward(x))


class ConvTranspose2d(nn.ConvTranspose2d):
    """dptrain's conv_transpose2d (weight [in, out, kh, kw]) with its fused activation."""

    def __init__(self, spec, act):
        super().__init__(spec["in_channels"], spec["out_channels"], tuple(spec["kernel"]), stride=spec["stride"],
                         padding=spec["padding"], output_padding=spec["output_padding"],
                         dilation=spec["dilation"], bias=spec["bias"])
        self.act = act

    def forward(self, x):
        return self.act(super().forward(x))


class Highway(nn.Module):
    """y = t (h - x) + x, h = act(x W_h^T + b_h), t = sigmoid(x W_t^T + b_t), over flat features."""

    def __init__(self, features, act):
        super().__init__()
        self.weight_h = nn.Parameter(torch.zeros(features, features))
        self.bias_h = nn.Parameter(torch.zeros(features))
        self.weight_t = nn.Parameter(torch.zeros(features, features))
        self.bias_t = nn.Parameter(torch.zeros(features))
        self.act = act

    def forward(self, x):
        flat = x.flatten(1)
        h = self.act(F.linear(flat, self.weight_h, self.bias_h))
        t = torch.sigmoid(F.linear(flat, self.weight_t, self.bias_t))
        return (t * (h - flat) + flat).reshape(x.shape)


class GaussianSample(nn.Module):
    """A VAE's sample at inference: the mean, the first half of [mu, log variance]."""

    def __init__(self, latent):
        super().__init__()
        self.latent = latent

    def forward(self, x):
        return x[:, :self.latent]


class Concat(nn.Module):
    """Branches ("branch0", "branch1", ...) on the same input, joined along dimension 1."""

    def __init__(self, branches):
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(f"branch{i}", branch)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.children()], 1)


class Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class Maxout(nn.Module):
    """Groups of `pieces` consecutive features reduced by max."""

    def __init__(self, pieces):
        super().__init__()
        self.pieces = pieces

    def forward(self, x):
        x = x.flatten(1)
        return x.view(x.shape[0], -1, self.pieces).amax(-1)


class Residual(nn.Module):
    """act(body(x) + shortcut(x)), the shortcut the identity when absent."""

    def __init__(self, body, shortcut, act):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.act = act

    def forward(self, x):
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.act(self.body(x) + skip)


class Embedding(nn.Embedding):
    """Ids stored as floats, [n, T] or [n, T, 1], to vectors [n, T, dim]. With a padding id it
    records which steps hold real tokens (self.keep, [n, T]) for the masked layers after it."""

    def __init__(self, vocab, dim, pad_id=-1):
        super().__init__(vocab, dim)
        self.pad_id = pad_id
        self.keep = None

    def forward(self, x):
        ids = x.squeeze(-1) if x.dim() == 3 else x
        if self.pad_id >= 0:
            self.keep = ids != self.pad_id
        return super().forward(ids.long())


class PositionalEncoding(nn.Module):
    """Adds a learned table (parameter "weight") or the fixed sinusoids to [n, T, dim]."""

    def __init__(self, steps, dim, learned):
        super().__init__()
        if learned:
            self.weight = nn.Parameter(torch.zeros(steps, dim))
        else:
            table = np.zeros((steps, dim), dtype=np.float64)
            for t in range(steps):
                for i in range(dim):
                    angle = t / math.pow(10000.0, (i - i % 2) / dim)
                    table[t, i] = math.cos(angle) if i % 2 else math.sin(angle)
            self.register_buffer("weight", torch.from_numpy(table.astype(np.float32)), persistent=False)

    def forward(self, x):
        return x + self.weight


def _recurrent(base):
    class Recurrent(base):
        """batch_first; the last step's hidden state, or every step's with return_sequences."""

        def __init__(self, input_size, hidden, return_sequences):
            super().__init__(input_size, hidden, batch_first=True)
            self.return_sequences = return_sequences

        def forward(self, x):
            out, _ = super().forward(x)
            return out if self.return_sequences else out[:, -1]

    Recurrent.__name__ = base.__name__
    return Recurrent


RNN, LSTM, GRU = _recurrent(nn.RNN), _recurrent(nn.LSTM), _recurrent(nn.GRU)


class SelfAttention(nn.MultiheadAttention):
    """Self-attention over [n, T, dim] in nn.MultiheadAttention's layout (causal: a step sees only
    itself and earlier ones; masked: padding steps of `mask_from` are no keys). A query that may
    see no key gets no weight, as in dptrain (nn.MultiheadAttention would give NaN)."""

    def __init__(self, dim, heads, causal, mask_from=None):
        super().__init__(dim, heads, batch_first=True)
        self.causal = causal
        self._mask_from = [mask_from]  # a list: the embedding is not a second state_dict entry

    def forward(self, x):
        n, t, d = x.shape
        h = self.num_heads
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(n, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        scores = qkv[0] @ qkv[1].transpose(-1, -2) * (1.0 / math.sqrt(d // h))
        allowed = torch.ones(t, t, dtype=torch.bool, device=x.device)
        if self.causal:
            allowed = torch.tril(allowed)
        allowed = allowed.expand(n, 1, t, t)
        if self._mask_from[0] is not None:
            allowed = allowed & self._mask_from[0].keep[:, None, None, :]
        probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1).nan_to_num(0.0)
        return self.out_proj((probs @ qkv[2]).transpose(1, 2).reshape(n, t, d))


class MeanPool(nn.Module):
    """The mean over steps; masked: over the real steps of `mask_from` (0 when there is none)."""

    def __init__(self, mask_from=None):
        super().__init__()
        self._mask_from = [mask_from]

    def forward(self, x):
        if self._mask_from[0] is None:
            return x.mean(1)
        keep = self._mask_from[0].keep.to(x.dtype)
        return (x * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1.0)


class TiedOutput(nn.Module):
    """A language model's head sharing the embedding's table: h E^T (+ its own bias)."""

    def __init__(self, vocab, bias):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab)) if bias else None
        self._embedding = [None]  # a list, so the shared table is not a second state_dict entry

    def forward(self, x):
        y = x @ self._embedding[0].weight.t()
        return y if self.bias is None else y + self.bias


def _unsupported(spec, why):
    return NotImplementedError(f"layer {spec['path']} ({spec['type']}) {why}")


def _act(spec):
    return _activation(spec["activation"], spec["slope"])


def _time_distributed(spec, ctx):
    inner = spec["inner"]
    if inner["type"] != "dense":
        raise _unsupported(spec, "wraps a layer other than dense")
    return _module(inner, ctx)  # nn.Linear applies to the last dimension of [n, T, features]


def _embedding(spec, ctx):
    module = Embedding(spec["vocab"], spec["dim"], spec["pad_id"])
    if spec["pad_id"] >= 0:
        ctx["mask_from"] = module  # the padding mask the masked layers after it read
    return module


def _masked(cls, *args):
    def make(spec, ctx):
        mask_from = ctx.get("mask_from") if spec["masked"] else None
        if spec["masked"] and mask_from is None:
            raise _unsupported(spec, "is masked but no embedding before it has a pad_id")
        return cls(*[spec[a] for a in args], mask_from)
    return make


def _pool(spec, ctx):
    k, s, p = tuple(spec["kernel"]), tuple(spec["stride"]), spec["padding"]
    if spec["type"] == "maxpool2d":
        return nn.MaxPool2d(k, s, p)
    return nn.AvgPool2d(k, s, p, count_include_pad=True)  # dptrain divides by the whole window


# One row per dptrain layer type: its module, built from the layer's architecture entry and the
# build context (what later layers take from earlier ones). docs/export.md has the same table.
_MODULES = {
    "sequential": lambda spec, ctx: nn.Sequential(*[_module(s, ctx) for s in spec["layers"]]),
    "dense": lambda spec, ctx: Linear(spec["in_features"], spec["out_features"], spec["bias"], _act(spec),
                                      flatten=len(spec["in"]) > 1),
    "conv2d": lambda spec, ctx: Conv2d(spec, _act(spec)),
    "conv_transpose2d": lambda spec, ctx: ConvTranspose2d(spec, _act(spec)),
    "maxpool2d": _pool,
    "avgpool2d": _pool,
    "upsample2d": lambda spec, ctx: nn.Upsample(scale_factor=tuple(float(v) for v in spec["scale"]),
                                                mode="nearest"),
    "batchnorm": lambda spec, ctx: (nn.BatchNorm2d if len(spec["in"]) == 3 else nn.BatchNorm1d)(
        spec["features"], eps=spec["eps"], momentum=spec["momentum"]),
    "layernorm": lambda spec, ctx: nn.LayerNorm(spec["features"], eps=spec["eps"]),
    "relu": lambda spec, ctx: nn.ReLU(),
    "leaky_relu": lambda spec, ctx: nn.LeakyReLU(spec["slope"]),
    "sigmoid": lambda spec, ctx: nn.Sigmoid(),
    "tanh": lambda spec, ctx: nn.Tanh(),
    "identity": lambda spec, ctx: nn.Identity(),
    "gelu": lambda spec, ctx: nn.GELU(),
    "dropout": lambda spec, ctx: nn.Dropout(spec["p"]),
    "flatten": lambda spec, ctx: nn.Flatten(),
    "reshape": lambda spec, ctx: Reshape(spec["out"]),
    "maxout": lambda spec, ctx: Maxout(spec["pieces"]),
    "residual": lambda spec, ctx: Residual(
        _module(spec["body"], ctx), None if spec.get("shortcut") is None else _module(spec["shortcut"], ctx),
        _act(spec)),
    "concat": lambda spec, ctx: Concat([_module(b, ctx) for b in spec["branches"]]),
    "highway": lambda spec, ctx: Highway(int(np.prod(spec["in"])), _act(spec)),
    "gaussian_sample": lambda spec, ctx: GaussianSample(spec["latent"]),
    "embedding": _embedding,
    "positional": lambda spec, ctx: PositionalEncoding(spec["in"][0], spec["in"][1], spec["encoding"] == "learned"),
    "rnn": lambda spec, ctx: RNN(spec["input_size"], spec["hidden"], spec["return_sequences"]),
    "lstm": lambda spec, ctx: LSTM(spec["input_size"], spec["hidden"], spec["return_sequences"]),
    "gru": lambda spec, ctx: GRU(spec["input_size"], spec["hidden"], spec["return_sequences"]),
    "attention": _masked(SelfAttention, "dim", "heads", "causal"),
    "mean_pool": _masked(MeanPool),
    "transformer_block": lambda spec, ctx: _module(spec["body"], ctx),
    "time_distributed": _time_distributed,
    "tied_output": lambda spec, ctx: TiedOutput(spec["out"][-1], spec["bias"]),
}


def _module(spec, ctx):
    make = _MODULES.get(spec["type"])
    if make is None:
        raise _unsupported(spec, "has no PyTorch module in dptrain_torch")
    return make(spec, ctx)


def build(architecture, head=True):
    """The nn.Sequential of an architecture (the "dptrain.architecture" metadata, as text or dict)."""
    arch = json.loads(architecture) if isinstance(architecture, (str, bytes)) else architecture
    if arch.get("format") != "dptrain-architecture/1":
        raise ValueError(f"not a dptrain architecture: format {arch.get('format')!r}")
    modules = OrderedDict()
    ctx = {}  # what later layers take from earlier ones: the embedding that marks padding
    if arch["normalize"]:
        modules["normalize"] = Normalize(arch["input_shape"])
    for i, spec in enumerate(arch["model"]["layers"]):
        modules[str(i)] = _module(spec, ctx)
    if head and arch["head"] == "softmax":
        modules["head"] = nn.Softmax(dim=-1)
    elif head and arch["head"] == "sigmoid":
        modules["head"] = nn.Sigmoid()
    model = nn.Sequential(modules)
    _tie(model, arch["model"])
    return model


def _tie(model, spec):
    """Points each tied output at its embedding (by the embedding's module name)."""
    if spec["type"] == "tied_output":
        model.get_submodule(spec["name"])._embedding[0] = model.get_submodule(spec["embedding"])
    for child in spec.get("layers", []) + spec.get("branches", []):
        _tie(model, child)
    for key in ("body", "shortcut", "inner"):
        if spec.get(key):
            _tie(model, spec[key])


def load(path, head=True):
    """The model of a dptrain safetensors file: built, loaded with strict=True, in eval mode."""
    tensors, metadata = read_safetensors(path)
    if "dptrain.architecture" not in metadata:
        raise ValueError(f"{path}: no dptrain.architecture in its metadata (not written by dptrain export)")
    model = build(metadata["dptrain.architecture"], head=head)
    model.load_state_dict(tensors, strict=True)
    return model.eval()
