#!/usr/bin/env bash
# The quickstart as `make demo` runs it: the seed's customer and sales tables,
# from an SQLite file into the embedded DuckDB warehouse.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../../.venv/bin"
export CONVEYOR_HOME="$here/.conveyor"
rm -rf "$CONVEYOR_HOME" "$here/data"

echo "== Creating the SQLite source"
"$venv/python" "$here/make_source.py" "$here/data/shop.sqlite"

echo "== conveyor apply"
"$venv/conveyor" apply "$here/conveyor.yaml"

echo "== conveyor tasks start shop-full-load --wait"
"$venv/conveyor" tasks start shop-full-load --wait

echo "== conveyor validate shop-full-load"
"$venv/conveyor" validate shop-full-load

echo "== conveyor events list"
"$venv/conveyor" events list

echo "== A query over the loaded tables (DuckDB)"
"$venv/python" - "$here/data/warehouse.duckdb" <<'PY'
import sys
import duckdb

con = duckdb.connect(sys.argv[1], read_only=True)
print(con.sql(
    "SELECT c.cust_name, c.cust_city, count(*) AS orders, sum(s.order_amt) AS total "
    "FROM dbo.fact_sales_stg s JOIN dbo.customer c USING (cust_id) GROUP BY ALL ORDER BY total DESC"
))
PY
