#!/usr/bin/env bash
# Ranks started the torchrun way, without MPI (comm.backend auto -> gloo): two shells with RANK,
# WORLD_SIZE, MASTER_ADDR and MASTER_PORT train 50 steps to within 1e-5 of `mpirun -np 2` (the
# same world size, so in fact bitwise); killing one rank, or one stalling past comm.timeout_s, ends
# the other with exit code 3 naming the rank; a non-finite gradient on one rank stops both with
# exit code 4; ranks whose configs differ are refused; conflicting variables are refused naming them.
#   tests/comm/gloo_launch.sh DPTRAIN        (CTest: label gloo; 77 = skipped)
set -euo pipefail
bin=$1
compare=$(dirname "$0")/../support/compare_models.py
work=$(mktemp -d /tmp/dptrain-gloo.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [[ $rc -ne 0 ]]; then echo "gloo_launch: FAILED (exit code $rc); files kept under $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "gloo_launch: $*" >&2
  for f in "$work"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}
say() { echo "gloo_launch: $*"; }
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Every variable an outer launcher may have left would change the backend chosen: start clean.
unset OMPI_COMM_WORLD_SIZE PMI_SIZE PMIX_SIZE PMIX_RANK MPI_LOCALNRANKS SLURM_PROCID SLURM_STEP_NUM_TASKS \
  RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT DPTRAIN_COORDINATOR DPTRAIN_JOB_TOKEN
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# 1000 rows of 20: 50 steps.
"$bin" data synth blobs --n 1000 --dim 6 --seed 5 --out "$work/data.h5" >/dev/null
cat >"$work/run.toml" <<EOF
seed = 9
out_dir = "$work/unused"
[data]
train = "$work/data.h5"
normalize = "zscore"
[model]
kind = "mlp"
hidden = [32, 16]
dropout = 0.1
[optim]
kind = "adam"
lr = 0.005
[train]
batch_size = 20
epochs = 1
progress = false
log_every = 10
EOF

# two_ranks NAME [dptrain train options...]: rank 0 and rank 1 in the background, logs NAME.0/1.log.
two_ranks() {
  local name=$1 port
  shift
  port=$(free_port)
  pids=()
  for r in 0 1; do
    RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      timeout 120 "$bin" train "$work/run.toml" --set "out_dir=\"$work/$name\"" "$@" >"$work/$name.$r.log" 2>&1 &
    pids+=($!)
  done
}

say "torchrun-style launch: 2 ranks, 50 steps"
two_ranks gloo
rc0=0 rc1=0
wait "${pids[0]}" || rc0=$?
wait "${pids[1]}" || rc1=$?
[[ $rc0 == 0 && $rc1 == 0 ]] || fail "the torchrun-style ranks exited $rc0 and $rc1"
grep -q "on 2 ranks (gloo, cpu)" "$work/gloo.0.log" || fail "rank 0 did not report 2 gloo ranks"

if command -v mpirun >/dev/null; then
  say "reference: mpirun -np 2"
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 120 mpirun -np 2 --oversubscribe --bind-to none \
    "$bin" train "$work/run.toml" --set "out_dir=\"$work/mpi\"" >"$work/mpi.log" 2>&1 || fail "the mpirun reference failed"
  r=$(/usr/bin/python3 "$compare" "$work/gloo/model.h5" "$work/mpi/model.h5" 1e-5) ||
    fail "the gloo model differs from the mpirun model by more than 1e-5: $r"
  say "gloo vs mpirun after 50 steps: $r"
else
  say "mpirun not installed: the comparison with mpirun -np 2 is skipped"
fi

say "killing rank 1 mid-run: rank 0 must exit 3 naming it"
DPTRAIN_TEST_STEP_MS=20 two_ranks kill --set train.epochs=40 --set comm.timeout_s=20
for _ in $(seq 300); do grep -q "epoch 1/40" "$work/kill.0.log" 2>/dev/null && break; sleep 0.1; done
grep -q "epoch 1/40" "$work/kill.0.log" || fail "the run to kill did not get through its first epoch"
start=$SECONDS
pkill -9 -P "${pids[1]}"  # dptrain itself, the child of timeout
rc0=0
wait "${pids[0]}" || rc0=$?
[[ $rc0 == 3 ]] || fail "rank 0 exited $rc0 after rank 1 was killed (expected 3)"
((SECONDS - start <= 30)) || fail "rank 0 took $((SECONDS - start)) s to notice (comm.timeout_s = 20)"
grep -q "rank 1 .*gone" "$work/kill.0.log" || fail "rank 0's error does not name rank 1"
say "rank 0: $(grep -o 'error (rank 0).*' "$work/kill.0.log" | cut -c1-220)"

say "rank 1 stalls at step 10: rank 0 must exit 3 within comm.timeout_s naming it"
DPTRAIN_TEST_STALL=1:10:30 two_ranks stall --set comm.timeout_s=3
start=$SECONDS
rc0=0
wait "${pids[0]}" || rc0=$?
pkill -9 -P "${pids[1]}" || true
[[ $rc0 == 3 ]] || fail "rank 0 exited $rc0 while rank 1 stalled (expected 3)"
((SECONDS - start <= 15)) || fail "rank 0 took $((SECONDS - start)) s to give up (comm.timeout_s = 3)"
grep -q "rank 1 .*last seen at step" "$work/stall.0.log" || fail "rank 0's error does not name rank 1 and its step"
say "rank 0: $(grep -o 'error (rank 0).*' "$work/stall.0.log" | cut -c1-220)"

say "a non-finite gradient on rank 1 stops both ranks at the same step with exit code 4"
DPTRAIN_TEST_NONFINITE=1:5 two_ranks nonfinite
rc0=0 rc1=0
wait "${pids[0]}" || rc0=$?
wait "${pids[1]}" || rc1=$?
[[ $rc0 == 4 && $rc1 == 4 ]] || fail "non-finite gradient: ranks exited $rc0 and $rc1 (expected 4 and 4)"
grep -q "step 6: the summed gradient is not finite" "$work/nonfinite.0.log" || fail "rank 0 does not name step 6"
[[ ! -e $work/nonfinite/model.h5 ]] || fail "a model was written from the non-finite state"

say "ranks with different configs are refused"
port=$(free_port)
pids=()
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port timeout 60 "$bin" train "$work/run.toml" \
    --set "out_dir=\"$work/differ\"" --set "optim.lr=0.00$((r + 1))" >"$work/differ.$r.log" 2>&1 &
  pids+=($!)
done
rc0=0 rc1=0
wait "${pids[0]}" || rc0=$?
wait "${pids[1]}" || rc1=$?
[[ $rc0 != 0 && $rc1 != 0 && $rc0 != 124 && $rc1 != 124 ]] || fail "differing configs: ranks exited $rc0 and $rc1"
grep -qi "config" "$work/differ.0.log" "$work/differ.1.log" || fail "the refusal does not mention the config"
say "refused: $(grep -ho 'error.*' "$work/differ.0.log" "$work/differ.1.log" | head -n 1 | cut -c1-200)"

say "conflicting variables are refused"
rc=0
RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 SLURM_PROCID=0 SLURM_STEP_NUM_TASKS=2 \
  "$bin" train "$work/run.toml" >"$work/conflict.log" 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "conflicting variables: exit code $rc (expected 2)"
grep -q "RANK=1 but SLURM_PROCID=0" "$work/conflict.log" || fail "the conflict is not named"
pids=()
say "passed"
