"""Peer of bench/05-sweep: PyTorch trains one of the sweep's models on the same HDF5 file, with the
same loop as `dptrain train` (shuffled minibatches gathered from the in-memory rows, softmax
cross-entropy, SGD lr 0.01 momentum 0.9), and reports the throughput of its timed steps.

  python3 torch_sweep.py --spec SPEC --data FILE --batch B --warmup W --steps S --threads T

SPEC (the same strings bench/05-sweep/sweep.py turns into dptrain configs):
  mlp:IN:W:DEPTH      IN inputs, DEPTH ReLU layers of width W, 10 classes
  refcnn              1x28x28: conv5x5(32,pad 2) ReLU pool2, conv5x5(64,pad 2) ReLU pool2, fc1024 ReLU, fc10
  cifarcnn            3x32x32: conv3x3(32) ReLU, conv3x3(32) ReLU, pool2, conv3x3(64) ReLU, pool2, fc256 ReLU, fc10
  resnet:WIDTH        1x28x28: dptrain's kind = "resnet" (3x3 stem + BN, 3 stages of one basic block,
                      widths WIDTH, 2 WIDTH, 4 WIDTH, 1x1 projections, global average pool, fc10)
  lstm:T:F:H          T steps of F features, one LSTM layer of H units, its last output, fc10
Prints one line: samples_per_s=<float>."""
import argparse, time
import h5py, numpy as np, torch, torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--spec", required=True)
p.add_argument("--data", required=True)
p.add_argument("--batch", type=int, required=True)
p.add_argument("--warmup", type=int, default=5)
p.add_argument("--steps", type=int, required=True)
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)


def block(cin, cout, stride):
    body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
    short = None
    if stride != 1 or cin != cout:
        short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.short = body, short

        def forward(self, x):
            return torch.relu(self.body(x) + (self.short(x) if self.short is not None else x))

    return Residual()


class LastLstm(nn.Module):
    def __init__(self, f, h):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(f, h, batch_first=True), nn.Linear(h, 10)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


kind, *args = a.spec.split(":")
if kind == "mlp":
    n_in, width, depth = map(int, args)
    layers, prev = [], n_in
    for _ in range(depth):
        layers += [nn.Linear(prev, width), nn.ReLU()]
        prev = width
    model = nn.Sequential(*layers, nn.Linear(prev, 10))
elif kind == "refcnn":
    model = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64 * 7 * 7, 1024), nn.ReLU(), nn.Linear(1024, 10))
elif kind == "cifarcnn":
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Linear(256, 10))
elif kind == "resnet":
    w = int(args[0])
    model = nn.Sequential(nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                          block(w, w, 1), block(w, 2 * w, 2), block(2 * w, 4 * w, 2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, 10))
elif kind == "lstm":
    t, f, h = map(int, args)
    model = LastLstm(f, h)
else:
    raise SystemExit(f"unknown spec {a.spec}")

with h5py.File(a.data, "r") as f:
    x_all = torch.from_numpy(np.asarray(f["x"], dtype=np.float32))
    y_all = torch.from_numpy(np.asarray(f["y"], dtype=np.int64))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
lossf = nn.CrossEntropyLoss()
order = torch.randperm(len(x_all))
pos = 0


def step():
    global pos, order
    if pos + a.batch > len(order):
        order, pos = torch.randperm(len(x_all)), 0
    idx = order[pos:pos + a.batch]
    pos += a.batch
    x, y = x_all[idx], y_all[idx]
    opt.zero_grad()
    lossf(model(x), y).backward()
    opt.step()


for _ in range(a.warmup):
    step()
t0 = time.perf_counter()
for _ in range(a.steps):
    step()
print(f"samples_per_s={a.steps * a.batch / (time.perf_counter() - t0):.1f}")
