"""bench/05-sweep: a shape sweep through the real `dptrain train` path on HDF5 data, side by side
with PyTorch (peers/torch_sweep.py) in one run. For every row both sides train the same model on
the same file with the same loop; dptrain runs with its measured engine plan (cpu_engine = auto)
and, for the forced-engine table, with every engine forced. Prints bench/lib.sh's BENCH lines.

Environment: BENCH_BUILD, BENCH_SWEEP_REPS or BENCH_REPS (repetitions), DPTRAIN_PEERS, BENCH_SWEEP_ROWS
(a regular expression: only matching rows), BENCH_SWEEP_SECONDS (target timed seconds per run)."""
import atexit, json, os, re, shutil, statistics, subprocess, sys, tempfile
import h5py, numpy as np

build = os.environ.get("BENCH_BUILD", "build-bench")
dptrain = os.path.join(build, "launch", "dptrain")
peers = os.environ.get("DPTRAIN_PEERS", os.path.join(os.path.dirname(__file__), "..", "peers"))
# Repetitions, interleaved with the peer's: BENCH_SWEEP_REPS, else BENCH_REPS capped at 3 (16 rows).
reps = int(os.environ.get("BENCH_SWEEP_REPS", min(3, int(os.environ.get("BENCH_REPS", "5")))))
seconds = float(os.environ.get("BENCH_SWEEP_SECONDS", "3"))
only = re.compile(os.environ.get("BENCH_SWEEP_ROWS", ".*"))
threads = 1
work = tempfile.mkdtemp(prefix="dptrain-sweep-", dir=build)
atexit.register(shutil.rmtree, work, True)
table = "Shape sweep through dptrain train on HDF5 data (samples/s, 1 thread, SGD momentum)"
forced_table = "Shape sweep: the measured plan against each engine forced (dptrain samples/s)"
engines = ["openblas", "onednn", "unpacked"]


def emit(kind, **f):
    print(kind + "".join(f"\t{k}={v}" for k, v in f.items()), flush=True)


def result(tab, row, side, name, value, target=""):
    emit("BENCH", table=tab, row=row, side=side, name=name, metric="samples/s", better="higher", value=f"{value:.1f}",
         target=target)


def write_data(name, shape, n):
    path = os.path.join(work, name + ".h5")
    if not os.path.exists(path):
        rng = np.random.default_rng(1)
        with h5py.File(path, "w") as f:
            f["x"] = rng.standard_normal((n, *shape), dtype=np.float32)
            f["y"] = rng.integers(0, 10, n).astype(np.int32)
            f.attrs["num_classes"] = 10
    return path


# (row label, peer spec, dptrain [model] table, sample shape, batch, multiply-adds per sample)
rows = []
for width in (256, 1024, 2048, 4096):
    macs = 256 * width + 2 * width * width + width * 10
    model = f'kind = "mlp"\nhidden = [{width}, {width}, {width}]\nactivation = "relu"'
    for batch in (32, 128, 512):
        rows.append((f"MLP 256-{width}x3-10, batch {batch}", f"mlp:256:{width}:3", model, (256,), batch, macs))
rows.append(("reference CNN 1x28x28 (conv 32, conv 64, fc 1024), batch 128", "refcnn",
             'kind = "cnn"\nblocks = [\n'
             '  { type = "conv2d", filters = 32, kernel = 5, padding = 2, activation = "relu" },\n'
             '  { type = "maxpool2d", size = 2 },\n'
             '  { type = "conv2d", filters = 64, kernel = 5, padding = 2, activation = "relu" },\n'
             '  { type = "maxpool2d", size = 2 },\n'
             '  { type = "dense", units = 1024, activation = "relu" },\n]', (1, 28, 28), 128,
             28 * 28 * 32 * 25 + 14 * 14 * 64 * 32 * 25 + 3136 * 1024))
rows.append(("CIFAR-shaped CNN 3x32x32 (conv 32, conv 32, conv 64, fc 256), batch 64", "cifarcnn",
             'kind = "cnn"\nblocks = [\n'
             '  { type = "conv2d", filters = 32, kernel = 3, padding = 1, activation = "relu" },\n'
             '  { type = "conv2d", filters = 32, kernel = 3, padding = 1, activation = "relu" },\n'
             '  { type = "maxpool2d", size = 2 },\n'
             '  { type = "conv2d", filters = 64, kernel = 3, padding = 1, activation = "relu" },\n'
             '  { type = "maxpool2d", size = 2 },\n'
             '  { type = "dense", units = 256, activation = "relu" },\n]', (3, 32, 32), 64,
             1024 * 32 * 27 + 1024 * 32 * 288 + 256 * 64 * 288 + 4096 * 256))
rows.append(("residual stack 1x28x28 (resnet, widths 16-32-64, batch norm), batch 64", "resnet:16",
             'kind = "resnet"\nwidth = 16\ndepth = 1\nstages = 3', (1, 28, 28), 64,
             784 * 16 * 9 * 3 + 196 * 32 * (16 + 32) * 9 + 49 * 64 * (32 + 64) * 9))
