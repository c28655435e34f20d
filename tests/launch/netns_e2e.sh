#!/usr/bin/env bash
# Several machines, made of network namespaces (scripts/netns-cluster): 3 hosts on a bridge, one
# rank each, started by mpirun through a launcher agent that enters a host's namespace instead of
# ssh, over Open MPI's TCP transport on the bridge; the coordinator on host 0's bridge address.
#  - 3 hosts x 1 rank after 50 steps: bitwise equal to 3 ranks on one host, within 1e-5 of 1 rank;
#    /status lists each rank's host;
#  - with 5 ms delay and 1 % loss on every host (tc netem, or where the kernel lacks it a userspace
#    switch with the same effect, scripts/netns-wire): the same bits, and the time ratio;
#  - one host's link cut mid-run: the job ends with exit code 3 within comm.timeout_s + 10 s,
#    rank 0 naming the rank and host that stopped answering;
#  - under `dptrain launch --hostfile F --min-ranks 2`, the same cut: the supervisor finds the host
#    lost (a probe), restarts from the last checkpoint on the 2 hosts that remain, and finishes
#    within 1e-5 of one rank.
#   tests/launch/netns_e2e.sh DPTRAIN SOURCE_DIR     (CTest: label netns; 77 = skipped)
# The CTest cleanup fixture netns_e2e_stop removes the hosts even when this script is killed.
set -euo pipefail
bin=$1
src=$2
export DPTRAIN_NETNS_PREFIX=${DPTRAIN_NETNS_PREFIX:-dptt}
cluster=$src/scripts/netns-cluster
skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "network namespaces need root"
for b in ip tc mpirun unshare curl; do command -v "$b" >/dev/null || skip "$b is not installed"; done
ip netns add "$DPTRAIN_NETNS_PREFIX-probe" 2>/dev/null || skip "cannot make network namespaces here"
ip netns del "$DPTRAIN_NETNS_PREFIX-probe"

work=$(mktemp -d /tmp/dptrain-netns.XXXXXX)
cleanup() {
  local rc=$?
  "$cluster" down || true
  if [[ $rc -ne 0 && $rc -ne 77 ]]; then echo "netns_e2e: FAILED (exit code $rc); files kept under $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "netns_e2e: $*" >&2
  for f in "$work"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  exit 1
}
started=$SECONDS
say() { echo "netns_e2e [$((SECONDS - started)) s]: $*"; }

"$cluster" down
"$cluster" up 3 >/dev/null
"$cluster" hostfile >"$work/hostfile"
host0=$("$cluster" addr 0)
say "3 hosts: $(tr '\n' ' ' <"$work/hostfile")"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# mpirun runs on host 0 (its daemons call back to it there); the agent starts the others' daemons.
# Keepalives on its links to them let mpirun notice a lost host in seconds, not minutes: without,
# it waits on the unreachable daemon after the job's abort.
hosts_mpirun=(mpirun -np 3 --hostfile "$work/hostfile" --mca plm_rsh_agent "$cluster agent"
  --mca btl tcp,self --mca btl_tcp_if_include 10.213.0.0/24 --mca oob_tcp_if_include 10.213.0.0/24
  --mca oob_tcp_keepalive_time 6 --mca oob_tcp_keepalive_intvl 1 --mca oob_tcp_keepalive_probes 3
  -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x DPTRAIN_TEST_STEP_MS -x DPTRAIN_CACHE_DIR)

"$bin" data synth blobs --n 1200 --dim 6 --seed 5 --out "$work/data.h5" >/dev/null
# 50 steps of 24 rows; one engine, so that no timing decides which product a run uses.
cat >"$work/run.toml" <<EOF
seed = 9
out_dir = "$work/unused"
cpu_engine = "openblas"
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
batch_size = 24
epochs = 1
max_steps = 50
progress = false
log_every = 10
[coordinator]
bind = "$host0"
http_port = 18080
EOF

compare() { /usr/bin/python3 "$src/tests/support/compare_models.py" "$@"; }  # A B TOLERANCE

