#!/usr/bin/env bash
# The whole pre-emption cycle on a real (one-node, loopback) SLURM cluster: launch/slurm/train.sbatch
# runs 2 ranks under `dptrain launch --launcher srun`; SLURM's warning (USR1 to the batch shell, as
# `--signal=B:USR1@…` sends it) makes the job checkpoint, exit 75 and requeue itself; the requeued
# job resumes and finishes, and its model is bitwise the model of an uninterrupted 2-rank run.
# Then `srun --mpi=none -n 2` (ranks from SLURM's variables, over Gloo) trains to within 1e-5 of it.
# With NODES = 2 the cluster is 2 nodes in network namespaces (scripts/netns-cluster, prefix dpts;
# scripts/slurm-local --netns), one rank on each, the coordinator reached over their bridge.
#   tests/launch/slurm_e2e.sh DPTRAIN SOURCE_DIR [STATE_FILE [NODES]]   (CTest: label slurm; 77 = skipped)
# STATE_FILE receives the cluster's directory, so that CTest's cleanup fixture can stop the daemons
# even when this script is killed (a CTest timeout sends SIGKILL, which no trap sees).
set -euo pipefail
bin=$1
src=$2
state_file=${3:-}
nodes=${4:-1}
skip() { echo "SKIP: $*"; exit 77; }
for b in slurmctld slurmd munged; do
  command -v "$b" >/dev/null || [[ -x /usr/sbin/$b ]] || skip "$b is not installed (scripts/setup installs slurmctld slurmd slurm-client munge)"
done
for b in sbatch scontrol scancel mpirun; do command -v "$b" >/dev/null || skip "$b is not installed"; done
[[ $(id -u) -eq 0 ]] || skip "the local SLURM cluster runs its daemons as root"
export DPTRAIN_NETNS_PREFIX=dpts
if ((nodes > 1)); then
  command -v ip >/dev/null || skip "ip (iproute2) is not installed"
  ip netns add "$DPTRAIN_NETNS_PREFIX-probe" 2>/dev/null || skip "cannot make network namespaces here"
  ip netns del "$DPTRAIN_NETNS_PREFIX-probe"
fi

work=$(mktemp -d /tmp/dptrain-slurm-e2e.XXXXXX)
cluster=$work/cluster
[[ -z $state_file ]] || echo "$cluster" >"$state_file"
export SLURM_CONF=$cluster/slurm.conf
cleanup() {
  local rc=$?
  "$src/scripts/slurm-local" stop "$cluster" || true
  ((nodes == 1)) || "$src/scripts/netns-cluster" down || true
  if [[ $rc -ne 0 ]]; then
    echo "slurm_e2e: FAILED (exit code $rc); the job's files are kept under $work" >&2
  elif [[ -n ${SLURM_E2E_KEEP:-} ]]; then
    echo "slurm_e2e: the job's files are kept under $work (SLURM_E2E_KEEP)"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "slurm_e2e: $*" >&2
  for f in "$work"/job-*.out; do [[ -f $f ]] && { echo "--- $f" >&2; cat "$f" >&2; }; done
  [[ -n ${job:-} ]] && on_cluster scontrol show job "$job" >&2 || true
  exit 1
}
started=$SECONDS
say() { echo "slurm_e2e [$((SECONDS - started)) s]: $*"; }

# SLURM's client commands, run where they reach the cluster (on host h0 with NODES = 2).
on_cluster() { "$src/scripts/slurm-local" exec "$cluster" "$@"; }
if ((nodes > 1)); then
  "$src/scripts/netns-cluster" down
  "$src/scripts/netns-cluster" up "$nodes" >/dev/null
  "$src/scripts/slurm-local" start "$cluster" --netns "$nodes"
else
  "$src/scripts/slurm-local" start "$cluster"
fi

