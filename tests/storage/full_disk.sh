#!/usr/bin/env bash
# A full disk under checkpoint.dir (a small tmpfs): the first checkpoint fits, the next ones do not.
# Each failed save is reported naming the directory and the free space, training goes on, `latest`
# keeps naming the last complete checkpoint and no partial file is left; after the disk is made
# larger, a resume from `latest` ends bitwise equal to an uninterrupted run.
#   tests/storage/full_disk.sh DPTRAIN      (CTest: label disk; 77 = skipped without root/mount)
set -euo pipefail
bin=$1
compare=$(dirname "$0")/../support/compare_models.py
skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "mounting a tmpfs needs root"
work=$(mktemp -d /tmp/dptrain-full-disk.XXXXXX)
disk=$work/disk
mkdir -p "$disk"
mount -t tmpfs -o size=64k tmpfs "$disk" 2>/dev/null || { rm -rf "$work"; skip "cannot mount a tmpfs here"; }
cleanup() {
  local rc=$?
  umount "$disk" 2>/dev/null || true
  if [[ $rc -ne 0 && $rc -ne 77 ]]; then echo "full_disk: FAILED (exit code $rc); files kept under $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "full_disk: $*" >&2
  for f in "$work"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  exit 1
}
say() { echo "full_disk: $*"; }
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

"$bin" data synth blobs --n 1200 --dim 6 --seed 5 --out "$work/data.h5" >/dev/null
# An MLP of 5,000 parameters with Adam: a checkpoint is about 70 KB.
cat >"$work/run.toml" <<EOF
seed = 4
out_dir = "$work/unused"
cpu_engine = "openblas"
[data]
train = "$work/data.h5"
[model]
kind = "mlp"
hidden = [64, 64]
[optim]
kind = "adam"
lr = 0.003
[train]
batch_size = 20
epochs = 1
max_steps = 40
progress = false
[checkpoint]
every_steps = 10
at_end = false
EOF

say "uninterrupted reference"
"$bin" train "$work/run.toml" --set "out_dir=\"$work/ref\"" >"$work/ref.log" 2>&1 || fail "the reference run failed"
size=$(stat -c %s "$work/ref/checkpoints/$(cat "$work/ref/checkpoints/latest")")
# Room for one checkpoint and a half: the second one cannot be written.
mount -o remount,size=$((size * 3 / 2 / 4096 * 4096 + 4096)) "$disk"
say "checkpoints of $size bytes into a tmpfs of $(df -B1 --output=size "$disk" | tail -n 1 | tr -d ' ') bytes"

"$bin" train "$work/run.toml" --set "out_dir=\"$work/full\"" --set "checkpoint.dir=\"$disk\"" >"$work/full.log" 2>&1 ||
  fail "the run with a full checkpoint disk did not finish"
grep -q "checkpoint of step 20 not written to $disk; [0-9.]* [kMG]B free of [0-9.]* [kMG]B there" "$work/full.log" ||
  fail "the failed save does not name the directory and its free space"
grep -q "training goes on" "$work/full.log" || fail "the failure does not say that training goes on"
[[ -f $work/full/model.h5 ]] || fail "the run did not finish (no model.h5)"
[[ $(cat "$disk/latest") == ckpt-0000000010.h5 ]] || fail "latest names $(cat "$disk/latest"), not the checkpoint of step 10"
leftovers=$(find "$disk" -name '.*' -type f | wc -l)
[[ $leftovers == 0 ]] || fail "partial files left in $disk: $(ls -a "$disk")"
"$bin" checkpoint inspect "$disk/latest" >/dev/null 2>&1 || "$bin" checkpoint inspect "$disk/ckpt-0000000010.h5" >/dev/null ||
  fail "the checkpoint of step 10 does not verify"
say "$(grep -o 'checkpoint of step 20 not written.*' "$work/full.log" | head -n 1 | cut -c1-160)"

say "more room; resume from latest"
mount -o remount,size=4m "$disk"
"$bin" train "$work/run.toml" --set "out_dir=\"$work/full\"" --set "checkpoint.dir=\"$disk\"" --resume \
  >"$work/resume.log" 2>&1 || fail "the resumed run failed"
grep -q "resumed from $disk/ckpt-0000000010.h5 at step 10" "$work/resume.log" || fail "did not resume from step 10"
r=$(/usr/bin/python3 "$compare" "$work/ref/model.h5" "$work/full/model.h5" 0) ||
  fail "the resumed run differs from the uninterrupted one: $r"
say "resumed vs uninterrupted: $r"
say "passed"