say "references: 1 rank, and 3 ranks on one host"
"$bin" train "$work/run.toml" --set "out_dir=\"$work/one\"" --set 'coordinator.bind="127.0.0.1"' >"$work/one.log" 2>&1 ||
  fail "the 1-rank reference failed"
timeout 120 mpirun -np 3 --oversubscribe --bind-to none "$bin" train "$work/run.toml" --set "out_dir=\"$work/same\"" \
  --set 'coordinator.bind="127.0.0.1"' >"$work/same.log" 2>&1 || fail "the 3-rank one-host reference failed"

say "3 hosts x 1 rank (mpirun through the namespace agent, TCP on the bridge)"
t0=$(date +%s.%N)
DPTRAIN_TEST_STEP_MS=40 timeout 180 "$cluster" exec 0 "${hosts_mpirun[@]}" "$bin" train "$work/run.toml" \
  --set "out_dir=\"$work/hosts\"" >"$work/hosts.log" 2>&1 &
job=$!
status=""
for _ in $(seq 150); do
  status=$("$cluster" exec 0 curl -s -m 2 "http://$host0:18080/status" 2>/dev/null || true)
  [[ $status == *'"host":"h2"'* && $status == *'"host":"h1"'* && $status == *'"host":"h0"'* ]] && break
  sleep 0.2
done
wait "$job" || fail "the 3-host run failed"
t_clean=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
[[ $status == *'"host":"h0"'* && $status == *'"host":"h1"'* && $status == *'"host":"h2"'* ]] ||
  fail "/status did not list the ranks' hosts h0, h1, h2: $status"
grep -q "on 3 ranks (mpi" "$work/hosts.log" || fail "the 3-host run did not report 3 MPI ranks"
r=$(compare "$work/hosts/model.h5" "$work/same/model.h5" 0) || fail "3 hosts differ from 3 ranks on one host: $r"
say "3 hosts vs 3 ranks on one host: $r"
r=$(compare "$work/hosts/model.h5" "$work/one/model.h5" 1e-5) || fail "3 hosts differ from 1 rank by more than 1e-5: $r"
say "3 hosts vs 1 rank: $r"

# tc netem on every host's eth0 where the kernel has sch_netem; else the same delay and loss from
# a userspace switch in place of the bridge (scripts/netns-cluster wire, scripts/netns-wire).
if ip netns exec "$DPTRAIN_NETNS_PREFIX-h0" tc qdisc add dev eth0 root netem delay 5ms loss 1% 2>"$work/netem.err"; then
  for h in 1 2; do ip netns exec "$DPTRAIN_NETNS_PREFIX-h$h" tc qdisc add dev eth0 root netem delay 5ms loss 1%; done
  how="tc netem"
elif "$cluster" wire 5 1 2>>"$work/netem.err"; then
  how="userspace switch; no sch_netem here: $(head -n 1 "$work/netem.err")"
else
  how=""
  say "NOT RUN: neither tc netem nor a TAP device (/dev/net/tun) here: $(tr '\n' ' ' <"$work/netem.err")"
fi
if [[ -n $how ]]; then
  say "5 ms delay and 1 % loss on every host ($how)"
  t0=$(date +%s.%N)
  DPTRAIN_TEST_STEP_MS=40 timeout 300 "$cluster" exec 0 "${hosts_mpirun[@]}" "$bin" train "$work/run.toml" \
    --set "out_dir=\"$work/netem\"" >"$work/netem.log" 2>&1 || fail "the run over the lossy network failed"
  t_netem=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  r=$(compare "$work/netem/model.h5" "$work/hosts/model.h5" 0) || fail "the run over the lossy network ended differently: $r"
  say "lossy vs clean network: $r; wall time $t_netem s vs $t_clean s (ratio $(awk -v a="$t_netem" -v b="$t_clean" 'BEGIN { printf "%.2f", a / b }'))"
  if [[ $how == "tc netem" ]]; then
    for h in 0 1 2; do ip netns exec "$DPTRAIN_NETNS_PREFIX-h$h" tc qdisc del dev eth0 root; done
  else
    "$cluster" unwire
  fi
