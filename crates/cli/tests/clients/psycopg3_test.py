"""psycopg 3 against Tessera: parameters (text and binary), types, transactions, COPY,
prepared statements, errors. Usage: python3 psycopg3_test.py URL"""
import datetime
import decimal
import sys
import uuid

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

url = sys.argv[1]
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute("DROP TABLE IF EXISTS py3_items")
    conn.execute(
        """CREATE TABLE py3_items (
            id BIGINT PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(10, 2), ratio FLOAT8,
            active BOOL, born DATE, seen TIMESTAMPTZ, wait INTERVAL, tag UUID, doc JSONB,
            tags TEXT[], raw BYTEA, small SMALLINT, at TIMESTAMP)"""
    )
    row = (
        1, "widget", decimal.Decimal("19.99"), 0.25, True, datetime.date(2026, 11, 30),
        datetime.datetime(2026, 11, 30, 12, 30, 5, 123456, tzinfo=datetime.timezone.utc),
        datetime.timedelta(days=2, hours=3), uuid.UUID("12345678-1234-5678-1234-567812345678"),
        Jsonb({"a": 1, "b": [1, 2]}), ["x", "y", None], b"\x00\xffab", 7,
        datetime.datetime(2026, 1, 2, 3, 4, 5),
    )
    placeholders = ", ".join(["%s"] * len(row))
    conn.execute(f"INSERT INTO py3_items VALUES ({placeholders})", row)
    # The same row with binary parameters.
    with conn.cursor(binary=True) as cur:
        cur.execute(f"INSERT INTO py3_items VALUES ({placeholders})", (2,) + row[1:])
    for binary in (False, True):
        with conn.cursor(binary=binary) as cur:
            cur.execute("SELECT * FROM py3_items ORDER BY id")
            rows = cur.fetchall()
            assert len(rows) == 2, rows
            for r in rows:
                got = (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13])
                want = (r[0],) + row[1:9] + ({"a": 1, "b": [1, 2]},) + row[10:]
                assert got == want, f"binary={binary}\n got {got}\nwant {want}"

    # Parameters in WHERE, NULL parameters, and a prepared statement reused.
    cur = conn.execute("SELECT name FROM py3_items WHERE id = %s AND price > %s", (1, decimal.Decimal("1")))
    assert cur.fetchone() == ("widget",)
    cur = conn.execute("SELECT %s::int IS NULL, %s::text", (None, "it's"))
    assert cur.fetchone() == (True, "it's")
    for i in range(10):
        cur = conn.execute("SELECT %s::int + 1", (i,), prepare=True)
        assert cur.fetchone() == (i + 1,)

    # executemany and rowcount.
    conn.execute("DROP TABLE IF EXISTS py3_kv")
    conn.execute("CREATE TABLE py3_kv (k INT PRIMARY KEY, v TEXT)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO py3_kv VALUES (%s, %s)", [(i, f"v{i}") for i in range(100)])
        cur.execute("UPDATE py3_kv SET v = v || '!' WHERE k < 10")
        assert cur.rowcount == 10, cur.rowcount

    # COPY in and out.
    with conn.cursor() as cur:
        with cur.copy("COPY py3_kv (k, v) FROM STDIN") as copy:
            for i in range(100, 150):
                copy.write_row((i, f"copied {i}"))
        cur.execute("SELECT count(*) FROM py3_kv")
        assert cur.fetchone() == (150,)
        out = []
        with cur.copy("COPY (SELECT k, v FROM py3_kv WHERE k >= 148 ORDER BY k) TO STDOUT") as copy:
            for r in copy.rows():
                out.append(r)
        assert out == [("148", "copied 148"), ("149", "copied 149")], out

    # Errors map to the right exception classes.
    try:
        conn.execute("INSERT INTO py3_kv VALUES (1, 'dup')")
        raise AssertionError("duplicate accepted")
    except errors.UniqueViolation as e:
        assert e.sqlstate == "23505"
    try:
        conn.execute("SELECT 1 / 0")
        raise AssertionError("division by zero accepted")
    except errors.DivisionByZero:
        pass
    try:
        conn.execute("SELECT * FROM no_such_table")
        raise AssertionError("unknown table accepted")
    except errors.UndefinedTable:
        pass

# Transactions: commit, rollback, failed transaction, savepoints.
with psycopg.connect(url) as conn:
    with conn.transaction():
        conn.execute("INSERT INTO py3_kv VALUES (1000, 'committed')")
    try:
        with conn.transaction():
            conn.execute("INSERT INTO py3_kv VALUES (1001, 'rolled back')")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    with conn.transaction():
        conn.execute("INSERT INTO py3_kv VALUES (1002, 'outer')")
        try:
            with conn.transaction():  # a savepoint
                conn.execute("INSERT INTO py3_kv VALUES (1002, 'duplicate')")
        except errors.UniqueViolation:
            pass
        conn.execute("INSERT INTO py3_kv VALUES (1003, 'after savepoint')")
    cur = conn.execute("SELECT k FROM py3_kv WHERE k >= 1000 ORDER BY k")
    assert [r[0] for r in cur.fetchall()] == [1000, 1002, 1003]
    conn.commit()
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
print("psycopg3: ok")
