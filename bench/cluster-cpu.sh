#!/usr/bin/env bash
# Throughput and CPU per transaction of a 3-node Tessera cluster (release processes on
# loopback, replication 3, pgbench's tables at SCALE loaded with `pgbench -i -I g`):
# single-row autocommit UPDATEs of random accounts and pgbench's TPC-B-like transaction, each
# for DUR seconds at each client count. CPU is the user+system time of the three processes
# over the run, divided by the transactions done; under each line, the nodes' /metrics
# counters (requests by kind, Raft messages, fsyncs) per transaction. Needs PostgreSQL's
# pgbench (see pgbench-cluster.sh, which installs it). TPCB_CLIENTS="1 8 32" sets the
# TPC-B client counts.
#
# Usage (from the repository):  SCALE=1 DUR=5 bash bench/cluster-cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${SCALE:-1}
DUR=${DUR:-5}
DIR=${DIR:-/tmp/tessera-cluster-cpu.$$}
PGB=$(ls /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -1)
cargo build --release --locked -q -p tessera-cli
T=$PWD/target/release/tessera
mkdir -p "$DIR"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
join=127.0.0.1:36651,127.0.0.1:36652,127.0.0.1:36653
for i in 1 2 3; do
  TESSERA_LOG=warn "$T" start --store "$DIR/n$i" --listen-addr 127.0.0.1:3665$i \
    --sql-addr 127.0.0.1:3655$i --http-addr 127.0.0.1:3829$i --join $join >"$DIR/log$i" 2>&1 &
  PIDS+=($!)
done
sleep 1
"$T" init --host 127.0.0.1:36651 --replication 3 >/dev/null
for _ in $(seq 1 60); do
  "$T" node status --host 127.0.0.1:36651 | python3 -c '
import json, sys
r = json.load(sys.stdin)["replicas"]
sys.exit(0 if r and all(len(x["voters"]) == 3 for x in r) else 1)' && break
  sleep 1
done
"$T" sql --url postgresql://root@127.0.0.1:36551/postgres -e "
  CREATE TABLE pgbench_history (tid INT, bid INT, aid INT, delta INT, mtime TIMESTAMP, filler CHAR(22));
  CREATE TABLE pgbench_tellers (tid INT PRIMARY KEY, bid INT, tbalance INT, filler CHAR(84));
  CREATE TABLE pgbench_accounts (aid INT PRIMARY KEY, bid INT, abalance INT, filler CHAR(84));
  CREATE TABLE pgbench_branches (bid INT PRIMARY KEY, bbalance INT, filler CHAR(88));" >/dev/null
"$PGB" -h 127.0.0.1 -p 36551 -U root -i -q -I g -s "$SCALE" postgres >"$DIR/init.log" 2>&1
sleep 3
printf '\\set aid random(1, %d)\nUPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n' \
  $((SCALE * 100000)) >"$DIR/update.sql"
ticks() { for p in "${PIDS[@]}"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | paste -sd+ | bc; }
# The nodes' counters summed over the three: "name value" lines.
counters() {
  for i in 1 2 3; do curl -s "127.0.0.1:3829$i/metrics"; done |
    awk '!/^#/ && $1 !~ /uptime|connections/ {a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
hz=$(getconf CLK_TCK)
echo "# tessera $(git rev-parse --short HEAD); scale=$SCALE dur=${DUR}s nproc=$(nproc)"
run() {
  local name=$1 c=$2 a b n
  shift 2
  counters >"$DIR/before"
  a=$(ticks)
  n=$("$PGB" -h 127.0.0.1 -p 36552 -U root -n -c "$c" -T "$DUR" "$@" postgres 2>&1 |
    awk '/actually processed/ {print $NF}')
  b=$(ticks)
  counters >"$DIR/after"
  python3 -c "print(f'  {\"$name\":8} c={$c:<3} tps={$n / $DUR:7.0f}  cpu_per_txn_ms={($b - $a) * 1000 / $hz / max($n, 1):6.2f}')"
  # What one transaction cost: requests by kind, Raft messages, fsyncs (over the 3 nodes).
  join "$DIR/before" "$DIR/after" | awk -v n="$n" '$3 > $2 && n > 0 {
    sub(/^tessera_/, "", $1); printf "      %-50s %7.2f per txn\n", $1, ($3 - $2) / n }'
}
for c in 1 32; do run update "$c" -f "$DIR/update.sql"; done
for c in ${TPCB_CLIENTS:-1 8}; do run tpcb "$c"; done
