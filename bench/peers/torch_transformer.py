"""Peer of bench/06-transformer: PyTorch trains dptrain's `transformer_lm` (models/zoo/Transformer.cpp)
on the same byte-level HDF5 files (`dptrain data import --text`) with the same recipe, then
evaluates the mean per-token cross-entropy over the whole validation file.

  python3 torch_transformer.py --train train.h5 --val val.h5 [--steps 300] [--batch 32] [--threads 1]
      [--layers 2] [--width 128] [--heads 4] [--mlp-ratio 4] [--dropout 0.1] [--attention-dropout D]
      [--lr 0.003] [--weight-decay 0.01] [--clip-norm 1.0] [--warmup-steps 50] [--epochs 10]
      [--log-every 25] [--seed 1]

The model, as dptrain builds it: token embedding [256, D] ~ N(0, 0.02^2), learned positions
[T, D] ~ N(0, 0.02^2), dropout; pre-norm blocks x + Dropout(MHA(LN(x))), x + Dropout(W2 GELU(W1 LN(x)))
(nn.MultiheadAttention, causal, dropout on the attention weights; exact GELU); final LayerNorm
(eps 1e-5 everywhere); logits h E^T with the embedding's table (tied, no bias). Every Linear and
MHA projection weight xavier_uniform (in_proj [3D, D]: fan_in D, fan_out 3D), biases 0, LayerNorm 1/0.

The recipe, as dptrain's trainer runs it (trainer/Trainer.cpp, trainer/optim): softmax
cross-entropy averaged over every token of the batch; the global gradient norm clipped to
clip_norm (torch.nn.utils.clip_grad_norm_; dptrain scales by clip/norm where torch uses
clip/(norm + 1e-6)); torch.optim.AdamW over all parameters in one group (betas 0.9/0.999, eps 1e-8,
decoupled decay w (1 - lr wd) on every parameter, biases, LayerNorm and the tied embedding
included, as dptrain's fused update does); learning rate LrSchedule "cosine": linear warmup
lr (s + 1) / W for s < W, then lr (1 + cos(pi (s - W) / (S - W))) / 2 down to 0 at S, where S =
min(epochs x steps per epoch, steps), where training stops, and s is the 0-based step; minibatches of a fresh
permutation of the training rows each epoch, the last one of an epoch partial (drop_last = false).

Timing, comparable with dptrain's metrics.jsonl: the training steps are cut into intervals the way
dptrain logs them (every --log-every steps of an epoch, at an epoch's last step and at the last step;
an interval's clock restarts at each epoch's start), samples_per_s is the median over the intervals
after the first (the first holds the warm-up steps). Nothing is evaluated between steps, so no
evaluation falls into an interval on either side. samples_per_s_all is every step after the first
interval over its total time (the same steps, their sum instead of the median).

Prints key=value lines: samples_per_s, samples_per_s_all, intervals, val_loss, val_bits_per_token,
train_loss (the mean over the last interval), steps, epochs, parameters, train_rows, val_rows,
train_s, eval_s."""
import argparse
import math
import statistics
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--train", required=True)
p.add_argument("--val", required=True)
p.add_argument("--steps", type=int, default=300)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--layers", type=int, default=2)
p.add_argument("--width", type=int, default=128)
p.add_argument("--heads", type=int, default=4)
p.add_argument("--mlp-ratio", type=int, default=4)
p.add_argument("--dropout", type=float, default=0.1)
p.add_argument("--attention-dropout", type=float, default=None)
p.add_argument("--vocab", type=int, default=256)
p.add_argument("--lr", type=float, default=0.003)
p.add_argument("--weight-decay", type=float, default=0.01)
p.add_argument("--clip-norm", type=float, default=1.0)
p.add_argument("--warmup-steps", type=int, default=50)
p.add_argument("--epochs", type=int, default=10, help="dptrain's train.epochs (default 10): bounds the schedule's length")
p.add_argument("--log-every", type=int, default=25)
p.add_argument("--seed", type=int, default=1)
a = p.parse_args()
if a.attention_dropout is None:
    a.attention_dropout = a.dropout
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)


def load(path):
    with h5py.File(path, "r") as f:
        x = torch.from_numpy(np.asarray(f["x"], dtype=np.float32)).long()
        y = torch.from_numpy(np.asarray(f["y"], dtype=np.int64))
    assert x.shape == y.shape and x.dim() == 2, f"{path}: expected x and y [N, T], got {tuple(x.shape)}, {tuple(y.shape)}"
    return x, y


x_train, y_train = load(a.train)
x_val, y_val = load(a.val)
T = x_train.shape[1]


class Block(nn.Module):
    def __init__(self, d, heads, ratio, p, pa):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = nn.MultiheadAttention(d, heads, dropout=pa, batch_first=True)
        self.drop1 = nn.Dropout(p)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.fc1 = nn.Linear(d, ratio * d)
        self.fc2 = nn.Linear(ratio * d, d)
        self.drop2 = nn.Dropout(p)

    def forward(self, x, mask):
        h = self.ln1(x)
        h, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
        x = x + self.drop1(h)
        return x + self.drop2(self.fc2(F.gelu(self.fc1(self.ln2(x)))))