# 4 epochs of 60 steps of 20 rows; 30 ms more per step (DPTRAIN_TEST_STEP_MS) leaves time to signal.
"$bin" data synth blobs --n 1200 --dim 6 --seed 5 --out "$work/data.h5" >/dev/null
cat >"$work/run.toml" <<EOF
seed = 9
out_dir = "$work/job"
[data]
train = "$work/data.h5"
normalize = "zscore"
[model]
kind = "mlp"
hidden = [32]
dropout = 0.1
[optim]
kind = "adam"
lr = 0.005
[train]
batch_size = 20
epochs = 4
progress = false
log_every = 20
[checkpoint]
every_steps = 10
[coordinator]
bind = "$( ((nodes > 1)) && echo 0.0.0.0 || echo 127.0.0.1)"
EOF

# The uninterrupted reference: the same config on 2 ranks under mpirun, outside SLURM.
say "reference run (mpirun -np 2 dptrain train)"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  timeout 120 mpirun -np 2 --oversubscribe --bind-to none "$bin" train "$work/run.toml" \
  --set "out_dir=\"$work/ref\"" >"$work/ref.log" 2>&1 || { cat "$work/ref.log" >&2; fail "the reference run failed"; }

# Submitted as documented in launch/slurm/README.md; the command line overrides the script's sizes.
# Only the listed variables reach the job (as with --export=NONE, which many sites ask for): the
# supervisor's srun must still hand the coordinator's address and token to the ranks. Bitwise
# equality needs the reference's BLAS kernels: OPENBLAS_CORETYPE (and DPTRAIN_CPU_ENGINE), when
# this environment sets them, go along (without it OpenBLAS picks Cooperlake kernels on a Zen 5
# where the variable may have forced Haswell ones, and the last bits differ).
say "sbatch launch/slurm/train.sbatch"
kernels=${OPENBLAS_CORETYPE:+,OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE}${DPTRAIN_CPU_ENGINE:+,DPTRAIN_CPU_ENGINE=$DPTRAIN_CPU_ENGINE}
job=$(cd "$work" && on_cluster sbatch --parsable --nodes="$nodes" --ntasks=2 --cpus-per-task=1 --time=10:00 --output="$work/job-%j.out" \
  --export="CONFIG=$work/run.toml,DPTRAIN=$bin,DPTRAIN_TEST_STEP_MS=30,OMP_NUM_THREADS=1,OPENBLAS_NUM_THREADS=1,PATH=$PATH,SLURM_CONF=$SLURM_CONF$kernels" \
  "$src/launch/slurm/train.sbatch")
job=${job%%;*}
out=$work/job-$job.out

job_field() { on_cluster scontrol show job "$job" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
finished() {
  local s
  s=$(job_field JobState)
  [[ $s == COMPLETED || $s == FAILED || $s == CANCELLED || $s == TIMEOUT || $s == NODE_FAIL ]]
}
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || fail "no $what within $limit s"
    [[ $1 == finished ]] || ! finished || fail "no $what: the job ended first"
    sleep 0.2
  done
}

# Signal once a checkpoint exists and training runs on (mid-run, not at the start or the end).
have_checkpoint() { compgen -G "$work/job/checkpoints/ckpt-*.h5" >/dev/null; }
wait_for 60 "checkpoint from the first run" have_checkpoint
say "job $job has checkpointed; SLURM's warning: scancel --signal=USR1 --batch $job"
on_cluster scancel --signal=USR1 --batch "$job"

requeued() { [[ $(job_field Restarts) -ge 1 ]]; }
wait_for 30 "requeue" requeued
say "job $job requeued (Restarts=$(job_field Restarts))"
wait_for 90 "end of the requeued job" finished
say "job $job ended: JobState=$(job_field JobState) ExitCode=$(job_field ExitCode) Restarts=$(job_field Restarts)"

