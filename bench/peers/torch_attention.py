"""Peer of dptrain_attention_bench (bench/06-transformer): forward + backward of one
nn.MultiheadAttention (batch_first, causal boolean attn_mask, need_weights=False, dropout on the
attention weights) on random sequences [n, T, width], input gradient included.

  python3 torch_attention.py [--seq 64,128,256,512] [--batch 8] [--width 128] [--heads 4]
                             [--dropout 0.1] [--threads 1] [--reps 10]

Per T, two warm-up steps, then `reps` steps timed one by one. Prints one line per T:
  seq=T ms=<median wall ms per step> cpu_ms=<median process CPU ms per step>
  saved_bytes=<bytes> saved_tensors=<k> rss_peak_growth_mib=<MiB>
saved_bytes: the tensors with T x T trailing dimensions that autograd keeps from forward for
backward (counted through torch.autograd.graph.saved_tensors_hooks, each storage once): in
PyTorch 1.13 the softmax output, and with dropout its mask (float on the CPU) and the dropped
weights.
rss_peak_growth_mib: the process's peak resident set (VmHWM, reset through /proc/self/clear_refs
once the inputs exist and malloc_trim returned free heap pages) over the resident set at that
point; meaningful with one T per process."""
import argparse
import ctypes
import statistics
import time

import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--seq", default="64,128,256,512")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--width", type=int, default=128)
p.add_argument("--heads", type=int, default=4)
p.add_argument("--dropout", type=float, default=0.1)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--reps", type=int, default=10)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


libc = ctypes.CDLL("libc.so.6")


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


for T in (int(s) for s in a.seq.split(",") if s):
    x = torch.randn(a.batch, T, a.width, requires_grad=True)
    dout = torch.randn(a.batch, T, a.width)
    libc.malloc_trim(0)  # as dptrain_attention_bench: free heap pages back before the baseline
    rss_before = status_kb("VmRSS")
    peak_reset = reset_peak_rss()
    mha = nn.MultiheadAttention(a.width, a.heads, dropout=a.dropout, batch_first=True)
    mha.train()
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)

    def step():
        mha.zero_grad()
        x.grad = None
        out, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
        out.backward(dout)

    for _ in range(2):
        step()
    wall, cpu = [], []
    for _ in range(a.reps):
        c0, w0 = time.process_time(), time.perf_counter()
        step()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    peak = status_kb("VmHWM")

    seen = {}

    def pack(t):
        if t.dim() >= 2 and tuple(t.shape[-2:]) == (T, T) and t.numel() > T * T:
            seen[(t.data_ptr(), t.dtype)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
    del out
    growth = f"{(peak - rss_before) / 1024:.3f}" if peak_reset and peak > 0 and rss_before > 0 else "nan"
    print(f"seq={T} ms={1e3 * statistics.median(wall):.3f} cpu_ms={1e3 * statistics.median(cpu):.3f} "
          f"saved_bytes={sum(seen.values())} saved_tensors={len(seen)} rss_peak_growth_mib={growth}", flush=True)