rows.append(("LSTM classifier, 32 steps of 32 features, 256 units, batch 64", "lstm:32:32:256",
             'kind = "lstm_classifier"\nhidden = [256]', (32, 32), 64, 32 * 4 * 256 * (32 + 256)))


def steps_for(macs, batch):
    # About `seconds` of timed steps at 50 GFLOP/s, between 10 and 300 steps.
    per_step = 6.0 * macs * batch
    return max(10, min(300, int(seconds * 50e9 / per_step)))


def run_dptrain(label, model, data, batch, warmup, steps, engine=None):
    out = os.path.join(work, re.sub(r"[^A-Za-z0-9]+", "_", label) + (engine or "auto"))
    cfg = out + ".toml"
    with open(cfg, "w") as f:
        f.write(f'seed = 1\nthreads = {threads}\nout_dir = "{out}"\n[data]\ntrain = "{data}"\n'
                f'normalize = "none"\n[model]\n{model}\n[optim]\nkind = "momentum"\nlr = 0.01\nmomentum = 0.9\n'
                f'[train]\nbatch_size = {batch}\nepochs = 1000\nmax_steps = {warmup + steps}\nlog_every = 1\n'
                f'progress = false\n[checkpoint]\nevery_steps = 0\n')
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    env.pop("DPTRAIN_CPU_ENGINE", None)
    if engine:
        env["DPTRAIN_CPU_ENGINE"] = engine
    r = subprocess.run([dptrain, "train", cfg], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"dptrain train {cfg} failed ({r.returncode}): {r.stderr[-2000:]}")
    times = {}
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("event") == "step":
                times[rec["step"]] = rec["time_s"]
    plan = ""
    if os.path.exists(os.path.join(out, "cpu_products.tsv")):
        # Each product and the engine (and layout, -t: transposed) that won it.
        with open(os.path.join(out, "cpu_products.tsv")) as f:
            won = [line.split("\t")[:2] for line in f if not line.startswith("machine\t")]
        plan = "; ".join(f"{key.replace(' -- ', ' ')} {choice}" for key, choice in won)
    last = warmup + steps
    return steps * batch / (times[last] - times[warmup]), plan, cfg


def run_peer(spec, data, batch, warmup, steps):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    cmd = [sys.executable, os.path.join(peers, "torch_sweep.py"), "--spec", spec, "--data", data, "--batch",
           str(batch), "--warmup", str(warmup), "--steps", str(steps), "--threads", str(threads)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr[-2000:]}")
    return float(re.search(r"samples_per_s=([0-9.]+)", r.stdout).group(1)), " ".join(cmd)


ratios = {}
for label, spec, model, shape, batch, macs in rows:
    if not only.search(label):
        continue
    steps = steps_for(macs, batch)
    warmup = max(3, steps // 10) + 1  # the first step also times the plan's candidates
    data = write_data(f"{spec.replace(':', '_')}_{batch}", shape, max(4096, (warmup + steps + 1) * batch))
    ours_v, peer_v, plans = [], [], set()
    forced = {e: [] for e in engines}
    for rep in range(reps):
        v, plan, cfg = run_dptrain(label, model, data, batch, warmup, steps)
        ours_v.append(v)
        plans.add(plan)
        p, cmd = run_peer(spec, data, batch, warmup, steps)
        peer_v.append(p)
        result(table, label, "ours", "dptrain (auto)", v, ">= 1.0")
        result(table, label, "peer", "PyTorch", p, ">= 1.0")
        if rep == 0:  # forced engines: one repetition each
            for e in engines:
                try:
                    fv, _, _ = run_dptrain(label, model, data, batch, warmup, steps, engine=e)
                except SystemExit:
                    continue  # an engine this build lacks
                forced[e].append(fv)
                result(forced_table, f"{label}: auto vs {e}", "ours", "dptrain auto", v)
                result(forced_table, f"{label}: auto vs {e}", "peer", f"dptrain {e}", fv)
    emit("BENCHCMD", table=table, row=label, side="ours", cmd=f"{dptrain} train {cfg}  ({warmup} + {steps} steps)")
    emit("BENCHCMD", table=table, row=label, side="peer", cmd=cmd)
    emit("BENCHNOTE", table=forced_table, text=f"{label}, what the plan chose: {' / '.join(sorted(plans))}")
    ratios[label] = statistics.median(ours_v) / statistics.median(peer_v)

if ratios:
    med = statistics.median(ratios.values())
    # The median over rows of the per-row ratios, as a row of its own: ours = that median, peer = 1.
    emit("BENCH", table=table, row="median over the rows of the ratio ours/peer", side="ours", name="median ratio",
         metric="ratio", better="higher", value=f"{med:.3f}", target=">= 1.2")
    emit("BENCH", table=table, row="median over the rows of the ratio ours/peer", side="peer", name="1.0",
         metric="ratio", better="higher", value="1.0", target=">= 1.2")
    emit("BENCH", table=table, row="lowest row ratio ours/peer", side="ours", name="lowest ratio", metric="ratio",
         better="higher", value=f"{min(ratios.values()):.3f}", target=">= 1.0")
    emit("BENCH", table=table, row="lowest row ratio ours/peer", side="peer", name="1.0", metric="ratio",
         better="higher", value="1.0", target=">= 1.0")