fi

# cut_and_wait: cuts host 2's link and waits for $job; sets rc (its exit code) and took (seconds since the cut).
cut_and_wait() {
  ip -n "$DPTRAIN_NETNS_PREFIX-h2" link set eth0 down
  local at=$SECONDS
  rc=0
  wait "$job" || rc=$?
  took=$((SECONDS - at))
}

say "cutting host 2's link mid-run (comm.timeout_s = 5)"
DPTRAIN_TEST_STEP_MS=40 timeout 120 "$cluster" exec 0 "${hosts_mpirun[@]}" "$bin" train "$work/run.toml" \
  --set "out_dir=\"$work/cut\"" --set train.max_steps=100000 --set train.epochs=1000 --set comm.timeout_s=5 \
  >"$work/cut.log" 2>&1 &
job=$!
for _ in $(seq 200); do grep -q "step 20\b\|epoch 1/" "$work/cut.log" 2>/dev/null && break; sleep 0.1; done
sleep 1
cut_and_wait
[[ $rc == 3 ]] || fail "the job exited $rc after host 2 was cut off (expected 3)"
((took <= 15)) || fail "the job took $took s to end (comm.timeout_s = 5, + 10 s allowed)"
grep -q "rank 2 on h2" "$work/cut.log" || fail "the error does not name rank 2 on h2"
say "ended in $took s: $(grep -o 'error (rank 0).*' "$work/cut.log" | head -n 1 | cut -c1-200)"
ip -n "$DPTRAIN_NETNS_PREFIX-h2" link set eth0 up

say "dptrain launch -n 3 --min-ranks 2, host 2's link cut mid-run: it goes on from the last checkpoint on 2 hosts"
"$bin" train "$work/run.toml" --set "out_dir=\"$work/one150\"" --set 'coordinator.bind="127.0.0.1"' \
  --set train.max_steps=150 >"$work/one150.log" 2>&1 || fail "the 150-step 1-rank reference failed"
launch_args=()
for a in "${hosts_mpirun[@]:5}"; do launch_args+=("--launcher-arg=$a"); done  # its options after -np 3 --hostfile F
DPTRAIN_TEST_STEP_MS=40 timeout 240 "$cluster" exec 0 "$bin" launch -n 3 --hostfile "$work/hostfile" --min-ranks 2 \
  "${launch_args[@]}" "$work/run.toml" --set "out_dir=\"$work/elastic\"" --set train.max_steps=150 \
  --set comm.timeout_s=5 --set checkpoint.every_steps=10 >"$work/elastic.log" 2>&1 &
job=$!
for _ in $(seq 300); do [[ -f $work/elastic/checkpoints/ckpt-0000000040.h5 ]] && break; sleep 0.1; done
[[ -f $work/elastic/checkpoints/ckpt-0000000040.h5 ]] || fail "the launched job wrote no checkpoint of step 40"
cut_and_wait
[[ $rc == 0 ]] || fail "dptrain launch --min-ranks 2 exited $rc after host 2 was cut off (expected 0)"
grep -q "host $("$cluster" addr 2) (1 rank) is lost" "$work/elastic.log" || fail "the supervisor did not say host 2 is lost"
grep -q "restarting on the 2 ranks that remain" "$work/elastic.log" || fail "the supervisor did not restart on 2 ranks"
grep -q "on 2 ranks (mpi" "$work/elastic.log" || fail "the restarted job did not run on 2 ranks"
r=$(compare "$work/elastic/model.h5" "$work/one150/model.h5" 1e-5) ||
  fail "the run that lost a host differs from 1 rank by more than 1e-5 after 150 steps: $r"
say "$(grep -o 'restarting on the 2 ranks.*' "$work/elastic.log" | head -n 1)"
say "resumed from: $(grep -o 'resumed from.*' "$work/elastic.log" | tail -n 1 | cut -c1-120)"
say "3 hosts, then 2, vs 1 rank after 150 steps: $r; finished $took s after the cut"
say "passed"
