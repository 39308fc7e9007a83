"""asyncpg against Tessera: the binary extended protocol end to end, prepared statements,
executemany, copy_records_to_table, transactions, errors. Usage: python3 asyncpg_test.py URL"""
import asyncio
import datetime
import decimal
import sys
import uuid

import asyncpg


async def main(url):
    conn = await asyncpg.connect(url)
    await conn.execute("DROP TABLE IF EXISTS apg_events")
    await conn.execute(
        """CREATE TABLE apg_events (
            id INT PRIMARY KEY, kind TEXT, amount NUMERIC(12, 4), score FLOAT4, big INT8,
            at TIMESTAMPTZ, day DATE, t TIME, span INTERVAL, ref UUID, ok BOOL, ids INT[], blob BYTEA)"""
    )
    row = (
        1, "click", decimal.Decimal("12.3456"), 1.5, 2**40,
        datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.timezone.utc), datetime.date(2026, 11, 30),
        datetime.time(8, 15, 30), datetime.timedelta(days=1, seconds=5), uuid.uuid4(), True, [1, 2, 3], b"\x01\x02",
    )
    await conn.execute("INSERT INTO apg_events VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)", *row)
    got = await conn.fetchrow("SELECT * FROM apg_events WHERE id = $1", 1)
    assert tuple(got.values()) == row, (tuple(got.values()), row)

    stmt = await conn.prepare("SELECT kind, amount FROM apg_events WHERE id = $1")
    assert (await stmt.fetchrow(1))["kind"] == "click"
    assert await stmt.fetchrow(999) is None

    await conn.executemany(
        "INSERT INTO apg_events (id, kind, amount) VALUES ($1, $2, $3)",
        [(i, f"k{i % 3}", decimal.Decimal(i)) for i in range(2, 102)],
    )
    rows = await conn.fetch("SELECT kind, count(*), sum(amount) FROM apg_events WHERE id >= 2 GROUP BY kind ORDER BY kind")
    assert [tuple(r) for r in rows] == [
        ("k0", 33, decimal.Decimal("1683")), ("k1", 33, decimal.Decimal("1716")), ("k2", 34, decimal.Decimal("1751"))
    ], rows

    await conn.copy_records_to_table("apg_events", records=[(200, "copied", decimal.Decimal("0.5"))], columns=["id", "kind", "amount"])
    assert await conn.fetchval("SELECT kind FROM apg_events WHERE id = 200") == "copied"

    async with conn.transaction():
        await conn.execute("UPDATE apg_events SET kind = 'in txn' WHERE id = 2")
    try:
        async with conn.transaction():
            await conn.execute("UPDATE apg_events SET kind = 'rolled back' WHERE id = 3")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert await conn.fetchval("SELECT kind FROM apg_events WHERE id = 3") == "k0"
    assert await conn.fetchval("SELECT kind FROM apg_events WHERE id = 2") == "in txn"

    try:
        await conn.execute("INSERT INTO apg_events (id) VALUES (1)")
        raise AssertionError("duplicate accepted")
    except asyncpg.UniqueViolationError:
        pass
    try:
        await conn.fetch("SELECT $1::int / 0", 1)
        raise AssertionError("division by zero accepted")
    except asyncpg.DivisionByZeroError:
        pass

    # A cursor over a larger result, fetched in pages (portal suspension).
    async with conn.transaction():
        seen = 0
        async for r in conn.cursor("SELECT id FROM apg_events ORDER BY id", prefetch=7):
            seen += 1
        assert seen == 102, seen
    await conn.close()
    print("asyncpg: ok")


asyncio.run(main(sys.argv[1]))
