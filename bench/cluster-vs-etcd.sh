#!/usr/bin/env bash
# Durable single-row writes: Tessera's 3-node cluster (in one process, fjall stores, Raft
# with fsynced log appends) against a 3-member etcd 3.4 (Debian's etcd-server) on the same
# machine, interleaved RUNS times. Usage (as root, for etcd's packages):
#   RUNS=2 DUR=5 bash bench/cluster-vs-etcd.sh
# Prints each run's tables; docs/benchmarks.md quotes the medians.
set -euo pipefail
RUNS=${RUNS:-2}
DUR=${DUR:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
REF=${REF:-$HERE/../shared/reference-bench/etcd-3node.sh}
cargo build --release -q -p tessera-bench --manifest-path "$HERE/Cargo.toml"
for run in $(seq 1 "$RUNS"); do
  echo "## run $run: tessera"
  TESSERA_LOG=error "$HERE/target/release/tessera-bench" cluster --secs "$DUR" --clients 1,16,128 2>/dev/null | grep '^|'
  echo "## run $run: etcd"
  DUR=$DUR RUNS=1 CHECKPERF="" bash "$REF" 2>&1 | grep -E '3node put|1node put' || true
done
