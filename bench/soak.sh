#!/usr/bin/env bash
# Soak: RANGES ranges (default 1,000) on a 3-node cluster of release processes on loopback,
# IDLE seconds idle then LOAD seconds under light SQL load (CLIENTS upserting clients,
# default 4). Prints each node's CPU (percent of one core) and resident memory per phase.
# Usage: RANGES=1000 IDLE=300 LOAD=300 bash bench/soak.sh
set -euo pipefail
RANGES=${RANGES:-1000}
IDLE=${IDLE:-300}
LOAD=${LOAD:-300}
CLIENTS=${CLIENTS:-4}
HERE=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(mktemp -d /tmp/tessera-soak.XXXXXX)
cargo build --release -q -p tessera-cli -p tessera-bench --manifest-path "$HERE/Cargo.toml"
T=$HERE/target/release/tessera
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
JOIN=127.0.0.1:36357,127.0.0.1:36358,127.0.0.1:36359
for i in 1 2 3; do
  TESSERA_LOG=warn "$T" start --store "$DIR/n$i" --listen-addr 127.0.0.1:3635$((6 + i)) \
    --sql-addr 127.0.0.1:3625$((6 + i)) --http-addr 127.0.0.1:3808$i --join $JOIN \
    >"$DIR/log$i" 2>&1 &
  PIDS+=($!)
done
sleep 1
started=$(date +%s)
"$T" init --host 127.0.0.1:36357 --replication 3 --ranges "$RANGES"
echo "init took $(( $(date +%s) - started )) s"
for _ in $(seq 1 1800); do
  if "$T" node status --host 127.0.0.1:36357 | python3 -c '
import json, sys
r = json.load(sys.stdin)["replicas"]
sys.exit(0 if len(r) >= '"$RANGES"' and all(len(x["voters"]) == 3 for x in r) else 1)'; then
    break
  fi
  sleep 2
done
echo "every range has 3 voters $(( $(date +%s) - started )) s after init"
leaders() {
  for h in 36357 36358 36359; do
    "$T" node status --host 127.0.0.1:$h | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = d["replicas"]
print("  node", d["node_id"], "leads", sum(1 for x in r if x["leader"]), "of", len(r),
      "ranges;", sum(1 for x in r if x.get("quiesced")), "quiesced")'
  done
}
leaders
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
phase() { # name seconds [command...]
  local name=$1 secs=$2; shift 2
  local before=() p
  for p in "${PIDS[@]}"; do before+=("$(cpu "$p")"); done
  if [ $# -gt 0 ]; then "$@"; else sleep "$secs"; fi
  echo "$name ($secs s):"
  local i=0
  for p in "${PIDS[@]}"; do
    local used=$(( $(cpu "$p") - before[i] ))
    echo "  node $((i + 1)): cpu $(python3 -c "print(f'{100 * $used / $ticks / $secs:.1f}')")% of a core, rss $(rss "$p") MiB"
    i=$((i + 1))
  done
}
phase idle "$IDLE"
leaders
URLS=postgresql://root@127.0.0.1:36257/postgres,postgresql://root@127.0.0.1:36258/postgres,postgresql://root@127.0.0.1:36259/postgres
phase "light load, $CLIENTS clients" "$LOAD" \
  "$HERE/target/release/tessera-bench" cluster --secs "$LOAD" --clients "$CLIENTS" --urls "$URLS"
leaders
