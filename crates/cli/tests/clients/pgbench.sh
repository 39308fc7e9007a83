#!/usr/bin/env bash
# pgbench against Tessera: initialise scale 1, then run the TPC-B-like script with the
# simple, extended and prepared protocols, and check the balances add up.
# Usage: pgbench.sh HOST PORT
set -euo pipefail
HOST=$1 PORT=$2
B=(pgbench -h "$HOST" -p "$PORT" -U root)
P=(psql -X -At -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U root postgres)
"${B[@]}" -i -s 1 postgres
[ "$("${P[@]}" -c 'SELECT count(*) FROM pgbench_accounts')" = 100000 ] || { echo "FAIL: pgbench_accounts rows"; exit 1; }
for mode in simple extended prepared; do
  out=$("${B[@]}" -n -M "$mode" -c 4 -j 2 -t 50 postgres 2>&1) || { echo "$out"; echo "FAIL: pgbench -M $mode"; exit 1; }
  echo "$out" | grep -E "^(number of (transactions actually processed|failed)|tps)"
  echo "$out" | grep -q "number of transactions actually processed: 200/200" || { echo "$out"; echo "FAIL: -M $mode did not process 200 transactions"; exit 1; }
done
# (-n: no vacuum, which would also truncate pgbench_history.)
# Every transaction adds the same delta to one account, its teller and its branch, and
# logs it: the three sums and the history sum must agree.
sums=$("${P[@]}" -c "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT sum(tbalance) FROM pgbench_tellers) || ' ' || (SELECT sum(bbalance) FROM pgbench_branches) || ' ' || (SELECT sum(delta) FROM pgbench_history)")
read -r a t b h <<<"$sums"
[ "$a" = "$t" ] && [ "$t" = "$b" ] && [ "$b" = "$h" ] || { echo "FAIL: balances disagree: $sums"; exit 1; }
[ "$("${P[@]}" -c 'SELECT count(*) FROM pgbench_history')" = 600 ] || { echo "FAIL: history rows"; exit 1; }
"${B[@]}" -S -M prepared -c 2 -t 200 postgres | grep -E "^tps"
echo "pgbench: ok (balances $sums)"
