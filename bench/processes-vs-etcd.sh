#!/usr/bin/env bash
# Durable single-row writes through SQL on a 3-node Tessera cluster of real processes (the
# release binary, one store per node, loopback) against a 3-member etcd 3.4 (Debian's
# etcd-server, ../shared/reference-bench/etcd-3node.sh) on the same machine, interleaved
# RUNS times. Usage (as root, for etcd's packages):
#   RUNS=2 DUR=5 bash bench/processes-vs-etcd.sh
# Prints each run's tables; docs/benchmarks.md quotes them.
set -euo pipefail
RUNS=${RUNS:-2}
DUR=${DUR:-5}
CLIENTS=${CLIENTS:-1,16,128}
HERE=$(cd "$(dirname "$0")/.." && pwd)
REF=${REF:-$HERE/../shared/reference-bench/etcd-3node.sh}
DIR=$(mktemp -d /tmp/tessera-procs.XXXXXX)
cargo build --release -q -p tessera-cli -p tessera-bench --manifest-path "$HERE/Cargo.toml"
T=$HERE/target/release/tessera
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

start_cluster() {
  local join=127.0.0.1:36357,127.0.0.1:36358,127.0.0.1:36359 i
  for i in 1 2 3; do
    TESSERA_LOG=warn "$T" start --store "$DIR/n$i" --listen-addr 127.0.0.1:3635$((6 + i)) \
      --sql-addr 127.0.0.1:3625$((6 + i)) --http-addr 127.0.0.1:3808$i --join $join \
      >"$DIR/log$i" 2>&1 &
    PIDS+=($!)
  done
  sleep 1
  "$T" init --host 127.0.0.1:36357 --replication 3 >/dev/null
  # Wait until every range has three voters and leaderships are spread.
  for _ in $(seq 1 120); do
    if "$T" node status --host 127.0.0.1:36357 | python3 -c '
import json, sys
r = json.load(sys.stdin)["replicas"]
sys.exit(0 if r and all(len(x["voters"]) == 3 for x in r) else 1)'; then
      sleep 5
      return
    fi
    sleep 1
  done
  echo "the cluster did not replicate every range in 2 minutes" >&2
  exit 1
}

stop_cluster() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); rm -rf "$DIR"/n*; }

URLS=postgresql://root@127.0.0.1:36257/postgres,postgresql://root@127.0.0.1:36258/postgres,postgresql://root@127.0.0.1:36259/postgres
for run in $(seq 1 "$RUNS"); do
  echo "## run $run: tessera, 3 processes"
  start_cluster
  "$HERE/target/release/tessera-bench" cluster --secs "$DUR" --clients "$CLIENTS" --urls "$URLS" \
    --hosts 127.0.0.1:36357,127.0.0.1:36358,127.0.0.1:36359 | grep '^|'
  for h in 36357 36358 36359; do
    "$T" node status --host 127.0.0.1:$h | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("node", d["node_id"], "leads", sum(1 for x in d["replicas"] if x["leader"]), "of", len(d["replicas"]), "ranges")'
  done
  stop_cluster
  echo "## run $run: etcd"
  DUR=$DUR RUNS=1 CHECKPERF="" bash "$REF" 2>&1 | grep -E '3node put' || true
done
