"""Create the quickstart's SQLite source: the seed's customers and their sales,
with consistent keys (every sale's cust_id is a customer)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

CUSTOMERS = [("100", "abc", "chicago"), ("101", "xyz", "dallas"), ("102", "yrt", "new york")]
SALES = [
    ("100", "100", "200.00"),
    ("101", "100", "300.00"),
    ("102", "101", "25.00"),
    ("103", "101", "35.00"),
    ("104", "102", "80.00"),
    ("105", "102", "45.00"),
]


def main(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "CREATE TABLE customer (cust_id VARCHAR(10) PRIMARY KEY, cust_name VARCHAR(100) NOT NULL, "
            "cust_city VARCHAR(50))"
        )
        conn.execute(
            "CREATE TABLE fact_sales_stg (order_number VARCHAR(20) PRIMARY KEY, "
            "cust_id VARCHAR(10) NOT NULL REFERENCES customer (cust_id), order_amt NUMERIC(18,2))"
        )
        conn.executemany("INSERT INTO customer VALUES (?, ?, ?)", CUSTOMERS)
        conn.executemany("INSERT INTO fact_sales_stg VALUES (?, ?, ?)", SALES)
    conn.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
