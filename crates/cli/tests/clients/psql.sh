#!/usr/bin/env bash
# psql against Tessera: DDL and DML, then the \d family of meta commands, checking output.
# Usage: psql.sh HOST PORT
set -euo pipefail
HOST=$1 PORT=$2
P=(psql -X -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U root postgres)
fail() { echo "FAIL: $*"; exit 1; }
expect() {  # expect <what> <pattern> <output>
  grep -qE -- "$2" <<<"$3" || { echo "$3"; fail "$1: no match for /$2/"; }
}

"${P[@]}" -q <<'SQL'
DROP TABLE IF EXISTS psql_orders, psql_customers;
DROP VIEW IF EXISTS psql_big_orders;
CREATE TABLE psql_customers (id INT PRIMARY KEY, name TEXT NOT NULL, email VARCHAR(100) UNIQUE);
CREATE TABLE psql_orders (
  id SERIAL PRIMARY KEY,
  customer_id INT NOT NULL REFERENCES psql_customers (id),
  amount NUMERIC(10, 2) CHECK (amount > 0),
  placed DATE DEFAULT '2026-01-01'
);
CREATE INDEX psql_orders_customer ON psql_orders (customer_id);
CREATE VIEW psql_big_orders AS SELECT * FROM psql_orders WHERE amount > 100;
INSERT INTO psql_customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', NULL);
INSERT INTO psql_orders (customer_id, amount) VALUES (1, 50), (1, 150.5), (2, 12.25);
SQL

out=$("${P[@]}" -c 'SELECT name, sum(amount) AS total FROM psql_customers c JOIN psql_orders o ON o.customer_id = c.id GROUP BY name ORDER BY name')
expect "join+aggregate" "Ada +\\| +200\\.50" "$out"
expect "join+aggregate" "Grace +\\| +12\\.25" "$out"
expect "row count" "\\(2 rows\\)" "$out"

out=$("${P[@]}" -c '\dt')
expect "\\dt" "public \\| psql_customers \\| table" "$out"
expect "\\dt" "public \\| psql_orders +\\| table" "$out"

out=$("${P[@]}" -c '\d psql_orders')
expect "\\d table title" 'Table "public.psql_orders"' "$out"
expect "\\d serial default" "id +\\| integer +\\| +\\| not null \\| nextval\\('psql_orders_id_seq'::regclass\\)" "$out"
expect "\\d numeric" "amount +\\| numeric\\(10,2\\)" "$out"
expect "\\d pk" '"psql_orders_pkey" PRIMARY KEY, btree \(id\)' "$out"
expect "\\d index" '"psql_orders_customer" btree \(customer_id\)' "$out"
expect "\\d check" 'CHECK \(+amount > ' "$out"
expect "\\d fk" 'FOREIGN KEY \(customer_id\) REFERENCES psql_customers\(id\)' "$out"

out=$("${P[@]}" -c '\d psql_customers')
expect "\\d unique" '"psql_customers_email_key" UNIQUE CONSTRAINT, btree \(email\)' "$out"
expect "\\d referenced by" 'TABLE "psql_orders" CONSTRAINT' "$out"

out=$("${P[@]}" -c '\d')
expect "\\d view" "psql_big_orders +\\| view" "$out"
expect "\\d sequence" "psql_orders_id_seq +\\| sequence" "$out"

out=$("${P[@]}" -c '\di')
expect "\\di" "psql_orders_customer +\\| index" "$out"

out=$("${P[@]}" -c '\l')
expect "\\l" "postgres +\\|" "$out"

out=$("${P[@]}" -c '\dn')
expect "\\dn" "public" "$out"

out=$("${P[@]}" -c '\du')
expect "\\du" "root" "$out"

out=$("${P[@]}" -c '\d psql_big_orders')
expect "\\d view" 'View "public.psql_big_orders"' "$out"

# Errors come back with the SQLSTATE and psql's caret position.
out=$("${P[@]}" -v VERBOSITY=verbose -c 'SELECT * FROM nope' 2>&1 || true)
expect "undefined table" "ERROR: +42P01" "$out"
out=$("${P[@]}" -c 'SELEC 1' 2>&1 || true)
expect "syntax error position" "LINE 1: SELEC 1" "$out"
out=$("${P[@]}" -v VERBOSITY=verbose -c "INSERT INTO psql_orders (customer_id, amount) VALUES (99, 1)" 2>&1 || true)
expect "foreign key violation" "ERROR: +23503" "$out"

# COPY in and out through psql.
printf '10\tLinus\tl@example.com\n11\tBarbara\t\\N\n' | "${P[@]}" -c '\copy psql_customers FROM STDIN'
out=$("${P[@]}" -c '\copy (SELECT id, name FROM psql_customers ORDER BY id) TO STDOUT WITH CSV HEADER')
expect "copy out header" "^id,name" "$out"
expect "copy out row" "^11,Barbara" "$out"
echo "psql: ok"