[[ $(job_field JobState) == COMPLETED && $(job_field ExitCode) == 0:0 ]] || fail "the requeued job did not complete"
[[ $(job_field Restarts) == 1 ]] || fail "expected exactly one requeue"
grep -q "restart count 0" "$out" || fail "no first run in the job's output"
grep -q "checkpointed on request; requeueing job $job" "$out" || fail "the first run did not requeue on exit code 75"
grep -q "restart count 1" "$out" || fail "no second run in the job's output"
[[ $(grep -c "global batch 20 on 2 ranks (mpi" "$out") -eq 2 ]] || fail "both runs should have 2 MPI ranks (srun)"
grep -q "launch: job finished" "$out" || fail "the second run did not finish"
! grep -q "^coordinator:" "$out" || fail "rank 0 ran a coordinator of its own (the ranks missed the supervisor's)"
stopped=$(sed -n 's/.*stopped on request after the checkpoint of step \([0-9]*\).*/\1/p' "$out" | head -n 1)
[[ -n $stopped && $stopped -gt 0 && $stopped -lt 240 ]] || fail "the stop checkpoint was not mid-run (step '${stopped}')"
grep -q "resumed from $work/job/checkpoints/ckpt-$(printf %010d "$stopped").h5 at step $stopped" "$out" ||
  fail "the requeued job did not resume from the checkpoint of step $stopped"
if ((nodes > 1)); then
  [[ $(grep -c "restart count [01]) on h\[0-1\]" "$out") -eq 2 ]] || fail "both runs should span the nodes h[0-1]"
fi
say "stopped at step $stopped of 240, resumed there, finished$( ((nodes > 1)) && echo " (both runs on nodes h[0-1])")"

# Bitwise: every dataset of the final model and of the last checkpoint's parameters.
/usr/bin/python3 - "$work/ref" "$work/job" <<'EOF' || fail "the requeued job's model differs from the reference"
import glob, os, sys
import h5py, numpy as np

def datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out

ref, job = sys.argv[1], sys.argv[2]
a, b = datasets(os.path.join(ref, "model.h5")), datasets(os.path.join(job, "model.h5"))
assert a.keys() == b.keys(), f"model.h5 datasets differ: {sorted(a)} vs {sorted(b)}"
floats = 0
for name in a:
    x, y = np.asarray(a[name]), np.asarray(b[name])
    if x.dtype.kind == "f":
        floats += x.size
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), f"model.h5:{name} differs"
assert floats > 0, "model.h5 holds no parameters"
last = lambda d: sorted(glob.glob(os.path.join(d, "checkpoints", "ckpt-*.h5")))[-1]
ca, cb = last(ref), last(job)
assert os.path.basename(ca) == os.path.basename(cb), f"last checkpoints differ: {ca} vs {cb}"
pa, pb = datasets(ca), datasets(cb)
for name in pa:
    if np.asarray(pa[name]).dtype.kind == "f":
        assert np.asarray(pa[name]).tobytes() == np.asarray(pb[name]).tobytes(), f"{os.path.basename(ca)}:{name} differs"
print(f"bitwise equal: {len(a)} datasets ({floats} floats) of model.h5 and every float dataset of {os.path.basename(ca)}")
EOF

# Ranks that srun starts without an MPI plug-in (sites whose SLURM lacks PMIx): SLURM's variables,
# the Gloo backend, rank 0's rendezvous on the step's first node; within 1e-5 of mpirun -np 2.
say "srun --mpi=none -n 2 dptrain train (Gloo)"
(cd "$work" && timeout 120 "$src/scripts/slurm-local" exec "$cluster" srun --mpi=none -N "$nodes" -n 2 --cpus-per-task=1 --time=5:00 --export=ALL,OMP_NUM_THREADS=1,OPENBLAS_NUM_THREADS=1 \
  "$bin" train "$work/run.toml" --set "out_dir=\"$work/srun\"") >"$work/srun.log" 2>&1 ||
  { cat "$work/srun.log" >&2; fail "srun --mpi=none failed"; }
[[ $(grep -c "global batch 20 on 2 ranks (gloo" "$work/srun.log") -eq 1 ]] || { cat "$work/srun.log" >&2; fail "srun --mpi=none did not run 2 gloo ranks"; }
r=$(/usr/bin/python3 "$src/tests/support/compare_models.py" "$work/ref/model.h5" "$work/srun/model.h5" 1e-5) ||
  fail "the srun --mpi=none model differs from mpirun's by more than 1e-5: $r"
say "srun --mpi=none vs mpirun -np 2 after 240 steps: $r"
say "passed"
