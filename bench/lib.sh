# Helpers for benchmark scripts (bench/<name>/run sources this file). They print the result lines
# that bench/run collects into bench/RESULTS.md; bench/README.md describes the protocol.
# shellcheck shell=bash

BENCH_REPS=${BENCH_REPS:-5}
PYTHON=${PYTHON:-/usr/bin/python3}
DPTRAIN_PEERS=${DPTRAIN_PEERS:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/peers}

# bench_result TABLE ROW SIDE NAME METRIC BETTER VALUE [TARGET]
#   SIDE is "ours" or "peer"; NAME labels the side ("dptrain", "PyTorch 1.13.1"); BETTER is
#   "higher" or "lower"; TARGET bounds ours/peer, e.g. ">= 1.0" or "<= 1.5". One line per repetition.
bench_result() {
  printf 'BENCH\ttable=%s\trow=%s\tside=%s\tname=%s\tmetric=%s\tbetter=%s\tvalue=%s\ttarget=%s\n' \
    "$1" "$2" "$3" "$4" "$5" "$6" "$7" "${8:-}"
}

# bench_command TABLE ROW SIDE COMMAND: the command line behind a row's side (shown once).
bench_command() { printf 'BENCHCMD\ttable=%s\trow=%s\tside=%s\tcmd=%s\n' "$1" "$2" "$3" "$4"; }

# bench_note TABLE TEXT: a line printed under the table.
bench_note() { printf 'BENCHNOTE\ttable=%s\ttext=%s\n' "$1" "$2"; }

# bench_info KEY VALUE: a line of the machine and versions section.
bench_info() { printf 'BENCHINFO\tkey=%s\tvalue=%s\n' "$1" "$2"; }

# field KEY TEXT: the value of KEY=value in TEXT (the "key=value ..." lines the programs print).
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2" | head -n 1; }

# have_peer FILE: whether a peer program exists (benchmarks skip peer runs, with a note, if not).
have_peer() { [[ -f "$DPTRAIN_PEERS/$1" ]]; }
