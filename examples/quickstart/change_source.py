"""The quickstart's change-capture step: with `shop-sync` running, insert a
customer, update a sale and delete another on the SQLite source, then wait
(bounded) until the task reports them applied."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

DEADLINE_S = 60.0


def describe(conveyor: str) -> dict[str, object]:
    result = subprocess.run(
        [conveyor, "tasks", "describe", "shop-sync", "--json"], capture_output=True, text=True, check=True
    )
    described: dict[str, object] = json.loads(result.stdout)
    return described


def wait_for(conveyor: str, what: str, ready: object) -> dict[str, object]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        described = describe(conveyor)
        if described.get("status") == "failed":
            sys.exit(f"shop-sync failed: {described.get('last_error')}")
        if callable(ready) and ready(described):
            return described
        time.sleep(0.5)
    sys.exit(f"shop-sync: no {what} within {DEADLINE_S:.0f} s")


def applied(described: dict[str, object]) -> int:
    tables = described.get("tables") or []
    assert isinstance(tables, list)
    return sum(int(t.get("AppliedChanges") or 0) for t in tables)


def main(conveyor: str, source: Path) -> None:
    wait_for(conveyor, "capture", lambda d: d.get("capture") is not None)
    conn = sqlite3.connect(source)
    with conn:
        conn.execute("INSERT INTO customer VALUES ('103', 'new customer', 'boston')")
        conn.execute("UPDATE fact_sales_stg SET order_amt = 999.99 WHERE order_number = '100'")
        conn.execute("DELETE FROM fact_sales_stg WHERE order_number = '105'")
    conn.close()
    print("inserted customer 103, updated sale 100, deleted sale 105 on the SQLite source")
    wait_for(conveyor, "changes applied", lambda d: applied(d) >= 3)
    print("the three changes are applied to the warehouse")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
