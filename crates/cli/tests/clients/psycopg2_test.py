"""psycopg2 against Tessera: client-side parameters over the simple protocol, types,
transactions, COPY, errors. Usage: python3 psycopg2_test.py URL"""
import datetime
import decimal
import io
import sys

import psycopg2
import psycopg2.errors
import psycopg2.extras

url = sys.argv[1]
conn = psycopg2.connect(url)
conn.autocommit = True
cur = conn.cursor()
cur.execute("DROP TABLE IF EXISTS py2_items")
cur.execute(
    "CREATE TABLE py2_items (id INT PRIMARY KEY, name VARCHAR(50), price NUMERIC(8, 3), "
    "born DATE, seen TIMESTAMP, flags BOOL[], note TEXT)"
)
rows = [
    (i, f"item {i}", decimal.Decimal(i) / 8, datetime.date(2026, 1, 1) + datetime.timedelta(days=i),
     datetime.datetime(2026, 1, 1, 0, 0, i), [True, i % 2 == 0], None if i % 3 else "o'clock")
    for i in range(1, 21)
]
psycopg2.extras.execute_values(cur, "INSERT INTO py2_items VALUES %s", rows)
cur.execute("SELECT * FROM py2_items ORDER BY id")
got = cur.fetchall()
assert got == rows, (got[:2], rows[:2])
cur.execute("SELECT count(*), sum(price), max(born) FROM py2_items WHERE name LIKE %s", ("item 1%",))
assert cur.fetchone() == (11, decimal.Decimal("18.250"), datetime.date(2026, 1, 20))

dict_cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
dict_cur.execute("SELECT id, name FROM py2_items WHERE id = %(id)s", {"id": 3})
assert dict_cur.fetchone() == {"id": 3, "name": "item 3"}

buf = io.StringIO("100\tcopied\t1.5\t2026-05-01\t2026-05-01 10:00:00\t{t,f}\t\\N\n")
cur.copy_expert("COPY py2_items FROM STDIN", buf)
out = io.StringIO()
cur.copy_expert("COPY (SELECT id, name FROM py2_items WHERE id = 100) TO STDOUT WITH CSV", out)
assert out.getvalue() == "100,copied\n", out.getvalue()

try:
    cur.execute("INSERT INTO py2_items (id) VALUES (1)")
    raise AssertionError("duplicate accepted")
except psycopg2.errors.UniqueViolation as e:
    assert e.pgcode == "23505"
try:
    cur.execute("INSERT INTO py2_items (id, name) VALUES (500, %s)", ("x" * 60,))
    raise AssertionError("overlong value accepted")
except psycopg2.errors.StringDataRightTruncation:
    pass

conn.autocommit = False
cur.execute("UPDATE py2_items SET note = 'txn' WHERE id = 1")
conn.rollback()
cur.execute("SELECT note FROM py2_items WHERE id = 1")
assert cur.fetchone() == (None,)
cur.execute("UPDATE py2_items SET note = 'txn' WHERE id = 1")
conn.commit()
cur.execute("SELECT note FROM py2_items WHERE id = 1")
assert cur.fetchone() == ("txn",)
try:
    cur.execute("SELECT * FROM missing")
except psycopg2.errors.UndefinedTable:
    pass
try:
    cur.execute("SELECT 1")
    raise AssertionError("statement ran in a failed transaction")
except psycopg2.errors.InFailedSqlTransaction:
    pass
conn.rollback()
conn.close()
print("psycopg2: ok")
