#!/usr/bin/env bash
# pgbench against Tessera and PostgreSQL 15 in the same run, interleaved so that machine
# noise falls on both alike: select-only (-S) and TPC-B-like at 1, 8 and 32 clients, and
# select-only -M prepared at 8 clients. fsync on in both (Tessera always fsyncs before it
# acknowledges a commit; PostgreSQL runs with fsync=on, synchronous_commit=on).
#
# Usage (as root, from the repository): bash bench/pgbench.sh
#   SCALE=10 DUR=30 RUNS=3 CLIENTS="1 8 32" TRIES=20 bash bench/pgbench.sh
# TPC-B-like transactions that hit a serialization conflict are retried by pgbench
# (--max-tries, pgbench 15) on both systems; the retries are printed per run.
# Prints a table of medians and ratios at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${SCALE:-10}
DUR=${DUR:-30}
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-"1 8 32"}
TRIES=${TRIES:-20}
PG_PORT=${PG_PORT:-55452}
TS_PORT=${TS_PORT:-26400}
DIR=${DIR:-/tmp/tessera-pgbench.$$}

if ! ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1; then
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/50-no-main.conf
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
median() { sort -g | awk '{a[NR]=$1} END{if(NR==0){print "NA"} else if(NR%2){print a[(NR+1)/2]} else {printf "%.6g\n",(a[NR/2]+a[NR/2+1])/2}}'; }
as_pg() { runuser -u postgres -- "$@"; }

cargo build --release --bin tessera >/dev/null
TESSERA=$PWD/target/release/tessera

mkdir -p "$DIR"
chown postgres: "$DIR"
TSPID=""
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -m fast -w stop >/dev/null 2>&1 || true
  if [ -n "$TSPID" ]; then kill "$TSPID" 2>/dev/null && wait "$TSPID" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

as_pg "$PGBIN/initdb" -D "$DIR/pg" -U postgres --auth=trust >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -l "$DIR/pg.log" -w \
  -o "-p $PG_PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=100 -c shared_buffers=1GB -c fsync=on -c synchronous_commit=on" \
  start >/dev/null
"$TESSERA" start-single-node --store "$DIR/tessera" --listen-addr "127.0.0.1:$TS_PORT" \
  --http-addr 127.0.0.1:0 >"$DIR/tessera.log" 2>&1 &
TSPID=$!
for _ in $(seq 100); do
  grep -q 'sql:' "$DIR/tessera.log" && break
  sleep 0.1
done

PG=("$PGBIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres)
TS=("$PGBIN/pgbench" -h 127.0.0.1 -p "$TS_PORT" -U root)
for sys in pg ts; do
  declare -n cmd=${sys^^}
  start=$(date +%s.%N)
  "${cmd[@]}" -i -q -s "$SCALE" postgres >"$DIR/init.$sys.log" 2>&1 ||
    { echo "pgbench -i failed on $sys"; tail -5 "$DIR/init.$sys.log"; exit 1; }
  printf '# init %s: scale %s in %.1f s\n' "$sys" "$SCALE" "$(echo "$(date +%s.%N) - $start" | bc)"
done
echo "# $("$PGBIN/postgres" --version); tessera $(git rev-parse --short HEAD); scale=$SCALE dur=${DUR}s runs=$RUNS nproc=$(nproc)"

one() { # one <sys> <label> <clients> [pgbench args...]
  local sys=$1 label=$2 c=$3
  shift 3
  declare -n cmd=${sys^^}
  local j=$((c < 2 ? c : 2)) out tps lat retried failed
  out=$(timeout $((DUR + 120)) "${cmd[@]}" -c "$c" -j "$j" -T "$DUR" "$@" postgres 2>&1) ||
    { echo "  pgbench failed: $sys $label c=$c"; echo "$out" | tail -3; return 0; }
  tps=$(echo "$out" | awk '/^tps = /{print $3; exit}')
  lat=$(echo "$out" | awk '/^latency average = /{print $4; exit}')
  retried=$(echo "$out" | awk '/^number of transactions retried:/{print $5; exit}')
  failed=$(echo "$out" | awk '/^number of failed transactions:/{print $5; exit}')
  echo "$tps $lat" >>"$DIR/res.$label.$c.$sys"
  echo "  $sys $label c=$c tps=$tps lat_ms=$lat retried=${retried:-0} failed=${failed:-0}"
}

for r in $(seq "$RUNS"); do
  echo "# run $r"
  for c in $CLIENTS; do
    for sys in pg ts; do one $sys select-only "$c" -S; done
    for sys in pg ts; do one $sys tpcb "$c" --max-tries="$TRIES"; done
  done
  for sys in pg ts; do one $sys select-only-prepared 8 -S -M prepared; done
done

echo
echo "== pgbench, scale $SCALE: median of $RUNS runs of ${DUR}s (TPS excludes connection time)"
printf '| %-22s | %7s | %12s | %10s | %12s | %10s | %6s |\n' workload clients "PG tps" "PG lat ms" "Tessera tps" "T lat ms" ratio
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ------------------------ ---------: -------------: ------------: -------------: ------------: -------:
for f in "$DIR"/res.*.pg; do
  b=${f##*/res.}; b=${b%.pg}; label=${b%.*}; c=${b##*.}
  t="$DIR/res.$label.$c.ts"
  ptps=$(awk '{print $1}' "$f" | median | xargs printf '%.0f'); plat=$(awk '{print $2}' "$f" | median)
  ttps=NA; tlat=NA
  if [ -f "$t" ]; then ttps=$(awk '{print $1}' "$t" | median | xargs printf '%.0f'); tlat=$(awk '{print $2}' "$t" | median); fi
  ratio=$(awk -v a="$ttps" -v b="$ptps" 'BEGIN{ if (a == "NA" || b == 0) print "NA"; else printf "%.2f", a / b }')
  printf '| %-22s | %7s | %12s | %10s | %12s | %10s | %6s |\n' "$label" "$c" "$ptps" "$plat" "$ttps" "$tlat" "$ratio"
done | sort -t'|' -k2,2 -k3,3n
