#!/usr/bin/env python3
"""Checks sqllogictest files against a PostgreSQL server (the reference for Tessera's own
SQL tests), or fills in their expected results from it.

    python3 tools/slt_pg.py --url postgresql://postgres@127.0.0.1:55432/postgres FILE...
    python3 tools/slt_pg.py --url ... --complete FILE   # rewrite expected results from PostgreSQL

Each file runs in a fresh database. Values are compared as PostgreSQL's text output, with
NULL shown as NULL and the empty string as (empty), as the Rust harness does. Supported
records: statement ok|error [regex], statement count N, query <types> [nosort|rowsort|valuesort],
halt, skipif/onlyif <label>, connection <name>, and comments. The label "postgresql" applies.
"""

import argparse
import re
import sys
import uuid

import psycopg
from psycopg.adapt import Loader


class TextLoader(Loader):
    def load(self, data):
        return bytes(data).decode("utf-8")


def connect(url):
    conn = psycopg.connect(url, autocommit=True)
    # Every value comes back as PostgreSQL's own text.
    for oid in range(0, 5000):
        conn.adapters.register_loader(oid, TextLoader)
    return conn


def cell(v):
    if v is None:
        return "NULL"
    if v == "":
        return "(empty)"
    return v


def parse(text):
    """Yields records as dicts with their line numbers."""
    lines = text.split("\n")
    i = 0
    conditions = []
    connection = None
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        words = stripped.split()
        if words[0] in ("skipif", "onlyif"):
            conditions.append((words[0], words[1]))
            i += 1
            continue
        if words[0] == "connection":
            connection = words[1]
            i += 1
            continue
        if words[0] == "halt":
            yield {"kind": "halt", "line": i + 1}
            return
        if words[0] in ("hash-threshold", "control", "sleep", "include", "subtest"):
            i += 1
            continue
        start = i
        header = words
        i += 1
        sql_lines = []
        while i < len(lines) and lines[i].strip() != "" and lines[i].strip() != "----":
            sql_lines.append(lines[i])
            i += 1
        expected = None
        if i < len(lines) and lines[i].strip() == "----":
            i += 1
            expected = []
            while i < len(lines) and lines[i].strip() != "":
                expected.append(lines[i])
                i += 1
        yield {
            "kind": header[0],
            "header": header,
            "sql": "\n".join(sql_lines),
            "expected": expected,
            "line": start + 1,
            "conditions": conditions,
            "connection": connection,
            "end": i,
        }
        conditions = []
        connection = None


def applies(conditions):
    for kind, label in conditions:
        if kind == "skipif" and label == "postgresql":
            return False
        if kind == "onlyif" and label != "postgresql":
            return False
    return True


def run_file(url, path, complete):
    text = open(path).read()
    dbname = "slt_" + uuid.uuid4().hex[:12]
    admin = psycopg.connect(url, autocommit=True)
    admin.execute(f"CREATE DATABASE {dbname}")
    base = url.rsplit("/", 1)[0] + "/" + dbname
    conns = {}
    failures = []
    replacements = []
    try:
        for rec in parse(text):
            if rec["kind"] == "halt":
                break
            if not applies(rec["conditions"]):
                continue
            name = rec["connection"] or "default"
            if name not in conns:
                conns[name] = connect(base)
            conn = conns[name]
            header = rec["header"]
            sql = rec["sql"]
            where = f"{path}:{rec['line']}"
            try:
                cur = conn.execute(sql)
                rows = cur.fetchall() if cur.description else None
                err = None
            except psycopg.Error as e:
                rows, err = None, e
            if rec["kind"] == "statement":
                mode = header[1] if len(header) > 1 else "ok"
                if mode == "ok" and err:
                    failures.append(f"{where}: statement failed: {err}")
                elif mode == "error":
                    pattern = " ".join(header[2:])
                    if not err:
                        failures.append(f"{where}: statement succeeded, expected an error")
                    elif pattern:
                        m = re.match(r"^\(([0-9A-Z]{5})\)$", pattern)
                        if m:
                            if err.sqlstate != m.group(1):
                                failures.append(f"{where}: SQLSTATE {err.sqlstate}, expected {m.group(1)}: {err}")
                        elif not re.search(pattern, str(err)):
                            failures.append(f"{where}: error {err!s} does not match {pattern}")
                elif mode == "count" and not err:
                    if cur.rowcount != int(header[2]):
                        failures.append(f"{where}: count {cur.rowcount}, expected {header[2]}")
                continue
            if rec["kind"] == "query":
                if len(header) > 1 and header[1] == "error":
                    if not err:
                        failures.append(f"{where}: query succeeded, expected an error")
                    continue
                if err:
                    failures.append(f"{where}: query failed: {err}")
                    continue
                sort = header[2] if len(header) > 2 else "nosort"
                out = [[cell(v) for v in r] for r in (rows or [])]
                if sort == "rowsort":
                    out.sort()
                    actual = [" ".join(r) for r in out]
                elif sort == "valuesort":
                    actual = sorted(v for r in out for v in r)
                else:
                    actual = [" ".join(r) for r in out]
                expected = [" ".join(l.split()) for l in (rec["expected"] or [])]
                norm = [" ".join(a.split()) for a in actual]
                if complete:
                    replacements.append((rec, actual))
                elif norm != expected:
                    failures.append(f"{where}: result mismatch\n  expected: {expected}\n  actual:   {norm}\n  sql: {sql}")
    finally:
        for c in conns.values():
            c.close()
        admin.execute(f"DROP DATABASE {dbname} WITH (FORCE)")
        admin.close()
    if complete and replacements:
        lines = text.split("\n")
        # Rewrite from the bottom so earlier line numbers stay valid.
        for rec, actual in reversed(replacements):
            start = rec["line"] - 1
            j = start + 1
            while j < len(lines) and lines[j].strip() != "" and lines[j].strip() != "----":
                j += 1
            end = rec["end"]
            lines[j:end] = ["----"] + actual
        open(path, "w").write("\n".join(lines))
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:55432/postgres")
    ap.add_argument("--complete", action="store_true", help="rewrite expected query results from PostgreSQL")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    total = 0
    for f in args.files:
        failures = run_file(args.url, f, args.complete)
        total += len(failures)
        for x in failures:
            print(x)
        print(f"{f}: {'ok' if not failures else str(len(failures)) + ' failures'}")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
