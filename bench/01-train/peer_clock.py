"""Runs a peer benchmark script unchanged and also reports its timed loop on the process's CPU
clock, for comparisons on a machine shared with other work (bench/01-train).

    python3 peer_clock.py SCRIPT [ARGS...]

The peer times its loop with two calls of time.perf_counter(); this wrapper records the process
CPU time (time.process_time, all threads) at the same two calls and prints, after the peer's own
output, one line: loop_wall_s=<float> loop_cpu_s=<float>."""
import runpy
import sys
import time

_calls = []
_wall = time.perf_counter


def _perf_counter():
    _calls.append((_wall(), time.process_time()))
    return _calls[-1][0]


time.perf_counter = _perf_counter
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
if len(_calls) >= 2:
    (w0, c0), (w1, c1) = _calls[-2], _calls[-1]
    print(f"loop_wall_s={w1 - w0:.6f} loop_cpu_s={c1 - c0:.6f}")
