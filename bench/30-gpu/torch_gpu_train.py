"""Peer of bench/30-gpu: PyTorch training throughput of the reference models on the GPU.

  python3 torch_gpu_train.py --model mlp|cnn [--batch 128] [--steps 500] [--warmup 50] [--tf32]

The models, loss, optimizer and data are those of bench/peers/torch_train.py (MLP
784-1024-1024-10 ReLU; CNN conv5x5(32, pad 2) ReLU maxpool2 conv5x5(64, pad 2) ReLU maxpool2
fc1024 ReLU fc10; softmax cross-entropy; SGD lr 0.01 momentum 0.9; float32; one random batch),
moved to cuda. The timed loop is bracketed by torch.cuda.synchronize(), so it measures finished
work. TF32 is off unless --tf32: dptrain computes in full float32 and so does the peer by default
here (PyTorch's own default lets cuDNN convolutions use TF32). cudnn.benchmark picks the fastest
convolution algorithms, as tuned PyTorch code does.
Prints one line: samples_per_s=<float> step_ms=<float> device=<name>."""
import argparse
import time

import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
p.add_argument("--batch", type=int, default=128)
p.add_argument("--steps", type=int, default=500)
p.add_argument("--warmup", type=int, default=50)
p.add_argument("--tf32", action="store_true")
a = p.parse_args()
if not torch.cuda.is_available():
    raise SystemExit("torch_gpu_train.py: not measured: no GPU (torch.cuda.is_available() is False)")
torch.backends.cuda.matmul.allow_tf32 = a.tf32
torch.backends.cudnn.allow_tf32 = a.tf32
torch.backends.cudnn.benchmark = True
torch.manual_seed(0)
dev = torch.device("cuda")
if a.model == "mlp":
    model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    x = torch.randn(a.batch, 784)
else:
    model = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64 * 7 * 7, 1024), nn.ReLU(), nn.Linear(1024, 10))
    x = torch.randn(a.batch, 1, 28, 28)
y = torch.randint(0, 10, (a.batch,))
model = model.to(dev)
x, y = x.to(dev), y.to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
lossf = nn.CrossEntropyLoss()


def step():
    opt.zero_grad()
    lossf(model(x), y).backward()
    opt.step()


for _ in range(max(5, a.warmup)):
    step()
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(a.steps):
    step()
torch.cuda.synchronize()
secs = time.perf_counter() - t
name = torch.cuda.get_device_name(0).replace(" ", "_")
print(f"samples_per_s={a.steps * a.batch / secs:.1f} step_ms={1e3 * secs / a.steps:.4f} device={name}")
