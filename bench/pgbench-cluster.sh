#!/usr/bin/env bash
# pgbench TPC-B-like on a 3-node Tessera cluster of real processes (the release binary, one
# store per node, loopback; pgbench_accounts split into RANGES ranges whose leaders the
# cluster spreads over the nodes) against PostgreSQL 15 on one node with fsync=on and
# synchronous_commit=on, in the same run, interleaved RUNS times.
#
# Usage (as root, for Debian's PostgreSQL packages; from the repository):
#   SCALE=4 DUR=30 RUNS=1 CLIENTS="8 32" bash bench/pgbench-cluster.sh
# Each system is driven by three pgbench processes at once (the clients split over them;
# for Tessera one per node, for PostgreSQL all three on its one server), each logging every
# transaction, so the TPS is their sum and p50/p99 come from all transactions. Serialization
# failures are retried by pgbench (--max-tries); retries and failures are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${SCALE:-4}
DUR=${DUR:-30}
RUNS=${RUNS:-1}
CLIENTS=${CLIENTS:-"8 32"}
TRIES=${TRIES:-50}
RANGES=${RANGES:-8}
PG_PORT=${PG_PORT:-55462}
DIR=${DIR:-/tmp/tessera-pgbench-cluster.$$}

if ! ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1; then
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/50-no-main.conf
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { runuser -u postgres -- "$@"; }

cargo build --release --locked -q -p tessera-cli
T=$PWD/target/release/tessera

mkdir -p "$DIR"
chown postgres: "$DIR"
PIDS=()
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -m fast -w stop >/dev/null 2>&1 || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

as_pg "$PGBIN/initdb" -D "$DIR/pg" -U postgres --auth=trust >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -l "$DIR/pg.log" -w \
  -o "-p $PG_PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=1GB -c fsync=on -c synchronous_commit=on" \
  start >/dev/null

join=127.0.0.1:36457,127.0.0.1:36458,127.0.0.1:36459
for i in 1 2 3; do
  TESSERA_LOG=warn "$T" start --store "$DIR/n$i" --listen-addr 127.0.0.1:3645$((6 + i)) \
    --sql-addr 127.0.0.1:3635$((6 + i)) --http-addr 127.0.0.1:3818$i --join $join \
    >"$DIR/log$i" 2>&1 &
  PIDS+=($!)
done
sleep 1
"$T" init --host 127.0.0.1:36457 --replication 3 >/dev/null
replicated() {
  "$T" node status --host 127.0.0.1:36457 | python3 -c '
import json, sys
r = json.load(sys.stdin)["replicas"]
sys.exit(0 if r and all(len(x["voters"]) == 3 for x in r) else 1)'
}
for _ in $(seq 1 120); do replicated && break; sleep 1; done
replicated || { echo "the cluster did not replicate every range in 2 minutes" >&2; exit 1; }