class TransformerLM(nn.Module):
    def __init__(self):
        super().__init__()
        d = a.width
        self.embed = nn.Embedding(a.vocab, d)
        self.pos = nn.Parameter(torch.empty(T, d))
        self.drop = nn.Dropout(a.dropout)
        self.blocks = nn.ModuleList(Block(d, a.heads, a.mlp_ratio, a.dropout, a.attention_dropout) for _ in range(a.layers))
        self.ln = nn.LayerNorm(d, eps=1e-5)
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1), persistent=False)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)
        nn.init.normal_(self.pos, 0.0, 0.02)
        for b in self.blocks:
            for lin in (b.fc1, b.fc2, b.attn.out_proj):
                nn.init.xavier_uniform_(lin.weight)  # out_proj's default is kaiming_uniform: dptrain's is xavier
                nn.init.zeros_(lin.bias)
            nn.init.xavier_uniform_(b.attn.in_proj_weight)  # [3D, D]: fan_in D, fan_out 3D (MHA's own default)
            nn.init.zeros_(b.attn.in_proj_bias)

    def forward(self, ids):
        h = self.drop(self.embed(ids) + self.pos)
        for b in self.blocks:
            h = b(h, self.mask)
        return self.ln(h) @ self.embed.weight.t()  # tied output, no bias


model = TransformerLM()
params = list(model.parameters())  # the tied table once
opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=a.weight_decay)

n_train = x_train.shape[0]
steps_per_epoch = (n_train + a.batch - 1) // a.batch  # drop_last = false
total = max(1, min(a.epochs * steps_per_epoch, a.steps))


def lr_factor(step):  # trainer/optim/LrSchedule.cpp, kind "cosine", min_lr 0, warmup_start 0
    span = max(1, total - a.warmup_steps)
    t = min(max((step - a.warmup_steps) / span, 0.0), 1.0)
    f = 0.5 * (1.0 + math.cos(math.pi * t))
    if step < a.warmup_steps:
        f *= (step + 1) / a.warmup_steps
    return f


sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)


def loss_of(xb, yb):
    return F.cross_entropy(model(xb).reshape(-1, a.vocab), yb.reshape(-1))


model.train()
intervals, interval_rows, interval_loss, interval_tokens = [], 0, 0.0, 0
last_train_loss = float("nan")
step, epoch = 0, 0
train_start = time.perf_counter()
while step < total:  # dptrain stops at train.epochs epochs even if max_steps is larger
    perm = torch.randperm(n_train)
    t_interval = time.perf_counter()  # dptrain restarts the interval clock at each epoch's start
    for s in range(steps_per_epoch):
        if step >= total:
            break
        idx = perm[s * a.batch:(s + 1) * a.batch]
        xb, yb = x_train[idx], y_train[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_of(xb, yb)
        loss.backward()
        if a.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, a.clip_norm)
        opt.step()
        sched.step()
        step += 1
        interval_rows += idx.numel()
        interval_loss += loss.item() * yb.numel()
        interval_tokens += yb.numel()
        if (s + 1) % a.log_every == 0 or s + 1 == steps_per_epoch or step == total:
            now = time.perf_counter()
            intervals.append((interval_rows, now - t_interval))
            last_train_loss = interval_loss / interval_tokens
            t_interval, interval_rows, interval_loss, interval_tokens = now, 0, 0.0, 0
    epoch += 1
train_s = time.perf_counter() - train_start

model.eval()
eval_start = time.perf_counter()
total_loss, tokens = 0.0, 0
with torch.no_grad():
    for i in range(0, x_val.shape[0], a.batch):
        xb, yb = x_val[i:i + a.batch], y_val[i:i + a.batch]
        total_loss += F.cross_entropy(model(xb).reshape(-1, a.vocab), yb.reshape(-1), reduction="sum").item()
        tokens += yb.numel()
eval_s = time.perf_counter() - eval_start
val_loss = total_loss / tokens

timed = intervals[1:] if len(intervals) > 1 else intervals
rates = [r / dt for r, dt in timed if dt > 0]
print(f"samples_per_s={statistics.median(rates):.1f}")
print(f"samples_per_s_all={sum(r for r, _ in timed) / sum(dt for _, dt in timed):.1f}")
print(f"intervals={len(timed)}")
print(f"val_loss={val_loss:.5f}")
print(f"val_bits_per_token={val_loss / math.log(2):.4f}")
print(f"train_loss={last_train_loss:.5f}")
print(f"steps={step}")
print(f"epochs={epoch}")
print(f"parameters={sum(q.numel() for q in params)}")
print(f"train_rows={n_train}")
print(f"val_rows={x_val.shape[0]}")
print(f"train_s={train_s:.2f}")
print(f"eval_s={eval_s:.2f}")