# PostgreSQL: pgbench's own initialization. Tessera: the same tables created with their
# primary keys first, then pgbench loads the data (-I g); pgbench's primary-key step would
# rewrite every account row from its hidden row id in one transaction.
PG=("$PGBIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres)
TS=("$PGBIN/pgbench" -h 127.0.0.1 -p 36357 -U root)
start=$(date +%s.%N)
"${PG[@]}" -i -q -s "$SCALE" postgres >"$DIR/init.pg.log" 2>&1 ||
  { echo "pgbench -i failed on pg"; tail -5 "$DIR/init.pg.log"; exit 1; }
printf '# init pg: scale %s in %.1f s\n' "$SCALE" "$(echo "$(date +%s.%N) - $start" | bc)"
start=$(date +%s.%N)
"$T" sql --url postgresql://root@127.0.0.1:36357/postgres -e "
  CREATE TABLE pgbench_history (tid INT, bid INT, aid INT, delta INT, mtime TIMESTAMP, filler CHAR(22));
  CREATE TABLE pgbench_tellers (tid INT PRIMARY KEY, bid INT, tbalance INT, filler CHAR(84));
  CREATE TABLE pgbench_accounts (aid INT PRIMARY KEY, bid INT, abalance INT, filler CHAR(84));
  CREATE TABLE pgbench_branches (bid INT PRIMARY KEY, bbalance INT, filler CHAR(88));" >/dev/null
"${TS[@]}" -i -q -I g -s "$SCALE" postgres >"$DIR/init.ts.log" 2>&1 ||
  { echo "pgbench -i failed on tessera"; tail -5 "$DIR/init.ts.log"; exit 1; }
printf '# init tessera: scale %s in %.1f s\n' "$SCALE" "$(echo "$(date +%s.%N) - $start" | bc)"

# Split pgbench_accounts into RANGES ranges of equal key spans, then let the cluster
# spread their leaders (it balances leaderships every few seconds).
rows=$((SCALE * 100000))
splits=$(python3 -c "print(', '.join('(%d)' % (1 + i * $rows // $RANGES) for i in range(1, $RANGES)))")
# Retried: the nodes may still be busy applying the load's last commits.
for i in 1 2 3 4 5 6; do
  "$T" sql --url postgresql://root@127.0.0.1:36357/postgres \
    -e "ALTER TABLE pgbench_accounts SPLIT AT VALUES $splits" >/dev/null && break
  [ "$i" -lt 6 ] || exit 1
  echo "# split failed; retrying in 10 s"
  sleep 10
done
sleep 15
for h in 36457 36458 36459; do
  "$T" node status --host 127.0.0.1:$h | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("# node", d["node_id"], "leads", sum(1 for x in d["replicas"] if x["leader"]), "of", len(d["replicas"]), "ranges")'
done
echo "# $("$PGBIN/postgres" --version); tessera $(git rev-parse --short HEAD); scale=$SCALE ($rows accounts in $RANGES ranges) dur=${DUR}s runs=$RUNS nproc=$(nproc)"

# one <sys> <clients>: three pgbench processes with the clients split over them.
one() {
  local sys=$1 c=$2 i port out jobs=()
  rm -f "$DIR"/pgbench_log.* "$DIR"/out.*
  for i in 0 1 2; do
    local n=$(((c + 2 - i) / 3))
    [ "$n" -gt 0 ] || continue
    if [ "$sys" = pg ]; then
      port=$PG_PORT
      set -- "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres
    else
      port=$((36357 + i))
      set -- "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U root
    fi
    # -n: no VACUUM / TRUNCATE of pgbench_history by each of the three processes at
    # once (on Tessera a TRUNCATE is a DDL, and three at once stall each other's start).
    (cd "$DIR" && timeout $((DUR + 120)) "$@" -n -c "$n" -j 1 -T "$DUR" --max-tries="$TRIES" \
      -l --log-prefix="pgbench_log.$i" postgres >"$DIR/out.$i" 2>&1) &
    jobs+=($!)
  done
  wait "${jobs[@]}" || true
  python3 - "$DIR" "$sys" "$c" "$DUR" <<'EOF'
import glob, re, sys
d, sys_, c, dur = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
lat, tps, retried, failed = [], 0.0, 0, 0
for f in glob.glob(d + "/out.*"):
    t = open(f).read()
    m = re.search(r"^tps = ([\d.]+)", t, re.M)
    if not m:
        print(f"  {sys_} c={c}: pgbench failed:\n" + t[-600:]); sys.exit(0)
    tps += float(m.group(1))
    m = re.search(r"number of transactions retried: (\d+)", t); retried += int(m.group(1)) if m else 0
    m = re.search(r"number of failed transactions: (\d+)", t); failed += int(m.group(1)) if m else 0
for f in glob.glob(d + "/pgbench_log.*"):
    for line in open(f):
        p = line.split()
        if len(p) > 2 and p[2].isdigit():
            lat.append(int(p[2]) / 1000.0)
lat.sort()
q = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))] if lat else float("nan")
print(f"  {sys_} c={c} tps={tps:.0f} p50_ms={q(0.5):.2f} p99_ms={q(0.99):.2f} txns={len(lat)} retried={retried} failed={failed}")
with open(f"{d}/res.{c}.{sys_}", "a") as out:
    out.write(f"{tps:.1f} {q(0.5):.3f} {q(0.99):.3f} {retried} {failed}\n")
EOF
}

for r in $(seq "$RUNS"); do
  echo "# run $r"
  for c in $CLIENTS; do
    for sys in pg ts; do one $sys "$c"; done
  done
done

echo
echo "== pgbench TPC-B-like, scale $SCALE: Tessera 3 nodes (replication 3) vs PostgreSQL 1 node; median of $RUNS runs of ${DUR}s"
printf '| %7s | %7s | %9s | %9s | %11s | %8s | %8s | %9s | %6s |\n' clients "PG tps" "PG p50" "PG p99" "Tessera tps" "T p50" "T p99" "T retried" ratio
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ---------: ---------: ----------: ----------: ------------: ---------: ---------: ----------: -------:
for c in $CLIENTS; do
  python3 - "$DIR" "$c" <<'EOF'
import statistics, sys
d, c = sys.argv[1], sys.argv[2]
def rows(s):
    try: return [list(map(float, l.split())) for l in open(f"{d}/res.{c}.{s}")]
    except FileNotFoundError: return []
def med(rs, i): return statistics.median(r[i] for r in rs) if rs else float("nan")
p, t = rows("pg"), rows("ts")
ratio = med(t, 0) / med(p, 0) if p and t and med(p, 0) else float("nan")
print(f"| {c:>7} | {med(p,0):7.0f} | {med(p,1):9.2f} | {med(p,2):9.2f} | {med(t,0):11.0f} | {med(t,1):8.2f} | {med(t,2):8.2f} | {med(t,3):9.0f} | {ratio:6.2f} |")
EOF
done
